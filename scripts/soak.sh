#!/usr/bin/env bash
# The soak: random concurrent ADD/CHECK/DEL/GC calls across bridge (nftables and iptables
# masquerade), macvlan and host-local, with SIGKILLs mid-call and container netns deleted
# under live attachments, checking the node's state after every cycle, then a simulated
# reboot (every netns gone, one GC per network with an empty valid-attachment list) that
# must leave a clean node. See soak/src/main.rs.
#
# Everything runs in throwaway namespaces the soak makes (cnitest-*) and removes at the
# end, also on failure; the machine's own network is never touched.
#
# Usage: bash scripts/soak.sh [CYCLES] [--seed SEED]   (default 200 cycles, a fresh seed;
# the seed is printed first, and `--seed` replays a failing run's plan)
# Environment: SOAK_SEED=N as --seed; CARGO_PROFILE=release soaks release binaries.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

require_root "$0" "the soak creates network namespaces"
# ip, nft and iptables run the plugins' firewall and the soak's checks; protoc builds
# cluster-ipam's etcd client (the workspace build below).
install_missing_packages iproute2 nftables iptables protobuf-compiler libprotobuf-dev

profile=${CARGO_PROFILE:-dev}
dir=debug
if [[ $profile == release ]]; then dir=release; fi
# The whole workspace, as scripts/test.sh builds it: the same feature set, so after its
# build this one is a no-op instead of a rebuild of the plugins with other features.
cargo build --profile "$profile" --workspace --bins
exec "target/$dir/cni-soak" "$@"
