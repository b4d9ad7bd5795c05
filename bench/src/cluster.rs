//! cluster-ipam against a real etcd: its ADD/DEL latency beside our host-local in the same
//! run, and allocations per second with 1, 10 and 50 simulated nodes ADDing at once.
//!
//! etcd (Debian's `etcd-server`, one member, data on this machine's disk) runs on loopback
//! in our own network namespace, so the plugins run there too: an IPAM plugin touches no
//! interface, and host-local runs in the same place for a fair comparison. A fresh etcd per
//! measurement keeps one's keys from slowing the next.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::fs::File;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cni_conformance::{EtcdCluster, missing_etcd_binaries};
use serde_json::{Value, json};

use crate::scenarios::{Failures, Samples};
use crate::spawn::{self, Call, Outcome, check_stop};
use crate::stats::Summary;

/// The pool of the throughput runs: far larger than the allocations, so none is refused.
const POOL: &str = "10.98.0.0/16";
/// The pause between an ADD and its DEL, and before each latency round's ADD.
const PAUSE: Duration = Duration::from_millis(5);
/// The etcd key prefix (the plugin's default).
const PREFIX: &str = "/cni/cluster-ipam";

/// What the cluster-ipam part of a run measured.
pub struct ClusterBench {
    /// Index 0 cluster-ipam, 1 host-local (ours), 2 the etcd floor (ADD only),
    /// interleaved call by call.
    pub latency: [Samples; 3],
    pub throughput: Vec<Throughput>,
}

/// Allocations with `nodes` simulated nodes ADDing at once.
pub struct Throughput {
    pub nodes: usize,
    pub add: Samples,
    pub wall: Duration,
    /// Addresses handed out twice, in the ADD results or in etcd.
    pub duplicates: usize,
    /// Reservations etcd holds after the run (should equal the successful ADDs).
    pub stored: usize,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.add.add.len() as f64 / self.wall.as_secs_f64()
    }
}

/// Runs both measurements with the binaries in `ours`.
pub fn measure(ours: &Path, iterations: usize, allocations: usize) -> Result<ClusterBench> {
    let missing = missing_etcd_binaries();
    if !missing.is_empty() {
        bail!(
            "{} not found: install Debian's etcd-server and etcd-client",
            missing.join(", ")
        );
    }
    let plugin = ours.join("cluster-ipam");
    if !plugin.is_file() {
        bail!("{} not found", plugin.display());
    }
    // Our own namespace, for spawn's "join the host netns" step: a no-op here.
    let own_netns = File::open("/proc/self/ns/net").context("opening our own netns")?;
    let latency = latency(ours, &own_netns, iterations)?;
    let mut throughput = Vec::new();
    for nodes in [1, 10, 50] {
        eprintln!("cluster-ipam: {allocations} allocations by {nodes} concurrent nodes");
        throughput.push(allocate(&plugin, &own_netns, nodes, allocations)?);
    }
    Ok(ClusterBench {
        latency,
        throughput,
    })
}

fn cluster_conf(etcd: &EtcdCluster, network: &str, subnet: &str, node: &str) -> Value {
    json!({"cniVersion": "1.0.0", "name": network, "type": "macvlan",
           "ipam": {"type": "cluster-ipam", "ranges": [[{"subnet": subnet}]],
                    "etcd": {"endpoints": etcd.endpoints(), "prefix": PREFIX},
                    "nodeName": node}})
}

fn one_call(binary: &Path, verb: &str, id: &str, config: &[u8], host: &File) -> Result<Outcome> {
    let netns = Path::new("/run/netns").join(id);
    spawn::run(
        &Call {
            binary,
            command: verb,
            container_id: id,
            netns: &netns,
            ifname: "eth0",
            config,
        },
        host,
    )
}

