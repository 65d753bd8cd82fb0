#!/bin/bash
# Boots one lab host. Runs as PID 1 of the host's fresh mount/PID/UTS/IPC/cgroup namespaces (inside its
# network namespace and cgroups), builds its filesystem and hands over to persona-lab-init.
# Every mount below lives in this private mount namespace: it vanishes when the host's last process exits.
#   host-boot.sh BASE_DIR HOST_DIR HOSTNAME CGROUP_MODE(v1|v2) SRV_FS(ext4|btrfs)
set -euo pipefail
base=$1 dir=$2 name=$3 cgroup_mode=$4 srv_fs=${5:-ext4}
root=$dir/merged

mount_root() {
  mount -t overlay overlay -o "lowerdir=$base,upperdir=$dir/upper,workdir=$dir/work" "$root"
  # ext4's noinit_itable: no background zeroing of a sparse image's inode tables
  local opts=loop,nosuid,nodev
  [[ $srv_fs != ext4 ]] || opts+=,noinit_itable
  mount -t "$srv_fs" -o "$opts" "$dir/srv.img" "$root/srv"
  mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
  mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
  mount -t tmpfs -o mode=0755,size=64m,nosuid,nodev tmpfs "$root/run"
  mkdir -p "$root/run/lock" "$root/run/sshd"
}

mount_cgroups() {  # the host sees its own cgroup as the root (cgroup namespace), read-only
  local fs=$root/sys/fs/cgroup c
  if [[ $cgroup_mode == v2 ]]; then
    mount -t cgroup2 -o ro,nosuid,nodev,noexec cgroup2 "$fs"
    return
  fi
  mount -t tmpfs -o mode=0755,size=64k,nosuid,nodev,noexec cgroup "$fs"
  for c in memory cpuset cpuacct; do
    [[ $c != cpuacct || -f /sys/fs/cgroup/cpuacct/cgroup.procs ]] || continue
    mkdir "$fs/$c"
    mount -t cgroup -o "ro,nosuid,nodev,noexec,$c" cgroup "$fs/$c"
  done
  mount -o remount,ro,nosuid,nodev,noexec "$fs"
}

mount_dev() {  # a minimal /dev: no access to the machine's disks
  local dev=$root/dev node
  mount -t tmpfs -o mode=0755,size=64k,nosuid,noexec tmpfs "$dev"
  for node in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
    IFS=: read -r n major minor <<<"$node"
    mknod -m 0666 "$dev/$n" c "$major" "$minor"
  done
  mkdir -m 0755 "$dev/pts"
  mkdir -m 1777 "$dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$dev/pts"
  mount -t tmpfs -o mode=1777,size=16m,nosuid,nodev tmpfs "$dev/shm"
  ln -s pts/ptmx "$dev/ptmx"
  ln -s /proc/self/fd "$dev/fd"
  ln -s /proc/self/fd/0 "$dev/stdin"
  ln -s /proc/self/fd/1 "$dev/stdout"
  ln -s /proc/self/fd/2 "$dev/stderr"
}

mount_root
mount_cgroups
mount_dev
hostname "$name"
# pivot_root rather than chroot: the machine's filesystem is then gone from the host's view.
cd "$root"
pivot_root . mnt
umount -l /mnt
cd /
exec /usr/sbin/persona-lab-init
