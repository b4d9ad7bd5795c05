#!/usr/bin/env bash
# The test command: formatting, lints, build, every test, then a leak check.
#
# Works on a fresh Debian bookworm machine as root with only rustup's cargo installed:
# it installs the system packages the tests use first. The integration tests create real
# network namespaces (named cnitest-*), so this must run as root. It never configures the
# machine's own network namespace; the leak check at the end proves the tests did not
# either.
#
# Usage: bash scripts/test.sh
# Environment: CNI_BIN_DIR=/usr/lib/cni runs the plugin tests against another set of
# binaries (e.g. the Go reference plugins) instead of target/debug; VM_LANE=1 also runs
# the VM lane (scripts/vm-lane.sh).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

require_root "$0" "the tests create network namespaces"

# --- System packages -------------------------------------------------------------------
# gcc and libc6-dev: the linker cargo needs. The rest: what tests run or compare against
# (ip, tc, ping, nft, iptables, the Go reference plugins in /usr/lib/cni, jq, sysctl,
# python3 for bandwidth's timed transfers, conntrack to watch portmap's flush of stale UDP flows;
# etcd-server and etcd-client: the real etcd cluster-ipam's tests start on loopback (free
# ports, never the system etcd the package may enable on 2379); protobuf-compiler: protoc,
# which building cluster-ipam's etcd client needs, and libprotobuf-dev: the well-known .proto
# files it imports, a Recommends that --no-install-recommends leaves out; openssl: the CLI that
# makes the throwaway CA and certificates of the TLS etcd tests, priority optional, so not in
# every base image; binutils: readelf, which checks each plugin's identity note; e2fsprogs:
# mkfs.ext4, for the journaled filesystem the benchmark smoke keeps host-local's stores on).
PACKAGES=(gcc libc6-dev iproute2 iputils-ping nftables iptables
    containernetworking-plugins jq procps python3 conntrack
    etcd-server etcd-client protobuf-compiler libprotobuf-dev openssl binutils e2fsprogs)
install_missing_packages "${PACKAGES[@]}"
if command -v rustup >/dev/null; then
    # A minimal rustup profile has neither; the default profile has both (then a no-op).
    rustup component add clippy rustfmt
fi

