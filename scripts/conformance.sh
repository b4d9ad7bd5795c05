#!/usr/bin/env bash
# Conformance comparison: builds our plugins and the cni-conformance tool, runs the
# black-box suite against our binaries (target/debug, every case must pass) and against
# the Go reference in /usr/lib/cni (exactly its known defects must fail), prints the
# table and writes conformance/REPORT.md.
#
# Usage: bash scripts/conformance.sh [--release] [extra cni-conformance options...]
#   --release   test target/release instead of target/debug
#   e.g. --plugins bridge,host-local   --cases lifecycle   --jobs 2
# Needs root (the suite creates network namespaces; never touches the machine's own).
# Exit status: 0 both sides as expected, 1 not, 2 setup problem.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "scripts/conformance.sh: must run as root (the suite creates network namespaces)" >&2
    exit 2
fi
if [[ ! -x /usr/lib/cni/bridge ]]; then
    echo "scripts/conformance.sh: the Go reference is missing:" \
        "apt-get install containernetworking-plugins" >&2
    exit 2
fi

profile=debug
cargo_profile=()
if [[ ${1:-} == --release ]]; then
    profile=release
    cargo_profile=(--release)
    shift
fi

cargo build "${cargo_profile[@]}" --workspace --bins
"target/$profile/cni-conformance" \
    --bin-dir "ours=target/$profile" \
    --reference "go-reference=/usr/lib/cni" \
    --report conformance/REPORT.md \
    "$@"
