#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (cargo-fuzz, libFuzzer) for SECONDS each, one after the
# other, starting from the committed seeds (fuzz/seeds/<target>) and the corpus earlier runs
# grew (fuzz/corpus/<target>, not committed). Stops at the first finding: the input is
# saved in fuzz/artifacts/<target>/ and `cargo +nightly fuzz run <target> <file>` in fuzz/
# replays it (`cargo +nightly fuzz tmin` shrinks it). Prints each target's executions and executions per second.
#
# Installs what it needs: a nightly toolchain (rustup) and cargo-fuzz (crates.io).
#
# Usage: bash scripts/fuzz.sh [SECONDS] [TARGET...]   (default: 60 s, every target)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-60}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

cd fuzz
if (($# > 0)); then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# The store and cache targets write files under TMPDIR: keep them in memory when possible,
# and remove them however the run ends.
scratch=$(mktemp -d -p "$([[ -d /dev/shm && -w /dev/shm ]] && echo /dev/shm || echo "${TMPDIR:-/tmp}")" cni-fuzz.XXXXXX)
logs=$(mktemp -d)
trap 'rm -rf "$scratch" "$logs"' EXIT

# libFuzzer's final statistics line `stat::<key>: <value>` of a target's log.
final_stat() { awk -v key="$2" '$1 == "stat::" key ":" {print $2}' "$logs/$1.log" | tail -n 1; }

started=$SECONDS
# One build of every target (cargo-fuzz builds one or all).
cargo +nightly fuzz build 2>&1 | tail -n 3
echo "built in $((SECONDS - started)) s"
bin_dir=target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release

summary=()
for target in "${targets[@]}"; do
    printf '\n=== fuzz %s (%s s)\n' "$target" "$seconds"
    mkdir -p "corpus/$target"
    status=0
    mkdir -p "artifacts/$target"
    # The binary itself, as `cargo fuzz run` would start it (minus its rebuild check).
    TMPDIR=$scratch "$bin_dir/$target" -artifact_prefix="artifacts/$target/" \
        -max_total_time="$seconds" -print_final_stats=1 \
        "corpus/$target" "seeds/$target" >"$logs/$target.log" 2>&1 || status=$?
    runs=$(final_stat "$target" number_of_executed_units)
    per_second=$(final_stat "$target" average_exec_per_sec)
    if ((status != 0)); then
        tail -n 60 "$logs/$target.log"
        echo "FUZZ FINDING in $target (exit $status): see fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^#[0-9]+[[:space:]]+DONE' "$logs/$target.log" | tail -n 1 || true
    summary+=("$(printf '%-16s %12s runs %8s exec/s' "$target" "${runs:-?}" "${per_second:-?}")")
done

printf '\n=== fuzz summary (%s s per target, %s total)\n' "$seconds" "$((SECONDS - started)) s"
printf '%s\n' "${summary[@]}"
