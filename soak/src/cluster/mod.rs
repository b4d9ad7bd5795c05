//! `cni-soak cluster OPS [--seed SEED] [--faults]`: 20 simulated nodes share one /22
//! through the `cluster-ipam` plugin and a real etcd started for the run.
//!
//! Each node is a thread that runs the plugin binary as its runtime would (config on stdin,
//! `CNI_*` environment, JSON out; one call at a time per node, all nodes at once), with its
//! own `nodeName`. The run:
//! 1. fill: every node ADDs until the pool is exhausted (a coded error, 102), then the
//!    store must hold exactly the pool's usable addresses, each given once;
//! 2. churn: random ADD / DEL / CHECK until OPS plugin calls were made in total;
//! 3. GC on every node with its live attachments as the valid list, then the store must
//!    hold exactly the live set; then a DEL of everything must leave no reservation.
//!
//! Every ADD result is checked against a ledger of the addresses held (an address is held
//! from its ADD's success until its DEL starts), so a duplicate handed out by two nodes at
//! once is caught at the call; the store is checked after each phase with `etcdctl`.
//!
//! `--faults`: a 3-member etcd cluster whose leader is SIGKILLed during the churn and
//! restarted later, and one plugin call in ten SIGKILLed part-way through. A killed or
//! refused ADD is followed by a DEL, as runtimes do; what that leaves is for GC, which must
//! then leave exactly the live set. That includes the reservation of a killed ADD whose
//! transaction was already on its way to etcd and committed only after the clean-up DEL
//! had found nothing (etcd cannot cancel a request in flight; the run counts these). Run
//! it with `bash scripts/cluster-soak.sh`.

mod check;
mod node;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use cni_conformance::{EtcdCluster, plugin_path};
use serde_json::{Value, json};

use self::check::Pool;
use self::node::Node;
use crate::rng::Rng;

/// Simulated nodes.
pub const NODES: usize = 20;
/// The shared pool: 1021 usable addresses (not the network, broadcast or gateway .1), 16
/// blocks of /26 for 20 nodes, so some nodes must allocate inside others' blocks.
const SUBNET: &str = "10.97.0.0/22";
pub const NETWORK: &str = "cluster-soak";
pub const PREFIX: &str = "/cni/cluster-ipam";
/// Longer than the surviving members take to elect a new leader (etcd's election timeout is
/// 1 s; a loaded machine adds a few): a call refused later than this after the leader was
/// killed was refused although a quorum was serving.
const ELECTION_GRACE: Duration = Duration::from_secs(5);

/// What every node shares during a run.
pub struct Run<'a> {
    pub binary: PathBuf,
    pub workdir: &'a Path,
    pub endpoints: Vec<String>,
    pub faults: bool,
    pub pool: Pool,
    pub stats: Mutex<Stats>,
    /// Address → the container holding it, by the ADD results seen.
    ledger: Mutex<HashMap<String, String>>,
    violations: Mutex<Vec<String>>,
    /// Every call and how it ended, in order, to explain a violation.
    journal: Mutex<Vec<String>>,
    /// When the etcd member that is down now was killed (fault run).
    member_down: Mutex<Option<Instant>>,
    stop: AtomicBool,
    calls: AtomicU64,
    target_calls: u64,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub add_latencies: Vec<Duration>,
    pub exhausted: u64,
    pub del_ok: u64,
    pub check_ok: u64,
    /// Calls we SIGKILLed.
    pub killed: u64,
    /// Calls refused with code 11 (etcd without a quorum, or unreachable), and the first
    /// such error.
    pub refused: u64,
    /// Of those, while an etcd member was down, and of these, later than an election
    /// takes (`ELECTION_GRACE` after the kill).
    pub refused_member_down: u64,
    pub refused_after_election: u64,
    pub first_refusal: Option<String>,
}

impl Stats {
    pub fn add_ok(&mut self, took: Duration) {
        self.add_latencies.push(took);
    }

    /// Counts a call a fault interrupted (see `node::interrupted`).
    pub fn interrupted(
        &mut self,
        verb: &str,
        outcome: &crate::runner::Outcome,
        since_kill: Option<Duration>,
    ) {
        if outcome.was_killed() {
            self.killed += 1;
        } else {
            self.refused += 1;
            self.refused_member_down += u64::from(since_kill.is_some());
            self.refused_after_election += u64::from(since_kill > Some(ELECTION_GRACE));
            self.first_refusal
                .get_or_insert_with(|| format!("{verb}: {}", outcome.stdout.trim()));
        }
    }
}

