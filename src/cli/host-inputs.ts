/** Command-line values that reach a remote host go through the same rules as profile values. */
import { ValidationError } from '../errors.js';
import { absolutePath, packageSpec } from '../profile/rules.js';

export function validateDataPath(path: string): void {
  const r = absolutePath.safeParse(path);
  if (!r.success)
    throw new ValidationError(
      '--path',
      [{ path: '', message: `${r.error.issues[0]!.message}, got ${JSON.stringify(path)}` }],
      'E_USAGE',
    );
}

export function validatePackages(specs: readonly string[]): void {
  const problems = specs.flatMap((spec, i) => {
    const r = packageSpec.safeParse(spec);
    return r.success
      ? []
      : [{ path: `/${i}`, message: `${r.error.issues[0]!.message}, got ${JSON.stringify(spec)}` }];
  });
  if (problems.length > 0) throw new ValidationError('--package', problems, 'E_USAGE');
}
