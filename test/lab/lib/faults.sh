# shellcheck shell=bash
# Faults on demand, one active per host, recorded in LAB_DIR/run/hosts/HOST/fault (and state.json).
#   app        deploy.stop of the host's application: the app is down, the host is fine
#   sshd       sshd killed: connections are refused
#   hang       sshd frozen (SIGSTOP): connections hang until the client's timeout
#   partition  the host's root-side veth down: timeouts / no route to host
#   poweroff   PID 1 ends (every process dies, the mounts go with the namespace) and the link goes down,
#              so nothing answers at the address, as with a machine that is off

# shellcheck disable=SC2034  # used by the lab script
FAULT_MODES="app sshd hang partition poweroff"

fault_get() { cat "$(host_run "$1")/fault" 2>/dev/null || true; }

fault_set() {
  if [[ -n $2 ]]; then printf '%s\n' "$2" >"$(host_run "$1")/fault"; else rm -f "$(host_run "$1")/fault"; fi
  data render-state "$LAB_DIR"
}

lab_fail() {  # lab_fail HOST MODE
  local h=$1 mode=$2 active
  active=$(fault_get "$h")
  [[ -z $active ]] || die 1 "$h already has the fault '$active'; run: lab heal $h"
  [[ $mode != app || -n ${H_APPS[$h]} ]] ||
    die 1 "$h runs no application, so --mode=app does not apply (hosts with apps: $(hosts_with_apps))"
  step "$h" "fault $mode"
  "fail_$mode" "$h"
  fault_set "$h" "$mode"
  say "$h: fault $mode is active (undo with: lab heal $h)"
}

lab_heal() {  # lab_heal HOST: undo whatever fault is active
  local h=$1 active
  active=$(fault_get "$h")
  if [[ -z $active ]]; then say "$h: no active fault"; return 0; fi
  step "$h" "healing $active"
  "heal_$active" "$h"
  fault_set "$h" ""
  say "$h: healed ($active)"
}

hosts_with_apps() {
  local h out=()
  for h in "${LAB_HOSTS[@]}"; do [[ -z ${H_APPS[$h]} ]] || out+=("$h"); done
  printf '%s' "${out[*]:-none}"
}

fail_app() { local id; for id in ${H_APPS[$1]}; do app_stop "$1" "$id"; done; }
heal_app() {
  local id
  for id in ${H_APPS[$1]}; do app_start "$1" "$id"; done
  haproxy_wait_serving "$1"
}

fail_sshd() {
  local p
  for p in $(host_pids "$1" sshd); do kill -KILL "$p" 2>/dev/null || true; done
  wait_until 5 "sshd of $1 to die" host_sshd_gone "$1"
}

host_sshd_gone() { ! host_tcp22 "$1" "${H_ADDRS[$1]%% *}"; }

heal_sshd() {
  step "$1" "starting sshd"
  host_exec "$1" /usr/sbin/sshd -E /var/log/sshd.log
  wait_until 10 "sshd of $1" host_sshd_ready "$1"
}

fail_hang() {
  local p
  for p in $(host_pids "$1" sshd); do kill -STOP "$p"; done
}

heal_hang() {
  local p
  for p in $(host_pids "$1" sshd); do kill -CONT "$p" 2>/dev/null || true; done
  wait_until 10 "sshd of $1" host_sshd_ready "$1"
}

fail_partition() { net_link "$1" down; }

heal_partition() {
  net_link "$1" up
  wait_until 10 "sshd of $1 across the healed link" host_sshd_ready "$1"
}

fail_poweroff() {
  host_power_off "$1" TERM
  net_link "$1" down
}

heal_poweroff() {  # boot again on the same upper layer and /srv image: files and data survive
  local id
  host_power_off "$1" KILL  # no-op when it is off; clears what is left when it half died
  net_link "$1" up
  host_launch "$1"
  for id in ${H_APPS[$1]}; do app_start "$1" "$id"; done
  haproxy_wait_serving "$1"
}
