/**
 * The profile's firewall rules as an nftables table of its own (`inet persona_<app>`), replaced as a whole so
 * applying it twice changes nothing. Pure: the text is built here and tested; configure writes and loads it.
 */
import type { Profile } from '../profile/schema.js';
import { NFT_LISTING_DIGEST } from './host-state.js';

/** Where persona keeps an application's ruleset on a host, and the digest of the table it loaded from it. */
export const nftRulesetPath = (app: string) => `/etc/persona/nftables/${app}.nft`;
export const nftListingPath = (app: string) => `/etc/persona/nftables/${app}.listing.sha256`;

/**
 * Loads the ruleset ($1) into table inet $2, then records the digest of the table's listing as nft shows it now in
 * $3 (root-only file). Both configure drivers run it.
 */
export const LOAD_NFT_SCRIPT = [
  'set -e',
  'nft -f "$1"',
  `nftdigest() { ${NFT_LISTING_DIGEST}; }`,
  'digest=$(nftdigest "$2")',
  '[ -n "$digest" ]',
  'umask 077',
  'printf "%s\\n" "$digest" > "$3.tmp"',
  'mv -f -- "$3.tmp" "$3"',
].join('\n');

export function nftTableName(app: string): string {
  return `persona_${app.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/**
 * The source as nft matches it, its family explicit: 0.0.0.0/0 is every IPv4 source and no IPv6 one, ::/0 every
 * IPv6 source, "any" both (no match at all); a range matches its own family only.
 */
function sourceMatch(source: string): string | undefined {
  if (source === 'any') return undefined;
  if (source === '0.0.0.0/0') return 'meta nfproto ipv4';
  if (source === '::/0') return 'meta nfproto ipv6';
  return source.includes(':') ? `ip6 saddr ${source}` : `ip saddr ${source}`;
}

type Rule = Profile['network_configuration']['firewall_rules'][number];

function protocolMatch(r: Rule): string {
  // icmp/icmpv6 by layer-4 protocol, so that the rule holds in the inet table for its own family only.
  if (r.protocol === 'icmp') return 'meta l4proto icmp';
  if (r.protocol === 'icmpv6') return 'meta l4proto ipv6-icmp';
  return `${r.protocol} dport ${r.port}`;
}

const safeComment = (text: string) => text.replace(/[^A-Za-z0-9 _.,:/-]/g, '').slice(0, 120);

export function nftRuleset(profile: Profile): string {
  const table = nftTableName(profile.id);
  const rules = profile.network_configuration.firewall_rules.map((r) => {
    const comment = r.comment ? ` comment "${safeComment(r.comment)}"` : '';
    const match = [sourceMatch(r.source), protocolMatch(r)].filter(Boolean).join(' ');
    return `    ${match} ${r.action}${comment}`;
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
