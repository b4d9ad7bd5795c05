//! Benchmark (run with `--ignored --nocapture`): DEL with 50 000 leases in the network must
//! stay within 2x of DEL with none, thanks to the by-attachment index (the reference scans
//! every lease file on every DEL). Timing-based, so not part of the default run on a shared
//! 2-core machine.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Network;
use std::time::{Duration, Instant};

const LEASES: u32 = 50_000;
const ROUNDS: usize = 7;

/// Median wall time of `ROUNDS` (ADD untimed, DEL timed) cycles, and of a repeated DEL.
fn time_del(net: &Network) -> (Duration, Duration) {
    let mut first = Vec::new();
    let mut again = Vec::new();
    for round in 0..ROUNDS {
        let id = format!("bench{round}");
        net.ours("ADD", &id).ok();
        let start = Instant::now();
        net.ours("DEL", &id).ok();
        first.push(start.elapsed());
        let start = Instant::now();
        net.ours("DEL", &id).ok();
        again.push(start.elapsed());
    }
    first.sort();
    again.sort();
    (first[ROUNDS / 2], again[ROUNDS / 2])
}

#[test]
#[ignore = "benchmark: timing-based, run with --ignored --nocapture"]
fn del_with_50k_leases_is_within_2x_of_del_with_none() {
    let empty = Network::v4("1.0.0", "10.1.0.0/16");
    let full = Network::v4("1.0.0", "10.1.0.0/16");
    full.ours("ADD", "warmup").ok();
    for n in 0..LEASES {
        let name = format!("10.1.{}.{}", 100 + n / 250, 1 + n % 250);
        std::fs::write(full.store().join(name), format!("filler{n}\r\neth0")).unwrap();
    }
    let (empty_del, empty_again) = time_del(&empty);
    let (full_del, full_again) = time_del(&full);
    let start = Instant::now();
    full.ours("ADD", "one-more").ok();
    let full_add = start.elapsed();
    println!(
        "DEL median: 0 leases {empty_del:?}, {LEASES} leases {full_del:?}; \
         repeated DEL (no index entry, scan): {empty_again:?} vs {full_again:?}; \
         ADD with {LEASES} leases: {full_add:?}"
    );
    assert!(
        full_del <= empty_del * 2,
        "DEL with {LEASES} leases took {full_del:?}, more than 2x {empty_del:?}"
    );
}
