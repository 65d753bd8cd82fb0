# shellcheck shell=bash
# Teardown and the check that nothing is left. Always safe to run: every step tolerates what is gone.

lab_teardown() {
  local h pid
  cg_detect
  step "stopping hosts"
  for h in "${LAB_HOSTS[@]}"; do
    if pid=$(host_init_pid_print "$h" 2>/dev/null); then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  cg_kill_all
  wait_until 10 "the lab's processes to exit" cg_lab_empty || true
  step "stopping haproxy, etcd, apt-cacher-ng"
  services_down
  kill_lab_processes
  step "waiting for the hosts' mounts to go"
  for h in "${LAB_HOSTS[@]}"; do wait_until 10 "$h's /srv loop device" host_srv_released "$h" || true; done
  step "removing cgroups, network, $LAB_DIR"
  wait_until 10 "the lab's cgroups to be removable" cg_lab_remove || true
  net_down
  remove_lab_dir
}

kill_lab_processes() {  # anything else still running from this lab dir (launchers, daemons without pid file)
  local p exe
  for p in $(lab_process_pids); do
    exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
    case ${exe##*/} in
      haproxy | etcd | apt-cacher-ng | unshare | nsenter) kill -KILL "$p" 2>/dev/null || true ;;
    esac
  done
}

lab_process_pids() {  # processes that sit in the lab's cgroups, or whose command line names the lab dir
  local re
  # a bracket in the pattern keeps grep from finding its own command line
  # shellcheck disable=SC2001
  re="$(sed 's/[][\.*^$+?(){}|]/\\&/g' <<<"$LAB_DIR")[/]"
  { grep -lsF "persona-lab-$LAB_BRIDGE/" /proc/[0-9]*/cgroup; grep -lsaE -- "$re" /proc/[0-9]*/cmdline; } 2>/dev/null |
    cut -d/ -f3 | sort -un | grep -vx -e "$$" -e "$BASHPID" || true
}

remove_lab_dir() {
  [[ -e $LAB_DIR ]] || return 0
  [[ -f $LAB_DIR/.persona-lab && $LAB_DIR == /*/* && $LAB_DIR != *..* ]] ||
    { say "not removing $LAB_DIR: it is not marked as a lab directory"; return 0; }
  local m
  # nothing should be mounted there (mounts live in the hosts' namespaces), but never delete through a mount
  for m in $(awk -v d="$LAB_DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m" || true; done
  rm -rf --one-file-system "$LAB_DIR"
}

lab_traces() {  # one line per thing this lab left on the machine; empty when clean
  local d f
  awk -v d="$LAB_DIR/" 'index($0, d) {print "mount: " $5}' /proc/self/mountinfo
  for f in /sys/block/loop*/loop/backing_file; do
    [[ -f $f ]] && grep -qF "$LAB_DIR/" "$f" && echo "loop device: ${f#/sys/block/} -> $(cat "$f")"
  done
  ip netns list 2>/dev/null | awk -v b="$LAB_BRIDGE-" 'index($1, b) == 1 {print "netns: " $1}'
  for d in $(cg_lab_dirs); do [[ ! -d $d ]] || echo "cgroup: $d"; done
  ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^$LAB_BRIDGE(v[0-9]+)?$" | sed 's/^/link: /' || true
  ip route show table all 2>/dev/null | grep -F "$LAB_SUBNET" | sed 's/^/route: /' || true
  if command -v nft >/dev/null 2>&1; then nft list tables 2>/dev/null | grep -F "$(NFT_TABLE)" | sed 's/^/nftables: /' || true; fi
  for f in $(lab_process_pids); do
    [[ ! -d /proc/$f ]] || echo "process: $f $(tr '\0' ' ' <"/proc/$f/cmdline" 2>/dev/null | cut -c1-100)"
  done
  [[ ! -e $LAB_DIR ]] || echo "directory: $LAB_DIR"
  return 0
}
