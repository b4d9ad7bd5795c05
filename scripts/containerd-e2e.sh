#!/usr/bin/env bash
# containerd end to end: kubelet's path. Debian's containerd 1.6 with its CRI plugin runs
# pod sandboxes on OUR plugins, and only ours, driven over its socket by a CRI client
# (scripts/cri-client.py) the way kubelet drives it:
#
#   - pods on a bridge network (examples/containerd: our bridge + host-local, ipMasq)
#     and on a macvlan network (examples/macvlan.conflist, its master a veth pair made
#     for the test): each gets an address, pods reach each other and the host;
#   - containerd's own calls are what our plugins see and answer: its loopback network
#     (cniVersion 0.3.1, ifname lo), its K8S_POD_* CNI_ARGS with IgnoreUnknown, and the
#     second DEL of RemovePodSandbox (empty CNI_NETNS, no prevResult);
#   - StopPodSandbox + RemovePodSandbox leave no veth, lease, cache file, rule or netns;
#   - a pod with a hostPort (CRI PortMapping; our portmap chained after bridge with the
#     portMappings capability): a listener in its netns is reached through the host port
#     on 127.0.0.1 and on the bridge's address, and no per-pod rule outlives the pod;
#   - 20 pods started at once get distinct addresses and are all removed cleanly;
#   - RunPodSandbox time on our plugins and on the Go reference ones (/usr/lib/cni).
#
# The pause image is built here (a static C program calling pause(), packed as an OCI
# image and imported with ctr): nothing is pulled. containerd runs plugins in the
# machine's own network namespace, so every name and subnet is the test's own
# (cnice2e*, 10.231.87.0/24, 10.231.88.0/24, host port 28087), checked unused first; the ipMasq rules our
# bridge adds for the pods must be gone afterwards, and the machine's links, routes,
# rulesets and named netns are compared before and after. containerd's root, state,
# sockets, runc state and pod netns live in a temporary directory; the fixed paths it
# writes anyway (shim sockets in /run/containerd/s, libcni's /var/lib/cni/results) are
# cleaned of what this run made. containerd is stopped at the end, also on failure.
#
# Usage (root, Debian bookworm): bash scripts/containerd-e2e.sh
# Environment: CNI_BIN_DIR: the plugin binaries to test (default target/debug, built if
# missing); BENCH_PODS: RunPodSandbox calls timed per plugin set (default 10, 0 skips).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
SCRIPT_TAG=containerd-e2e
require_root "$0" "containerd and pod network namespaces"

# --- Packages --------------------------------------------------------------------------
# python3-grpcio: the CRI client's gRPC; gcc + libc6-dev: the static pause binary.
PACKAGES=(containerd runc python3-grpcio gcc libc6-dev iproute2 iputils-ping nftables
    iptables jq containernetworking-plugins curl)
install_missing_packages "${PACKAGES[@]}"
# Debian's grpcio is for Debian's python, whatever python3 comes first in PATH.
PYTHON=/usr/bin/python3

start_timer

# --- Names, subnets and their absence ------------------------------------------------
e2e_networks cnice2e 10.231.87 10.231.88
# The host's end of the macvlan network: an address on the master's peer.
MV_HOST=$MV_SUBNET.254
HOST_PORT=28087
[[ -n $(ss -Hltn "sport = :$HOST_PORT") ]] && fail "port $HOST_PORT is in use on this machine"
# portmap's shared chains are removed at the end: none may be there before.
require_no_cni_chains
PAUSE_IMAGE=cnie2e.local/pause:1

# --- Binaries --------------------------------------------------------------------------
PLUGINS=(bridge host-local loopback macvlan portmap)
plugins_under_test "${PLUGINS[@]}"
REFERENCE_SRC=/usr/lib/cni

# --- Baseline of everything the test may touch ----------------------------------------
# Named netns as containerd names pod netns (cni-<uuid>): should it put one in
# /run/netns rather than its state dir. Other tests' namespaces come and go meanwhile.
netns_list() { ip netns list 2>/dev/null | awk '{print $1}' | grep '^cni-' | sort || true; }
shim_sockets() { find "$SHIM_SOCKETS" -mindepth 1 -maxdepth 1 2>/dev/null | sort || true; }

