#!/usr/bin/env bash
# Regenerates BENCHMARKS.md and BENCHMARKS.svg: release build of our plugins, then the full
# side-by-side run against the Go reference in /usr/lib/cni (cni-bench, bench/).
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
cargo build --release --workspace --bins
target/release/cni-bench --out BENCHMARKS.md "$@"
