# shellcheck shell=bash
# `lab add-host`: one more host in the running lab, made as `up` makes lab-1..4 (namespace, veth, cgroup limits,
# overlay root, /srv image, sshd with a fresh host key in known_hosts), behind HAProxy as a disabled server. It is
# a real provisioner for persona: its inventory entry is the only thing on stdout.

cmd_add_host() {  # cmd_add_host --spec FILE|JSON
  local spec="" h
  while (($#)); do
    case $1 in
      --spec) (($# > 1)) || die 2 "--spec needs a file or a JSON object"; spec=$2; shift 2 ;;
      --spec=*) spec=${1#--spec=}; shift ;;
      *) die 2 "unknown argument $1; usage: lab add-host --spec FILE|JSON" ;;
    esac
  done
  [[ -n $spec ]] || die 2 "usage: lab add-host --spec FILE|JSON (cpus, memory, srv_size, srv_fs, packages, labels)"
  [[ -z $(bastion_get) ]] || die 1 "a bastion is on ($(bastion_get)): turn it off first (lab bastion off)"
  h=$(data add-host "$LAB_DIR" "$spec") || die 2 "fix the host spec and try again"
  spec_load_running
  host_srv_tools "$h"
  lab_add_host "$h" >&2
  data host-entry "$LAB_DIR" "$h"
}

lab_add_host() {  # lab_add_host HOST: HOST is in the running lab's spec already (so `down` removes it whatever happens)
  local h=$1
  say "adding $h (${H_ADDRS[$h]}, cpus ${H_CPUS[$h]}, memory ${H_MEM_BYTES[$h]} bytes, /srv ${H_SRV_BYTES[$h]} bytes $(host_srv_fs "$h")); lab down removes it"
  host_net_up "$h"
  cg_host_up "$h"
  host_prepare "$h"
  host_launch "$h"
  step "$h" "writing ssh config, known_hosts, haproxy config, inventory"
  data render-config "$LAB_DIR"
  data render-known-hosts "$LAB_DIR"
  if [[ -n ${H_PACKAGES[$h]} ]]; then
    step "$h" "installing ${H_PACKAGES[$h]} through the apt proxy"
    host_packages "$h"
  fi
  haproxy_add_server "$h"
  host_ssh_check "$h"
  data render-state "$LAB_DIR"
  say "added $h; ssh -F $LAB_DIR/ssh/config $h"
}

haproxy_add_server() {  # a disabled, health-checked server for HOST in the running HAProxy (haproxy.cfg has it too)
  local h=$1 out
  step "$h" "haproxy: add server $LAB_HAPROXY_BACKEND/$h (disabled; runtime API)"
  out=$(haproxy_cmd "add server $LAB_HAPROXY_BACKEND/$h ${H_ADDRS[$h]%% *}:$LAB_HAPROXY_SERVER_PORT check inter 1s disabled")
  [[ $out == *"New server registered"* ]] || { echo "haproxy refused the server: $out" >&2; return 1; }
  haproxy_cmd "enable health $LAB_HAPROXY_BACKEND/$h" >/dev/null
}