e2e_baseline cnice2e
SHIM_SOCKETS=/run/containerd/s
# The fixed directories containerd or libcni may create: removed again if they were not
# there (deepest first).
CREATED_DIRS=()
for dir in "$SHIM_SOCKETS" /run/containerd "$CNI_CACHE" /var/lib/cni; do
    [[ -d $dir ]] || CREATED_DIRS+=("$dir")
done
shim_sockets >"$BASE/shim-sockets"

SOCK=$WORK/containerd.sock
CRI=("$PYTHON" "$REPO_ROOT/scripts/cri-client.py" --socket "$SOCK")
CTR=(ctr --address "$SOCK" --namespace k8s.io)
CONTAINERD_PID=
LISTENER_PID=

# --- Clean-up and the leak check (also on failure or interrupt) -----------------------
# Every sandbox containerd knows, stopped and removed (a failed RunPodSandbox leaves a
# NOTREADY one behind).
remove_all_sandboxes() {
    local ids
    ids=$("${CRI[@]}" list 2>/dev/null | awk '{print $1}')
    [[ -z $ids ]] && return 0
    # shellcheck disable=SC2086 # one argument per id
    "${CRI[@]}" stop $ids
    # shellcheck disable=SC2086
    "${CRI[@]}" remove $ids
}
stop_containerd() {
    [[ -n $CONTAINERD_PID ]] || return 0
    kill "$CONTAINERD_PID" 2>/dev/null
    for _ in $(seq 100); do
        kill -0 "$CONTAINERD_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$CONTAINERD_PID" 2>/dev/null
    wait "$CONTAINERD_PID" 2>/dev/null
    CONTAINERD_PID=
}
# Shims outlive a killed containerd: those whose command line names our work dir.
stop_our_shims() {
    local pid
    for pid in $(pgrep -f containerd-shim-runc-v2 || true); do
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$SOCK"; then
            echo "LEAK: shim $pid still running"
            kill -9 "$pid"
            leaks=1
        fi
    done
}
leak_checks() {
    local stale
    remove_stale_cache cnice2e || leaks=1
    stale=$(comm -13 "$BASE/shim-sockets" <(shim_sockets))
    if [[ -n $stale ]]; then
        echo "LEAK: shim sockets left behind:"; echo "$stale"
        echo "$stale" | xargs -r rm -f
        leaks=1
    fi
    changed_root_state "$BASE" || leaks=1
    if ! diff -u "$BASE/netns" <(netns_list); then
        echo "LEAK: named network namespaces changed (diff above)"; leaks=1
    fi
}
cleanup() {
    local status=$? leaks=0 dir
    set +e
    section "clean-up"
    if [[ -n $CONTAINERD_PID ]]; then
        remove_all_sandboxes
        stop_containerd
    fi
    stop_our_shims
    [[ -z $LISTENER_PID ]] || kill "$LISTENER_PID" 2>/dev/null
    if ((status != 0)) && [[ -f $WORK/containerd.log ]]; then
        echo "--- the last lines of containerd's log"
        grep -E 'level=(error|warning)' "$WORK/containerd.log" | tail -20
        echo "--- the last failed plugin calls"
        calls_where '.status != 0' | tail -3
    fi
    # Pod netns, the sandboxes' /dev/shm and snapshots: mounted under the work dir.
    findmnt -rn -o TARGET | grep "^$WORK" | sort -r | xargs -r -n1 umount -l
    remove_links_restore_forwarding
    remove_cni_chains "$BASE/ruleset"
    leak_checks
    for dir in "${CREATED_DIRS[@]}"; do rmdir "$dir" 2>/dev/null; done
    e2e_finish containerd-e2e "$status" "$leaks"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- The pause image -------------------------------------------------------------------
# A static binary that waits for a signal, in a one-layer OCI image (index, manifest,
# config, layer; content-addressed blobs), imported into containerd's k8s.io namespace.
blob() { # FILE -> moves it to blobs/sha256/<digest>, prints "<digest> <size>"
    local digest size
    digest=$(sha256sum "$1" | cut -d' ' -f1)
    size=$(stat -c %s "$1")
    mv "$1" "$WORK/image/blobs/sha256/$digest"
    echo "$digest $size"
}
build_pause_image() {
    local image=$WORK/image layer config manifest
    mkdir -p "$image/blobs/sha256" "$WORK/pause-rootfs"
    cat >"$WORK/pause.c" <<'EOF'
#include <signal.h>
#include <unistd.h>
static void quit(int signal) { (void)signal; _exit(0); }
int main(void) {
    signal(SIGINT, quit);
    signal(SIGTERM, quit);
    for (;;) pause();
}
EOF
    gcc -static -Os -s -o "$WORK/pause-rootfs/pause" "$WORK/pause.c"
    tar -C "$WORK/pause-rootfs" --owner=0 --group=0 --numeric-owner --mtime=@0 \
        -cf "$image/layer.tar" pause
    read -r layer layer_size < <(blob "$image/layer.tar")
    jq -n --arg layer "sha256:$layer" '{architecture: "amd64", os: "linux",
        config: {Entrypoint: ["/pause"]}, rootfs: {type: "layers", diff_ids: [$layer]}}' \
        >"$image/config.json"
    read -r config config_size < <(blob "$image/config.json")
    jq -n --arg config "sha256:$config" --argjson config_size "$config_size" \
        --arg layer "sha256:$layer" --argjson layer_size "$layer_size" '{schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: {mediaType: "application/vnd.oci.image.config.v1+json",
                 digest: $config, size: $config_size},
        layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar",
                  digest: $layer, size: $layer_size}]}' >"$image/manifest.json"
    read -r manifest manifest_size < <(blob "$image/manifest.json")
    jq -n --arg manifest "sha256:$manifest" --argjson size "$manifest_size" \
        --arg name "$PAUSE_IMAGE" '{schemaVersion: 2, manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $manifest,
        size: $size, annotations: {"io.containerd.image.name": $name}}]}' >"$image/index.json"
    echo '{"imageLayoutVersion": "1.0.0"}' >"$image/oci-layout"
    tar -C "$image" -cf "$WORK/pause.tar" oci-layout index.json blobs
}

