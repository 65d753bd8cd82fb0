# shellcheck shell=bash
# The lab's own daemons in the root namespace: apt-cacher-ng (on the bridge), etcd and HAProxy (on
# loopback). Each is started with its config, data and pid file under LAB_DIR, never as a system service.

ACNG_USER=apt-cacher-ng

daemon_pid() {  # daemon_pid PIDFILE: the pid, if that process is alive and is one of ours
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  pid_alive "$pid" && pid_mentions "$pid" "$LAB_DIR/" && printf '%s\n' "$pid"
}

daemon_stop() {  # daemon_stop PIDFILE NAME
  local pid
  pid=$(daemon_pid "$1") || return 0
  kill -TERM "$pid" 2>/dev/null || true
  wait_until 5 "$2 to stop" pid_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
}

port_free() {  # port_free ADDR:PORT WHAT: refuse early, naming the port and what holds it
  local holder
  holder=$(ss -Htlnp "( sport = :${1##*:} )" 2>/dev/null | awk -v a="$1" -v p=":${1##*:}" '$4 == a || $4 == "0.0.0.0"p || $4 == "*"p || $4 == "[::]"p {print $6}' | head -n 1)
  [[ -z $holder ]] || die 1 "cannot bring the lab up: $1 (for $2) is already in use by ${holder}; change ports in the spec"
}

acng_up() {
  local dir=$LAB_DIR/apt-cacher-ng cache=$LAB_CACHE/apt-cacher-ng/$LAB_BRIDGE
  daemon_pid "$dir/run/pid" >/dev/null && return 0
  step "apt proxy: apt-cacher-ng on $LAB_APT_LISTEN (cache $cache)"
  mkdir -p "$dir/conf" "$dir/log" "$dir/run" "$cache"
  chown "$ACNG_USER:" "$dir/log" "$dir/run" "$cache"
  printf '%s/\n' "$LAB_MIRROR" >"$dir/conf/backends_debian"
  acng_config "$dir" "$cache" >"$dir/conf/acng.conf"
  # apt-cacher-ng daemonizes itself (foreground=0) and drops to its own user
  setpriv --reuid="$ACNG_USER" --regid="$ACNG_USER" --clear-groups \
    /usr/sbin/apt-cacher-ng -c "$dir/conf" foreground=0 </dev/null >"$dir/log/stdout.log" 2>&1 9>&-
  wait_until 10 "apt-cacher-ng on $LAB_APT_LISTEN" tcp_open "$LAB_BRIDGE_ADDR" "$LAB_APT_PORT"
}

acng_config() {
  cat <<EOF
# persona lab: own apt-cacher-ng instance (not the system one)
CacheDir: $2
LogDir: $1/log
SupportDir: /usr/lib/apt-cacher-ng
Port: $LAB_APT_PORT
BindAddress: $LAB_BRIDGE_ADDR
PidFile: $1/run/pid
SocketPath: $1/run/socket
Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian
Remap-secdeb: security.debian.org security.debian.org/debian-security deb.debian.org/debian-security /debian-security ; deb.debian.org/debian-security
ReportPage: acng-report.html
ExThreshold: 4
EOF
}

etcd_up() {
  local dir=$LAB_DIR/etcd
  daemon_pid "$dir/etcd.pid" >/dev/null && return 0
  step "etcd on $LAB_ETCD_CLIENT (data $dir/data)"
  mkdir -p "$dir/data"
  chmod 0700 "$dir/data"
  setsid /usr/bin/etcd --name "persona-lab-$LAB_BRIDGE" --data-dir "$dir/data" \
    --listen-client-urls "http://$LAB_ETCD_CLIENT" --advertise-client-urls "http://$LAB_ETCD_CLIENT" \
    --listen-peer-urls "http://$LAB_ETCD_PEER" --initial-advertise-peer-urls "http://$LAB_ETCD_PEER" \
    --initial-cluster "persona-lab-$LAB_BRIDGE=http://$LAB_ETCD_PEER" --initial-cluster-state new \
    --initial-cluster-token "persona-lab-$LAB_BRIDGE" \
    </dev/null >"$dir/etcd.log" 2>&1 9>&- &
  printf '%s\n' "$!" >"$dir/etcd.pid"
  wait_until 15 "etcd health on $LAB_ETCD_CLIENT (log: $dir/etcd.log)" \
    curl -fsS --max-time 1 "http://$LAB_ETCD_CLIENT/health"
}

haproxy_up() {
  local dir=$LAB_DIR/haproxy
  daemon_pid "$dir/haproxy.pid" >/dev/null && return 0
  step "haproxy: frontend $LAB_HAPROXY_BACKEND on $LAB_HAPROXY_BIND, admin socket $dir/admin.sock"
  haproxy -c -q -f "$dir/haproxy.cfg"
  haproxy -f "$dir/haproxy.cfg" </dev/null >"$dir/haproxy.log" 2>&1 9>&-
  wait_until 5 "haproxy's admin socket" test -S "$dir/admin.sock"
}

haproxy_cmd() {  # haproxy_cmd COMMAND: one runtime API command on the admin socket
  printf '%s\n' "$1" | socat -t 2 - "UNIX-CONNECT:$LAB_DIR/haproxy/admin.sock"
}

services_down() {
  daemon_stop "$LAB_DIR/haproxy/haproxy.pid" haproxy
  daemon_stop "$LAB_DIR/etcd/etcd.pid" etcd
  daemon_stop "$LAB_DIR/apt-cacher-ng/run/pid" apt-cacher-ng
}

services_ports_free() {
  port_free "$LAB_HAPROXY_BIND" "the HAProxy frontend"
  port_free "$LAB_ETCD_CLIENT" "etcd clients"
  port_free "$LAB_ETCD_PEER" "etcd peers"
  port_free "$LAB_APT_LISTEN" "the apt proxy"
}

haproxy_server_status() {  # UP, DOWN, MAINT, ... of server HOST in the lab's backend
  haproxy_cmd 'show stat' 2>/dev/null | awk -F, -v b="$LAB_HAPROXY_BACKEND" -v s="$1" '$1 == b && $2 == s {print $18}'
}

haproxy_wait_serving() {  # unless HOST is in maintenance there, wait until haproxy's checks mark it UP
  local status
  status=$(haproxy_server_status "$1")
  [[ -n $status && $status != MAINT* ]] || return 0
  step "$1" "waiting for haproxy's health checks to mark it UP"
  wait_until 10 "haproxy to mark $1 UP" haproxy_server_is_up "$1"
}

haproxy_server_is_up() { [[ $(haproxy_server_status "$1") == UP ]]; }
