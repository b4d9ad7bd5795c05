//! Times exec-to-exit of a tiny binary that opens a handle and dumps links (the
//! `dump_links` example), 200 runs, inside a throwaway netns (root needed).
//!
//! `cargo build --release -p cni-netlink --examples &&
//!  target/release/examples/startup target/release/examples/dump_links`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

const RUNS: usize = 200;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let binary = std::env::args()
        .nth(1)
        .ok_or("usage: startup <path to dump_links>")?;
    let netns = common::anon_netns()?;

    // Children inherit the netns of the thread that spawns them.
    let mut times = netns.run(|| -> std::io::Result<Vec<Duration>> {
        (0..RUNS)
            .map(|_| {
                let t0 = Instant::now();
                let status = Command::new(&binary).stdout(Stdio::null()).status()?;
                if !status.success() {
                    return Err(std::io::Error::other(format!("{binary} failed: {status}")));
                }
                Ok(t0.elapsed())
            })
            .collect()
    })??;
    times.sort();
    let total: Duration = times.iter().sum();
    println!(
        "exec-to-exit of {binary} x{RUNS}: mean {:?}, median {:?}, p95 {:?}",
        total / RUNS as u32,
        times[RUNS / 2],
        times[(RUNS - 1) * 95 / 100]
    );
    Ok(())
}