# --- containerd ------------------------------------------------------------------------
write_containerd_config() {
    cat >"$WORK/containerd.toml" <<EOF
version = 2
root = "$WORK/root"
state = "$WORK/state"

[grpc]
  address = "$SOCK"

[ttrpc]
  address = "$SOCK.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$WORK/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # root here lacks CAP_SYS_RESOURCE: runc cannot lower the pause process's
  # oom_score_adj below its own ("can't get final child's PID from pipe") unless
  # containerd keeps it at least as high.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$WORK/runc"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    # Only our plugins: one missing here must fail the test, not fall back to Go's.
    bin_dir = "$WORK/bin"
    conf_dir = "$WORK/net.d"
    max_conf_num = 1
EOF
}
start_containerd() {
    containerd --config "$WORK/containerd.toml" >"$WORK/containerd.log" 2>&1 &
    CONTAINERD_PID=$!
    for _ in $(seq 100); do
        [[ -S $SOCK ]] && "${CTR[@]}" version >/dev/null 2>&1 && return 0
        kill -0 "$CONTAINERD_PID" 2>/dev/null || break
        sleep 0.1
    done
    tail -20 "$WORK/containerd.log"
    fail "containerd did not start"
}

# --- Plugins ---------------------------------------------------------------------------
# bin is containerd's bin_dir: a symlink to one of three plugin sets, swapped with a
# rename so containerd never sees a half-made set. "ours" and "reference" hold copies of
# the binaries (for timing); "logged" holds a wrapper per plugin that records each call
# (environment, stdin config, exit status) as JSON in calls/ and runs ours: what
# containerd sends is then checked, not assumed.
make_plugin_sets() {
    local plugin
    mkdir -p "$WORK"/sets/{ours,reference,logged}
    for plugin in "${PLUGINS[@]}"; do
        install -m 0755 "$PLUGIN_SRC/$plugin" "$WORK/sets/ours/$plugin"
        install -m 0755 "$REFERENCE_SRC/$plugin" "$WORK/sets/reference/$plugin"
        write_logging_wrapper "$plugin" >"$WORK/sets/logged/$plugin"
        chmod 0755 "$WORK/sets/logged/$plugin"
    done
}
use_plugins() { # ours|reference|logged
    ln -sfn "sets/$1" "$WORK/.bin.new"
    mv -T "$WORK/.bin.new" "$WORK/bin"
}
write_logging_wrapper() { # PLUGIN
    cat <<EOF
#!/bin/sh
config=\$(cat)
output=\$(printf '%s' "\$config" | "$WORK/sets/ours/$1")
status=\$?
printf '%s' "\$output"
printf '%s' "\$config" | jq -c --arg plugin "$1" --arg command "\$CNI_COMMAND" \\
    --arg ifname "\$CNI_IFNAME" --arg netns "\$CNI_NETNS" --arg args "\${CNI_ARGS:-}" \\
    --arg container "\$CNI_CONTAINERID" --argjson status "\$status" \\
    '{plugin: \$plugin, command: \$command, ifname: \$ifname, netns: \$netns,
      args: \$args, container: \$container, status: \$status, config: .}' \\
    >"$WORK/calls/\$\$.json" 2>/dev/null
