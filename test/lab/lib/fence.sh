# shellcheck shell=bash
# The lab's fence agent (STONITH), for persona's power fence (fencing.power in a profile):
#   lab fence off HOST      power HOST off for real: the poweroff fault (PID 1 ends, every process of the host
#                           dies with its namespaces, the link goes down); succeeds when it is off already
#   lab fence on HOST       boot it again as `lab heal` does (files and data survive, apps started)
#   lab fence status HOST   prints on or off; exit 0 = on, 2 = off, 1 = error (Pacemaker's fence-agent convention)
# Exit code 2 means "off" to the caller, so nothing else the agent does may exit 2: see exit_code in common.sh.
# Only hosts this lab created, named exactly as in its record, are touched.

FENCE_ACTIONS="off on status"

cmd_fence() {  # cmd_fence ACTION HOST
  (($# == 2)) || die 1 "usage: lab fence $(tr ' ' '|' <<<"$FENCE_ACTIONS") HOST"
  local action=$1 h=$2
  [[ " $FENCE_ACTIONS " == *" $action "* ]] || die 1 "unknown fence action $action (actions: $FENCE_ACTIONS)"
  fence_lab_host "$h"
  case $action in
    status) fence_status "$h" ;;
    off) lab_lock; fence_off "$h" ;;
    on) lab_lock; fence_on "$h" ;;
  esac
}

fence_lab_host() {  # refuse anything but a host this lab created: in its record, with its run directory
  lab_is_ours || die 1 "$LAB_DIR is not a lab directory; the fence agent touches nothing"
  known_host "$1"
  [[ -d $(host_run "$1") ]] || die 1 "$1 is in the spec of $LAB_DIR but was never created there; refusing"
}

fence_is_off() {  # off: no PID 1 and no process left in the host's cgroups (a host halfway down is still on)
  local f
  for f in $(cg_procs_files "$1"); do [[ -f $f ]] || die 1 "cannot read $f: the power of $1 is unknown"; done
  ! host_init_pid "$1" && [[ -z $(host_pids "$1") ]]
}

fence_status() {
  if fence_is_off "$1"; then
    printf 'off\n'
    exit 2
  fi
  printf 'on\n'
}

fence_off() {
  local h=$1 active
  active=$(fault_get "$h")
  if fence_is_off "$h"; then
    [[ $active == poweroff ]] || fault_set "$h" poweroff
    say "$h: off already"
    return 0
  fi
  [[ -z $active ]] || say "$h: replacing its fault '$active' with poweroff"
  step "$h" "fence: power off"
  fail_poweroff "$h"
  fault_set "$h" poweroff
  fence_is_off "$h" || die 1 "$h: powered off, yet a process of it is left"
  say "$h: powered off by the fence agent (power on with: lab fence on $h, or lab heal $h)"
}

fence_on() {
  local h=$1
  if ! fence_is_off "$h"; then say "$h: on already"; return 0; fi
  # off without a record (it died by itself): boot it as the poweroff heal does
  [[ $(fault_get "$h") == poweroff ]] || fault_set "$h" poweroff
  lab_heal "$h"
}
