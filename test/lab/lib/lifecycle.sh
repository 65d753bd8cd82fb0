# shellcheck shell=bash disable=SC2034  # LAB_UP_FRESH is read by on_exit (common.sh)
# `lab up` and `lab down`: bring a whole lab up from its spec, repair it, take it down without a trace.

spec_load() {  # spec_load SPEC_FILE: validate and resolve it into $LAB_TMP; defines LAB_*, H_*, A_*
  [[ -f $1 ]] || die 2 "no spec file $1"
  lab_tmp
  data resolve "$1" "$LAB_DIR" "$LAB_CACHE" "$LAB_TMP/spec.json" >"$LAB_TMP/spec.sh" ||
    die 2 "fix the spec and try again"
  # shellcheck source=/dev/null
  source "$LAB_TMP/spec.sh"
}

spec_load_running() {  # the spec the lab in LAB_DIR was brought up with (false if none)
  [[ -f $LAB_DIR/spec.sh ]] || return 1
  # shellcheck source=/dev/null
  source "$LAB_DIR/spec.sh"
}

lab_is_up() { [[ -f $LAB_DIR/state.json ]]; }

require_up() {
  lab_is_up || die 3 "the lab in $LAB_DIR is not up (run: lab up${PERSONA_LAB_DIR:+, with PERSONA_LAB_DIR=$PERSONA_LAB_DIR})"
  spec_load_running
  cg_detect
}

cmd_up() {  # cmd_up SPEC_FILE
  local spec=$1 running_hash="" running_file=""
  spec_load "$spec"
  if [[ -f $LAB_DIR/spec.sh ]]; then
    running_hash=$(sed -n "s/^LAB_SPEC_HASH='\(.*\)'$/\1/p" "$LAB_DIR/spec.sh")
    running_file=$(sed -n "s/^LAB_SPEC_FILE='\(.*\)'$/\1/p" "$LAB_DIR/spec.sh")
  fi
  if [[ -n $running_hash && $running_hash != "$LAB_SPEC_HASH" ]] && lab_is_up; then
    die 1 "a different lab is up in $LAB_DIR (spec $running_file); run 'lab down' first, or use another PERSONA_LAB_DIR"
  fi
  if [[ -n $running_hash ]] && ! lab_is_up; then
    say "an earlier bring-up in $LAB_DIR did not finish: taking it down first"
    ( spec_load_running && lab_teardown )
  fi
  cg_detect
  if lab_is_up; then lab_repair; else lab_fresh_up; fi
}

preflight() {  # refuse before touching anything, naming what is in the way
  local h
  ! ip link show "$LAB_BRIDGE" >/dev/null 2>&1 || die 1 "interface $LAB_BRIDGE exists but no lab is recorded in $LAB_DIR; run 'lab down' (same PERSONA_LAB_DIR) or change 'bridge' in the spec"
  [[ -z $(ip -o route show to root "$LAB_SUBNET" 2>/dev/null) ]] || die 1 "the machine already routes inside $LAB_SUBNET; change 'subnet' in the spec"
  for h in "${LAB_HOSTS[@]}"; do
    [[ ! -e /run/netns/${H_NETNS[$h]} ]] || die 1 "network namespace ${H_NETNS[$h]} exists already; run 'lab down' or change 'bridge'"
  done
  services_ports_free
}

