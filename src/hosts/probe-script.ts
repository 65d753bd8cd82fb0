/**
 * The probe: one POSIX sh script, sent on stdin in one SSH round trip. It prints `key<TAB>value` lines after a
 * marker, so a chatty login shell cannot confuse the parser. Arguments: the data path to measure, then the
 * packages of the software stack (`name` or `name=version`). Values are printed raw; parse-probe.ts makes sense
 * of them (and is tested on recorded output from real hosts).
 *
 * It starts as few processes as it can (files are read with the shell's own `read`; uname, nproc, df and
 * dpkg-query are about all it runs): on a fleet probed from one machine, forks are most of a probe's cost
 * (bench/RESULTS.md). What apt offers for missing packages comes from one `apt-cache policy` call, whose version
 * table also says whether a pinned version is offered.
 */
export const PROBE_MARKER = 'persona-probe 1';

// Written as String.raw so backslashes stay shell backslashes; shell parameter expansions are written \${...} to
// keep them out of the template's interpolation, and the backslash is removed below.
export const probeScript = String.raw`
set -u
LC_ALL=C; export LC_ALL
p() {
  case $2 in
    *[![:print:]]*) printf '%s\t%s\n' "$1" "$(printf '%s' "$2" | tr -d '\000-\037')" ;;
    *) printf '%s\t%s\n' "$1" "$2" ;;
  esac
}
# rd FILE...: the first line of the first readable FILE into $v, without a subshell.
rd() { v=; for f in "$@"; do [ -r "$f" ] && { read -r v <"$f"; return 0; }; done; return 1; }
echo '${PROBE_MARKER}'
rd /proc/sys/kernel/hostname; p hostname "$v"
# Linux has both in /proc (arch since 6.1); uname otherwise.
if rd /proc/sys/kernel/osrelease && kernel=$v && rd /proc/sys/kernel/arch; then arch=$v
else un=$(uname -rm); kernel=\${un% *}; arch=\${un##* }; fi
p kernel "$kernel"
p arch "$arch"
if [ -r /etc/os-release ]; then
  id= ver= pretty=
  while IFS='=' read -r k v; do
    v=\${v#\"}; v=\${v%\"}
    case $k in ID) id=$v ;; VERSION_ID) ver=$v ;; PRETTY_NAME) pretty=$v ;; esac
  done </etc/os-release
  p os_id "$id"; p os_version "$ver"; p os_pretty "$pretty"
fi
# The CPUs this shell may run on (what nproc counts), from "Cpus_allowed_list: 0-1,4".
cpus=
while read -r k v; do [ "$k" = Cpus_allowed_list: ] && { cpus=$v; break; }; done </proc/self/status 2>/dev/null
if [ -n "$cpus" ]; then
  n=0 IFS=,
  for r in $cpus; do case $r in *-*) n=$((n + \${r#*-} - \${r%-*} + 1)) ;; *) n=$((n + 1)) ;; esac; done
  unset IFS
  p nproc "$n"
else
  p nproc "$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
fi
rd /proc/loadavg; p loadavg "$v"
total= avail=
while read -r k v _; do
  case $k in MemTotal:) total=$v ;; MemAvailable:) avail=$v; break ;; esac
done </proc/meminfo
p meminfo_total_kb "$total"
p meminfo_available_kb "$avail"
if [ -r /sys/fs/cgroup/cgroup.controllers ]; then
  p cgroup 2
  rel=
  while IFS=: read -r n c path; do [ "$n" = 0 ] && rel=$path; done </proc/self/cgroup
  rd "/sys/fs/cgroup$rel/memory.max" /sys/fs/cgroup/memory.max; p cg_memory_max "$v"
  rd "/sys/fs/cgroup$rel/memory.current" /sys/fs/cgroup/memory.current; p cg_memory_current "$v"
  rd "/sys/fs/cgroup$rel/cpu.max" /sys/fs/cgroup/cpu.max; p cg_cpu_max "$v"
elif [ -d /sys/fs/cgroup/memory ] || [ -d /sys/fs/cgroup/cpu ]; then
  p cgroup 1
  mrel= crel=
  while IFS=: read -r n c path; do
    case ,$c, in *,memory,*) mrel=$path ;; esac
    case ,$c, in *,cpu,*) [ -n "$crel" ] || crel=$path ;; esac
  done </proc/self/cgroup
  rd "/sys/fs/cgroup/memory$mrel/memory.limit_in_bytes" /sys/fs/cgroup/memory/memory.limit_in_bytes; p cg_memory_max "$v"
  rd "/sys/fs/cgroup/memory$mrel/memory.usage_in_bytes" /sys/fs/cgroup/memory/memory.usage_in_bytes; p cg_memory_current "$v"
  rd "/sys/fs/cgroup/cpu$crel/cpu.cfs_quota_us" /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us; p cg_cpu_quota "$v"
  rd "/sys/fs/cgroup/cpu$crel/cpu.cfs_period_us" /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us; p cg_cpu_period "$v"
else
  p cgroup none
fi
path=$1; shift
checked=$path
while [ ! -e "$checked" ] && [ "$checked" != / ]; do
  case $checked in */*) checked=\${checked%/*}; checked=\${checked:-/} ;; *) checked=. ;; esac
done
p storage_path "$path"
p storage_checked "$checked"
df=$(df -Pk "$checked" 2>/dev/null)
nl='
'
p storage_df "\${df##*"$nl"}"
# The filesystem type as stat names it ("btrfs", "ext2/ext3", "tmpfs"): data.migration snapshot needs btrfs.
p storage_fstype "$(stat -f -c %T -- "$checked" 2>/dev/null)"
if command -v dpkg-query >/dev/null 2>&1; then
  p pkg_manager dpkg
  # dpkg-query's "ii": wanted and installed (one grep instead of dpkg-query | grep).
  if [ -r /var/lib/dpkg/status ]; then
    p pkg_installed_count "$(grep -c '^Status: install [a-z]* installed$' /var/lib/dpkg/status)"
  else
    p pkg_installed_count "$(dpkg-query -W -f='\${db:Status-Abbrev}\n' 2>/dev/null | grep -c '^ii')"
  fi
  n=0
  for f in /var/lib/apt/lists/*_Packages*; do [ -e "$f" ] && n=$((n + 1)); done
  p apt_lists "$n"
elif command -v rpm >/dev/null 2>&1; then
  p pkg_manager rpm
  p pkg_installed_count "$(rpm -qa 2>/dev/null | wc -l)"
else
  p pkg_manager none
fi
# Installed versions one package at a time (dpkg-query is cheap); what apt offers for the missing ones in ONE
# apt-cache call, because every call maps the whole package cache (~17 ms here, ~64 ms for 3 policy + 1 show).
k=$#
wants=
for spec do
  name=\${spec%%=*}
  want=
  case $spec in *=*) want=\${spec#*=} ;; esac
  installed=
  if command -v dpkg-query >/dev/null 2>&1; then
    line=$(dpkg-query -W -f='\${db:Status-Abbrev} \${Version}' "$name" 2>/dev/null)
    case $line in ii*) installed=\${line#* } ; installed=\${installed# } ;; esac
  elif command -v rpm >/dev/null 2>&1; then
    installed=$(rpm -q --qf '%{VERSION}-%{RELEASE}' "$name" 2>/dev/null) || installed=
  fi
  p "pkg_installed:$name" "$installed"
  if [ -z "$installed" ] || { [ -n "$want" ] && [ "$installed" != "$want" ]; }; then
    set -- "$@" "$name"
    [ -z "$want" ] || wants="$wants$name=$want$nl"
  fi
done
shift "$k"
if [ "$#" -gt 0 ] && command -v apt-cache >/dev/null 2>&1; then
  apt-cache policy -- "$@" 2>/dev/null | {
    pkg= offered=$nl
    while IFS= read -r line; do
      case $line in
        [!\ ]*:) pkg=\${line%:} ;;
        '  Candidate: '*) p "pkg_candidate:$pkg" "\${line#  Candidate: }" ;;
        '     '[!\ ]* | ' *** '*) v=\${line#?????}; offered="$offered$pkg=\${v%% *}$nl" ;;
      esac
    done
    while IFS= read -r pair; do
      [ -n "$pair" ] || continue
      case $offered in *"$nl$pair$nl"*) a=yes ;; *) a=no ;; esac
      p "pkg_version_available:\${pair%%=*}" "$a"
    done <<WANTS
$wants
WANTS
  }
fi
echo 'persona-probe end'
`.replaceAll('\\${', '${');