exit \$status
EOF
}
# The recorded calls matching a jq filter, e.g. calls_where '.plugin == "bridge"'.
calls_where() { cat "$WORK"/calls/*.json 2>/dev/null | jq -c "select($1)"; }

# --- Networks --------------------------------------------------------------------------
# containerd 1.6 ignores a file created in its conf dir (it reloads on other file events):
# the config is written under a temporary name and renamed in; the CRI Status call then
# tells when it is loaded.
use_network() { # NAME, the conflist on stdin
    cat >"$WORK/net.d/.next"
    jq -e .name "$WORK/net.d/.next" >/dev/null || fail "no network configuration for $1"
    mv "$WORK/net.d/.next" "$WORK/net.d/10-cnice2e.conflist"
    "${CRI[@]}" --timeout 30 wait-network "$1" || fail "containerd did not load network $1"
}
# The bridge network is examples/containerd/10-containerd-net.conflist with the test's
# own name, bridge, subnet and lease directory.
bridge_conflist() {
    jq --arg name "$BR_NET" --arg bridge "$BRIDGE" --arg subnet "$BR_SUBNET.0/24" \
        --arg gateway "$BR_SUBNET.1" --arg dir "$WORK/ipam" '.name = $name
        | .plugins[0].bridge = $bridge
        | .plugins[0].ipam.ranges = [[{subnet: $subnet, gateway: $gateway}]]
        | .plugins[0].ipam.dataDir = $dir' \
        "$REPO_ROOT/examples/containerd/10-containerd-net.conflist"
}
# The macvlan network is examples/macvlan.conflist with the test's own name, master,
# subnet, gateway (the host's end, out of the range) and lease directory.
macvlan_conflist() {
    jq --arg name "$MV_NET" --arg master "$MASTER" --arg subnet "$MV_SUBNET.0/24" \
        --arg range_end "$MV_SUBNET.200" --arg gateway "$MV_HOST" --arg dir "$WORK/ipam" '.name = $name
        | .plugins[0].master = $master
        | .plugins[0].ipam.ranges = [[{subnet: $subnet, rangeEnd: $range_end, gateway: $gateway}]]
        | .plugins[0].ipam.dataDir = $dir' \
        "$REPO_ROOT/examples/macvlan.conflist"
}

# --- Pods ------------------------------------------------------------------------------
# run_pods [--port HOST:CTR] NAME...: RunPodSandbox for all at once (with that port
# mapping); fills POD_ID, POD_IP and POD_NETNS from the CRI answers (by name).
declare -A POD_ID POD_IP POD_NETNS
run_pods() {
    local name id status options=()
    if [[ $1 == --port ]]; then
        options=("$1" "$2")
        shift 2
    fi
    "${CRI[@]}" "${options[@]}" run "$@" >"$WORK/run.out" || fail "RunPodSandbox failed (above)"
    while read -r name id _; do
        POD_ID[$name]=$id
    done <"$WORK/run.out"
    for name in "$@"; do
        [[ -n ${POD_ID[$name]:-} ]] || fail "no sandbox for pod $name"
    done
    # shellcheck disable=SC2046 # one argument per id
    "${CRI[@]}" inspect $(cut -d' ' -f2 "$WORK/run.out") >"$WORK/inspect.out"
    while read -r status; do
        name=$(jq -r .name <<<"$status")
        [[ $(jq -r .state <<<"$status") == READY ]] || fail "pod $name is not ready: $status"
        POD_IP[$name]=$(jq -r .ip <<<"$status")
        POD_NETNS[$name]=$(jq -r .netns <<<"$status")
        [[ ${POD_NETNS[$name]} == "$WORK/state/"* ]] ||
            fail "pod $name's netns ${POD_NETNS[$name]} is not under containerd's state dir"
    done <"$WORK/inspect.out"
}
# run_two_pods A B SUBNET: both ready, with distinct addresses in SUBNET.0/24.
run_two_pods() {
    run_pods "$1" "$2"
    local a=${POD_IP[$1]} b=${POD_IP[$2]}
    echo "  $1 $a, $2 $b"
    [[ $a == "$3".* && $b == "$3".* && $a != "$b" ]] || fail "unexpected addresses: '$a' '$b'"
}
remove_pods() { # NAME...: StopPodSandbox, then RemovePodSandbox, for all at once
    local name ids=()
    for name in "$@"; do ids+=("${POD_ID[$name]}"); done
    "${CRI[@]}" stop "${ids[@]}" || fail "StopPodSandbox failed"
    "${CRI[@]}" remove "${ids[@]}" || fail "RemovePodSandbox failed"
}
in_pod() { # NAME COMMAND...
    nsenter --net="${POD_NETNS[$1]}" "${@:2}"
}
ping_from() { # NAME ADDRESS
    in_pod "$1" ping -c 1 -W 2 "$2" >/dev/null || fail "pod $1 cannot ping $2"
    echo "  $1 -> $2: ok"
}
leases() { # NETWORK: the leased addresses
    find "$WORK/ipam/$1" -maxdepth 1 -type f -name '10.*' -printf '%f\n' 2>/dev/null | sort
}
bridge_ports() { ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}'; }
# After the last pod is gone: no sandbox, port, lease, cache file or pod netns; the
# firewall as it was.
assert_nothing_left() {
    local sandboxes
    sandboxes=$("${CRI[@]}" list)
    [[ -z $sandboxes ]] || fail "sandboxes left: $sandboxes"
    [[ -z $(bridge_ports) ]] || fail "veths left on $BRIDGE: $(bridge_ports)"
    [[ -z $(find "$WORK/ipam" -type f -name '10.*') ]] ||
        fail "leases left: $(find "$WORK/ipam" -type f -name '10.*')"
    [[ -z $(find "$CNI_CACHE" -maxdepth 1 -name 'cnice2e-*' 2>/dev/null) ]] ||
        fail "cache files left in $CNI_CACHE"
    [[ -z $(find "$WORK/state" -path '*netns/*' 2>/dev/null) ]] ||
        fail "pod netns left: $(find "$WORK/state" -path '*netns/*')"
    remove_empty_tables_iptables_made "$BASE/ruleset"
    diff -u "$BASE/ruleset" <(firewall_rulesets) || fail "the firewall rules of the pods were not all removed"
    echo "  no sandbox, veth, lease, cache file, netns or firewall rule left"
}

# --- Set-up ----------------------------------------------------------------------------
section "containerd $(containerd --version | awk '{print $3}') in $WORK"
mkdir -p "$WORK"/{net.d,calls,ipam}
build_pause_image
write_containerd_config
make_plugin_sets
use_plugins logged
# The macvlan master: a veth pair of the test's own; the peer, with an address, is the
# host's end of the macvlan network.
add_master_veth
ip addr add "$MV_HOST/24" dev "$MASTER_PEER"
start_containerd
"${CTR[@]}" images import --snapshotter native "$WORK/pause.tar" >/dev/null
step "set-up (pause image, containerd, master veth)"

# --- Bridge network --------------------------------------------------------------------
section "two pods on $BR_NET (our bridge + host-local, ipMasq)"
bridge_conflist | use_network "$BR_NET"
step "network loaded (rename in, Status)"
run_two_pods p1 p2 "$BR_SUBNET"
step "RunPodSandbox x2 (bridge)"
IP1=${POD_IP[p1]} IP2=${POD_IP[p2]}
[[ $(in_pod p1 ip -4 -o addr show eth0 | awk '{print $4}') == "$IP1/24" ]] ||
    fail "p1's eth0 does not hold $IP1/24"
[[ $(leases "$BR_NET" | tr '\n' ' ') == "$(printf '%s\n' "$IP1" "$IP2" | sort | tr '\n' ' ')" ]] ||
    fail "host-local leases $(leases "$BR_NET") do not match the addresses"
[[ $(bridge_ports | wc -l) == 2 ]] || fail "expected 2 ports on $BRIDGE: $(bridge_ports)"
ping_from p1 "$IP2"
ping_from p2 "$IP1"
ping_from p1 "$BR_SUBNET.1"
in_pod p1 ip -o link show lo | grep -q ',UP' || fail "lo is down in p1"
firewall_rulesets >"$WORK/ruleset.pods"
for ip in "$IP1" "$IP2"; do
    grep -qF "$ip" "$WORK/ruleset.pods" || fail "no masquerade rule for $ip in the machine's firewall"
done
echo "  masquerade rules for both pods are in place"
step "addresses, leases, pings, rules"

# What containerd sent and what our plugins answered.
calls_where '.plugin == "loopback" and .command == "ADD" and .ifname == "lo"
    and .config.cniVersion == "0.3.1" and .status == 0' | grep -q . ||
    fail "no successful loopback ADD (cniVersion 0.3.1, ifname lo) recorded"
echo "  containerd's loopback ADD (cniVersion 0.3.1, ifname lo): ok"
calls_where ".plugin == \"bridge\" and .command == \"ADD\" and .status == 0
    and (.args | contains(\"IgnoreUnknown=1\") and contains(\"K8S_POD_NAME=p1\")
    and contains(\"K8S_POD_NAMESPACE=cnie2e\") and contains(\"K8S_POD_INFRA_CONTAINER_ID=\"))" |
    grep -q . || fail "no successful bridge ADD with containerd's K8S_POD_* CNI_ARGS recorded"
echo "  K8S_POD_* CNI_ARGS with IgnoreUnknown: ok"

section "StopPodSandbox + RemovePodSandbox"
remove_pods p1 p2
step "Stop + Remove x2 (bridge)"
assert_nothing_left
# RemovePodSandbox tears the network down again, after the cache entry is gone.
for pod in p1 p2; do
    calls_where ".plugin == \"bridge\" and .command == \"DEL\" and .container == \"${POD_ID[$pod]}\"
        and .netns == \"\" and .config.prevResult == null and .status == 0" | grep -q . ||
        fail "no successful second DEL (empty CNI_NETNS, no prevResult) for $pod"
done
calls_where '.command == "DEL" and .status != 0' | grep . && fail "a DEL failed (above)"
echo "  the second DEL (empty CNI_NETNS, no prevResult) succeeded for both pods"

# --- macvlan network -------------------------------------------------------------------
section "two pods on $MV_NET (our macvlan + host-local on $MASTER)"
macvlan_conflist | use_network "$MV_NET"
run_two_pods m1 m2 "$MV_SUBNET"
step "RunPodSandbox x2 (macvlan)"
M1=${POD_IP[m1]} M2=${POD_IP[m2]}
in_pod m1 ip -d -o link show eth0 | grep -q macvlan || fail "m1's eth0 is not a macvlan"
ping_from m1 "$M2"
ping_from m2 "$M1"
ping_from m1 "$MV_HOST"
remove_pods m1 m2
step "pings, Stop + Remove x2 (macvlan)"
assert_nothing_left

# --- A failing ADD ---------------------------------------------------------------------
# macvlan on a master that does not exist: RunPodSandbox fails with our plugin's error,
# and the NOTREADY sandbox containerd keeps is stopped and removed like any other.
section "a failing ADD: macvlan on a missing master"
macvlan_conflist | jq '.name = "cnice2e-bad" | .plugins[0].master = "cnice2e-none"' |
    use_network cnice2e-bad
if "${CRI[@]}" run bad >/dev/null 2>"$WORK/bad.err"; then
    fail "RunPodSandbox succeeded on a missing master"
fi
grep -q cnice2e-none "$WORK/bad.err" || fail "the error does not name the master: $(cat "$WORK/bad.err")"
echo "  $(cat "$WORK/bad.err")"
BAD_SANDBOXES=$("${CRI[@]}" list)
echo "  left by containerd: ${BAD_SANDBOXES:-nothing}"
# shellcheck disable=SC2046 # one argument per id
[[ -z $BAD_SANDBOXES ]] || "${CRI[@]}" stop $(awk '{print $1}' <<<"$BAD_SANDBOXES")
# shellcheck disable=SC2046
[[ -z $BAD_SANDBOXES ]] || "${CRI[@]}" remove $(awk '{print $1}' <<<"$BAD_SANDBOXES")
calls_where '.config.name == "cnice2e-bad" and .command == "DEL" and .status == 0' |
    grep -q . || fail "no successful DEL after the failed ADD"
calls_where '.config.name == "cnice2e-bad" and .command == "DEL" and .status != 0' |
    grep . && fail "a DEL after the failed ADD failed (above)"
echo "  containerd's DELs after the failed ADD succeeded"
step "failing RunPodSandbox, its sandbox removed"
assert_nothing_left

# --- A pod with a hostPort ------------------------------------------------------------
# The bridge network with our portmap chained after the bridge, as containerd's example
# config and flannel's have it; kubelet's hostPort reaches it as a CRI PortMapping, and
# containerd passes it on as runtimeConfig.portMappings. The pod's listener is python's
# http.server started in the pod's netns (the pause container runs nothing else).
section "a pod with hostPort $HOST_PORT -> 8080 (our bridge + portmap)"
bridge_conflist | jq '.name = "cnice2e-hp"
    | .plugins += [{type: "portmap", capabilities: {portMappings: true}}]' |
    use_network cnice2e-hp
run_pods --port "$HOST_PORT:8080" hp1
step "RunPodSandbox with a hostPort"
calls_where ".plugin == \"portmap\" and .command == \"ADD\" and .status == 0
    and (.config.runtimeConfig.portMappings | any(.HostPort == $HOST_PORT
    and .ContainerPort == 8080 and .Protocol == \"tcp\"))" |
    grep -q . || fail "no successful portmap ADD with the pod's port mapping recorded"
# go-cni's PortMapping has no JSON tags: the keys are Go's field names.
echo "  containerd's portmap ADD with runtimeConfig.portMappings (HostPort, ContainerPort...): ok"
mkdir -p "$WORK/www"
TOKEN="cnice2e hostPort $$"
echo "$TOKEN" >"$WORK/www/index.html"
in_pod hp1 "$PYTHON" -m http.server --bind "${POD_IP[hp1]}" --directory "$WORK/www" 8080 \
    >"$WORK/listener.log" 2>&1 &
LISTENER_PID=$!
for address in 127.0.0.1 "$BR_SUBNET.1"; do
    [[ $(fetch_page "$address" "$HOST_PORT") == "$TOKEN" ]] ||
        fail "no reply from pod hp1 through $address:$HOST_PORT"
    echo "  $address:$HOST_PORT -> hp1 (${POD_IP[hp1]}:8080): ok"
done
kill "$LISTENER_PID"
wait "$LISTENER_PID" 2>/dev/null || true
LISTENER_PID=
step "the hostPort answers (localhost, bridge address)"
remove_pods hp1
step "Stop + Remove (hostPort)"
LEFT=$(cni_rules_left)
[[ -z $LEFT ]] || fail "rules of the pod's hostPort left: $LEFT"
remove_cni_chains "$BASE/ruleset"
echo "  no per-pod CNI-* rule left (only portmap's shared chains, then removed)"
assert_nothing_left

# --- 20 pods at once -------------------------------------------------------------------
section "20 pods on $BR_NET started at once"
bridge_conflist | use_network "$BR_NET"
MANY=()
for i in $(seq 20); do MANY+=("c$i"); done
run_pods "${MANY[@]}"
step "RunPodSandbox x20 at once"
for name in "${MANY[@]}"; do echo "${POD_IP[$name]}"; done | sort >"$WORK/many.ips"
[[ $(sort -u "$WORK/many.ips" | wc -l) == 20 ]] ||
    fail "the 20 pods do not have 20 distinct addresses: $(tr '\n' ' ' <"$WORK/many.ips")"
grep -qv "^$BR_SUBNET\." "$WORK/many.ips" && fail "an address outside $BR_SUBNET.0/24"
[[ $(leases "$BR_NET") == "$(cat "$WORK/many.ips")" ]] ||
    fail "host-local leases do not match the 20 addresses"
ping_from c1 "${POD_IP[c20]}"
remove_pods "${MANY[@]}"
step "Stop + Remove x20 at once"
assert_nothing_left
calls_where '.status != 0 and .config.name != "cnice2e-bad"' | grep . &&
    fail "a plugin call failed (above)"
echo "  20 distinct addresses; every ADD and DEL succeeded"

# --- RunPodSandbox time: ours vs the reference ----------------------------------------
# The same bridge network, the plugin binaries swapped between calls (plain, no logging
# wrapper), one pod at a time, alternating, so both sets see the same machine load.
BENCH_PODS=${BENCH_PODS:-10}
if ((BENCH_PODS > 0)); then
    section "RunPodSandbox time, $BENCH_PODS pods each: ours ($PLUGIN_SRC) vs reference ($REFERENCE_SRC)"
    for i in $(seq "$BENCH_PODS"); do
        for set in ours reference; do
            use_plugins "$set"
            "${CRI[@]}" cycle "b-$set-$i" | cut -d' ' -f1 >>"$WORK/bench.$set" ||
                fail "pod b-$set-$i failed on the $set plugins"
        done
    done
    assert_nothing_left
    median() { sort -n | awk '{ v[NR] = $1 } END { printf "%.3f", v[int((NR + 1) / 2)] }'; }
    echo "  RunPodSandbox median (s): ours $(median <"$WORK/bench.ours"),"\
        "reference $(median <"$WORK/bench.reference")"
    # Pod i of each set ran back to back: the ratio per pair cancels slower load drift.
    echo "  median of ours / reference per pair: $(paste "$WORK/bench.ours" "$WORK/bench.reference" |
        awk '{ print $1 / $2 }' | median)"
    echo "  ours:      $(sort -n "$WORK/bench.ours" | tr '\n' ' ')"
    echo "  reference: $(sort -n "$WORK/bench.reference" | tr '\n' ' ')"
    step "RunPodSandbox timing ($((2 * BENCH_PODS)) pods)"
else
    echo "SKIPPED: RunPodSandbox timing (BENCH_PODS=0)"
fi