impl Run<'_> {
    /// The network config node `node` passes (as its main plugin would), for every verb.
    pub fn conf(&self, node: &str) -> Value {
        json!({
            "cniVersion": "1.1.0",
            "name": NETWORK,
            "type": "macvlan",
            "ipam": {
                "type": "cluster-ipam",
                "ranges": [[{"subnet": SUBNET}]],
                "etcd": {
                    "endpoints": self.endpoints,
                    "prefix": PREFIX,
                    "dialTimeoutMs": 2000,
                    "requestTimeoutMs": 5000
                },
                "nodeName": node
            }
        })
    }

    pub fn violation(&self, what: String) {
        println!("VIOLATION: {what}");
        self.violations.lock().unwrap().push(what);
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn journal(&self, line: String) {
        self.journal.lock().unwrap().push(line);
    }

    /// The journal's lines about the containers a violation names.
    fn explain(&self, violation: &str) -> Vec<String> {
        let named: Vec<&str> = violation
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|word| word.starts_with("node-") && word.contains("-c"))
            .collect();
        let journal = self.journal.lock().unwrap();
        journal
            .iter()
            .enumerate()
            .filter(|(_, line)| named.iter().any(|c| line.contains(&format!(" {c}:"))))
            .map(|(i, line)| format!("  call {i}: {line}"))
            .collect()
    }

    /// How long ago the member that is down now was killed.
    pub fn member_down(&self) -> Option<Duration> {
        self.member_down.lock().unwrap().map(|t| t.elapsed())
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn count_call(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }

    /// True while the run's budget of calls is not used up (and nothing was violated).
    pub fn take_op(&self) -> bool {
        !self.stopped() && self.calls.load(Ordering::SeqCst) < self.target_calls
    }

    /// Records that `container_id` holds `address`; the previous holder if it is held.
    pub fn hold(&self, address: &str, container_id: &str) -> Option<String> {
        let mut ledger = self.ledger.lock().unwrap();
        if let Some(holder) = ledger.get(address) {
            return Some(holder.clone());
        }
        ledger.insert(address.to_owned(), container_id.to_owned());
        None
    }

    pub fn release(&self, address: &str) {
        self.ledger.lock().unwrap().remove(address);
    }
}

/// Runs the `cluster` mode with the arguments after `cluster`.
pub fn main(args: impl Iterator<Item = String>) -> ExitCode {
    let (ops, seed, faults) = match parse_args(args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!(
                "cni-soak cluster: {message}\nusage: cni-soak cluster OPS [--seed SEED] [--faults]"
            );
            return ExitCode::from(2);
        }
    };
    println!(
        "cluster soak: seed {seed}, {ops} calls, {NODES} nodes, {SUBNET}{}",
        if faults {
            ", faults (3-member etcd, leader killed and restarted, SIGKILLed calls)"
        } else {
            ""
        }
    );
    if run(ops, seed, faults) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The whole run; true if anything was violated.
fn run(ops: u64, seed: u64, faults: bool) -> bool {
    let started = Instant::now();
    let etcd = EtcdCluster::start(if faults { 3 } else { 1 });
    let run = Run {
        binary: plugin_path("cluster-ipam"),
        workdir: etcd.dir(),
        endpoints: etcd.endpoints(),
        faults,
        pool: Pool::parse(SUBNET),
        stats: Mutex::default(),
        ledger: Mutex::default(),
        violations: Mutex::default(),
        journal: Mutex::default(),
        member_down: Mutex::default(),
        stop: AtomicBool::new(false),
        calls: AtomicU64::new(0),
        target_calls: ops,
    };
    let mut nodes: Vec<Node> = (0..NODES).map(|i| Node::new(i, seed)).collect();

    each_node(&mut nodes, |node| node.fill(&run));
    let filled = run.calls.load(Ordering::SeqCst);
    let fill_time = started.elapsed();
    check_store(&etcd, &run, &nodes, "after the fill", !faults);
    if !faults && !run.stopped() {
        let live: usize = nodes.iter().map(|n| n.live.len()).sum();
        if live != run.pool.capacity() {
            run.violation(format!(
                "after the fill: {live} addresses given, the pool has {} usable",
                run.pool.capacity()
            ));
        }
    }
    println!(
        "cluster soak: fill: {filled} calls in {:.1} s, pool exhausted",
        fill_time.as_secs_f64()
    );

    churn(&etcd, &run, &mut nodes, filled);
    check_store(&etcd, &run, &nodes, "after the churn", !faults);

    let live: usize = nodes.iter().map(|n| n.live.len()).sum();
    let before_gc = check::reservations(&etcd);
    let late = check::late_commits(&etcd, &nodes);
    each_node(&mut nodes, |node| node.gc(&run));
    check_store(&etcd, &run, &nodes, "after GC", true);
    println!(
        "cluster soak: GC: {live} live attachments; {} reservations left by interrupted calls \
         collected ({late} of them committed after the clean-up DEL had found nothing)",
        before_gc.saturating_sub(check::reservations(&etcd))
    );
    each_node(&mut nodes, |node| node.release_all(&run));
    check_store(&etcd, &run, &nodes, "after deleting everything", true);

    report(&run, &etcd, started.elapsed(), live)
}

