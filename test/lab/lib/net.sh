# shellcheck shell=bash
# The lab network: a bridge on the root side, one netns + veth per host, a guard route, no way out.

NFT_TABLE() { printf 'persona_lab_%s' "$LAB_BRIDGE"; }

net_up() {
  # Before any link exists (so before any can go down): traffic to a missing host must not
  # fall through to the machine's default route.
  step "network: unreachable guard route for $LAB_SUBNET"
  ip route replace unreachable "$LAB_SUBNET" metric 4000
  step "network: bridge $LAB_BRIDGE ($LAB_BRIDGE_ADDR/$LAB_PREFIX)"
  ip link show "$LAB_BRIDGE" >/dev/null 2>&1 || ip link add "$LAB_BRIDGE" type bridge
  sysctl -qw "net.ipv6.conf.$LAB_BRIDGE.disable_ipv6=1" || true
  ip addr replace "$LAB_BRIDGE_ADDR/$LAB_PREFIX" dev "$LAB_BRIDGE"
  ip link set "$LAB_BRIDGE" up
  net_no_forwarding
}

net_no_forwarding() {  # hosts have no default route; even if one adds it, the machine never forwards for them
  # Traffic between hosts on the bridge is no forwarding, but where br_netfilter is loaded
  # (net.bridge.bridge-nf-call-iptables=1, as with Docker) bridged packets pass this hook too, with the bridge as
  # both their input and output interface: they are let through, so that hosts reach each other (a bastion).
  # Loaded as a whole every time (up and repair), so a lab up with an older guard gets this one.
  command -v nft >/dev/null 2>&1 || { say "nft not found: no forwarding guard for $LAB_BRIDGE (install nftables)"; return 0; }
  step "network: nftables table inet $(NFT_TABLE) (drop forwarding to/from $LAB_BRIDGE)"
  nft -f - <<EOF
table inet $(NFT_TABLE) {}
delete table inet $(NFT_TABLE)
table inet $(NFT_TABLE) {
  chain forward {
    type filter hook forward priority -10; policy accept;
    iifname "$LAB_BRIDGE" oifname "$LAB_BRIDGE" accept
    iifname "$LAB_BRIDGE" drop
    oifname "$LAB_BRIDGE" drop
  }
}
EOF
}

host_net_up() {  # host_net_up HOST: its netns, a veth on the bridge, its addresses; no default route
  local h=$1 ns=${H_NETNS[$1]} veth=${H_VETH[$1]} a
  step "$h" "network namespace $ns, veth $veth, ${H_ADDRS[$h]}"
  ip netns add "$ns"
  nsenter --net="/run/netns/$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip link add "$veth" type veth peer name eth0 netns "$ns"
  sysctl -qw "net.ipv6.conf.$veth.disable_ipv6=1" || true
  ip link set "$veth" master "$LAB_BRIDGE" up
  ip -n "$ns" link set lo up
  for a in ${H_ADDRS[$h]}; do ip -n "$ns" addr add "$a/$LAB_PREFIX" dev eth0; done
  ip -n "$ns" link set eth0 up
}

net_link() {  # net_link HOST up|down: the root-side end of the host's cable
  step "$1" "link ${H_VETH[$1]} $2"
  ip link set "${H_VETH[$1]}" "$2"
}

net_down() {  # best effort; every step tolerates what is already gone
  local ns link
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$LAB_BRIDGE-" || true); do
    ip netns delete "$ns" 2>/dev/null || true
  done
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^${LAB_BRIDGE}v[0-9]+$" || true); do
    ip link delete "$link" 2>/dev/null || true
  done
  ip link delete "$LAB_BRIDGE" 2>/dev/null || true
  if command -v nft >/dev/null 2>&1; then nft delete table inet "$(NFT_TABLE)" 2>/dev/null || true; fi
  # last: the guard stays while any lab link might still exist
  while ip route del unreachable "$LAB_SUBNET" metric 4000 2>/dev/null; do :; done
}
