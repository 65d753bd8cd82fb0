/**
 * Every persona command, declared as data. Modules load lazily so `persona --help` starts fast.
 */
import type { CommandSpec, GroupSpec } from './spec.js';

export const groups: GroupSpec[] = [{ name: 'profile', summary: 'read, check and change persona profiles' }];

const idArg = { name: 'id', description: 'application id', required: true };

export const commands: CommandSpec[] = [
  {
    path: ['profile', 'list'],
    summary: 'list the profiles in the store',
    examples: [
      ['persona profile list', 'a table of ids, versions and requirements'],
      ['persona profile list --json', 'the same as JSON'],
      ['persona profile list --store etcd://127.0.0.1:2379/persona', 'from another store'],
    ],
    load: () => import('./commands/profile-list.js'),
  },
  {
    path: ['profile', 'show'],
    summary: 'show one profile',
    args: [idArg],
    options: [{ flags: '--version <n>', description: 'an earlier version from the history', integer: true }],
    examples: [
      ['persona profile show demo-web', 'the profile text with its version'],
      ['persona profile show demo-web --json', 'the normalised profile as JSON (defaults filled in)'],
      ['persona profile show demo-web --version 2', 'version 2 from the history'],
    ],
    load: () => import('./commands/profile-show.js'),
  },
  {
    path: ['profile', 'validate'],
    summary: 'check profile files; all problems at once, each with its JSON path',
    args: [{ name: 'files', description: 'profile files (JSON)', required: true, variadic: true }],
    examples: [
      ['persona profile validate profiles/*.json', 'check every example profile'],
      ['persona profile validate new.json --json', 'problems as JSON, for editors and CI'],
    ],
    load: () => import('./commands/profile-validate.js'),
  },
  {
    path: ['profile', 'edit'],
    summary: 'edit a profile in $VISUAL/$EDITOR; validated, and never overwrites a concurrent change',
    args: [idArg],
    options: [
      { flags: '-m, --message <text>', description: 'why the profile changed (kept in the history)' },
    ],
    examples: [
      ['persona profile edit demo-web', 'opens the profile in your editor; saves it when valid'],
      ['EDITOR=nano persona profile edit demo-web -m "more RAM"', 'with another editor and a history note'],
    ],
    load: () => import('./commands/profile-edit.js'),
  },
  {
    path: ['profile', 'set'],
    summary: 'write a profile from a file (the non-interactive edit)',
    args: [idArg],
    options: [
      { flags: '-f, --file <path>', description: 'the profile file; - for stdin' },
      {
        flags: '--expect-version <n>',
        description: 'write only if the stored version is still N (0: only if it does not exist yet)',
        integer: true,
      },
      { flags: '-m, --message <text>', description: 'why the profile changed (kept in the history)' },
    ],
    examples: [
      ['persona profile set demo-web --file demo-web.json', 'validate and write'],
      [
        'persona profile set demo-web --file demo-web.json --expect-version 3',
        'write only if nobody changed version 3 meanwhile',
      ],
      ['persona profile set new-app --file new-app.json --expect-version 0', 'create; refuse if it exists'],
    ],
    load: () => import('./commands/profile-set.js'),
  },
  {
    path: ['profile', 'diff'],
    summary: 'show what changed between a stored version and the current one (or a file)',
    args: [idArg],
    options: [
      { flags: '--version <n>', description: 'compare this version with the current one', integer: true },
      { flags: '-f, --file <path>', description: 'compare the current version with this file' },
    ],
    examples: [
      ['persona profile diff demo-web', 'the last change'],
      ['persona profile diff demo-web --version 2', 'from version 2 to the current version'],
      ['persona profile diff demo-web --file mine.json', 'what writing mine.json would change'],
    ],
    load: () => import('./commands/profile-diff.js'),
  },
  {
    path: ['profile', 'history'],
    summary: 'list the versions of a profile: who changed it, when and why',
    args: [idArg],
    examples: [['persona profile history demo-web', 'newest first']],
    load: () => import('./commands/profile-history.js'),
  },
  {
    path: ['profile', 'new'],
    summary: 'print a valid skeleton profile to fill in',
    args: [idArg],
    options: [{ flags: '-o, --output <file>', description: 'write it to a file (refuses to overwrite)' }],
    examples: [
      ['persona profile new billing-api > billing-api.json', 'a skeleton on stdout'],
      ['persona profile new billing-api -o billing-api.json && $EDITOR billing-api.json', 'then fill it in'],
    ],
    load: () => import('./commands/profile-new.js'),
  },
  {
    path: ['profile', 'delete'],
    summary: 'delete a profile (its history is kept)',
    args: [idArg],
    options: [
      {
        flags: '--expect-version <n>',
        description: 'delete only if the stored version is still N',
        integer: true,
      },
    ],
    examples: [['persona profile delete old-app --yes', 'without asking']],
    load: () => import('./commands/profile-delete.js'),
  },
];