/// ADD then DEL of one container on cluster-ipam and on host-local, and the etcd floor's
/// replay of cluster-ipam's ADD then a real DEL (untimed), rotating which goes first, each
/// after a pause; a few untimed rounds first.
fn latency(ours: &Path, host: &File, iterations: usize) -> Result<[Samples; 3]> {
    eprintln!(
        "cluster-ipam: latency beside host-local and the etcd floor ({iterations} iterations)"
    );
    let etcd = EtcdCluster::start(1);
    let data_dir = crate::store_fs::FreshStore::new("cni-bench-cluster-")?;
    let cluster = cluster_conf(&etcd, "benchcl", "10.97.0.0/16", "bench-node");
    let configs = [
        cluster.clone(),
        json!({"cniVersion": "1.0.0", "name": "benchcl", "type": "macvlan",
               "ipam": {"type": "host-local", "subnet": "10.96.0.0/16",
                        "dataDir": data_dir.path()}}),
    ]
    .map(|c| c.to_string().into_bytes());
    let binaries = [ours.join("cluster-ipam"), ours.join("host-local")];
    let floor = Floor::record(&binaries[0], &etcd, &cluster, &configs[0], host)?;
    let mut samples = [Samples::default(), Samples::default(), Samples::default()];
    let warmup = 3;
    for i in 0..warmup + iterations {
        check_stop()?;
        let mut order = [0, 1, 2];
        order.rotate_left(i % 3);
        for side in order {
            // A quiet moment before each side's ADD: without it, a call right after a
            // cluster-ipam call ran slower, so the ratio followed the order of the sides
            // (bench/analysis.md, "The etcd floor").
            std::thread::sleep(PAUSE);
            let id = format!("benchcl-{i}");
            let (added, deleted) = if side == 2 {
                (floor.add(host)?, None)
            } else {
                let added = one_call(&binaries[side], "ADD", &id, &configs[side], host)?;
                std::thread::sleep(PAUSE);
                let deleted = one_call(&binaries[side], "DEL", &id, &configs[side], host)?;
                (added, Some(deleted))
            };
            if i >= warmup {
                samples[side].record("ADD", &added);
                if let Some(deleted) = deleted {
                    samples[side].record("DEL", &deleted);
                }
            }
        }
    }
    Ok(samples)
}

/// cluster-ipam's ADD of one container as bytes on the wire, for `cni-bench-etcd-floor`
/// to send again (see `etcd_floor.rs`).
struct Floor<'a> {
    replayer: std::path::PathBuf,
    /// The replayer's stdin: etcd's `host:port`, a newline, the request.
    input: Vec<u8>,
    plugin: &'a Path,
    config: &'a [u8],
}

impl<'a> Floor<'a> {
    const CONTAINER: &'static str = "benchcl-floor";

    /// Records the request of a steady-state ADD: the node's first ADD also claims its
    /// block, so one untimed ADD and DEL go first.
    fn record(
        plugin: &'a Path,
        etcd: &EtcdCluster,
        cluster: &Value,
        config: &'a [u8],
        host: &File,
    ) -> Result<Floor<'a>> {
        let replayer = std::env::current_exe()?.with_file_name("cni-bench-etcd-floor");
        if !replayer.is_file() {
            bail!(
                "{} not found: build the workspace's binaries",
                replayer.display()
            );
        }
        let upstream = etcd
            .endpoints()
            .first()
            .and_then(|e| e.strip_prefix("http://"))
            .context("the floor needs a plain-text etcd endpoint")?
            .to_owned();
        succeed(one_call(plugin, "ADD", Self::CONTAINER, config, host)?)?;
        succeed(one_call(plugin, "DEL", Self::CONTAINER, config, host)?)?;
        let request = crate::etcd_floor::record_first_request(&upstream, |relay| {
            let mut relayed = cluster.clone();
            relayed["ipam"]["etcd"]["endpoints"] = json!([relay]);
            let config = relayed.to_string().into_bytes();
            succeed(one_call(plugin, "ADD", Self::CONTAINER, &config, host)?)
        })?;
        let floor = Floor {
            replayer,
            input: [format!("{upstream}\n").into_bytes(), request].concat(),
            plugin,
            config,
        };
        floor.release(host)?;
        Ok(floor)
    }

    /// The replay, timed; then cluster-ipam's DEL frees what it reserved, so the next replay's
    /// compares hold again.
    fn add(&self, host: &File) -> Result<Outcome> {
        let added = one_call(&self.replayer, "ADD", Self::CONTAINER, &self.input, host)?;
        std::thread::sleep(PAUSE);
        self.release(host)?;
        Ok(added)
    }

    fn release(&self, host: &File) -> Result<()> {
        succeed(one_call(
            self.plugin,
            "DEL",
            Self::CONTAINER,
            self.config,
            host,
        )?)
    }
}

