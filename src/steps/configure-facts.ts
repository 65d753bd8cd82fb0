/** What configure reports of the profile's users and keys, the same for both drivers (never a secret: its source). */
import type { Profile } from '../profile/schema.js';

export function securityFacts(sec: Profile['security_profile']) {
  return {
    users: sec.users.map((u) => ({
      name: u.name,
      groups: u.groups,
      authorized_keys: u.authorized_keys.length,
    })),
    keys: sec.encryption_keys.map((k) => ({
      name: k.name,
      path: k.path,
      mode: k.mode,
      owner: k.group ? `${k.owner}:${k.group}` : k.owner,
      // env, file or store: where the secret comes from, never what it is.
      from: k.secret.split(':')[0]!,
    })),
  };
}
