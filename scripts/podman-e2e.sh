#!/usr/bin/env bash
# podman end to end: Debian's podman 4.3 (network_backend = "cni", i.e. the Go libcni
# v1.1.2 runtime) runs OUR plugins, and only ours, for real containers:
#
#   - a bridge network (our bridge + host-local) and a macvlan network (our macvlan +
#     host-local, its master a veth pair made for the test);
#   - containers from a local busybox rootfs (`podman run --rootfs`; nothing is pulled);
#   - they get addresses, ping each other and the bridge gateway, `podman network
#     connect/disconnect` adds and removes a second interface, `podman rm` removes them;
#   - the cache files libcni wrote are re-encoded by our cnitool crate, byte for byte;
#   - podman's default network shape (bridge + portmap + firewall + tuning, as `podman
#     network create` writes it): `podman run -p` publishes a busybox httpd, reached
#     through the host port on 127.0.0.1 and on the bridge's address;
#   - afterwards no veth, lease, cache file, netns, link, firewall rule or sysctl change is
#     left behind, and the machine's firewall rulesets are unchanged (checked, not assumed).
#
# podman runs CNI plugins in the machine's own network namespace; so does this test, which
# is why every name and subnet is its own (cnipe2e*, 10.231.77-79.0/24, host port 28080) and
# why it checks that they are unused first. It never touches eth0 or the default route:
# ipMasq is off on the test's own networks, the macvlan master is a veth pair of its own;
# the published-port network keeps podman's ipMasq and its rules, removed with the container. The bridge's isGateway
# turns on net.ipv4.ip_forward in the root netns (as the Go bridge does); the test puts
# the old value back. podman's own state (storage, run dir, configs, leases) lives in a
# temporary directory; the only fixed paths it writes are libcni's /var/lib/cni/results
# (podman 4.3 has no setting for it) and runc's /run/runc, both restored.
#
# Usage (root, Debian bookworm): bash scripts/podman-e2e.sh
# Environment: CNI_BIN_DIR: the plugin binaries to test (default target/debug, built if
# missing).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
SCRIPT_TAG=podman-e2e
require_root "$0" "podman with CNI networks"

# --- Packages --------------------------------------------------------------------------
PACKAGES=(podman runc conmon busybox-static iproute2 iputils-ping nftables iptables jq curl)
install_missing_packages "${PACKAGES[@]}"

start_timer

# --- Names, subnets and their absence ------------------------------------------------
e2e_networks cnipe2e 10.231.77 10.231.78
CTR_PREFIX=cnipe2e-$$
# The network with a published port: podman's default shape on a bridge of the test's own.
PM_NET=cnipe2e-pm PM_BRIDGE=cnipe2e2 PM_SUBNET=10.231.79 HOST_PORT=28080
require_unused "$PM_BRIDGE" -- "$PM_SUBNET"
require_no_cni_chains
[[ -n $(ss -Hltn "sport = :$HOST_PORT") ]] && fail "port $HOST_PORT is in use on this machine"

# --- Binaries --------------------------------------------------------------------------
PLUGINS=(bridge host-local macvlan portmap firewall tuning)
plugins_under_test "${PLUGINS[@]}"

# --- Baseline of everything the test may touch ----------------------------------------
# Named netns except the test lab's and the demo's, which come and go with other runs.
netns_list() { ip netns list 2>/dev/null | awk '{print $1}' | grep -vE '^(cnitest|cnidemo)-' | sort || true; }

e2e_baseline cnipe2e
had_var_lib_cni=0; [[ -d /var/lib/cni ]] && had_var_lib_cni=1
had_cache_dir=0; [[ -d $CNI_CACHE ]] && had_cache_dir=1
had_run_runc=0; [[ -d /run/runc ]] && had_run_runc=1

export CONTAINERS_CONF=$WORK/containers.conf
export CONTAINERS_STORAGE_CONF=$WORK/storage.conf
PODMAN=(timeout 120 podman --root "$WORK/root" --runroot "$WORK/runroot")

