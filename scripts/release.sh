#!/usr/bin/env bash
# Builds the release: statically linked plugin binaries, packed like the reference's
# release (https://github.com/containernetworking/plugins/releases), into dist/:
#
#   dist/cni-plugins-linux-amd64-v<version>.tgz          the plugins at the top level,
#                                                        with README.md and LICENSE
#   dist/cni-plugins-linux-amd64-v<version>.tgz.sha256   `sha256sum` format
#
# Static, as the reference's Go binaries are: they need no libc, loader or libgcc_s on
# the host, so the same file runs on any x86_64 Linux (glibc of any age, musl, a minimal
# image). glibc is linked statically (`+crt-static`), because the musl target is not
# installed on our machines. The plugins never look up users or host names, so glibc's
# NSS (which a static glibc would load at run time) is never used: the script checks that
# none of it is linked in, except in cluster-ipam (below). The tarball is reproducible:
# entries sorted, owned by root, dated by the last commit.
#
# Usage: bash scripts/release.sh   (prints the tarball's path last)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PLUGINS=(bandwidth bridge cluster-ipam firewall host-local ipvlan loopback macvlan portmap tuning)
TARGET=x86_64-unknown-linux-gnu
ARCH=amd64
DIST=dist

version=v$(awk -F'"' '/^\[workspace.package\]/ { in_ws = 1 } in_ws && /^version *=/ { print $2; exit }' Cargo.toml)
name=cni-plugins-linux-$ARCH-$version
packages=()
for plugin in "${PLUGINS[@]}"; do packages+=(-p "cni-plugin-$plugin"); done

# An explicit --target keeps these flags off build scripts and proc macros (which cannot
# be static) and the output apart from target/release, which the benchmark measures.
# RUSTFLAGS replaces .cargo/config.toml's flags for this build: a static link takes
# libgcc's unwinder from libgcc_eh.a anyway.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked \
    --target "$TARGET" "${packages[@]}"
built=target/$TARGET/release

stage=$(mktemp -d)
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT
for plugin in "${PLUGINS[@]}"; do
    binary=$built/$plugin
    # Static: no program interpreter (ld.so) and no shared library needed.
    if readelf -lW "$binary" | grep -q 'INTERP' || readelf -dW "$binary" | grep -q '(NEEDED)'; then
        echo "release: $binary is not statically linked" >&2
        exit 1
    fi
    # glibc's NSS loads shared modules named in /etc/nsswitch.conf: linked in, it would
    # break the "no libc needed" promise on a host without glibc.
    # cluster-ipam resolves its etcd endpoints' host names (getaddrinfo): glibc's `files`
    # and `dns` lookups are built into the static binary, and endpoints given as addresses
    # need no lookup at all.
    if [[ $plugin != cluster-ipam ]] && grep -qaE 'nsswitch\.conf|libnss_' "$binary"; then
        echo "release: $binary links glibc's NSS (getaddrinfo, getpwnam, ...)" >&2
        exit 1
    fi
    install -m 0755 "$binary" "$stage/$plugin"
done
install -m 0644 README.md LICENSE "$stage/"

mkdir -p "$DIST"
mtime=$(git log -1 --format=%cI 2>/dev/null || date -u +%FT%TZ)
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="$mtime" \
    -cf - . | gzip -9n >"$DIST/$name.tgz"
(cd "$DIST" && sha256sum "$name.tgz" >"$name.tgz.sha256")
ls -l "$DIST/$name.tgz"
echo "$DIST/$name.tgz"
