//! `cni-soak [CYCLES] [--seed SEED]`: thousands of random ADD/CHECK/DEL/GC calls, in
//! parallel, across bridge (nftables and iptables masquerade), macvlan and host-local,
//! with SIGKILLs part-way through calls and container netns deleted under live
//! attachments; the node's state is checked against the runtime's view after every cycle,
//! and a simulated reboot (all netns gone, one GC per network with an empty
//! `cni.dev/valid-attachments`) must leave a clean node.
//!
//! Everything happens in a throwaway lab (conformance's `Lab`: a host netns, container
//! netns and a temp dir), removed at the end, also on failure. The seed is printed first;
//! `--seed` replays the same plan (as far as the calls end the same way: a kill that lands
//! after a call has finished changes what follows). Run it with `bash scripts/soak.sh`.
//!
//! `cni-soak cluster OPS [--seed SEED] [--faults]` is the multi-node soak of cluster-ipam
//! against a real etcd instead: see [`cluster`].

// Test tooling: a broken lab (no root, a netns that cannot be made) or a broken model
// stops the soak at once with a message, and a panic is how it says that; the lab is still
// removed while unwinding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod batch;
mod cluster;
mod invariants;
mod model;
mod rng;
mod runner;
mod world;

use std::process::ExitCode;
use std::time::Instant;

use cni_conformance::Lab;

use crate::batch::{Soak, Stats, Verb};
use crate::model::Model;
use crate::rng::Rng;

const DEFAULT_CYCLES: u64 = 200;
const SLOTS_PER_NETWORK: usize = 5;
/// How often (in cycles) a progress line is printed.
const PROGRESS_EVERY: u64 = 100;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("cluster") {
        return cluster::main(args.skip(1));
    }
    let (cycles, seed) = match parse_args(args) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("cni-soak: {message}\nusage: cni-soak [CYCLES] [--seed SEED]");
            return ExitCode::from(2);
        }
    };
    println!("soak: seed {seed}, {cycles} cycles (replay: cni-soak {cycles} --seed {seed})");
    // The lab (and with it every netns, link, rule and file the soak made) is dropped
    // before the process exits, whatever happened.
    let failed = run(cycles, seed);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs the soak; true if anything was violated.
fn run(cycles: u64, seed: u64) -> bool {
    let started = Instant::now();
    let lab = Lab::new();
    let networks = world::setup(&lab);
    let model = Model::new(networks.len(), SLOTS_PER_NETWORK);
    let mut soak = Soak {
        lab,
        networks,
        model,
        rng: Rng::new(seed),
        stats: Stats::default(),
        violations: Vec::new(),
    };
    let mut done = 0;
    while done < cycles && soak.violations.is_empty() {
        soak.cycle();
        done += 1;
        check(&mut soak, &format!("after cycle {done}"));
        if done % PROGRESS_EVERY == 0 {
            println!("soak: cycle {done}: {}", summary(&soak.stats));
        }
    }
    if soak.violations.is_empty() {
        soak.reboot_and_gc();
        check(&mut soak, "after the reboot and GC");
    }
    for violation in &soak.violations {
        println!("VIOLATION: {violation}");
    }
    let failed = soak.violations.len() as u64;
    println!(
        "soak: seed {seed}, {done} cycles in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        summary(&soak.stats)
    );
    println!("soak: {} passed, {failed} failed", soak.stats.passed);
    failed > 0
}

fn check(soak: &mut Soak, when: &str) {
    let found = invariants::check(
        soak.lab.host(),
        &world::data_dir(&soak.lab),
        &soak.networks,
        &soak.model,
    );
    soak.violations
        .extend(found.into_iter().map(|v| format!("{when}: {v}")));
}

fn summary(stats: &Stats) -> String {
    let calls: Vec<String> = Verb::ALL
        .iter()
        .zip(stats.calls)
        .map(|(verb, n)| format!("{n} {}", verb.as_str()))
        .collect();
    format!(
        "{} calls ({}), {} SIGKILLed, {} netns deleted under a live attachment",
        stats.calls.iter().sum::<u64>(),
        calls.join(", "),
        stats.sigkills,
        stats.vanished_netns
    )
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(u64, u64), String> {
    let mut cycles = DEFAULT_CYCLES;
    let mut seed = std::env::var("SOAK_SEED").ok().and_then(|s| s.parse().ok());
    while let Some(arg) = args.next() {
        if arg == "--seed" {
            let value = args.next().ok_or("--seed needs a value")?;
            seed = Some(value.parse().map_err(|_| format!("bad seed {value:?}"))?);
        } else {
            cycles = arg
                .parse()
                .map_err(|_| format!("bad cycle count {arg:?}"))?;
        }
    }
    Ok((cycles, seed.unwrap_or_else(Rng::fresh_seed)))
}
