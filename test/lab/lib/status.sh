# shellcheck shell=bash
# `lab status`: every host's facts MEASURED over ssh (one round trip each, in parallel), against the spec.

# Runs on the host through `sh -s`; arguments are the package names to look for.
STATUS_PROBE='
printf "hostname=%s\n" "$(hostname)"
printf "nproc=%s\n" "$(nproc)"
if [ -f /sys/fs/cgroup/memory.max ]; then m=$(cat /sys/fs/cgroup/memory.max)
else m=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes); fi
printf "memory=%s\n" "$m"
printf "srv=%s\n" "$(df -B1 --output=size /srv | tail -n 1 | tr -d " ")"
for p in "$@"; do
  dpkg-query -W -f="\${Status}" "$p" 2>/dev/null | grep -q "install ok installed" && printf "pkg=%s\n" "$p"
done
exit 0'

lab_status() {
  local tmp h p pkgs words all=() bad=0
  tmp=$(mktemp -d)
  for p in "${H_PACKAGES[@]}" "${A_PACKAGES[@]}"; do read -ra words <<<"$p"; all+=("${words[@]}"); done
  pkgs=$(printf '%s\n' "${all[@]%%=*}" | sort -u | tr '\n' ' ')
  for h in "${LAB_HOSTS[@]}"; do
    # shellcheck disable=SC2086  # one word per package
    timeout 10 ssh -F "$(lab_ssh_config)" -o ConnectTimeout=3 "$h" sh -s -- $pkgs \
      <<<"$STATUS_PROBE" >"$tmp/$h" 2>"$tmp/$h.err" 9>&- &
  done
  wait
  printf '%-10s %-15s %-6s %-5s %-7s %-7s %-26s %-16s %s\n' HOST ADDRESS SSH CPUS MEMORY /SRV PACKAGES APPS FAULT
  for h in "${LAB_HOSTS[@]}"; do status_row "$h" "$tmp/$h" || bad=1; done
  status_services
  rm -rf "$tmp"
  ((bad == 0)) || say "some measured facts differ from the spec (marked !expected) or a host is unreachable"
  return "$bad"
}

status_row() {  # status_row HOST PROBE_OUTPUT: measured facts, "!expected" where they differ
  local h=$1 out=$2 fault ssh=ok cpus mem srv pkgs apps="" id bad=0 want size=${H_SRV_BYTES[$1]}
  fault=$(cat "$(host_run "$h")/fault" 2>/dev/null || echo -)
  if ! grep -q '^nproc=' "$out"; then
    ssh=FAIL
    [[ $fault != - ]] || bad=1
    printf '%-10s %-15s %-6s %s\n' "$h" "${H_ADDRS[$h]%% *}" "$ssh" "(unreachable: $(head -c 60 "$out.err" | tr '\n' ' ')) fault=$fault"
    return "$bad"
  fi
  cpus=$(sed -n 's/^nproc=//p' "$out")
  [[ $cpus == "${H_CPU_COUNT[$h]}" ]] || { cpus+="!${H_CPU_COUNT[$h]}"; bad=1; }
  mem=$(sed -n 's/^memory=//p' "$out")
  [[ $mem == "${H_MEM_BYTES[$h]}" ]] || bad=1
  mem=$(numfmt --to=iec "$mem" 2>/dev/null || echo "$mem")
  srv=$(sed -n 's/^srv=//p' "$out")
  # ext4 keeps a few percent for its journal and tables
  ((srv <= size && srv * 100 >= size * 80)) || { bad=1; srv+="!"; }
  srv=$(numfmt --to=iec "${srv%!}" 2>/dev/null)${srv//[0-9]/}
  pkgs=$(sed -n 's/^pkg=//p' "$out" | tr '\n' ' ')
  for want in ${H_PACKAGES[$h]}; do grep -qx "pkg=$want" "$out" || { pkgs+="!$want "; bad=1; }; done
  for id in ${H_APPS[$h]}; do
    if curl -fsS --max-time 2 "http://${H_ADDRS[$h]%% *}:${A_PORT[$id]}/health" >/dev/null 2>&1; then apps+="$id:up "
    else apps+="$id:DOWN "; [[ $fault != - ]] || bad=1; fi
  done
  printf '%-10s %-15s %-6s %-5s %-7s %-7s %-26s %-16s %s\n' "$h" "${H_ADDRS[$h]%% *}" "$ssh" "$cpus" \
    "$mem" "$srv" "${pkgs:--}" "${apps:--}" "$fault"
  return "$bad"
}

status_services() {
  local servers etcd=down apt=down
  servers=$(haproxy_cmd 'show stat' 2>/dev/null | awk -F, -v b="$LAB_HAPROXY_BACKEND" \
    '$1 == b && $2 != "BACKEND" && $2 != "FRONTEND" {printf "%s=%s ", $2, $18}')
  curl -fsS --max-time 2 "http://$LAB_ETCD_CLIENT/health" 2>/dev/null | grep -q '"health":"true"' && etcd=healthy
  tcp_open "$LAB_BRIDGE_ADDR" "$LAB_APT_PORT" && apt=up
  printf '\nhaproxy  http://%s  backend %s: %s\n' "$LAB_HAPROXY_BIND" "$LAB_HAPROXY_BACKEND" "${servers:-(no admin socket)}"
  printf 'etcd     http://%s  %s\n' "$LAB_ETCD_CLIENT" "$etcd"
  printf 'apt      http://%s  %s\n' "$LAB_APT_LISTEN" "$apt"
  printf 'ssh      ssh -F %s HOST\n' "$(lab_ssh_config)"
  [[ -z $(bastion_get) ]] ||
    printf 'bastion  %s: the other hosts take ssh only from it (lab bastion status; off: lab bastion off)\n' "$(bastion_get)"
  printf 'state    %s/state.json   inventory %s/inventory.json\n' "$LAB_DIR" "$LAB_DIR"
}
