/**
 * The probe: one POSIX sh script, sent on stdin in one SSH round trip. It prints `key<TAB>value` lines after a
 * marker, so a chatty login shell cannot confuse the parser. Arguments: the data path to measure, then the
 * packages of the software stack (`name` or `name=version`). Values are printed raw; parse-probe.ts makes sense
 * of them (and is tested on recorded output from real hosts).
 */
export const PROBE_MARKER = 'persona-probe 1';

// Written as String.raw so backslashes stay shell backslashes; shell parameter expansions are written \${...} to
// keep them out of the template's interpolation, and the backslash is removed below.
export const probeScript = String.raw`
set -u
LC_ALL=C; export LC_ALL
p() { printf '%s\t%s\n' "$1" "$(printf '%s' "$2" | tr -d '\000-\037')"; }
echo '${PROBE_MARKER}'
p hostname "$(cat /proc/sys/kernel/hostname 2>/dev/null)"
p kernel "$(uname -r)"
p arch "$(uname -m)"
if [ -r /etc/os-release ]; then
  p os_id "$(sed -n 's/^ID=//p' /etc/os-release | tr -d '"')"
  p os_version "$(sed -n 's/^VERSION_ID=//p' /etc/os-release | tr -d '"')"
  p os_pretty "$(sed -n 's/^PRETTY_NAME=//p' /etc/os-release | tr -d '"')"
fi
p nproc "$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
p loadavg "$(cat /proc/loadavg)"
p meminfo_total_kb "$(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo)"
p meminfo_available_kb "$(sed -n 's/^MemAvailable: *\([0-9]*\).*/\1/p' /proc/meminfo)"
# cgroups: v2 (unified) or v1; inside a cgroup namespace our own cgroup is the mount root.
cg_file() {
  for base in "$@"; do [ -r "$base" ] && { cat "$base"; return 0; }; done
  return 1
}
if [ -r /sys/fs/cgroup/cgroup.controllers ]; then
  p cgroup 2
  rel=$(sed -n 's/^0:://p' /proc/self/cgroup)
  p cg_memory_max "$(cg_file "/sys/fs/cgroup$rel/memory.max" /sys/fs/cgroup/memory.max)"
  p cg_memory_current "$(cg_file "/sys/fs/cgroup$rel/memory.current" /sys/fs/cgroup/memory.current)"
  p cg_cpu_max "$(cg_file "/sys/fs/cgroup$rel/cpu.max" /sys/fs/cgroup/cpu.max)"
elif [ -d /sys/fs/cgroup/memory ] || [ -d /sys/fs/cgroup/cpu ]; then
  p cgroup 1
  mrel=$(sed -n 's/^[0-9]*:[^:]*memory[^:]*://p' /proc/self/cgroup)
  crel=$(sed -n 's/^[0-9]*:[^:]*cpu[,:][^:]*://p;s/^[0-9]*:cpu://p' /proc/self/cgroup | head -n 1)
  p cg_memory_max "$(cg_file "/sys/fs/cgroup/memory$mrel/memory.limit_in_bytes" /sys/fs/cgroup/memory/memory.limit_in_bytes)"
  p cg_memory_current "$(cg_file "/sys/fs/cgroup/memory$mrel/memory.usage_in_bytes" /sys/fs/cgroup/memory/memory.usage_in_bytes)"
  p cg_cpu_quota "$(cg_file "/sys/fs/cgroup/cpu$crel/cpu.cfs_quota_us" /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us)"
  p cg_cpu_period "$(cg_file "/sys/fs/cgroup/cpu$crel/cpu.cfs_period_us" /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us)"
else
  p cgroup none
fi
path=$1; shift
checked=$path
while [ ! -e "$checked" ] && [ "$checked" != / ]; do checked=$(dirname "$checked"); done
p storage_path "$path"
p storage_checked "$checked"
p storage_df "$(df -Pk "$checked" 2>/dev/null | tail -n 1)"
if command -v dpkg-query >/dev/null 2>&1; then
  p pkg_manager dpkg
  p pkg_installed_count "$(dpkg-query -W -f='\${db:Status-Abbrev}\n' 2>/dev/null | grep -c '^ii')"
  p apt_lists "$(ls /var/lib/apt/lists 2>/dev/null | grep -c '_Packages')"
elif command -v rpm >/dev/null 2>&1; then
  p pkg_manager rpm
  p pkg_installed_count "$(rpm -qa 2>/dev/null | wc -l)"
else
  p pkg_manager none
fi
for spec in "$@"; do
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
    if command -v apt-cache >/dev/null 2>&1; then
      p "pkg_candidate:$name" "$(apt-cache policy "$name" 2>/dev/null | sed -n 's/^ *Candidate: //p')"
      if [ -n "$want" ]; then
        if apt-cache show "$name=$want" >/dev/null 2>&1; then p "pkg_version_available:$name" yes; else p "pkg_version_available:$name" no; fi
      fi
    fi
  fi
done
echo 'persona-probe end'
`.replaceAll('\\${', '${');