fn succeed(outcome: Outcome) -> Result<()> {
    if !outcome.success {
        bail!(
            "cluster-ipam failed while recording the etcd floor: {}",
            outcome.output.trim()
        );
    }
    Ok(())
}

/// `allocations` ADDs spread over `nodes` threads, each a node with its own `nodeName`
/// ADDing one container after another, all starting together; then every address is
/// checked for duplicates, in the results and in etcd.
fn allocate(plugin: &Path, host: &File, nodes: usize, allocations: usize) -> Result<Throughput> {
    let etcd = EtcdCluster::start(1);
    let per_node = allocations.div_ceil(nodes);
    let start = Barrier::new(nodes);
    let (results, wall) = std::thread::scope(|scope| {
        let started = Instant::now();
        let handles: Vec<_> = (0..nodes)
            .map(|n| {
                let (etcd, start) = (&etcd, &start);
                scope.spawn(move || {
                    let node = format!("node-{n:02}");
                    let conf = cluster_conf(etcd, "benchtp", POOL, &node)
                        .to_string()
                        .into_bytes();
                    start.wait();
                    (0..per_node)
                        .map(|i| one_call(plugin, "ADD", &format!("{node}-{i}"), &conf, host))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let results: Result<Vec<Vec<Outcome>>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("an allocating thread panicked")))
            })
            .collect();
        (results, started.elapsed())
    });
    let mut add = Samples::default();
    let mut addresses = Vec::new();
    for outcome in results?.iter().flatten() {
        add.record("ADD", outcome);
        if let Some(address) = address_of(outcome) {
            addresses.push(address);
        }
    }
    let unique: BTreeSet<&String> = addresses.iter().collect();
    let stored = etcd.get_prefix(&format!("{PREFIX}/benchtp/ips/"));
    let stored_unique: BTreeSet<&str> = stored
        .iter()
        .map(|(key, _)| key.rsplit('/').next().unwrap_or_default())
        .collect();
    Ok(Throughput {
        nodes,
        add,
        wall,
        duplicates: (addresses.len() - unique.len()) + (stored.len() - stored_unique.len()),
        stored: stored.len(),
    })
}

fn address_of(outcome: &Outcome) -> Option<String> {
    // stdout comes first in `output`, and the result is its one JSON value.
    let result: Value = serde_json::Deserializer::from_str(&outcome.output)
        .into_iter()
        .next()?
        .ok()?;
    let cidr = result["ips"][0]["address"].as_str()?;
    Some(cidr.split('/').next()?.to_owned())
}

/// Failed calls anywhere in the cluster-ipam part.
pub fn failures(c: &ClusterBench) -> usize {
    let mut all = Failures::default();
    for samples in c.latency.iter().chain(c.throughput.iter().map(|t| &t.add)) {
        all.absorb(&samples.failures);
    }
    all.count
}

fn ms(v: f64) -> String {
    format!("{v:.1}")
}

