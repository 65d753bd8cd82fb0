# shellcheck shell=bash
# One lab host: its upper layer and data volume, its launch into fresh namespaces, running commands in it.

host_dir() { printf '%s/hosts/%s' "$LAB_DIR" "$1"; }
host_run() { printf '%s/run/hosts/%s' "$LAB_DIR" "$1"; }

host_init_pid() {  # the host's PID 1 as seen from the machine; fails when the host is off
  local pid
  pid=$(cat "$(host_run "$1")/init.pid" 2>/dev/null) || return 1
  pid_alive "$pid" && grep -qF "persona-lab-$LAB_BRIDGE/$1" "/proc/$pid/cgroup" 2>/dev/null
}

host_init_pid_print() { host_init_pid "$1" && cat "$(host_run "$1")/init.pid"; }

host_prepare() {  # host_prepare HOST: the host's own files (upper layer) and its /srv image; fresh up only
  local h=$1 dir up
  dir=$(host_dir "$h") up=$(host_dir "$h")/upper
  step "$h" "preparing the upper layer"
  mkdir -p "$up/etc/ssh/sshd_config.d" "$up/etc/apt/apt.conf.d" "$up/usr/sbin" "$dir/work" "$dir/merged" "$(host_run "$h")"
  install -d -m 0700 "$up/root" "$up/root/.ssh"
  printf '%s\n' "$h" >"$up/etc/hostname"
  host_etc_hosts "$h" >"$up/etc/hosts"
  printf 'Acquire::http::Proxy "http://%s";\nAcquire::Retries "3";\n' "$LAB_APT_LISTEN" >"$up/etc/apt/apt.conf.d/01persona-lab-proxy"
  host_sshd_config "$h" >"$up/etc/ssh/sshd_config.d/persona-lab.conf"
  install -m 0600 "$LAB_DIR/ssh/id_ed25519.pub" "$up/root/.ssh/authorized_keys"
  step "$h" "generating its ssh host key"
  ssh-keygen -q -t ed25519 -N '' -C "root@$h" -f "$up/etc/ssh/ssh_host_ed25519_key"
  host_srv_image "$h" "$dir/srv.img"
}

host_srv_fs() { printf '%s\n' "${H_SRV_FS[$1]:-ext4}"; }  # ext4 in labs recorded before srv_fs

host_srv_tools() {  # host_srv_tools HOST...: the mkfs their /srv needs is here (before anything is made)
  local h
  for h in "$@"; do [[ $(host_srv_fs "$h") != btrfs ]] || require_commands mkfs.btrfs; done
}

host_srv_image() {  # host_srv_image HOST FILE: a sparse image of the host's /srv size and filesystem (srv_fs)
  local h=$1 img=$2 fs
  fs=$(host_srv_fs "$h")
  step "$h" "creating its ${H_SRV_BYTES[$h]}-byte $fs /srv image"
  truncate -s "${H_SRV_BYTES[$h]}" "$img"
  case $fs in
    ext4) mkfs.ext4 -q -F -m 0 -L srv -E lazy_itable_init=1,lazy_journal_init=1 "$img" ;;
    btrfs) mkfs.btrfs -q -f -L srv "$img" >/dev/null ;;
    *) echo "$h: unknown /srv filesystem $fs" >&2; return 1 ;;
  esac
}

host_etc_hosts() {
  local h
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n%s\tlab-gateway\n' "$1" "$LAB_BRIDGE_ADDR"
  for h in "${LAB_HOSTS[@]}"; do printf '%s\t%s\n' "${H_ADDRS[$h]%% *}" "$h"; done
}

host_sshd_config() {
  local a
  printf '# persona lab: read before the rest of sshd_config, so these values win\n'
  for a in ${H_ADDRS[$1]}; do printf 'ListenAddress %s\n' "$a"; done
  printf '%s\n' 'HostKey /etc/ssh/ssh_host_ed25519_key' 'PidFile /run/sshd.pid' \
    'PermitRootLogin prohibit-password' 'PasswordAuthentication no' 'KbdInteractiveAuthentication no' \
    'UsePAM no' 'UseDNS no' 'MaxStartups 256:30:512' 'MaxSessions 64'
}

