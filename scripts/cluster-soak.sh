#!/usr/bin/env bash
# The multi-node soak of cluster-ipam: 20 simulated nodes (threads, each running the
# cluster-ipam binary with its own nodeName, all at once) fill one /22 until it is
# exhausted, then ADD/DEL/CHECK at random, against a real etcd started for the run on
# loopback; no duplicate may be handed out, the store (read with etcdctl) must match what
# every node holds, and GC then a DEL of everything must leave exactly the live set, then
# nothing. --faults: a 3-member etcd whose leader is killed and restarted mid-run, and one
# call in ten SIGKILLed. See soak/src/cluster/mod.rs.
#
# Usage: bash scripts/cluster-soak.sh OPS [--faults] [--seed SEED]
#   (OPS plugin calls for the fill and the churn; the issue's figure is 10000)
# Environment: CARGO_PROFILE=release soaks release binaries.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# etcd and etcdctl run the store; protoc builds the plugin's etcd client.
install_missing_packages etcd-server etcd-client protobuf-compiler libprotobuf-dev

profile=${CARGO_PROFILE:-dev}
dir=debug
if [[ $profile == release ]]; then dir=release; fi
# The whole workspace, as scripts/test.sh builds it (then this build is a no-op).
cargo build --profile "$profile" --workspace --bins
exec "target/$dir/cni-soak" cluster "$@"