/// The report's cluster-ipam section: targets, latency beside host-local, throughput.
pub fn markdown(md: &mut String, c: &ClusterBench) {
    let [cl, hl, floor] = &c.latency;
    let (cl_add, hl_add) = (Summary::of(&cl.add), Summary::of(&hl.add));
    let (cl_del, hl_del) = (Summary::of(&cl.del), Summary::of(&hl.del));
    let at50 = c.throughput.iter().find(|t| t.nodes == 50);
    let duplicates: usize = c.throughput.iter().map(|t| t.duplicates).sum();
    let verdict = |holds: bool| if holds { "met" } else { "**missed**" };
    let _ = writeln!(md, "## cluster-ipam (etcd)\n");
    let _ = writeln!(
        md,
        "cluster-ipam and our host-local, both IPAM plugins called directly (no interface \
         is made), in the same run: ADD then DEL of one container, rotating which plugin goes \
         first, with a 5 ms pause before each ADD and between ADD and DEL. etcd 3.4 (Debian `etcd-server`) is one member on loopback with its data \
         on this machine's disk, fresh for each measurement, and host-local's store is on a \
         fresh journaled ext4 of its own; throughput: N simulated nodes \
         (threads, each its own `nodeName`) ADD containers one after another, all at once, \
         in a /16 pool. `bench/src/cluster.rs`.\n"
    );
    let _ = writeln!(md, "| target | measured | verdict |\n|---|---|---|");
    let _ = writeln!(
        md,
        "| ADD median ≤ 2× host-local's | {} ms vs {} ms ({:.2}×) | {} |",
        ms(cl_add.median),
        ms(hl_add.median),
        cl_add.median / hl_add.median,
        verdict(cl_add.median <= 2.0 * hl_add.median)
    );
    if let Some(t) = at50 {
        let _ = writeln!(
            md,
            "| ≥ 200 allocations/s at 50 nodes | {:.0} /s | {} |",
            t.per_second(),
            verdict(t.per_second() >= 200.0)
        );
    }
    let _ = writeln!(
        md,
        "| 0 duplicates | {duplicates} | {} |\n",
        verdict(duplicates == 0)
    );
    let _ = writeln!(
        md,
        "| plugin | ADD median | ADD p95 | DEL median | DEL p95 | n | failed |\n|---|---|---|---|---|---|---|"
    );
    for (name, add, del, samples) in [
        ("cluster-ipam", cl_add, cl_del, cl),
        ("host-local", hl_add, hl_del, hl),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {} ms | {} ms | {} ms | {} ms | {} | {} |",
            ms(add.median),
            ms(add.p95),
            ms(del.median),
            ms(del.p95),
            add.n,
            samples.failures.count
        );
    }
    let floor_add = Summary::of(&floor.add);
    let _ = writeln!(
        md,
        "| etcd floor | {} ms | {} ms | | | {} | {} |",
        ms(floor_add.median),
        ms(floor_add.p95),
        floor_add.n,
        floor.failures.count
    );
    let _ = writeln!(
        md,
        "\nThe etcd floor is cluster-ipam's own ADD request (recorded once through a relay) \
         sent again by `cni-bench-etcd-floor`, a process that does nothing else: fork, a fresh \
         connection, the same transaction, etcd's answer, reap; a real DEL frees the addresses \
         between replays. It is {:.2}× host-local's ADD: no client can be faster, so of the \
         target's {} ms, {} ms are etcd's and the process's before our code does anything.",
        floor_add.median / hl_add.median,
        ms(2.0 * hl_add.median),
        ms(floor_add.median)
    );
    let _ = writeln!(
        md,
        "\n| nodes | allocations | wall | allocations/s | ADD median | ADD p95 | failed | duplicates | in etcd |\n|---|---|---|---|---|---|---|---|---|"
    );
    for t in &c.throughput {
        let add = Summary::of(&t.add.add);
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} s | {:.0} | {} ms | {} ms | {} | {} | {} |",
            t.nodes,
            t.add.add.len(),
            t.wall.as_secs_f64(),
            t.per_second(),
            ms(add.median),
            ms(add.p95),
            t.add.failures.count,
            t.duplicates,
            t.stored
        );
    }
    md.push('\n');
}
