#!/usr/bin/env bash
# The main job: build the plugins (release) and run them as a container runtime would,
# against a throwaway network namespace that is removed again at the end.
#
# For now it wires the loopback and host-local plugins (bridge comes next):
#   1. loopback ADD in the namespace: the JSON result and `ip addr` of lo;
#   2. host-local ADD with examples/host-local.conf, its dataDir in a temporary directory:
#      the JSON result and the lease files on disk;
#   3. DEL of both, showing that the leases are released and lo is down again.
#
# Usage (root, Debian bookworm): bash scripts/demo.sh
# Environment: CNI_BIN_DIR=/usr/lib/cni runs the same demo with the Go reference plugins.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$PWD

if [[ $(id -u) -ne 0 ]]; then
    echo "scripts/demo.sh: must run as root (it creates a network namespace)" >&2
    exit 1
fi

section() { printf '\n=== %s\n' "$*"; }

# --- Packages and build ----------------------------------------------------------------
PACKAGES=(gcc libc6-dev iproute2 jq)
missing=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done
if ((${#missing[@]})); then
    section "Installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

section "cargo build --release --workspace"
cargo build --release --workspace
BIN_DIR=${CNI_BIN_DIR:-$REPO_ROOT/target/release}

# --- A throwaway namespace and directory -----------------------------------------------
NETNS=cnidemo-$$
CONTAINER_ID=cnidemo-$$
WORK=$(mktemp -d /tmp/cnidemo-XXXXXX)
cleanup() {
    ip netns delete "$NETNS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$NETNS"
echo "network namespace: /run/netns/$NETNS"
echo "container id:      $CONTAINER_ID"
echo "plugins from:      $BIN_DIR"

# run_plugin VERB PLUGIN IFNAME CONFIG_FILE: calls a plugin the way a runtime does (a clean
# environment with the CNI_* variables, the config on stdin), prints what it printed, and
# fails the demo if the plugin failed.
run_plugin() {
    local verb=$1 plugin=$2 ifname=$3 config=$4 output status=0
    echo "\$ CNI_COMMAND=$verb CNI_IFNAME=$ifname $plugin < $(basename "$config")"
    output=$(env -i PATH="$PATH" \
        CNI_COMMAND="$verb" CNI_CONTAINERID="$CONTAINER_ID" CNI_NETNS="/run/netns/$NETNS" \
        CNI_IFNAME="$ifname" CNI_PATH="$BIN_DIR" \
        "$BIN_DIR/$plugin" <"$config") || status=$?
    if [[ -n $output ]]; then
        jq . <<<"$output" 2>/dev/null || echo "$output"
    fi
    if ((status != 0)); then
        echo "$plugin $verb failed (exit $status)" >&2
        return "$status"
    fi
}

# Shows the host-local store: one file per leased IP, named by the IP and holding
# "<container id>\r\n<ifname>" (%q makes the \r\n visible), plus last_reserved_ip.N
# and the lock file.
show_leases() {
    local dir=$1 file
    ls -l "$dir"
    for file in "$dir"/*; do
        [[ -s $file ]] || continue
        printf '%s: %q\n' "$(basename "$file")" "$(<"$file")"
    done
}

# --- loopback --------------------------------------------------------------------------
LOOPBACK_CONF=$REPO_ROOT/examples/loopback.conf
section "loopback ADD"
run_plugin ADD loopback lo "$LOOPBACK_CONF"
ip -n "$NETNS" addr show lo

# --- host-local ------------------------------------------------------------------------
# The example's dataDir is the system default; the demo keeps its leases in $WORK instead.
HOST_LOCAL_CONF=$WORK/host-local.conf
jq --arg dir "$WORK/ipam" '.ipam.dataDir = $dir' \
    "$REPO_ROOT/examples/host-local.conf" >"$HOST_LOCAL_CONF"
NETWORK=$(jq -r .name "$HOST_LOCAL_CONF")
section "host-local ADD (dataDir $WORK/ipam)"
run_plugin ADD host-local eth0 "$HOST_LOCAL_CONF"
section "host-local leases on disk ($WORK/ipam/$NETWORK)"
show_leases "$WORK/ipam/$NETWORK"

# --- DEL -------------------------------------------------------------------------------
section "host-local DEL"
run_plugin DEL host-local eth0 "$HOST_LOCAL_CONF"
echo "leases after DEL (only lock and last_reserved_ip.* remain):"
show_leases "$WORK/ipam/$NETWORK"

section "loopback DEL"
run_plugin DEL loopback lo "$LOOPBACK_CONF"
ip -n "$NETNS" addr show lo

section "Done; removing namespace $NETNS and $WORK"
