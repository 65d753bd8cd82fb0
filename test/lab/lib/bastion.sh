# shellcheck shell=bash
# A bastion (jump host) for the lab, as real fleets have one:
#   lab bastion on HOST   HOST becomes the only way in: every other host's network namespace gets an nftables table
#                         of its own (inet persona_lab_bastion) that drops tcp port 22 unless the source is one of
#                         HOST's addresses, so this machine reaches their sshd only through HOST. Nothing else is
#                         filtered (HAProxy's health checks, the apt proxy). HOST's sshd logs at DEBUG1 while it is
#                         the bastion, so its log names every forwarded connection (server_request_direct_tcpip).
#                         Writes LAB_DIR/ssh/config-bastion: the lab's config with `ProxyJump root@HOST_ADDR` for
#                         every other host.
#   lab bastion off       removes all of it (also what a failed `on` left); `lab up` does it too
#   lab bastion status    the bastion, and per host behind it (nftables counters): the ssh connections it accepted
#                         from the bastion, the bytes its sshd received from and sent to the bastion, and the ssh
#                         packets it dropped
# Recorded in LAB_DIR/run/bastion (and state.json). The tables live in the hosts' network namespaces, which
# outlive a poweroff fault and go with `lab down`.

BASTION_TABLE=persona_lab_bastion
BASTION_SSHD_CONF=/etc/ssh/sshd_config.d/persona-lab-bastion.conf

bastion_get() { cat "$LAB_DIR/run/bastion" 2>/dev/null || true; }

bastion_config() { printf '%s/ssh/config-bastion' "$LAB_DIR"; }

lab_ssh_config() {  # the ssh config that reaches every host now: through the bastion while there is one
  if [[ -n $(bastion_get) ]]; then bastion_config; else printf '%s/ssh/config' "$LAB_DIR"; fi
}

