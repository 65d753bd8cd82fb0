/**
 * The profile's firewall rules as an nftables table of its own (`inet persona_<app>`), replaced as a whole so
 * applying it twice changes nothing. Pure: the text is built here and tested; configure writes and loads it.
 */
import type { Profile } from '../profile/schema.js';

export function nftTableName(app: string): string {
  return `persona_${app.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

function sourceMatch(cidr: string): string {
  if (cidr === '0.0.0.0/0') return 'meta nfproto ipv4';
  if (cidr === '::/0') return 'meta nfproto ipv6';
  return cidr.includes(':') ? `ip6 saddr ${cidr}` : `ip saddr ${cidr}`;
}

const safeComment = (text: string) => text.replace(/[^A-Za-z0-9 _.,:/-]/g, '').slice(0, 120);

export function nftRuleset(profile: Profile): string {
  const table = nftTableName(profile.id);
  const rules = profile.network_configuration.firewall_rules.map((r) => {
    const comment = r.comment ? ` comment "${safeComment(r.comment)}"` : '';
    return `    ${sourceMatch(r.source)} ${r.protocol} dport ${r.port} ${r.action}${comment}`;
  });
  return [
    `# persona: firewall rules of ${profile.id}; replaced as a whole on every configure`,
    `table inet ${table} {}`,
    `delete table inet ${table}`,
    `table inet ${table} {`,
    '  chain input {',
    '    type filter hook input priority 0; policy accept;',
    ...rules,
    '  }',
    '}',
    '',
  ].join('\n');
}
