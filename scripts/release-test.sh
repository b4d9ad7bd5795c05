#!/usr/bin/env bash
# The release, tested as a node gets it (run by scripts/test.sh):
#
#   - scripts/release.sh builds the tarball; its layout and `.sha256` are checked;
#   - the static binaries run where no libc is installed: in a chroot holding only the
#     unpacked tarball, every plugin answers VERSION; with /proc mounted in it (the
#     kernel's interface, which the plugins read for their own netns), a loopback ADD and
#     DEL configure a container netns, and a host-local ADD and DEL write and remove a
#     lease in a dataDir inside the chroot;
#   - the conformance suite (cni-conformance) passes on the unpacked binaries;
#   - scripts/install.sh round-trips over a copy of the Go plugins: the install leaves
#     exactly the tarball's binaries (checksums), a second install keeps the first backup,
#     and --restore puts every original back byte for byte and removes what was added.
#
# Namespaces are named cnitest-<pid>-release-* and plugins run in a throwaway host netns;
# the chroot's mounts live in a private mount namespace of the call and end with it.
# Everything made here is removed on exit, failure included.
#
# Usage (root): bash scripts/release-test.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
SCRIPT_TAG=release-test

require_root "$0" "chroot and network namespaces"
# readelf (binutils) and protoc with its well-known .proto files (for cluster-ipam's etcd client) for
# release.sh; the Go plugins stand for an existing installation; what the conformance suite
# drives: nftables and iptables (firewall, portmap, masquerading), etcd (cluster-ipam, on
# loopback), openssl (its TLS cases), conntrack.
install_missing_packages binutils protobuf-compiler libprotobuf-dev iproute2 containernetworking-plugins \
    nftables iptables etcd-server etcd-client openssl conntrack

# The names in directory $1, hidden ones included, one per line, sorted.
entries() { find "$1" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort; }

