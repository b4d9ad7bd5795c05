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
# image). They are built for the musl target, whose C library is small enough to link into
# every binary (bridge 1.54 MB against 2.24 MB with glibc linked in) and starts faster; it
# also resolves host names on its own (/etc/hosts, DNS), which cluster-ipam's endpoints
# may need, where a static glibc would load NSS modules at run time. The script installs
# the target (rustup) and musl-gcc (Debian's musl-tools, for ring's C code in cluster-ipam)
# when they are missing. The tarball is reproducible: entries sorted, owned by root, dated
# by the last commit.
#
# Usage: bash scripts/release.sh   (prints the tarball's path last)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

PLUGINS=(bandwidth bridge cluster-ipam firewall host-local ipvlan loopback macvlan portmap tuning)
TARGET=x86_64-unknown-linux-musl
ARCH=amd64
DIST=dist

version=v$(awk -F'"' '/^\[workspace.package\]/ { in_ws = 1 } in_ws && /^version *=/ { print $2; exit }' Cargo.toml)
name=cni-plugins-linux-$ARCH-$version
packages=()
for plugin in "${PLUGINS[@]}"; do packages+=(-p "cni-plugin-$plugin"); done

install_missing_packages musl-tools
if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    rustup target add "$TARGET"
fi
# The musl target links statically by default; +crt-static says so explicitly. RUSTFLAGS
# replaces .cargo/config.toml's flags (the dynamic build's libgcc path) for this build, and
# the explicit --target keeps them off build scripts and proc macros, which cannot be static.
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
    # A static glibc would load NSS modules (nsswitch.conf) at run time: never in a
    # release binary.
    if grep -qaE 'nsswitch\.conf|libnss_' "$binary"; then
        echo "release: $binary links glibc's NSS (built for the wrong target?)" >&2
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