# --- Clean-up and the leak check (also on failure or interrupt) -----------------------
cleanup() {
    local status=$? leaks=0
    set +e
    section "clean-up"
    "${PODMAN[@]}" rm --all --force --time 0 >/dev/null 2>&1
    # Anything podman left mounted under the work dir (container shm, storage).
    findmnt -rn -o TARGET | grep "^$WORK" | sort -r | xargs -r -n1 umount -l
    remove_links_restore_forwarding
    ip link delete "$PM_BRIDGE" 2>/dev/null
    remove_cni_chains "$BASE/ruleset"
    for ns in $(comm -13 "$BASE/netns" <(netns_list)); do
        echo "removing netns $ns left by podman"
        ip netns delete "$ns"
        leaks=1
    done
    remove_stale_cache cnipe2e || leaks=1
    ((had_cache_dir)) || rmdir "$CNI_CACHE" 2>/dev/null
    ((had_var_lib_cni)) || rmdir /var/lib/cni 2>/dev/null
    ((had_run_runc)) || rmdir /run/runc 2>/dev/null

    changed_root_state "$BASE" || leaks=1
    if ! diff -u "$BASE/netns" <(netns_list); then
        echo "LEAK: named network namespaces changed (diff above)"; leaks=1
    fi
    e2e_finish podman-e2e "$status" "$leaks"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Configuration ---------------------------------------------------------------------
section "configuration in $WORK"
mkdir -p "$WORK"/{bin,net.d,root,runroot,tmp,ipam,rootfs/bin,rootfs/etc,rootfs/tmp}
for plugin in "${PLUGINS[@]}"; do
    install -m 0755 "$PLUGIN_SRC/$plugin" "$WORK/bin/$plugin"
done
# podman lowers its own RLIMIT_NPROC to 32768 at start (seen with strace), and this
# sandbox's hard nofile is low; runc then fails with EPERM raising either for the
# container ("error setting rlimit type 6"). So the containers get what podman has.
NOFILE=$(ulimit -Hn)
NPROC=$(ulimit -Hu)
[[ $NPROC == unlimited || $NPROC -gt 32768 ]] && NPROC=32768
[[ $NOFILE == unlimited ]] && NOFILE=1048576
cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=$NPROC:$NPROC"]

[engine]
# crun refuses this machine's cgroup layout; runc works.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORK/events.log"
tmp_dir = "$WORK/tmp"

[network]
network_backend = "cni"
# Only our plugins: a plugin missing here must fail the test, not fall back to Go's.
cni_plugin_dirs = ["$WORK/bin"]
network_config_dir = "$WORK/net.d"
EOF
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "vfs"
graphroot = "$WORK/root"
runroot = "$WORK/runroot"
EOF
# podman 4.3's libcni (v1.1.2) knows spec versions up to 1.0.0.
cat >"$WORK/net.d/10-$BR_NET.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$BR_NET",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$BR_SUBNET.0/24", "gateway": "$BR_SUBNET.1" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "$WORK/ipam"
      }
    }
  ]
}
EOF
cat >"$WORK/net.d/20-$MV_NET.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$MV_NET",
  "plugins": [
    {
      "type": "macvlan",
      "master": "$MASTER",
      "mode": "bridge",
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$MV_SUBNET.0/24" }]],
        "dataDir": "$WORK/ipam"
      }
    }
  ]
}
EOF
# The macvlan master: a veth pair of the test's own, up, with no address.
add_master_veth

# A busybox rootfs: the static binary and one symlink per applet.
cp /bin/busybox "$WORK/rootfs/bin/busybox"
for applet in $("$WORK/rootfs/bin/busybox" --list); do
    [[ $applet == busybox ]] || ln -s busybox "$WORK/rootfs/bin/$applet"
done
"${PODMAN[@]}" network ls
step "set-up (configs, rootfs, master veth)"

# --- Helpers ---------------------------------------------------------------------------
run_ctr() { # NAME NETWORK
    "${PODMAN[@]}" run -d --name "$1" --network "$2" --rootfs "$WORK/rootfs" \
        /bin/sleep 600 >/dev/null
}
ipv4_of() { # NAME IFNAME
    "${PODMAN[@]}" exec "$1" ip -4 -o addr show "$2" | awk '{print $4}' | cut -d/ -f1
}
ping_from() { # NAME ADDRESS
    "${PODMAN[@]}" exec "$1" ping -c 1 -W 2 "$2" >/dev/null ||
        fail "$1 cannot ping $2"
    echo "  $1 -> $2: ok"
}
id_of() { "${PODMAN[@]}" inspect --format '{{.Id}}' "$1"; }
leases() { # NETWORK: the leased addresses
    find "$WORK/ipam/$1" -maxdepth 1 -type f -name '10.*' -printf '%f\n' 2>/dev/null | sort
}
bridge_ports() { ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}'; }

