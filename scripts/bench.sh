#!/usr/bin/env bash
# Regenerates BENCHMARKS.md and BENCHMARKS.svg: the static release build of our plugins, then
# the full side-by-side run against the Go reference in /usr/lib/cni (cni-bench, bench/).
#
# Usage: bash scripts/bench.sh [extra cni-bench options, e.g. --iterations 100]
#   (`--cluster-only --out FILE` measures only cluster-ipam on etcd beside host-local and
#   writes that section alone to FILE; give it its own FILE, or it replaces BENCHMARKS.md;
#   `--cold-only` and `--concurrency-only` do the same for the cold-start and concurrency
#   sections)
# Needs root (throwaway network namespaces). Run it on a quiet machine: the report states the
# load average it started under.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
# The Go reference; etcd for cluster-ipam's part; protoc to build cluster-ipam.
# e2fsprogs: mkfs.ext4 for the journaled filesystem the host-local stores sit on.
install_missing_packages containernetworking-plugins etcd-server etcd-client protobuf-compiler libprotobuf-dev e2fsprogs
# What is measured: the static release binaries (musl), the build a node runs
# (scripts/install.sh installs them), static like the reference's Go binaries. The
# benchmark is built the same way beside them, so that its etcd floor process
# (cni-bench-etcd-floor, which cni-bench finds next to itself) starts as cheaply as the
# plugins it is the floor of. release.sh installs the musl target and musl-tools.
bash scripts/release.sh >/dev/null
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked \
    --target x86_64-unknown-linux-musl -p cni-bench
target/x86_64-unknown-linux-musl/release/cni-bench --out BENCHMARKS.md "$@"