lab_fresh_up() {
  local t0=$SECONDS h with_packages=()
  preflight
  host_srv_tools "${LAB_HOSTS[@]}"
  step "creating $LAB_DIR"
  mkdir -p "$LAB_DIR/logs" "$LAB_DIR/run" "$LAB_DIR/ssh"
  chmod 0700 "$LAB_DIR/ssh"
  : >"$LAB_DIR/.persona-lab"
  cp "$LAB_TMP/spec.json" "$LAB_TMP/spec.sh" "$LAB_DIR/"
  LAB_UP_FRESH=1
  printf '%s\n' "$CG_MODE" >"$LAB_DIR/run/cgroup_mode"
  base_ensure
  net_up
  cg_lab_up
  for h in "${LAB_HOSTS[@]}"; do host_net_up "$h"; cg_host_up "$h"; done
  acng_up
  etcd_up
  step "ssh client key $LAB_DIR/ssh/id_ed25519"
  ssh-keygen -q -t ed25519 -N '' -C "persona-lab-$LAB_BRIDGE" -f "$LAB_DIR/ssh/id_ed25519"
  step "preparing and booting ${#LAB_HOSTS[@]} hosts"
  run_parallel host_prepare "${LAB_HOSTS[@]}"
  run_parallel host_launch "${LAB_HOSTS[@]}"
  step "writing ssh config, known_hosts, haproxy config, inventory"
  data render-config "$LAB_DIR"
  data render-known-hosts "$LAB_DIR"
  for h in "${LAB_HOSTS[@]}"; do [[ -z ${H_PACKAGES[$h]} ]] || with_packages+=("$h"); done
  if ((${#with_packages[@]})); then
    step "installing packages on ${with_packages[*]} through the apt proxy"
    run_parallel host_packages "${with_packages[@]}"
  fi
  ((${#LAB_APPS[@]} == 0)) || run_parallel app_deploy "${LAB_APPS[@]}"
  haproxy_up
  lab_verify
  date -u +%FT%TZ >"$LAB_DIR/run/up_at"
  data render-state "$LAB_DIR"
  LAB_UP_FRESH=""
  say "up: ${#LAB_HOSTS[@]} hosts in $((SECONDS - t0))s; inventory $LAB_DIR/inventory.json; ssh -F $LAB_DIR/ssh/config ${LAB_HOSTS[0]}"
}

up_failed() {  # a fresh up failed (see on_exit): keep the logs, remove the partial lab
  local keep
  LAB_UP_FRESH=""
  trap - ERR
  set +e
  keep=$(mktemp -d /tmp/persona-lab-failed.XXXXXX)
  cp -r "$LAB_DIR/logs/." "$keep/" 2>/dev/null
  say "bring-up failed (exit $1); logs kept in $keep; removing the partial lab"
  ( set -e; lab_teardown ) >"$keep/teardown.log" 2>&1 ||
    say "the partial lab could not be removed completely (see $keep/teardown.log); run: lab down"
}

lab_verify() {  # every host answers over ssh with host key checking on; the app is served
  local id
  step "checking ssh (host keys checked) on every host"
  run_parallel host_ssh_check "${LAB_HOSTS[@]}"
  for id in "${LAB_APPS[@]}"; do
    step "waiting for haproxy to serve $id on $LAB_HAPROXY_BIND"
    wait_until 15 "haproxy to route to $id" curl -fsS --max-time 1 "http://$LAB_HAPROXY_BIND/health"
  done
}

host_ssh_check() {
  step "$1" "ssh -F $LAB_DIR/ssh/config $1 true"
  ssh -F "$LAB_DIR/ssh/config" -o ConnectTimeout=5 "$1" true
}

lab_repair() {  # same spec already up: heal what is broken, restart what stopped
  local h t0=$SECONDS
  say "the lab in $LAB_DIR is up with this spec; checking it"
  [[ -e /sys/class/net/$LAB_BRIDGE ]] || die 1 "the lab in $LAB_DIR lost its bridge $LAB_BRIDGE; run 'lab down' then 'lab up'"
  # up leaves the lab as a fresh up does: every host reachable from this machine
  [[ -z $(bastion_get) && ! -e $(bastion_config) ]] || bastion_off
  net_no_forwarding
  acng_up
  etcd_up
  haproxy_up
  for h in "${LAB_HOSTS[@]}"; do
    [[ -z $(fault_get "$h") ]] || lab_heal "$h"
    host_init_pid "$h" >/dev/null || { fault_set "$h" poweroff; lab_heal "$h"; }
  done
  lab_verify
  data render-state "$LAB_DIR"
  say "up: already up and healthy ($((SECONDS - t0))s)"
}

cmd_down() {  # cmd_down [SPEC_FILE]: from the running lab's own record, else from the spec
  local t0=$SECONDS leftovers
  if ! spec_load_running; then
    spec_load "$1"
    [[ ! -e $LAB_DIR || -f $LAB_DIR/.persona-lab ]] || die 1 "$LAB_DIR exists but is not a lab directory; not touching it"
  fi
  lab_teardown
  leftovers=$(lab_traces)
  if [[ -n $leftovers ]]; then
    say "down: these traces are left:"
    printf '  %s\n' "${leftovers//$'\n'/$'\n'  }" >&2
    return 1
  fi
  say "down: nothing left ($((SECONDS - t0))s)"
}