cmd_bastion() {  # cmd_bastion on HOST | off | status
  case ${1:-} in
    on) (($# == 2)) || die 2 "usage: lab bastion on HOST"; known_host "$2"; lab_lock; bastion_on "$2" ;;
    off) (($# == 1)) || die 2 "usage: lab bastion off"; lab_lock; bastion_off ;;
    status) (($# == 1)) || die 2 "usage: lab bastion status"; bastion_status ;;
    *) die 2 "usage: lab bastion on HOST | off | status" ;;
  esac
}

bastion_nsenter() {  # bastion_nsenter HOST CMD...: CMD in HOST's network namespace only (the machine's binaries)
  local ns=/run/netns/${H_NETNS[$1]}; shift
  [[ -e $ns ]] || { echo "no network namespace $ns" >&2; return 1; }
  nsenter --net="$ns" "$@"
}

bastion_ruleset() {  # bastion_ruleset BASTION: the table for a host behind it; replaces any table of that name
  local addrs
  addrs=$(tr ' ' ',' <<<"${H_ADDRS[$1]}")
  cat <<EOF
table inet $BASTION_TABLE {}
delete table inet $BASTION_TABLE
table inet $BASTION_TABLE {
  chain input {
    type filter hook input priority -20; policy accept;
    tcp dport 22 ip saddr { $addrs } tcp flags & (syn | ack) == syn counter accept comment "new ssh connection from the bastion $1"
    tcp dport 22 ip saddr { $addrs } counter accept comment "ssh from the bastion"
    tcp dport 22 counter drop comment "ssh from anywhere else"
  }
  chain output {
    type filter hook output priority -20; policy accept;
    tcp sport 22 ip daddr { $addrs } counter accept comment "ssh to the bastion"
  }
}
EOF
}

bastion_on() {
  local b=$1 h active
  require_commands nft nsenter
  active=$(bastion_get)
  [[ -z $active || $active == "$b" ]] || die 1 "$active is the bastion already; run: lab bastion off"
  host_init_pid "$b" || die 1 "$b is not running (fault: $(fault_get "$b")); heal it first: lab heal $b"
  step "bastion: $LAB_DIR/ssh/config-bastion (ProxyJump root@${H_ADDRS[$b]%% *} for every host but $b)"
  data render-bastion-config "$LAB_DIR" "$b"
  bastion_sshd_loglevel "$b" DEBUG1
  for h in "${LAB_HOSTS[@]}"; do
    [[ $h != "$b" ]] || continue
    step "$h" "bastion: nftables table inet $BASTION_TABLE in ${H_NETNS[$h]} (ssh only from $b)"
    bastion_ruleset "$b" | bastion_nsenter "$h" nft -f -
  done
  printf '%s\n' "$b" >"$LAB_DIR/run/bastion"
  data render-state "$LAB_DIR"
  say "bastion $b (${H_ADDRS[$b]}): the other hosts take ssh only from it; ssh -F $(bastion_config) HOST (off with: lab bastion off)"
}

bastion_off() {  # also removes what a failed `on` left: every host is looked at
  local h was
  was=$(bastion_get)
  for h in "${LAB_HOSTS[@]}"; do
    if bastion_nsenter "$h" nft list table inet "$BASTION_TABLE" >/dev/null 2>&1; then
      step "$h" "bastion: removing nftables table inet $BASTION_TABLE"
      bastion_nsenter "$h" nft delete table inet "$BASTION_TABLE"
    fi
    bastion_sshd_loglevel "$h" ""
  done
  rm -f "$(bastion_config)" "$LAB_DIR/run/bastion"
  data render-state "$LAB_DIR"
  if [[ -n $was ]]; then say "bastion $was: off; every host takes ssh from this machine again"; else say "no bastion"; fi
}

bastion_sshd_loglevel() {  # bastion_sshd_loglevel HOST LEVEL|"": set (or remove) the drop-in; a running sshd reloads
  local h=$1 level=$2 file have=""
  file="$(host_dir "$h")/upper$BASTION_SSHD_CONF"
  if host_init_pid "$h"; then
    host_exec "$h" test -e "$BASTION_SSHD_CONF" && have=1
    [[ -n $level || -n $have ]] || return 0
    step "$h" "sshd LogLevel ${level:-back to the default}; reloading sshd (SIGHUP)"
    if [[ -n $level ]]; then
      host_exec "$h" sh -c 'printf "# persona lab: lab bastion on\nLogLevel %s\n" "$2" >"$1"' _ "$BASTION_SSHD_CONF" "$level"
    else
      host_exec "$h" rm -f "$BASTION_SSHD_CONF"
    fi
    bastion_sshd_reload "$h"
  else
    # off: its root is not mounted, so the upper layer is the host's own file system; it boots with the file
    [[ -n $level ]] || rm -f "$file"
    [[ -z $level ]] || die 1 "$h is not running"
  fi
}

bastion_sshd_reload() {  # SIGHUP makes sshd exec itself again (same argv: -E /var/log/sshd.log), which reads the config
  local h=$1 before want
  before=$(bastion_listening "$h")
  want=$((before + $(wc -w <<<"${H_ADDRS[$h]}")))
  host_exec "$h" sh -c 'kill -HUP "$(cat /run/sshd.pid)"'
  wait_until 10 "sshd of $h to listen again after SIGHUP" bastion_reloaded "$h" "$want"
}

bastion_listening() { host_exec "$1" grep -c '^Server listening on' /var/log/sshd.log || true; }

bastion_reloaded() {
  local n
  n=$(bastion_listening "$1")
  ((${n:-0} >= $2)) && host_sshd_ready "$1"
}

bastion_status() {
  local b h text counters=()
  b=$(bastion_get)
  if [[ -z $b ]]; then printf 'bastion: off\n'; return 0; fi
  printf 'bastion: %s %s; ssh -F %s HOST\n' "$b" "${H_ADDRS[$b]}" "$(bastion_config)"
  printf '%-10s %-15s %-12s %-12s %-12s %s\n' HOST ADDRESS CONNECTIONS BYTES_IN BYTES_OUT DROPPED
  for h in "${LAB_HOSTS[@]}"; do
    [[ $h != "$b" ]] || continue
    # packets and bytes of each counter in rule order: new connections from the bastion, ssh from the bastion,
    # dropped ssh, ssh to the bastion
    text=$(bastion_nsenter "$h" nft list table inet "$BASTION_TABLE" 2>/dev/null |
      sed -n 's/.*counter packets \([0-9]*\) bytes \([0-9]*\).*/\1 \2/p' | tr '\n' ' ') || true
    read -r -a counters <<<"$text"
    if ((${#counters[@]} == 8)); then
      printf '%-10s %-15s %-12s %-12s %-12s %s\n' "$h" "${H_ADDRS[$h]%% *}" "${counters[0]}" "${counters[3]}" \
        "${counters[7]}" "${counters[4]}"
    else
      printf '%-10s %-15s %s\n' "$h" "${H_ADDRS[$h]%% *}" "(no table $BASTION_TABLE: not isolated)"
    fi
  done
}

host_tcp22() {  # host_tcp22 HOST ADDR: sshd accepts at ADDR:22, seen from where ssh may come from now (the bastion
  # while there is one, for the hosts behind it; this machine otherwise)
  local b
  b=$(bastion_get)
  if [[ -n $b && $b != "$1" ]]; then
    timeout 1 nsenter --net="/run/netns/${H_NETNS[$b]}" bash -c 'exec 3<>"/dev/tcp/$1/22"' _ "$2" 2>/dev/null
  else
    tcp_open "$2" 22
  fi
}
