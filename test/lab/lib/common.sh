# shellcheck shell=bash
# Shared helpers of test/lab/lab: messages, steps, locking, waiting, parallel per-host jobs.

LAB_DIR=${PERSONA_LAB_DIR:-/var/lib/persona-lab}
LAB_DIR=${LAB_DIR%/}
LAB_CACHE=${PERSONA_LAB_CACHE:-/var/cache/persona-lab}
LAB_CACHE=${LAB_CACHE%/}
LAB_TMP=""           # scratch dir of this command (lab_tmp), removed on exit
LAB_UP_FRESH=""      # set while a fresh up runs: a failure then removes the partial lab
LAB_STEP=""          # what the lab is doing now; named in every error
LAB_STEP_HOST=""     # which host it is doing it for, if any
LAB_FENCE_AGENT=""   # set for `lab fence`: exit code 2 means "off" there, so no error may exit 2 (exit_code)

say() { printf 'lab: %s\n' "$*" >&2; }

die() {  # die CODE MESSAGE: one line, no trace
  local code=$1; shift
  printf 'lab: %s\n' "$*" >&2
  exit "$(exit_code "$code")"
}

exit_code() {  # the fence agent reports an error as 1, never as 2 (its "off")
  if [[ -n $LAB_FENCE_AGENT && $1 == 2 ]]; then printf '1\n'; else printf '%s\n' "$1"; fi
}

step() {  # step [HOST] WHAT: name the current step for error messages and logs
  if (($# == 2)); then LAB_STEP_HOST=$1; LAB_STEP=$2; else LAB_STEP_HOST=""; LAB_STEP=$1; fi
  printf '== step: %s%s (%ss)\n' "${LAB_STEP_HOST:+$LAB_STEP_HOST: }" "$LAB_STEP" "$SECONDS" >&2
}

on_error() {  # ERR trap: say which step failed, on which host, and where
  local rc=$1 line=$2 cmd=${3%%$'\n'*}
  trap - ERR
  ((${#cmd} <= 80)) || cmd="${cmd:0:77}..."
  printf 'lab: failed%s: %s (exit %s at %s line %s: %s)\n' \
    "${LAB_STEP_HOST:+ on $LAB_STEP_HOST}" "${LAB_STEP:-?}" "$rc" "${BASH_SOURCE[1]##*/}" "$line" "$cmd" >&2
  exit "$(exit_code "$rc")"
}

lab_tmp() {  # create this command's scratch dir (call in the main shell, not in $(...))
  [[ -n $LAB_TMP ]] || LAB_TMP=$(mktemp -d /tmp/persona-lab.XXXXXX)
}

on_exit() {  # EXIT trap: a failed fresh up removes its partial lab; scratch space goes
  local rc=$?
  if ((rc != 0)) && [[ -n $LAB_UP_FRESH ]]; then up_failed "$rc"; fi
  [[ -z $LAB_TMP ]] || rm -rf "$LAB_TMP"
}

require_root() {
  ((EUID == 0)) || die 2 "must run as root (the lab creates namespaces, cgroups, mounts and a bridge); try: sudo $0 $*"
}

require_commands() {  # fail naming every missing tool and where the list of packages is
  local missing=() c
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
  ((${#missing[@]} == 0)) || die 2 "missing commands: ${missing[*]}; run: npm run setup (it installs the Debian packages in scripts/debian-packages.txt)"
}

lab_lock() {  # serialise commands that change the lab (fd 9; never inherited by daemons: see daemon_start)
  local lock="/run/lock/persona-lab${LAB_DIR//\//_}.lock"
  exec 9>"$lock"
  flock -w 900 9 || die 1 "another lab command holds $lock for more than 15 minutes"
}

wait_until() {  # wait_until SECONDS WHAT CMD...: poll CMD every 0.1 s
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "timed out after ${deadline}s waiting for $what" >&2; return 1; }
    sleep 0.1
  done
}

tcp_open() {  # tcp_open ADDR PORT: something accepts connections there
  timeout 1 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

pid_alive() { [[ -n ${1:-} && -d /proc/$1 ]] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

pid_gone() { ! pid_alive "$1"; }

pid_mentions() {  # pid_mentions PID TEXT: the process's command line contains TEXT (guards against pid reuse)
  [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}

run_parallel() {  # run_parallel FUNC ITEM...: FUNC ITEM for every ITEM at once; name each failure and its step
  local fn=$1 item failed=0; shift
  local -A pids=()
  mkdir -p "$LAB_DIR/logs"
  for item in "$@"; do
    ( "$fn" "$item" ) >"$LAB_DIR/logs/$fn.$item.log" 2>&1 9>&- </dev/null &
    pids[$item]=$!
  done
  for item in "$@"; do
    wait "${pids[$item]}" && continue
    failed=1
    report_failed_job "$LAB_DIR/logs/$fn.$item.log"
  done
  return "$failed"
}

report_failed_job() {  # print the failing step of a job log and its last lines
  local log=$1 what
  what=$(grep '^== step: ' "$log" | tail -n 1 | cut -c10-)
  say "failed: ${what:-$(basename "$log")} (log: $log)"
  grep -v '^== step: ' "$log" | tail -n 8 | sed 's/^/    /' >&2
}

data() { node "$LAB_LIB/lab-data.mjs" "$@"; }

lab_is_ours() { [[ -f $LAB_DIR/.persona-lab ]]; }