host_launch() {  # host_launch HOST: boot the host (fresh up, heal after poweroff); its files survive
  local h=$1 dir run launcher init
  dir=$(host_dir "$h") run=$(host_run "$h")
  step "$h" "booting (netns ${H_NETNS[$h]}, cgroup persona-lab-$LAB_BRIDGE/$h)"
  install -m 0755 "$LAB_LIB/host-init" "$dir/upper/usr/sbin/persona-lab-init"
  rm -f "$run/init.pid" "$run/launcher.pid"
  # join the host's cgroups first so that its cgroup namespace is rooted at them
  setsid bash -c 'echo "$$" >"$1"; shift; for f in $1; do echo "$$" >"$f"; done; shift; exec "$@"' _ \
    "$run/launcher.pid" "$(cg_procs_files "$h")" \
    nsenter --net="/run/netns/${H_NETNS[$h]}" \
    unshare --mount --propagation private --pid --fork --kill-child --uts --ipc --cgroup \
    /bin/bash "$LAB_LIB/host-boot.sh" "$(base_dir)" "$dir" "$h" "$CG_MODE" "$(host_srv_fs "$h")" \
    </dev/null >>"$dir/console.log" 2>&1 9>&- &
  wait_until 5 "$h's launcher" test -s "$run/launcher.pid"
  launcher=$(cat "$run/launcher.pid")
  wait_until 5 "$h's PID 1" host_child_of "$launcher"
  init=$(host_child_of "$launcher")
  printf '%s\n' "$init" >"$run/init.pid"
  step "$h" "waiting for sshd on ${H_ADDRS[$h]%% *}:22 (console: $dir/console.log)"
  wait_until 20 "sshd of $h" host_sshd_ready "$h"
}

host_child_of() {  # the one child of the launcher: the host's PID 1
  local c
  c=$(cat "/proc/$1/task/$1/children" 2>/dev/null) && [[ -n ${c// /} ]] && printf '%s\n' "${c%% *}"
}

host_sshd_ready() {  # sshd listens on every endpoint of the host (seen from the bastion while there is one)
  local a
  host_init_pid "$1" || return 1
  for a in ${H_ADDRS[$1]}; do host_tcp22 "$1" "$a" || return 1; done
}

host_exec() {  # host_exec HOST CMD...: run CMD inside HOST (its namespaces, root, cgroups, a clean env)
  local h=$1 pid; shift
  pid=$(host_init_pid_print "$h") || { echo "$h is not running" >&2; return 1; }
  (
    for f in $(cg_procs_files "$h"); do echo "$BASHPID" >"$f"; done
    exec nsenter --target "$pid" --mount --uts --ipc --net --pid --cgroup --root --wd -- \
      /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
      LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
  ) 9>&-
}

host_pids() {  # every process of the host (its cgroup), optionally only those named $2
  local p
  for p in $(cat "$(cg_procs_files "$1" | cut -d' ' -f1)" 2>/dev/null); do
    [[ -z ${2:-} || $(cat "/proc/$p/comm" 2>/dev/null) == "$2" ]] && printf '%s\n' "$p"
  done
  return 0
}

host_power_off() {  # host_power_off HOST SIGNAL: end PID 1 (the kernel kills the rest) and wait until
  # the host's mounts are gone, so that the same upper layer and /srv image can boot again
  local h=$1 sig=$2 dir launcher pid
  step "$h" "powering off (SIG$sig to PID 1)"
  if pid=$(host_init_pid_print "$h"); then kill "-$sig" "$pid" 2>/dev/null || true; fi
  launcher=$(cat "$(host_run "$h")/launcher.pid" 2>/dev/null || true)
  wait_until 10 "$h's processes to exit" host_is_empty "$h" "$launcher"
  wait_until 10 "$h's /srv loop device to be released" host_srv_released "$h"
}

host_is_empty() {
  [[ -z $(host_pids "$1") ]] && ! { [[ -n ${2:-} ]] && pid_alive "$2" && pid_mentions "$2" "$LAB_DIR/"; }
}

host_srv_released() { [[ -z $(losetup -j "$(host_dir "$1")/srv.img" 2>/dev/null) ]]; }
