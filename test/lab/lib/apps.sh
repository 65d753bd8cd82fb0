# shellcheck shell=bash
# Packages inside hosts (through the apt proxy) and the sample application, as its profile describes it.

# The checksum demo-web's /checksum reports; the same pipeline runs on the backup copy.
DATA_CHECKSUM='cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum | sha256sum | cut -d" " -f1'

host_apt_install() {  # host_apt_install HOST PACKAGE...: the base's package lists first, fresh ones if stale
  local h=$1; shift
  (($#)) || return 0
  step "$h" "apt-get install $*"
  host_exec "$h" apt-get install -y -q --no-install-recommends "$@" && return 0
  step "$h" "apt-get update, then apt-get install $* again"
  host_exec "$h" apt-get update -q
  host_exec "$h" apt-get install -y -q --no-install-recommends "$@"
}

host_packages() { host_apt_install "$1" ${H_PACKAGES[$1]}; }

app_argv() {  # app_argv APP start|stop -> ARGV array
  mapfile -d '' ARGV < <(data app-argv "$LAB_DIR" "$1" "$2")
  ((${#ARGV[@]})) || { echo "no $2 command for $1" >&2; return 1; }
}

app_start() {  # app_start HOST APP: run deploy.start inside HOST and wait until it answers /health
  local h=$1 id=$2
  step "$h" "starting $id (deploy.start)"
  app_argv "$id" start
  host_exec "$h" "${ARGV[@]}"
  wait_until 10 "$id on ${H_ADDRS[$h]%% *}:${A_PORT[$id]}" \
    curl -fsS --max-time 1 "http://${H_ADDRS[$h]%% *}:${A_PORT[$id]}/health"
}

app_stop() {  # app_stop HOST APP: run deploy.stop inside HOST
  step "$1" "stopping $2 (deploy.stop)"
  app_argv "$2" stop
  host_exec "$1" "${ARGV[@]}"
}

app_seed_backup() {  # app_seed_backup DIR: random data, ~20 MB, a few files and a subdirectory
  local dir=$1
  rm -rf "$dir"
  mkdir -p "$dir/assets/img"
  head -c 8M /dev/urandom >"$dir/assets/blob-a.bin"
  head -c 6M /dev/urandom >"$dir/assets/img/blob-b.bin"
  head -c 4M /dev/urandom >"$dir/archive.bin"
  head -c 3000 /dev/urandom | base64 >"$dir/notes.txt"
  printf 'demo data seeded by the persona lab at %s\n' "$(date -u +%FT%TZ)" >"$dir/index.txt"
}

app_secret() {  # app_secret SOURCE: the secret the profile references on the machine (random, 0600)
  [[ -s $1 ]] && return 0
  mkdir -p "$(dirname "$1")"
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1")
}

app_configure() {  # app_configure HOST APP: its files, users and secrets, as the profile lists them
  local h=$1 id=$2 tmp kind a b c d
  step "$h" "writing $id's files"
  tmp=$(mktemp -d "$LAB_DIR/tmp.XXXXXX")
  chmod 0755 "$tmp"
  data app-files "$LAB_DIR" "$id" "$tmp"
  tar -C "$tmp" --numeric-owner -cf - . | host_exec "$h" tar -C / --no-overwrite-dir -xf -
  rm -rf "$tmp"
  while IFS=$'\t' read -r kind a b c d; do
    if [[ $kind == user ]]; then
      step "$h" "user $a for $id"
      host_exec "$h" sh -c 'id "$1" >/dev/null 2>&1 || useradd --create-home --user-group --shell /bin/sh "$1"' _ "$a"
    else
      step "$h" "secret $b for $id (from $a)"
      app_secret "$a"
      host_exec "$h" sh -c 'mkdir -p "$(dirname "$1")" && umask 077 && cat >"$1" && chown "$2" "$1" && chmod "$3" "$1"' \
        _ "$b" "$c" "$d" <"$a"
    fi
  done < <(data app-setup "$LAB_DIR" "$id")
}

# $1 the data path. On btrfs it becomes a subvolume, as data.migration snapshot needs (the path's own filesystem:
# a subvolume is created in its parent). Prints what it made.
DATA_DIR_SCRIPT='set -e
p=$1 parent=$(dirname -- "$1")
mkdir -p -- "$parent"
[ ! -e "$p" ] || { echo "$p exists already" >&2; exit 1; }
fs=$(stat -f -c %T -- "$parent")
if [ "$fs" = btrfs ]; then
  command -v btrfs >/dev/null || { echo "$parent is on btrfs but the btrfs command is not installed (add btrfs-progs to its packages in the lab spec)" >&2; exit 1; }
  btrfs subvolume create -- "$p" >/dev/null
  echo "a btrfs subvolume"
else
  mkdir -- "$p"
  echo "a directory on $fs"
fi'

app_data_dir() {  # app_data_dir HOST PATH: the app's data path inside HOST, a btrfs subvolume on a btrfs /srv
  local what
  what=$(host_exec "$1" sh -c "$DATA_DIR_SCRIPT" _ "$2") || { echo "$1: cannot create $2" >&2; return 1; }
  step "$1" "$2: $what"
}

app_deploy() {  # app_deploy APP: on each of its hosts: packages, files, data, start; record the checksum
  local id=$1 h sum backup=${A_BACKUP[$1]} data=${A_DATA[$1]}
  step "$id: seeding data into the backup copy $backup"
  app_seed_backup "$backup"
  sum=$(bash -c "$DATA_CHECKSUM" _ "$backup")
  for h in ${A_HOSTS[$id]}; do
    host_apt_install "$h" ${A_PACKAGES[$id]}
    app_configure "$h" "$id"
    app_data_dir "$h" "$data"
    step "$h" "copying $id's data to $data"
    tar -C "$backup" --numeric-owner -cf - . | host_exec "$h" tar -C "$data" -xf -
    [[ $(host_exec "$h" bash -c "$DATA_CHECKSUM" _ "$data") == "$sum" ]] ||
      { echo "$id's data on $h does not match the backup's checksum" >&2; return 1; }
    app_start "$h" "$id"
  done
  mkdir -p "$LAB_DIR/run/apps/$id"
  printf '%s\n' "$sum" >"$LAB_DIR/run/apps/$id/checksum"
}