/// Runs `work` on every node at once, each on its own thread.
fn each_node(nodes: &mut [Node], work: impl Fn(&mut Node) + Sync) {
    thread::scope(|scope| {
        for node in nodes.iter_mut() {
            let work = &work;
            scope.spawn(move || work(node));
        }
    });
}

/// The churn phase; in a fault run, the etcd leader is killed at 30 % of it and restarted
/// at 60 %.
fn churn(etcd: &EtcdCluster, run: &Run, nodes: &mut [Node], filled: u64) {
    let started = Instant::now();
    let budget = run.target_calls.saturating_sub(filled);
    thread::scope(|scope| {
        if run.faults {
            let (kill_at, restart_at) = (filled + budget * 3 / 10, filled + budget * 6 / 10);
            scope.spawn(move || chaos(etcd, run, kill_at, restart_at));
        }
        each_node(nodes, |node| node.churn(run));
    });
    println!(
        "cluster soak: churn: {} calls in {:.1} s",
        run.calls.load(Ordering::SeqCst) - filled,
        started.elapsed().as_secs_f64()
    );
}

/// Kills the etcd leader once `kill_at` calls were made and restarts it at `restart_at`,
/// or when the churn ends, whichever comes first.
fn chaos(etcd: &EtcdCluster, run: &Run, kill_at: u64, restart_at: u64) {
    let calls = || run.calls.load(Ordering::SeqCst);
    let ended = || run.stopped() || calls() >= run.target_calls;
    while calls() < kill_at && !ended() {
        thread::sleep(Duration::from_millis(5));
    }
    if ended() {
        return;
    }
    let leader = check::leader(etcd);
    etcd.kill_member(leader);
    *run.member_down.lock().unwrap() = Some(Instant::now());
    println!(
        "cluster soak: etcd member {leader} (the leader) SIGKILLed at call {}",
        calls()
    );
    while calls() < restart_at && !ended() {
        thread::sleep(Duration::from_millis(5));
    }
    etcd.restart_member(leader);
    *run.member_down.lock().unwrap() = None;
    println!(
        "cluster soak: etcd member {leader} restarted and healthy at call {}",
        calls()
    );
}

fn check_store(etcd: &EtcdCluster, run: &Run, nodes: &[Node], when: &str, exact: bool) {
    if run.stopped() {
        return;
    }
    for violation in check::store(etcd, &run.pool, nodes, exact) {
        run.violation(format!("{when}: {violation}"));
    }
}

/// Prints the figures; true if anything was violated.
fn report(run: &Run, etcd: &EtcdCluster, took: Duration, live_at_end: usize) -> bool {
    let stats = run.stats.lock().unwrap();
    let calls = run.calls.load(Ordering::SeqCst);
    let mut latencies = stats.add_latencies.clone();
    latencies.sort();
    let ms = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "cluster soak: {calls} calls in {:.1} s ({:.0} calls/s): {} ADD ok (median {:.1} ms, \
         p99 {:.1} ms), {} exhausted, {} DEL ok, {} CHECK ok, {} calls SIGKILLed, {} refused \
         (code 11; {} while an etcd member was down, {} of them more than {:?} after the kill); {} \
         blocks claimed; {live_at_end} live before the final DELs",
        took.as_secs_f64(),
        calls as f64 / took.as_secs_f64(),
        latencies.len(),
        ms(0.5),
        ms(0.99),
        stats.exhausted,
        stats.del_ok,
        stats.check_ok,
        stats.killed,
        stats.refused,
        stats.refused_member_down,
        stats.refused_after_election,
        ELECTION_GRACE,
        check::blocks(etcd).len(),
    );
    if let Some(first) = &stats.first_refusal {
        println!("cluster soak: first refusal: {first}");
    }
    let violations = run.violations.lock().unwrap();
    for violation in violations.iter() {
        println!("VIOLATION: {violation}");
        for line in run.explain(violation) {
            println!("{line}");
        }
    }
    println!(
        "cluster soak: {} passed, {} failed",
        u64::from(violations.is_empty()),
        u64::from(!violations.is_empty())
    );
    !violations.is_empty()
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(u64, u64, bool), String> {
    let mut ops = None;
    let mut faults = false;
    let mut seed = std::env::var("SOAK_SEED").ok().and_then(|s| s.parse().ok());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" => {
                let value = args.next().ok_or("--seed needs a value")?;
                seed = Some(value.parse().map_err(|_| format!("bad seed {value:?}"))?);
            }
            "--faults" => faults = true,
            _ => ops = Some(arg.parse().map_err(|_| format!("bad call count {arg:?}"))?),
        }
    }
    Ok((
        ops.ok_or("OPS (the number of plugin calls) is required")?,
        seed.unwrap_or_else(Rng::fresh_seed),
        faults,
    ))
}
