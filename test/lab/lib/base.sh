# shellcheck shell=bash
# The Debian base every host's overlay sits on: debootstrap once and cache it as a tarball; keep the
# extracted tree next to it (read-only lower layer, shared by every host of every lab), so a warm up
# neither extracts nor deletes 200 MB.

base_tarball() { printf '%s/base-%s-%s.tar.zst' "$LAB_CACHE" "$LAB_SUITE" "$LAB_BASE_KEY"; }
base_dir() { printf '%s/base-%s-%s' "$LAB_CACHE" "$LAB_SUITE" "$LAB_BASE_KEY"; }

base_ensure() {
  local tarball dir tmp
  tarball=$(base_tarball) dir=$(base_dir)
  [[ -f $dir/.complete ]] && return 0
  mkdir -p "$LAB_CACHE"
  exec 8>"$LAB_CACHE/.build.lock"
  flock 8  # another lab may be building or extracting the same base right now
  if [[ ! -f $dir/.complete ]]; then
    rm -rf --one-file-system "$LAB_CACHE"/build.* "$dir"  # left by a run that was killed; we hold the lock
    tmp=$(mktemp -d "$LAB_CACHE/build.XXXXXX")
    if [[ -f $tarball ]]; then
      step "restoring the base from $tarball"
      mkdir "$tmp/root"
      tar -C "$tmp/root" --numeric-owner -I zstd -xf "$tarball"
    else
      base_build "$tmp" "$tarball"
    fi
    : >"$tmp/root/.complete"
    mv "$tmp/root" "$dir"
    rm -rf --one-file-system "$tmp"
  fi
  exec 8>&-
}

base_build() {  # base_build TMP TARBALL: debootstrap minbase + the base packages into TMP/root, customised, packed
  local tmp=$1 tarball=$2
  step "building the Debian base: debootstrap --variant=minbase $LAB_SUITE + ${LAB_BASE_PACKAGES[*]} (log: $LAB_DIR/logs/debootstrap.log)"
  if ! debootstrap --variant=minbase --include="$(IFS=,; printf '%s' "${LAB_BASE_PACKAGES[*]}")" \
      "$LAB_SUITE" "$tmp/root" "$LAB_MIRROR" >"$LAB_DIR/logs/debootstrap.log" 2>&1; then
    tail -n 5 "$LAB_DIR/logs/debootstrap.log" >&2
    rm -rf --one-file-system "$tmp"
    return 1
  fi
  base_customize "$tmp/root"
  step "packing the base into $tarball"
  tar -C "$tmp/root" --numeric-owner -cf - . | zstd -q -T0 -3 -o "$tmp/base.tar.zst"
  mv "$tmp/base.tar.zst" "$tarball"
}

base_customize() {  # what every host shares; host-specific files go to each host's upper layer
  local root=$1
  step "customising the base"
  # every host generates its own host key (host_prepare)
  rm -f "$root"/etc/ssh/ssh_host_*
  # let package scripts start services, as on a real host (there is no systemd: they use init.d)
  printf '#!/bin/sh\nexit 0\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  printf 'deb %s %s main\n' "$LAB_MIRROR" "$LAB_SUITE" >"$root/etc/apt/sources.list"
  # hosts have no DNS and no route out: apt goes through the proxy, which resolves names itself
  : >"$root/etc/resolv.conf"
  # a host's processes die with it, but the machine's kernel (and page cache) stays: fsync buys nothing
  printf 'force-unsafe-io\n' >"$root/etc/dpkg/dpkg.cfg.d/persona-lab-unsafe-io"
  rm -f "$root"/var/cache/apt/archives/*.deb
  # the package lists ship with the base: parse them once here, not on every host's first apt run
  chroot "$root" apt-cache gencaches >/dev/null
}