PLUGINS=(bandwidth bridge cluster-ipam firewall host-local ipvlan loopback macvlan portmap tuning)
HOST=cnitest-$$-release-host
CTR=cnitest-$$-release-ctr
work=$(mktemp -d "${TMPDIR:-/tmp}/cnitest-lab-release-XXXXXX")
cleanup() {
    ip netns delete "$HOST" 2>/dev/null || true
    ip netns delete "$CTR" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- Build and tarball -----------------------------------------------------------------
section "build (scripts/release.sh)"
tgz=$(bash scripts/release.sh | tail -n 1)
(cd "$(dirname "$tgz")" && sha256sum --check "$(basename "$tgz").sha256") ||
    fail "$tgz does not match its .sha256"
expected=$(printf './\n./LICENSE\n./README.md\n'; printf './%s\n' "${PLUGINS[@]}")
listed=$(tar -tzf "$tgz" | sort)
[[ $listed == "$(sort <<<"$expected")" ]] ||
    fail "tarball layout: got $(tr '\n' ' ' <<<"$listed"), want $(tr '\n' ' ' <<<"$expected")"

# --- In a chroot with no libc ------------------------------------------------------------
section "static binaries in an empty chroot"
root=$work/root
mkdir "$root"
tar -C "$root" -xzf "$tgz"
rm "$root/README.md" "$root/LICENSE"
for plugin in "${PLUGINS[@]}"; do
    out=$(env -i CNI_COMMAND=VERSION PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$root" "/$plugin" </dev/null) ||
        fail "$plugin VERSION in the empty chroot: $out"
    grep -q '"supportedVersions"' <<<"$out" || fail "$plugin VERSION printed: $out"
    echo "$plugin VERSION: ok"
done
[[ $(entries "$root") == "$(printf '%s\n' "${PLUGINS[@]}" | sort)" ]] ||
    fail "the chroot holds more than the plugins: $(entries "$root" | tr '\n' ' ')"

ip netns add "$HOST"
ip netns add "$CTR"
mkdir "$root/proc"
touch "$root/netns"
# call VERB PLUGIN CONFIG: runs PLUGIN chrooted, in the host netns, with the container
# netns at /netns inside the chroot; prints its stdout; fails on a non-zero exit.
call() {
    # shellcheck disable=SC2016 # expanded by the inner shell
    env -i CNI_COMMAND="$1" CNI_CONTAINERID=release-test CNI_NETNS=/netns CNI_IFNAME=eth0 \
        CNI_PATH=/ PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        ip netns exec "$HOST" unshare --mount --propagation private -- sh -c '
            mount -t proc proc "$1/proc" && mount --bind "$2" "$1/netns" &&
            exec chroot "$1" "/$3"' sh "$root" "/run/netns/$CTR" "$2" <<<"$3"
}
lo_flags() { ip -n "$CTR" -o link show lo | sed 's/.*<\(.*\)>.*/\1/'; }

loopback='{"cniVersion":"1.0.0","name":"release-lo","type":"loopback"}'
out=$(call ADD loopback "$loopback") || fail "loopback ADD: $out"
grep -q '"127.0.0.1/8"' <<<"$out" || fail "loopback ADD printed: $out"
[[ ,$(lo_flags), == *,UP,* ]] || fail "lo is not up after ADD: $(lo_flags)"
out=$(call DEL loopback "$loopback") || fail "loopback DEL: $out"
[[ ,$(lo_flags), != *,UP,* ]] || fail "lo is still up after DEL: $(lo_flags)"
echo "loopback ADD/DEL: ok"

hostlocal='{"cniVersion":"1.0.0","name":"release-ipam","type":"host-local",
  "ipam":{"type":"host-local","dataDir":"/leases","subnet":"10.231.90.0/24"}}'
out=$(call ADD host-local "$hostlocal") || fail "host-local ADD: $out"
grep -q '"10.231.90.2/24"' <<<"$out" || fail "host-local ADD printed: $out"
[[ -f $root/leases/release-ipam/10.231.90.2 ]] || fail "no lease in the chroot's dataDir"
out=$(call DEL host-local "$hostlocal") || fail "host-local DEL: $out"
[[ ! -e $root/leases/release-ipam/10.231.90.2 ]] || fail "the lease is still there after DEL"
echo "host-local ADD/DEL: ok"

# --- The conformance suite on the release binaries --------------------------------------
# The cargo tests run the dynamic build in target/release; what ships is linked otherwise
# (static, musl), so the whole black-box suite runs once more on the binaries the tarball
# holds, as they are installed. (About 20 s.)
section "conformance suite on the release binaries"
unpacked=$work/unpacked
mkdir "$unpacked"
tar -C "$unpacked" -xzf "$tgz"
cargo build --release --locked -p cni-conformance --bin cni-conformance
target/release/cni-conformance --bin-dir "release=$unpacked" --jobs 2 ||
    fail "the conformance suite failed on the release binaries"

# --- Installer round trip --------------------------------------------------------------
section "scripts/install.sh round trip"
bin=$work/bin
mkdir "$bin"
# The Go plugins stand for an existing installation; ipvlan is left out so the install
# adds one binary, and sbr is one the install must not touch.
for plugin in bridge host-local loopback macvlan portmap sbr; do
    cp -p "/usr/lib/cni/$plugin" "$bin/"
done
before=$(cd "$bin" && sha256sum -- * | sort)
bash scripts/install.sh --dir "$bin" --from "$tgz"
for plugin in "${PLUGINS[@]}"; do
    cmp -s "$root/$plugin" "$bin/$plugin" || fail "$bin/$plugin is not the release's"
done
cmp -s /usr/lib/cni/sbr "$bin/sbr" || fail "the install changed sbr"
# A second install must keep the originals, not back up our own binaries.
bash scripts/install.sh --dir "$bin" --from "$tgz" >/dev/null
bash scripts/install.sh --restore --dir "$bin"
after=$(cd "$bin" && sha256sum -- * | sort)
[[ $after == "$before" ]] || fail "restore did not bring the originals back:
$(diff <(echo "$before") <(echo "$after"))"
[[ $(entries "$bin") == "$(printf '%s\n' bridge host-local loopback macvlan portmap sbr)" ]] ||
    fail "restore left files behind: $(entries "$bin" | tr '\n' ' ')"
echo "install/restore: ok"

echo
echo "release-test: all passed"
