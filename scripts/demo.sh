#!/usr/bin/env bash
# The main job: build the plugins (release) and run them the way a container runtime does,
# through cnitool (crates/cnitool, the Rust port of the CNI project's tool) and
# examples/bridge.conflist (bridge + host-local, then loopback):
#
#   1. build, and install the plugins and cnitool into a temporary bin dir;
#   2. create a throwaway "host" netns and two "container" netns;
#   3. `cnitool add` both containers: their results, addresses, the bridge, the cache files;
#   4. the containers ping each other over the bridge;
#   5. `cnitool check` both, then `cnitool del` both: interfaces, leases and cache gone;
#   6. remove everything again (also on failure or Ctrl-C).
#
# The machine's own network namespace is never touched: cnitool and the plugins run inside
# the throwaway host netns (`ip netns exec`), so the bridge and the veth host ends live and
# die there. The conflist, the result cache and the host-local leases live in a temporary
# directory.
#
# Usage (root, Debian bookworm): bash scripts/demo.sh
# Environment: CNI_BIN_DIR=/usr/lib/cni runs the same demo with the Go reference plugins
# (cnitool stays ours).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

require_root "$0" "it creates network namespaces"

# Shows a command, then runs it.
run() {
    echo "\$ $*"
    "$@"
}

# --- Packages and build ----------------------------------------------------------------
# protobuf-compiler: protoc, which building cluster-ipam's etcd client needs; libprotobuf-dev:
# the well-known .proto files it imports (only a Recommends of protobuf-compiler).
PACKAGES=(gcc libc6-dev protobuf-compiler libprotobuf-dev iproute2 iputils-ping jq)
install_missing_packages "${PACKAGES[@]}"

section "cargo build --release --workspace --bins"
cargo build --release --workspace --bins

# --- Throwaway namespaces and directory ------------------------------------------------
HOST_NS=cnidemo-$$-host
NS_A=cnidemo-$$-a
NS_B=cnidemo-$$-b
WORK=$(mktemp -d /tmp/cnidemo-XXXXXX)
cleanup() {
    local status=$?
    # Deleting the host netns also removes the bridge and every veth host end in it.
    for ns in "$NS_A" "$NS_B" "$HOST_NS"; do
        ip netns delete "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
    if ((status != 0)); then
        echo "demo FAILED (exit $status); namespaces and $WORK removed" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

section "Installing the plugins into $WORK/bin"
BIN=$WORK/bin
mkdir -p "$BIN" "$WORK/net.d"
PLUGIN_SRC=${CNI_BIN_DIR:-$REPO_ROOT/target/release}
for plugin in bridge host-local loopback macvlan ipvlan; do
    install -m 0755 "$PLUGIN_SRC/$plugin" "$BIN/$plugin"
done
install -m 0755 "$REPO_ROOT/target/release/cnitool" "$BIN/cnitool"
ls -l "$BIN"

# The example keeps its leases in the system default dataDir; the demo uses $WORK.
CONFLIST=$WORK/net.d/10-demo-bridge.conflist
jq --arg dir "$WORK/ipam" '.plugins[0].ipam.dataDir = $dir' \
    "$REPO_ROOT/examples/bridge.conflist" >"$CONFLIST"
NETWORK=$(jq -r .name "$CONFLIST")
BRIDGE=$(jq -r .plugins[0].bridge "$CONFLIST")
section "Network configuration $CONFLIST"
cat "$CONFLIST"

for ns in "$HOST_NS" "$NS_A" "$NS_B"; do
    ip netns add "$ns"
done
echo
echo "throwaway host netns: $HOST_NS (cnitool and the plugins run here)"
echo "container netns:      /run/netns/$NS_A, /run/netns/$NS_B"

# cnitool VERB NETNS: cnitool inside the throwaway host netns, everything on disk in $WORK.
cnitool() {
    echo "\$ cnitool $1 $NETWORK /run/netns/$2" >&2
    ip netns exec "$HOST_NS" env NETCONFPATH="$WORK/net.d" CNI_PATH="$BIN" \
        CNI_CACHE_DIR="$WORK/cache" "$BIN/cnitool" "$1" "$NETWORK" "/run/netns/$2"
}

# --- ADD -------------------------------------------------------------------------------
declare -A ADDRESS
for ns in "$NS_A" "$NS_B"; do
    section "cnitool add ($ns)"
    result=$(cnitool add "$ns")
    echo "$result"
    ADDRESS[$ns]=$(jq -r '.ips[0].address | split("/")[0]' <<<"$result")
done

section "Container addresses"
for ns in "$NS_A" "$NS_B"; do
    run ip -n "$ns" -brief address show
done
section "The bridge in the throwaway host netns"
run ip -n "$HOST_NS" -brief address show "$BRIDGE"
run ip -n "$HOST_NS" -brief link show master "$BRIDGE"

section "Result cache ($WORK/cache/results, libcni's cniCacheV1 format)"
ls -l "$WORK/cache/results"
first=$(find "$WORK/cache/results" -type f | sort | head -n1)
# The config field is the conflist's bytes in base64; shortened here for reading.
jq '.config |= (.[0:24] + "...")' "$first"

section "Leases ($WORK/ipam/$NETWORK)"
ls "$WORK/ipam/$NETWORK"

# --- Traffic ---------------------------------------------------------------------------
section "The containers ping each other over $BRIDGE"
run ip netns exec "$NS_A" ping -c 3 -W 2 "${ADDRESS[$NS_B]}"
run ip netns exec "$NS_B" ping -c 3 -W 2 "${ADDRESS[$NS_A]}"

# --- CHECK and DEL ---------------------------------------------------------------------
section "cnitool check"
for ns in "$NS_A" "$NS_B"; do
    cnitool check "$ns" && echo "ok"
done

section "cnitool del"
for ns in "$NS_A" "$NS_B"; do
    cnitool del "$ns" && echo "ok"
done
for ns in "$NS_A" "$NS_B"; do
    run ip -n "$ns" -brief address show
done
echo "cache files left: $(find "$WORK/cache/results" -type f | wc -l)"
echo "leases left:      $(find "$WORK/ipam/$NETWORK" -type f -name '10.*' | wc -l)"

section "Done; removing the namespaces ($HOST_NS, $NS_A, $NS_B) and $WORK"
