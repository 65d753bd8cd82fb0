# shellcheck shell=bash
# Memory and cpuset limits per host: cgroup v1 (separate hierarchies) or v2 (unified), by detection.
# Layout: <hierarchy>/persona-lab-<bridge>/<host>.

CG_MODE=""

cg_detect() {
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    CG_MODE=v2
  elif [[ -f /sys/fs/cgroup/memory/cgroup.procs && -f /sys/fs/cgroup/cpuset/cgroup.procs ]]; then
    CG_MODE=v1
  else
    die 1 "no cgroup memory and cpuset controllers found under /sys/fs/cgroup (need v1 memory+cpuset or v2)"
  fi
}

cg_lab_dirs() {  # the lab's parent cgroup in every hierarchy it uses
  if [[ $CG_MODE == v2 ]]; then
    printf '%s\n' "/sys/fs/cgroup/persona-lab-$LAB_BRIDGE"
  else
    printf '%s\n' "/sys/fs/cgroup/memory/persona-lab-$LAB_BRIDGE" "/sys/fs/cgroup/cpuset/persona-lab-$LAB_BRIDGE"
    # cpuacct, where the machine has it: a host's own CPU time, which persona's validation samples
    [[ ! -f /sys/fs/cgroup/cpuacct/cgroup.procs ]] || printf '%s\n' "/sys/fs/cgroup/cpuacct/persona-lab-$LAB_BRIDGE"
  fi
}

cg_procs_files() {  # space-separated cgroup.procs files of HOST (memory first)
  local d out=()
  for d in $(cg_lab_dirs); do out+=("$d/$1/cgroup.procs"); done
  printf '%s' "${out[*]}"
}

cg_lab_up() {
  step "cgroups ($CG_MODE): persona-lab-$LAB_BRIDGE"
  local d
  if [[ $CG_MODE == v2 ]]; then
    d=/sys/fs/cgroup/persona-lab-$LAB_BRIDGE
    cg_v2_enable /sys/fs/cgroup
    mkdir -p "$d"
    cg_v2_enable "$d"
    return
  fi
  mkdir -p "/sys/fs/cgroup/memory/persona-lab-$LAB_BRIDGE"
  [[ ! -f /sys/fs/cgroup/cpuacct/cgroup.procs ]] || mkdir -p "/sys/fs/cgroup/cpuacct/persona-lab-$LAB_BRIDGE"
  d=/sys/fs/cgroup/cpuset/persona-lab-$LAB_BRIDGE
  mkdir -p "$d"
  # v1 cpusets start empty; a child can only use what its parent has
  [[ -n $(cat "$d/cpuset.cpus") ]] || cat /sys/fs/cgroup/cpuset/cpuset.cpus >"$d/cpuset.cpus"
  [[ -n $(cat "$d/cpuset.mems") ]] || cat /sys/fs/cgroup/cpuset/cpuset.mems >"$d/cpuset.mems"
}

cg_v2_enable() {  # let children of $1 use the memory and cpuset controllers (no-op when already on)
  local c
  for c in memory cpuset; do
    grep -qw "$c" "$1/cgroup.subtree_control" || echo "+$c" >"$1/cgroup.subtree_control"
  done
}

cg_host_up() {
  local h=$1 d
  step "$h" "cgroup limits: memory ${H_MEM_BYTES[$h]} bytes, cpus ${H_CPUS[$h]}"
  if [[ $CG_MODE == v2 ]]; then
    d=/sys/fs/cgroup/persona-lab-$LAB_BRIDGE/$h
    mkdir -p "$d"
    echo "${H_MEM_BYTES[$h]}" >"$d/memory.max"
    [[ ! -f $d/memory.swap.max ]] || echo 0 >"$d/memory.swap.max"
    echo "${H_CPUS[$h]}" >"$d/cpuset.cpus"
    return
  fi
  d=/sys/fs/cgroup/memory/persona-lab-$LAB_BRIDGE/$h
  mkdir -p "$d"
  echo "${H_MEM_BYTES[$h]}" >"$d/memory.limit_in_bytes"
  [[ ! -f /sys/fs/cgroup/cpuacct/cgroup.procs ]] || mkdir -p "/sys/fs/cgroup/cpuacct/persona-lab-$LAB_BRIDGE/$h"
  d=/sys/fs/cgroup/cpuset/persona-lab-$LAB_BRIDGE/$h
  mkdir -p "$d"
  echo "${H_CPUS[$h]}" >"$d/cpuset.cpus"
  cat "/sys/fs/cgroup/cpuset/persona-lab-$LAB_BRIDGE/cpuset.mems" >"$d/cpuset.mems"
}

cg_kill_all() {  # SIGKILL every process left in the lab's cgroups (teardown)
  local f p
  for f in $(cg_lab_dirs | sed 's|$|/*/cgroup.procs|'); do
    [[ -f $f ]] || continue
    if [[ -f ${f%/cgroup.procs}/cgroup.kill ]]; then echo 1 >"${f%/cgroup.procs}/cgroup.kill" 2>/dev/null || true; fi
    for p in $(cat "$f" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
  done
}

cg_lab_empty() {
  local f
  for f in $(cg_lab_dirs | sed 's|$|/*/cgroup.procs|'); do
    [[ ! -f $f || -z $(cat "$f" 2>/dev/null) ]] || return 1
  done
}

cg_lab_remove() {  # remove the lab's cgroups (children first); fails while a process is left in one
  local d ok=0
  for d in $(cg_lab_dirs); do
    [[ -d $d ]] || continue
    find "$d" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || ok=1
    rmdir "$d" 2>/dev/null || ok=1
  done
  return "$ok"
}