C1=$CTR_PREFIX-c1
C2=$CTR_PREFIX-c2
C3=$CTR_PREFIX-c3

# --- Bridge network --------------------------------------------------------------------
section "two containers on $BR_NET (our bridge + host-local)"
run_ctr "$C1" "$BR_NET"
run_ctr "$C2" "$BR_NET"
step "podman run x2 (bridge)"
IP1=$(ipv4_of "$C1" eth0)
IP2=$(ipv4_of "$C2" eth0)
echo "  $C1 eth0 $IP1, $C2 eth0 $IP2"
[[ $IP1 == "$BR_SUBNET".* && $IP2 == "$BR_SUBNET".* && $IP1 != "$IP2" ]] ||
    fail "unexpected addresses: '$IP1' '$IP2'"
[[ $(leases "$BR_NET" | tr '\n' ' ') == "$(printf '%s\n' "$IP1" "$IP2" | sort | tr '\n' ' ')" ]] ||
    fail "host-local leases $(leases "$BR_NET") do not match the addresses"
[[ $(bridge_ports | wc -l) == 2 ]] || fail "expected 2 ports on $BRIDGE: $(bridge_ports)"
ip -br addr show "$BRIDGE"
ping_from "$C1" "$IP2"
ping_from "$C2" "$IP1"
ping_from "$C1" "$BR_SUBNET.1"
step "addresses, leases, pings"

# --- The cache libcni wrote, through our cnitool crate ---------------------------------
section "libcni's cache files re-encoded by crates/cnitool"
for ctr in "$C1" "$C2"; do
    [[ -f $CNI_CACHE/$BR_NET-$(id_of "$ctr")-eth0 ]] || fail "no libcni cache file for $ctr"
done
cargo run -q -p cnitool --example cache_roundtrip -- "$CNI_CACHE/$BR_NET"-*
step "cache round trip (incl. cargo build)"

# --- macvlan network: connect, a container on it, disconnect ---------------------------
section "$MV_NET (our macvlan + host-local on $MASTER): connect, run, disconnect"
"${PODMAN[@]}" network connect "$MV_NET" "$C1"
"${PODMAN[@]}" network connect "$MV_NET" "$C2"
run_ctr "$C3" "$MV_NET"
step "podman network connect x2 + run (macvlan)"
M1=$(ipv4_of "$C1" eth1)
M2=$(ipv4_of "$C2" eth1)
M3=$(ipv4_of "$C3" eth0)
echo "  $C1 eth1 $M1, $C2 eth1 $M2, $C3 eth0 $M3"
for m in "$M1" "$M2" "$M3"; do
    [[ $m == "$MV_SUBNET".* ]] || fail "unexpected macvlan address '$m'"
done
ping_from "$C1" "$M2"
ping_from "$C3" "$M1"
ping_from "$C2" "$M3"
[[ $(leases "$MV_NET" | wc -l) == 3 ]] || fail "expected 3 macvlan leases: $(leases "$MV_NET")"
step "macvlan pings"

"${PODMAN[@]}" network disconnect "$MV_NET" "$C1"
step "podman network disconnect"
if "${PODMAN[@]}" exec "$C1" ip link show eth1 >/dev/null 2>&1; then
    fail "eth1 still in $C1 after disconnect"
fi
leases "$MV_NET" | grep -qx "$M1" && fail "lease $M1 kept after disconnect"
[[ -f $CNI_CACHE/$MV_NET-$(id_of "$C1")-eth1 ]] && fail "cache file kept after disconnect"
ping_from "$C1" "$IP2"
echo "  $C1 eth1 removed, lease and cache file released; eth0 still works"

# --- podman rm -------------------------------------------------------------------------
section "podman rm"
"${PODMAN[@]}" rm --force --time 0 "$C1" "$C2" "$C3" >/dev/null
step "podman rm x3"
[[ -z $(bridge_ports) ]] || fail "veths left on $BRIDGE: $(bridge_ports)"
new_links=$(comm -13 "$BASE/links" <(root_links) | grep -vxF -e "$BRIDGE" -e "$MASTER" -e "$MASTER_PEER" || true)
[[ -z $new_links ]] || fail "links left in the root netns: $new_links"
[[ -z $(leases "$BR_NET")$(leases "$MV_NET") ]] ||
    fail "leases left: $(leases "$BR_NET") $(leases "$MV_NET")"