# --- Leak-check baseline ---------------------------------------------------------------
# cnitest-<pid>-... namespaces whose creating process is dead are leftovers of a killed
# run (see conformance/src/netns.rs). Namespaces of live processes are someone's running
# tests and are left alone.
dead_test_netns() {
    local name pid
    for name in $(ip netns list | awk '{print $1}' | grep '^cnitest-' || true); do
        pid=${name#cnitest-}
        pid=${pid%%-*}
        if [[ $pid =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then
            echo "$name"
        fi
    done
}
# Every named namespace except the cnitest-* ones of running processes (someone else's
# tests, in progress): a namespace made with `ip netns add` or by another tool is caught too.
settled_netns() {
    local name pid
    for name in $(ip netns list | awk '{print $1}'); do
        pid=${name#cnitest-}
        pid=${pid%%-*}
        if [[ $name == cnitest-* && $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
            continue
        fi
        echo "$name"
    done | sort
}
root_links() { ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort; }
# Counters change on their own; everything else in the ruleset must not.
root_ruleset() { nft list ruleset 2>/dev/null | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'; }
lab_tmpdirs() {
    find "${TMPDIR:-/tmp}" -maxdepth 1 \( -name 'cnitest-lab-*' -o -name 'cnitest-etcd-*' \) 2>/dev/null | sort
}
# etcd members the tests started (conformance/src/etcd.rs: data dirs under cnitest-etcd-*).
test_etcd_processes() { pgrep -a -x etcd | grep -F cnitest-etcd- | sort || true; }

stale=$(dead_test_netns)
if [[ -n $stale ]]; then
    echo "Removing namespaces left by an earlier, killed test run:"
    echo "$stale"
    for name in $stale; do ip netns delete "$name"; done
fi
# Where ifb is a module, its first use (bandwidth's tests, in lab namespaces) loads it,
# and loading makes ifb0 and ifb1 in the root namespace unless told to make none: load it
# so now, before the baseline, and those links never appear. Built in (here): nothing to do.
modprobe ifb numifbs=0 2>/dev/null || true
baseline=$(mktemp -d)
logs=$(mktemp -d)
trap 'rm -rf "$baseline" "$logs"' EXIT
settled_netns >"$baseline/netns"
root_links >"$baseline/links"
root_ruleset >"$baseline/ruleset"
lab_tmpdirs >"$baseline/tmpdirs"
test_etcd_processes >"$baseline/etcd"

# --- Rust ------------------------------------------------------------------------------
# One target dir and the debug profile throughout, so each step reuses the last one's work.
section "cargo fmt"
cargo fmt --all --check
section "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
section "cargo build"
# Plugin tests run the binaries of other plugins too (e.g. bridge delegates to
# host-local), so every binary must exist before any test starts.
cargo build --workspace --bins
# --- Steps and their results ------------------------------------------------------------
# Every step's passed and failed figures, in run order, for the summary.
step_names=()
declare -A step_passed=() step_failed=()
record_step() { # NAME PASSED FAILED
    step_names+=("$1")
    step_passed[$1]=$2
    step_failed[$1]=$3
}
# run_step NAME COMMAND...: a step that is one whole script, under its own heading, its
# output also in $logs/NAME.log; it counts as one test, passed or failed.
run_step() {
    local name=$1
    shift
    section "$name"
    if "$@" 2>&1 | tee "$logs/$name.log"; then
        record_step "$name" 1 0
    else
        record_step "$name" 0 1
        test_status=1
    fi
}
# sum_of WORD FILE REGEX: the sum of the "<N> WORD" figures on FILE's lines matching REGEX
# (0 when FILE is missing, e.g. the VM lane was skipped).
sum_of() {
    awk -v word="$1" -v re="$3" '$0 ~ re {
        for (i = 1; i < NF; i++) if ($(i + 1) ~ "^" word) n += $i
    } END { print n + 0 }' "$2" 2>/dev/null || echo 0
}
# record_counted NAME LOG REGEX: a step whose log counts its own tests on lines matching REGEX.
record_counted() {
    record_step "$1" "$(sum_of passed "$2" "$3")" "$(sum_of failed "$2" "$3")"
}

section "cargo test"
# Tests marked #[ignore] need kernel features this machine lacks; the VM lane runs them.
test_status=0
# --no-fail-fast: one failing test binary must not hide the results of the others.
cargo test --workspace --no-fail-fast 2>&1 | tee "$logs/cargo-test.log" || test_status=$?
record_counted "cargo test" "$logs/cargo-test.log" '^test result:'

# --- Soak ------------------------------------------------------------------------------
# A short soak (scripts/soak.sh): random concurrent ADD/CHECK/DEL/GC across bridge (both
# masquerade backends), macvlan and host-local, with SIGKILLs and container netns deleted
# under live attachments, the node checked after every cycle, then a simulated reboot.
# Fails on any violation; its seed is printed first for a replay. The 1000-cycle figures
# are in README.md.
run_step soak bash scripts/soak.sh 200

# --- cluster-ipam on etcd --------------------------------------------------------------
# 20 simulated nodes sharing one /22 through cluster-ipam and a real etcd on loopback
# (scripts/cluster-soak.sh): fill to exhaustion, random churn, GC, no duplicate ever; then
# the same with a 3-member etcd whose leader is killed and restarted, and SIGKILLed calls.
# Short runs here; the 10000-call figures are in README.md.
run_step cluster-soak bash scripts/cluster-soak.sh 1500
run_step cluster-soak-faults bash scripts/cluster-soak.sh 2000 --faults

# --- VM lane ---------------------------------------------------------------------------
# The #[ignore]d tests whose names start with vm_ (ipvlan, bridge VLAN filtering, ...) in a
# qemu guest booting Debian's kernel. SKIP_VM_LANE=1 skips it for a quick local run; CI
# never sets it.
if [[ ${SKIP_VM_LANE:-0} == 1 ]]; then
    echo "SKIPPED: VM lane (SKIP_VM_LANE=1): the vm_* tests did not run" >&2
else
    section "VM lane"
    bash scripts/vm-lane.sh 2>&1 | tee "$logs/vm-lane.log" || test_status=$?
fi
# The lane's own closing line, "N passed, M failed".
record_counted "VM lane" "$logs/vm-lane.log" '^[0-9]+ passed, [0-9]+ failed$'

# --- podman end to end -----------------------------------------------------------------
# podman (CNI backend) running containers on our plugins only; it works in the machine's
# own namespace with names and subnets of its own and checks it left nothing behind.
run_step podman bash scripts/podman-e2e.sh

# --- containerd end to end (CRI) -------------------------------------------------------
# kubelet's path: containerd's CRI plugin running pod sandboxes on our plugins only,
# driven over its socket by scripts/cri-client.py; in the machine's own namespace with
# names and subnets of its own, and it checks it left nothing behind. A few timed pods
# keep its ours-vs-reference timing from rotting (the figures are in BENCHMARKS.md).
run_step containerd env BENCH_PODS=3 bash scripts/containerd-e2e.sh

# --- Release ---------------------------------------------------------------------------
# The static release build and its tarball (scripts/release.sh), the binaries run in a
# chroot with no libc, and the installer's install/restore round trip.
run_step release bash scripts/release-test.sh

# --- Benchmark smoke ---------------------------------------------------------------------
# A few interleaved iterations of every benchmark scenario against the Go reference, so
# the tool never rots (the full run is `bash scripts/bench.sh`, see BENCHMARKS.md). It
# fails if any plugin call fails; the figures of a smoke run are not kept.
section "benchmark smoke"
cargo build --release --workspace --bins
target/release/cni-bench --quick --out "$logs/BENCHMARKS.md" || test_status=$?
# The generated code layout (plugins/<name>/hot-text.ld, see README "Size and start-up")
# must still match the code: after a toolchain or dependency upgrade renamed the hot
# functions, .text.hot shrinks and every call maps more of the binary again.
section_size() { # BINARY SECTION -> size in bytes (0 if absent)
    local hex
    hex=$(readelf -SW "$1" | sed 's/^ *\[ *[0-9]*\]//' | awk -v s="$2" '$1 == s {print $5}')
    echo $((16#${hex:-0}))
}
for plugin in bridge macvlan ipvlan host-local loopback tuning portmap firewall bandwidth \
    cluster-ipam; do
    hot=$(section_size "target/release/$plugin" .text.hot)
    cold=$(section_size "target/release/$plugin" .text)
    if ((3 * hot < hot + cold)); then
        echo "FAILED: $plugin: .text.hot holds $hot of $((hot + cold)) code bytes;" \
            "regenerate the layout with python3 scripts/hot-functions.py" >&2
        test_status=1
    fi
done

# --- Fuzz smoke ------------------------------------------------------------------------
# Every fuzz target for 10 s from the committed seeds (fuzz/seeds), so the targets keep
# building and a parser regression shows up here; README "Fuzzing" has the long runs.
# scripts/fuzz.sh installs cargo-fuzz and the nightly toolchain it needs.
run_step fuzz bash scripts/fuzz.sh 10

# --- Summary ---------------------------------------------------------------------------
# One line with every step's figures, and the totals.
step_summary="" total_passed=0 total_failed=0
for name in "${step_names[@]}"; do
    step_summary+="${step_summary:+; }$name: ${step_passed[$name]} passed, ${step_failed[$name]} failed"
    total_passed=$((total_passed + ${step_passed[$name]}))
    total_failed=$((total_failed + ${step_failed[$name]}))
done

# --- Leak check ------------------------------------------------------------------------
section "Leak check"
leaks=0
if ! diff -u "$baseline/netns" <(settled_netns); then
    echo "LEAK: named network namespaces left behind (diff above)"
    leaks=1
fi
# Remove what the tests leaked, so the next run starts clean.
for name in $(dead_test_netns); do ip netns delete "$name" || true; done
if ! diff -u "$baseline/links" <(root_links); then
    echo "LEAK: the links of the machine's own network namespace changed (diff above)"
    leaks=1
fi
if ! diff -u "$baseline/ruleset" <(root_ruleset); then
    echo "LEAK: the machine's own nftables ruleset changed (diff above)"
    leaks=1
fi
if ! diff -u "$baseline/tmpdirs" <(lab_tmpdirs); then
    echo "LEAK: test lab or etcd directories left behind (diff above)"
    leaks=1
fi
if ! diff -u "$baseline/etcd" <(test_etcd_processes); then
    echo "LEAK: test etcd members left running (diff above)"
    leaks=1
fi
if ((leaks == 0)); then
    echo "no leaks"
fi

echo
echo "$step_summary"
status=0
if ((test_status != 0)); then
    echo "FAILED: the tests failed (exit status $test_status, see above)"
    status=$test_status
elif ((leaks != 0)); then
    echo "FAILED: the tests leaked state (see above)"
    status=1
else
    echo "All checks passed."
fi
# The run's closing line: every test of every step.
echo "total: $total_passed passed, $total_failed failed"
exit "$status"