[[ -z $(find "$CNI_CACHE" -maxdepth 1 -name 'cnipe2e-*' 2>/dev/null) ]] ||
    fail "cache files left in $CNI_CACHE"
[[ -z $(comm -13 "$BASE/netns" <(netns_list)) ]] ||
    fail "netns left by podman: $(comm -13 "$BASE/netns" <(netns_list))"
echo "  no veth, lease, cache file or netns left"
# The bridge itself stays after the last DEL, as with the Go plugin; the clean-up removes it.

# --- A published port on podman's default network shape ------------------------------
# The network as `podman network create` writes it (bridge with ipMasq, portmap, firewall,
# tuning), with two changes: the test's own bridge name (podman would pick cni-podmanN)
# and lease directory. The container is busybox's httpd; the host reaches it through
# the host port on 127.0.0.1 (portmap's localhost DNAT and SNAT) and on the bridge's
# address.
section "$PM_NET (podman's default shape: bridge + portmap + firewall + tuning): podman run -p"
"${PODMAN[@]}" network create --subnet "$PM_SUBNET.0/24" "$PM_NET" >/dev/null
PM_CONFIG=$WORK/net.d/$PM_NET.conflist
jq -e '[.plugins[].type] == ["bridge", "portmap", "firewall", "tuning"]' "$PM_CONFIG" >/dev/null ||
    fail "podman wrote another plugin chain: $(jq -c '[.plugins[].type]' "$PM_CONFIG")"
jq --arg bridge "$PM_BRIDGE" --arg dir "$WORK/ipam" \
    '.plugins[0].bridge = $bridge | .plugins[0].ipam.dataDir = $dir' "$PM_CONFIG" >"$WORK/pm.conflist"
mv "$WORK/pm.conflist" "$PM_CONFIG"
mkdir -p "$WORK/rootfs/www"
TOKEN="cnipe2e published port $$"
echo "$TOKEN" >"$WORK/rootfs/www/index.html"
C4=$CTR_PREFIX-web
"${PODMAN[@]}" run -d --name "$C4" --network "$PM_NET" -p "$HOST_PORT:8080" \
    --rootfs "$WORK/rootfs" /bin/httpd -f -p 8080 -h /www >/dev/null
step "podman network create + run -p (portmap chain)"
WEB_IP=$(ipv4_of "$C4" eth0)
[[ $WEB_IP == "$PM_SUBNET".* ]] || fail "unexpected address '$WEB_IP'"
if [[ $(firewall_rulesets) != *"dport $HOST_PORT "* ]]; then
    firewall_rulesets | sed -n '/^--- iptables/,$p'
    fail "no DNAT rule for port $HOST_PORT in the machine's firewall (iptables above)"
fi
for address in 127.0.0.1 "$PM_SUBNET.1"; do
    [[ $(fetch_page "$address" "$HOST_PORT") == "$TOKEN" ]] || fail "no reply from $C4 through $address:$HOST_PORT"
    echo "  $address:$HOST_PORT -> $C4 ($WEB_IP:8080): ok"
done
step "the published port answers (localhost, bridge address)"

"${PODMAN[@]}" rm --force --time 0 "$C4" >/dev/null
step "podman rm -f (portmap chain)"
[[ -z $(ip -o link show master "$PM_BRIDGE" 2>/dev/null) ]] || fail "veths left on $PM_BRIDGE"
[[ -z $(leases "$PM_NET") ]] || fail "leases left: $(leases "$PM_NET")"
[[ -z $(find "$CNI_CACHE" -maxdepth 1 -name 'cnipe2e-*' 2>/dev/null) ]] ||
    fail "cache files left in $CNI_CACHE"
LEFT=$(cni_rules_left)
[[ -z $LEFT ]] || fail "rules of the published port left: $LEFT"
remove_cni_chains "$BASE/ruleset"
diff -u "$BASE/ruleset" <(firewall_rulesets) || fail "rules left besides the shared CNI-* chains (diff above)"
echo "  no veth, lease, cache file or firewall rule left (only the shared CNI-* chains, then removed)"
