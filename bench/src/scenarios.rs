//! The measurements: per-plugin latency (with the kernel floor for bridge), concurrency,
//! host-local scaling and masquerade density. Every one runs ours and the reference
//! interleaved, alternating which goes first, so machine load drifting during the run hits
//! both sides alike.
//!
//! World layout: one throwaway host netns per side (plugins run there), one data dir per
//! side (on the run's store filesystem, `store_fs`), and container netns created before the timed calls and dropped
//! after them (their creation and teardown are never timed).

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cni_conformance::Netns;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::floor;
use crate::rss;
use crate::spawn::{self, Call, Outcome, check_stop};
use crate::store_fs;

/// The two implementations under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Ours,
    Reference,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Ours, Side::Reference];

    fn label(self) -> &'static str {
        match self {
            Side::Ours => "ours",
            Side::Reference => "ref",
        }
    }
}

/// Where each side's binaries are.
pub struct Dirs {
    pub ours: PathBuf,
    pub reference: PathBuf,
}

impl Dirs {
    pub fn binary(&self, side: Side, plugin: &str) -> PathBuf {
        match side {
            Side::Ours => self.ours.join(plugin),
            Side::Reference => self.reference.join(plugin),
        }
    }
}

/// Failed calls of one sample set: how many, and what the first one printed.
#[derive(Debug, Default, Clone)]
pub struct Failures {
    pub count: usize,
    pub first: Option<String>,
}

impl Failures {
    fn note(&mut self, output: impl FnOnce() -> String) {
        self.count += 1;
        self.first.get_or_insert_with(output);
    }

    /// Adds `other`'s failures; the first failure stays the earliest seen.
    pub fn absorb(&mut self, other: &Failures) {
        self.count += other.count;
        if self.first.is_none() {
            self.first.clone_from(&other.first);
        }
    }
}

/// Timed calls of one side (or one floor) in one scenario.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    pub add: Vec<Duration>,
    pub del: Vec<Duration>,
    pub cpu_add: Vec<Duration>,
    pub cpu_del: Vec<Duration>,
    pub failures: Failures,
}

impl Samples {
    pub fn record(&mut self, verb: &str, outcome: &Outcome) {
        if !outcome.success {
            self.failures
                .note(|| format!("{verb}: {}", outcome.output.trim()));
            return;
        }
        match verb {
            "ADD" => {
                self.add.push(outcome.elapsed);
                self.cpu_add.push(outcome.cpu);
            }
            _ => {
                self.del.push(outcome.elapsed);
                self.cpu_del.push(outcome.cpu);
            }
        }
    }

    fn side(pair: &mut [Samples; 2], side: Side) -> &mut Samples {
        &mut pair[side as usize]
    }
}

/// Item 1 result: one plugin scenario.
pub struct Latency {
    pub name: &'static str,
    /// Index 0 ours, 1 reference.
    pub sides: [Samples; 2],
    /// Only for bridge: the in-process netlink floor and the `ip -batch` floor.
    pub floor_netlink: Option<Samples>,
    pub floor_ip: Option<Samples>,
    /// Netlink round trips of the floor's ADD.
    pub floor_round_trips: u64,
}

/// A plugin scenario of item 1.
struct Scenario {
    name: &'static str,
    plugin: &'static str,
    ifname: &'static str,
    with_floor: bool,
    /// Extra setup of each side's host netns (macvlan's master).
    host_setup: fn(&Netns) -> Result<()>,
    /// Untimed setup of each container netns, given the side's host netns (the interfaces
    /// a chained plugin works on).
    container_setup: fn(&Netns, &Netns) -> Result<()>,
    config: fn(&Path) -> Value,
}

impl Scenario {
    /// A fresh container netns with the scenario's setup done, for the side whose host
    /// netns is `host`.
    fn container(&self, host: &Netns) -> Result<Netns> {
        let ctr = Netns::with_label("c");
        (self.container_setup)(&ctr, host)?;
        Ok(ctr)
    }
}

fn no_setup(_: &Netns) -> Result<()> {
    Ok(())
}

fn no_container_setup(_: &Netns, _: &Netns) -> Result<()> {
    Ok(())
}

/// macvlan needs a master link in the host netns. `dummy` is not built into this kernel
/// (docs/design.md#kernel-features), so the master is one end of a veth pair, both ends up.
fn macvlan_master(host: &Netns) -> Result<()> {
    let out = host.exec(&[
        "ip", "link", "add", "bm0", "up", "type", "veth", "peer", "name", "bm0p",
    ]);
    if !out.status.success() {
        bail!(
            "creating the macvlan master: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    host.ip(&["link", "set", "bm0p", "up"]);
    Ok(())
}

/// tuning changes an interface the plugin before it made: a veth `eth0` (peer beside it).
fn chained_eth0(ctr: &Netns, _: &Netns) -> Result<()> {
    let out = ctr.exec(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    if !out.status.success() {
        bail!(
            "creating the container's eth0: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The host end of the container's veth in the chained scenarios, as bridge names it in
/// its result.
const HOST_VETH: &str = "bvh0";

/// What bridge leaves for the plugins chained after it: the container's `eth0`, a veth whose
/// peer [`HOST_VETH`] is in the host netns with the gateway address. The peer's name is
/// fixed (the config names it), so the one of the container dropped last round is deleted
/// first if the kernel has not finished with it.
fn bridge_attachment(ctr: &Netns, host: &Netns) -> Result<()> {
    host.exec(&["ip", "link", "del", HOST_VETH]);
    let add = format!(
        "ip link add eth0 type veth peer name {HOST_VETH} netns {}",
        host.name()
    );
    let out = ctr.exec(&add.split_whitespace().collect::<Vec<_>>());
    if !out.status.success() {
        bail!(
            "creating the container's eth0: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    ctr.ip(&["addr", "add", "10.26.0.2/24", "dev", "eth0"]);
    ctr.ip(&["link", "set", "eth0", "up"]);
    host.ip(&["addr", "add", "10.26.0.1/24", "dev", HOST_VETH]);
    host.ip(&["link", "set", HOST_VETH, "up"]);
    Ok(())
}

/// A chained plugin's config: `plugin`'s keys, after bridge's ADD result for
/// [`bridge_attachment`] (the bridge, the host veth, the container's `eth0`).
fn after_bridge(name: &str, plugin: &str, keys: Value) -> Value {
    let mut config = json!({
        "cniVersion": "1.0.0", "name": name, "type": plugin,
        "prevResult": {"cniVersion": "1.0.0",
                       "interfaces": [{"name": "cni-bench0"}, {"name": HOST_VETH},
                                      {"name": "eth0", "sandbox": "/var/run/netns/bench"}],
                       "ips": [{"address": "10.26.0.2/24", "gateway": "10.26.0.1",
                                "interface": 2}]}
    });
    if let (Some(config), Value::Object(keys)) = (config.as_object_mut(), keys) {
        config.extend(keys);
    }
    config
}

/// The name of the dual-stack bridge scenario, which has a target of its own.
pub const DUAL_STACK: &str = "dual-stack bridge+host-local";

fn host_local_ipam(subnet: &str, data_dir: &Path) -> Value {
    json!({"type": "host-local", "subnet": subnet, "dataDir": data_dir})
}

fn scenarios() -> Vec<Scenario> {
    let mut all = vec![
        Scenario {
            name: "bridge+host-local",
            plugin: "bridge",
            ifname: "eth0",
            with_floor: true,
            host_setup: no_setup,
            container_setup: no_container_setup,
            // isDefaultGateway: the container gets a default route, the same kernel work
            // as the floor's sequence. No ipMasq: iptables would dominate and is not
            // what this compares.
            config: |dir| {
                json!({"cniVersion": "1.0.0", "name": "benchbr", "type": "bridge",
                       "bridge": floor::BRIDGE, "isDefaultGateway": true,
                       "ipam": host_local_ipam("10.22.0.0/16", dir)})
            },
        },
        Scenario {
            name: DUAL_STACK,
            plugin: "bridge",
            ifname: "eth0",
            with_floor: false,
            host_setup: no_setup,
            container_setup: no_container_setup,
            // An IPv4 and an IPv6 range: IPv6 brings the container's DAD handling, the IPv6
            // gateway address on the bridge and IPv6 forwarding into the timed ADD.
            config: |dir| {
                json!({"cniVersion": "1.0.0", "name": "benchds", "type": "bridge",
                       "bridge": "cni-ds0", "isDefaultGateway": true,
                       "ipam": {"type": "host-local", "dataDir": dir,
                                "ranges": [[{"subnet": "10.27.0.0/16"}],
                                           [{"subnet": "fd27::/64"}]]}})
            },
        },
        Scenario {
            name: "macvlan+host-local",
            plugin: "macvlan",
            ifname: "eth0",
            with_floor: false,
            host_setup: macvlan_master,
            container_setup: no_container_setup,
            config: |dir| {
                json!({"cniVersion": "1.0.0", "name": "benchmv", "type": "macvlan",
                       "master": "bm0", "mode": "bridge",
                       "ipam": host_local_ipam("10.23.0.0/16", dir)})
            },
        },
        Scenario {
            name: "loopback",
            plugin: "loopback",
            ifname: "lo",
            with_floor: false,
            host_setup: no_setup,
            container_setup: no_container_setup,
            config: |_| json!({"cniVersion": "1.0.0", "name": "benchlo", "type": "loopback"}),
        },
        Scenario {
            name: "host-local",
            plugin: "host-local",
            ifname: "eth0",
            with_floor: false,
            host_setup: no_setup,
            container_setup: no_container_setup,
            config: |dir| {
                json!({"cniVersion": "1.0.0", "name": "benchhl", "type": "host-local",
                       "ipam": host_local_ipam("10.24.0.0/16", dir)})
            },
        },
        Scenario {
            name: "tuning",
            plugin: "tuning",
            ifname: "eth0",
            with_floor: false,
            host_setup: no_setup,
            container_setup: chained_eth0,
            // A sysctl and a link attribute: both code paths, and the saved-state file.
            config: |dir| {
                json!({"cniVersion": "1.0.0", "name": "benchtu", "type": "tuning",
                       "mtu": 1400, "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"},
                       "dataDir": dir,
                       "prevResult": {"cniVersion": "1.0.0",
                                      "interfaces": [{"name": "eth0"}],
                                      "ips": [{"address": "10.25.0.2/24", "interface": 0}]}})
            },
        },
    ];
    all.extend(after_bridge_scenarios());
    all
}

/// The plugins chained after bridge.
/// A plugin chained after bridge: timed alone, on [`bridge_attachment`].
fn after_bridge_scenario(plugin: &'static str, config: fn(&Path) -> Value) -> Scenario {
    Scenario {
        name: plugin,
        plugin,
        ifname: "eth0",
        with_floor: false,
        host_setup: no_setup,
        container_setup: bridge_attachment,
        config,
    }
}

fn after_bridge_scenarios() -> Vec<Scenario> {
    vec![
        // The default (iptables) backend; a UDP mapping too, for the conntrack flush.
        after_bridge_scenario("portmap", |_| {
            after_bridge(
                "benchpm",
                "portmap",
                json!({"runtimeConfig": {"portMappings": [
                    {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                    {"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]}}),
            )
        }),
        after_bridge_scenario("firewall", |_| {
            after_bridge("benchfw", "firewall", json!({"backend": "iptables"}))
        }),
        // Both directions: a tbf on the host veth, and an ifb with its tbf.
        after_bridge_scenario("bandwidth", |_| {
            after_bridge(
                "benchbw",
                "bandwidth",
                json!({"ingressRate": 8_000_000, "ingressBurst": 800_000,
                       "egressRate": 8_000_000, "egressBurst": 800_000}),
            )
        }),
    ]
}

/// One side's world: its host netns, data dir and serialized config.
struct World {
    host: Netns,
    _dir: TempDir,
    config: Vec<u8>,
}

fn world(
    side: Side,
    label: &str,
    setup: fn(&Netns) -> Result<()>,
    config: fn(&Path) -> Value,
) -> Result<World> {
    let host = Netns::with_label(&format!("{label}-{}", side.label()));
    setup(&host)?;
    let dir = store_fs::store_dir("cni-bench-")?;
    let config = serde_json::to_vec(&config(dir.path()))?;
    Ok(World {
        host,
        _dir: dir,
        config,
    })
}

/// Each side's world (host netns, data dir, config) and binary for `scenario`, in
/// `Side::BOTH` order.
fn both_sides(dirs: &Dirs, scenario: &Scenario, label: &str) -> Result<([World; 2], [PathBuf; 2])> {
    let worlds = [
        world(Side::Ours, label, scenario.host_setup, scenario.config)?,
        world(Side::Reference, label, scenario.host_setup, scenario.config)?,
    ];
    Ok((
        worlds,
        Side::BOTH.map(|side| dirs.binary(side, scenario.plugin)),
    ))
}

fn call<'a>(
    binary: &'a Path,
    command: &'a str,
    ctr: &'a Netns,
    ifname: &'a str,
    config: &'a [u8],
) -> Call<'a> {
    Call {
        binary,
        command,
        container_id: ctr.name(),
        netns: ctr.path(),
        ifname,
        config,
    }
}

/// Lets the kernel finish tearing down the namespaces just dropped (cleanup_net runs on a
/// workqueue) before the next timed call, so that work is not billed to whoever is next.
fn settle(namespaces: usize) {
    std::thread::sleep(Duration::from_millis(5 + 2 * namespaces as u64));
}

/// How long an attachment lives, untimed, between its ADD and its DEL.
///
/// Why: deleting a link in its first ≈ 10–40 ms costs ≈ 8 ms more than deleting a settled
/// one (measured with this tool's calls, 60–80 DELs per arm, both sides: ours 33–35 ms at
/// 0–10 ms of age, 25–27 at 40 ms, 24.5 at 150 ms; the reference 33 → 28 ms at 40 ms). The
/// kernel is still busy with the new link then, and that wait swamped the plugins'
/// own differences. A runtime deletes containers that lived far longer than this.
const ATTACHMENT_LIFETIME: Duration = Duration::from_millis(50);

/// Sleeps a random 0–8 ms (two ticks of this kernel's HZ=250) before a timed call.
///
/// Why: DEL is dominated by RCU grace periods inside the kernel's unregister path, and
/// those end on timer ticks, so a DEL's duration depends on where in the 4 ms tick it
/// starts. The loop below is regular, so without jitter each contender would start at its
/// own, fixed phase and carry a systematic bias of up to a tick (seen: two DEL medians 4 ms
/// apart that swapped order between runs). Random phase turns that bias into noise that
/// the median averages away.
fn jitter() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
            | 1;
    }
    // xorshift64: plenty for spreading start times.
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    std::thread::sleep(Duration::from_micros(x % 8_000));
}

/// One timed ADD of `ctr` by `binary` in `world`, then, after [`ATTACHMENT_LIFETIME`], its
/// timed DEL, each started at a random phase ([`jitter`]).
fn add_then_del(
    binary: &Path,
    ctr: &Netns,
    ifname: &str,
    world: &World,
) -> Result<(Outcome, Outcome)> {
    jitter();
    let add = spawn::run(
        &call(binary, "ADD", ctr, ifname, &world.config),
        &world.host,
    )?;
    std::thread::sleep(ATTACHMENT_LIFETIME);
    jitter();
    let del = spawn::run(
        &call(binary, "DEL", ctr, ifname, &world.config),
        &world.host,
    )?;
    Ok((add, del))
}

/// Item 1 (and the floor of item 2): `warmup` untimed rounds, then `iterations` rounds of
/// ADD+DEL per side and floor, in rotating order.
pub fn latency(dirs: &Dirs, iterations: usize, warmup: usize) -> Result<Vec<Latency>> {
    let mut results = Vec::new();
    for scenario in scenarios() {
        eprintln!("latency: {} ({iterations} iterations)", scenario.name);
        let (worlds, binaries) = both_sides(dirs, &scenario, "lat")?;
        let floor_host = if scenario.with_floor {
            let host = Netns::with_label("lat-floor");
            floor::prepare_host(&host)?;
            let handle =
                cni_netlink::Handle::for_netns(&cni_netlink::Netns::from_path(host.path())?)?;
            Some((host, handle))
        } else {
            None
        };
        let mut sides: [Samples; 2] = Default::default();
        let mut floor_netlink = Samples::default();
        let mut floor_ip = Samples::default();
        let mut floor_round_trips = 0;
        // Contenders: 0 ours, 1 reference, 2 netlink floor, 3 ip floor.
        let contenders = if floor_host.is_some() { 4 } else { 2 };
        for i in 0..warmup + iterations {
            check_stop()?;
            let timed = i >= warmup;
            // The floors (bridge only) need no container setup: any host netns does.
            let containers: Vec<Netns> = (0..contenders)
                .map(|who| scenario.container(&worlds[who.min(1)].host))
                .collect::<Result<_>>()?;
            for k in 0..contenders {
                // Rotate the order so no contender always follows the same one.
                let who = (i + k) % contenders;
                let ctr = &containers[who];
                match who {
                    0 | 1 => {
                        let side = Side::BOTH[who];
                        let (add, del) =
                            add_then_del(&binaries[who], ctr, scenario.ifname, &worlds[who])?;
                        if timed {
                            let samples = Samples::side(&mut sides, side);
                            samples.record("ADD", &add);
                            samples.record("DEL", &del);
                        }
                    }
                    2 => {
                        let Some((_, handle)) = &floor_host else {
                            continue;
                        };
                        jitter();
                        let (add, trips) = floor::netlink_add(handle, ctr, &format!("fn{i:08x}"))?;
                        std::thread::sleep(ATTACHMENT_LIFETIME);
                        jitter();
                        let del = floor::netlink_del(ctr)?;
                        if timed {
                            floor_netlink.add.push(add);
                            floor_netlink.del.push(del);
                            floor_round_trips = trips;
                        }
                    }
                    _ => {
                        let Some((host, _)) = &floor_host else {
                            continue;
                        };
                        jitter();
                        let add = floor::ip_add(host, ctr, &format!("fi{i:08x}"))?;
                        std::thread::sleep(ATTACHMENT_LIFETIME);
                        jitter();
                        let del = floor::ip_del(ctr)?;
                        if timed {
                            floor_ip.add.push(add);
                            floor_ip.del.push(del);
                        }
                    }
                }
            }
            drop(containers);
            settle(contenders);
        }
        results.push(Latency {
            name: scenario.name,
            sides,
            floor_netlink: floor_host.as_ref().map(|_| floor_netlink),
            floor_ip: floor_host.as_ref().map(|_| floor_ip),
            floor_round_trips,
        });
    }
    Ok(results)
}

/// Density result: bridge ADD and DEL of one more container while `attachments` others are
/// live on the same bridge, with the per-attachment host state of `variant`.
pub struct Density {
    pub variant: DensityVariant,
    pub attachments: usize,
    /// Index 0 ours, 1 reference.
    pub sides: [Samples; 2],
    /// The kernel floor of the same ADD and DEL on a third host with as many live attachments
    /// (`floor::netlink_add_with_sysctls`, `floor::netlink_del`); measured with the first
    /// variant only, as no firewall work is in it.
    pub floor: Option<Samples>,
}

/// What each attachment of a density run leaves on the host besides its veth and lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DensityVariant {
    /// `ipMasq` through `ipMasqBackend: nftables` (the reference, 1.1.1, predates the
    /// option and always uses iptables).
    MasqNftables,
    /// `ipMasq` through `ipMasqBackend: iptables`.
    MasqIptables,
    /// `macspoofchk`: three rules and two chains per attachment in `table bridge nat`.
    SpoofCheck,
}

impl DensityVariant {
    pub const ALL: [DensityVariant; 3] = [
        DensityVariant::MasqNftables,
        DensityVariant::MasqIptables,
        DensityVariant::SpoofCheck,
    ];

    /// The report's name for it.
    pub fn label(self) -> &'static str {
        match self {
            DensityVariant::MasqNftables => "`ipMasq` nftables",
            DensityVariant::MasqIptables => "`ipMasq` iptables",
            DensityVariant::SpoofCheck => "`macspoofchk`",
        }
    }

    /// bridge + host-local in a /16 that holds 1 000 and more, with this variant's option.
    fn config(self) -> fn(&Path) -> Value {
        match self {
            DensityVariant::MasqNftables => |dir| masq_config(dir, "nftables"),
            DensityVariant::MasqIptables => |dir| masq_config(dir, "iptables"),
            DensityVariant::SpoofCheck => spoofcheck_config,
        }
    }
}

/// The bridge config every density variant starts from.
fn density_bridge(dir: &Path) -> Value {
    json!({"cniVersion": "1.0.0", "name": "benchdens", "type": "bridge",
           "bridge": "cni-dens0", "isGateway": true,
           "ipam": host_local_ipam("10.31.0.0/16", dir)})
}

fn masq_config(dir: &Path, backend: &str) -> Value {
    let mut config = density_bridge(dir);
    config["ipMasq"] = json!(true);
    config["ipMasqBackend"] = json!(backend);
    config
}

fn spoofcheck_config(dir: &Path) -> Value {
    let mut config = density_bridge(dir);
    config["macspoofchk"] = json!(true);
    config
}

/// Density: for each variant and each level, both sides' host netns are brought to `level`
/// live attachments (each made by that side's own bridge, in its own container netns, as on a
/// node: veth on the bridge, lease, and the variant's rules), then ADD+DEL of one more
/// container is timed, interleaved as in item 1. Levels only grow, so each side's attachments
/// are made once per variant.
pub fn density(
    dirs: &Dirs,
    levels: &[usize],
    iterations: usize,
    warmup: usize,
) -> Result<Vec<Density>> {
    let binaries = Side::BOTH.map(|side| dirs.binary(side, "bridge"));
    let mut results = Vec::new();
    for variant in DensityVariant::ALL {
        let name = variant.label();
        let worlds = [
            world(Side::Ours, "dens", no_setup, variant.config())?,
            world(Side::Reference, "dens", no_setup, variant.config())?,
        ];
        let mut floor = (variant == DensityVariant::ALL[0])
            .then(DensityFloor::new)
            .transpose()?;
        let mut live: [Vec<Netns>; 2] = Default::default();
        for &level in levels {
            for who in 0..2 {
                eprintln!(
                    "density ({name}): {} to {level} live attachments",
                    Side::BOTH[who].label()
                );
                populate_attachments(&binaries[who], &worlds[who], &mut live[who], level)?;
            }
            if let Some(floor) = &mut floor {
                floor.populate(level)?;
            }
            eprintln!("density ({name}): {level} live attachments ({iterations} iterations)");
            let mut sides: [Samples; 2] = Default::default();
            let mut floor_samples = Samples::default();
            // Contenders: 0 ours, 1 reference, 2 the floor (first variant only).
            let contenders = if floor.is_some() { 3 } else { 2 };
            for i in 0..warmup + iterations {
                check_stop()?;
                let containers: Vec<Netns> =
                    (0..contenders).map(|_| Netns::with_label("c")).collect();
                for k in 0..contenders {
                    let who = (i + k) % contenders;
                    match (who, &floor) {
                        (0 | 1, _) => {
                            let (add, del) = add_then_del(
                                &binaries[who],
                                &containers[who],
                                "eth0",
                                &worlds[who],
                            )?;
                            if i >= warmup {
                                sides[who].record("ADD", &add);
                                sides[who].record("DEL", &del);
                            }
                        }
                        (_, Some(floor)) => {
                            let (add, del) =
                                floor.add_then_del(&containers[who], &format!("fd{i:08x}"))?;
                            if i >= warmup {
                                floor_samples.add.push(add);
                                floor_samples.del.push(del);
                            }
                        }
                        (_, None) => {}
                    }
                }
                drop(containers);
                settle(contenders);
            }
            results.push(Density {
                variant,
                attachments: level,
                sides,
                floor: floor.is_some().then_some(floor_samples),
            });
        }
        let dropped =
            live.iter().map(Vec::len).sum::<usize>() + floor.as_ref().map_or(0, |f| f.live.len());
        drop(live);
        drop(floor);
        drop(worlds);
        settle(dropped);
    }
    Ok(results)
}

/// The density floor's world: a host netns with the floor's bridge and its live attachments,
/// each made by `floor::netlink_add` in its own container netns.
struct DensityFloor {
    host: Netns,
    host_netns: cni_netlink::Netns,
    handle: cni_netlink::Handle,
    live: Vec<Netns>,
}

impl DensityFloor {
    fn new() -> Result<DensityFloor> {
        let host = Netns::with_label("dens-floor");
        floor::prepare_host(&host)?;
        let host_netns = cni_netlink::Netns::from_path(host.path())?;
        let handle = cni_netlink::Handle::for_netns(&host_netns)?;
        Ok(DensityFloor {
            host,
            host_netns,
            handle,
            live: Vec::new(),
        })
    }

    /// Untimed, like [`populate_attachments`].
    fn populate(&mut self, count: usize) -> Result<()> {
        while self.live.len() < count {
            check_stop()?;
            let ctr = Netns::with_label("d");
            let veth = format!("fl{:08x}", self.live.len());
            floor::netlink_add(&self.handle, &ctr, &veth)
                .with_context(|| format!("floor attachment {} in {}", veth, self.host.name()))?;
            self.live.push(ctr);
        }
        Ok(())
    }

    /// One timed ADD and DEL, spaced as [`add_then_del`] spaces a plugin's.
    fn add_then_del(&self, ctr: &Netns, veth: &str) -> Result<(Duration, Duration)> {
        jitter();
        let add = floor::netlink_add_with_sysctls(&self.host_netns, &self.handle, ctr, veth)?;
        std::thread::sleep(ATTACHMENT_LIFETIME);
        jitter();
        Ok((add, floor::netlink_del(ctr)?))
    }
}

/// Adds attachments made by `binary` in `world` to `live` until it holds `count`, each in its own
/// container netns. Untimed. A failure ends the run: every figure after it would be wrong.
fn populate_attachments(
    binary: &Path,
    world: &World,
    live: &mut Vec<Netns>,
    count: usize,
) -> Result<()> {
    while live.len() < count {
        check_stop()?;
        let ctr = Netns::with_label("d");
        let add = spawn::run(
            &call(binary, "ADD", &ctr, "eth0", &world.config),
            &world.host,
        )?;
        if !add.success {
            bail!(
                "populating with {}: ADD {} failed: {}",
                binary.display(),
                live.len() + 1,
                add.output.trim()
            );
        }
        live.push(ctr);
    }
    Ok(())
}

/// Item 3: one batch of `n` simultaneous calls.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub wall: Duration,
    pub latencies: Vec<Duration>,
    pub failures: Failures,
}

impl Batch {
    fn of(wall: Duration, outcomes: &[Outcome]) -> Batch {
        let mut batch = Batch {
            wall,
            ..Default::default()
        };
        for outcome in outcomes {
            batch.latencies.push(outcome.elapsed);
            if !outcome.success {
                batch.failures.note(|| outcome.output.trim().to_owned());
            }
        }
        batch
    }
}

/// Item 3 result for one N: per side, one (ADD batch, DEL batch) per round.
pub struct Concurrency {
    pub n: usize,
    pub rounds: [Vec<(Batch, Batch)>; 2],
    /// The kernel floor of the same burst per round, ADD and DEL walls
    /// (`floor::concurrent_netlink`: threads of one process, no exec).
    pub floor: Vec<(Duration, Duration)>,
}

/// Item 3: `n` simultaneous bridge ADDs onto one network, then `n` simultaneous DELs.
/// Both sides use container netns created before the round and dropped after it, so no
/// namespace teardown overlaps a timed batch. The kernel floor of the same burst takes its
/// turn in each round, in its own host netns.
pub fn concurrency(dirs: &Dirs, ns: &[usize], rounds: usize) -> Result<Vec<Concurrency>> {
    let bridge = &scenarios()[0];
    let worlds = [
        world(Side::Ours, "conc", no_setup, bridge.config)?,
        world(Side::Reference, "conc", no_setup, bridge.config)?,
    ];
    let floor_host = Netns::with_label("cf");
    floor::prepare_host(&floor_host)?;
    let binaries = Side::BOTH.map(|side| dirs.binary(side, "bridge"));
    // Warm-up: the first ADD creates the bridge; a real node has it already.
    for (w, bin) in worlds.iter().zip(&binaries) {
        let ctr = Netns::with_label("c");
        let add = spawn::run(&call(bin, "ADD", &ctr, "eth0", &w.config), &w.host)?;
        if !add.success {
            bail!("warm-up ADD of {} failed: {}", bin.display(), add.output);
        }
        spawn::run(&call(bin, "DEL", &ctr, "eth0", &w.config), &w.host)?;
    }
    let mut results = Vec::new();
    for &n in ns {
        let mut per_side: [Vec<(Batch, Batch)>; 2] = Default::default();
        let mut floor = Vec::new();
        for round in 0..rounds {
            eprintln!("concurrency: N={n}, round {}/{rounds}", round + 1);
            let containers: Vec<Vec<Netns>> = (0..3)
                .map(|_| (0..n).map(|_| Netns::with_label("c")).collect())
                .collect();
            for k in 0..3 {
                check_stop()?;
                let who = (round + k) % 3;
                if who == 2 {
                    floor.push(floor::concurrent_netlink(&floor_host, &containers[2])?);
                    continue;
                }
                let (w, bin) = (&worlds[who], &binaries[who]);
                let add = batch(bin, "ADD", &containers[who], &w.config, &w.host)?;
                let del = batch(bin, "DEL", &containers[who], &w.config, &w.host)?;
                per_side[who].push((add, del));
            }
            drop(containers);
            // 3n namespaces go at once: give their background teardown time before the next
            // round's timed batches (5 ms each is an allowance, not a measured figure).
            std::thread::sleep(Duration::from_millis(5 * 3 * n as u64));
        }
        results.push(Concurrency {
            n,
            rounds: per_side,
            floor,
        });
    }
    Ok(results)
}

fn batch(
    bin: &Path,
    verb: &str,
    containers: &[Netns],
    config: &[u8],
    host: &Netns,
) -> Result<Batch> {
    let start = Instant::now();
    let mut running = Vec::with_capacity(containers.len());
    for ctr in containers {
        running.push(spawn::spawn(&call(bin, verb, ctr, "eth0", config), host)?);
    }
    let outcomes = spawn::wait_all(running)?;
    Ok(Batch::of(start.elapsed(), &outcomes))
}

/// Item 4 result for one lease count.
pub struct Scaling {
    pub leases: usize,
    /// Index 0 ours, 1 reference, both on leases in the Go format (what the Go plugin leaves).
    pub sides: [Samples; 2],
    /// Ours on leases written by our own store code (lease files plus their index entries),
    /// as on a node that has run only ours.
    pub own_store: Samples,
}

/// Who runs on which store in one scaling level: ours (arm 0) and the reference (arm 1) on the
/// Go-format store, ours on its own ([`OWN_STORE_ARM`]).
const SCALING_ARMS: usize = 3;
const OWN_STORE_ARM: usize = 2;

/// Item 4: host-local ADD and DEL with `leases` leases already held in a /16 and the
/// round-robin cursor just past them, as a long-running node would have it: written in the
/// Go format beforehand (one file per IP: `<id>\r\n<ifname>`) for both sides, and by our
/// store code (with its index) for ours again.
pub fn scaling(
    dirs: &Dirs,
    levels: &[usize],
    iterations: usize,
    warmup: usize,
) -> Result<Vec<Scaling>> {
    let host = Netns::with_label("scale");
    // host-local never enters the container netns; one shared one satisfies CNI_NETNS.
    let ctr = Netns::with_label("c");
    let binaries = [
        dirs.binary(Side::Ours, "host-local"),
        dirs.binary(Side::Reference, "host-local"),
        dirs.binary(Side::Ours, "host-local"),
    ];
    let mut results = Vec::new();
    for &leases in levels {
        eprintln!("host-local scaling: {leases} leases ({iterations} iterations)");
        let mut data = Vec::new();
        let mut configs = Vec::new();
        for arm in 0..SCALING_ARMS {
            let dir = store_fs::store_dir("cni-bench-scale-")?;
            if arm == OWN_STORE_ARM {
                populate_own_store(dir.path(), "benchscale", leases)?;
            } else {
                populate(dir.path(), "benchscale", leases)?;
            }
            let config = json!({"cniVersion": "1.0.0", "name": "benchscale", "type": "host-local",
                                "ipam": host_local_ipam("10.30.0.0/16", dir.path())});
            configs.push(serde_json::to_vec(&config)?);
            data.push(dir);
        }
        let mut arms: [Samples; SCALING_ARMS] = Default::default();
        for i in 0..warmup + iterations {
            check_stop()?;
            let id = format!("bench-scale-{i}");
            for k in 0..SCALING_ARMS {
                let who = (i + k) % SCALING_ARMS;
                let c = |verb| Call {
                    binary: &binaries[who],
                    command: verb,
                    container_id: &id,
                    netns: ctr.path(),
                    ifname: "eth0",
                    config: &configs[who],
                };
                let add = spawn::run(&c("ADD"), &host)?;
                let del = spawn::run(&c("DEL"), &host)?;
                if i >= warmup {
                    arms[who].record("ADD", &add);
                    arms[who].record("DEL", &del);
                }
            }
        }
        let [ours, reference, own_store] = arms;
        results.push(Scaling {
            leases,
            sides: [ours, reference],
            own_store,
        });
    }
    Ok(results)
}

/// The `count` leases, from 10.30.0.2 up (10.30.0.1 is the gateway).
fn lease_addresses(count: usize) -> impl Iterator<Item = Ipv4Addr> {
    let base = u32::from(Ipv4Addr::new(10, 30, 0, 2));
    (0..count as u32).map(move |n| Ipv4Addr::from(base + n))
}

/// Writes `count` Go-format lease files into `<data_dir>/<network>/` and
/// `last_reserved_ip.0` pointing at the last one.
fn populate(data_dir: &Path, network: &str, count: usize) -> Result<()> {
    let dir = data_dir.join(network);
    fs::create_dir_all(&dir)?;
    let mut last = None;
    for (n, ip) in lease_addresses(count).enumerate() {
        fs::write(dir.join(ip.to_string()), format!("filler-{n}\r\neth0"))
            .with_context(|| format!("writing lease {ip}"))?;
        last = Some(ip);
    }
    if let Some(ip) = last {
        fs::write(dir.join("last_reserved_ip.0"), ip.to_string())?;
    }
    Ok(())
}

/// The same leases as [`populate`], written through our store (`cni_ipam::Store`): each
/// lease with its index entry. The stamp that lets ADD skip the scan is the plugin's to
/// write: the warm-up ADD scans once, finds every lease indexed and writes it.
fn populate_own_store(data_dir: &Path, network: &str, count: usize) -> Result<()> {
    let store = cni_ipam::Store::open(data_dir, network)?;
    let locked = store.lock()?;
    let mut last = None;
    for (n, ip) in lease_addresses(count).enumerate() {
        let holder = cni::Attachment {
            container_id: format!("filler-{n}"),
            ifname: "eth0".into(),
        };
        let ip = ip.into();
        if !locked.reserve(ip, &holder)? {
            bail!("lease {ip} exists already in a fresh store");
        }
        locked.remember(&holder, &[ip])?;
        last = Some(ip);
    }
    if let Some(ip) = last {
        locked.set_last_reserved_ip(0, ip)?;
    }
    Ok(())
}

/// VERSION call times of one plugin: ours, then the reference.
pub type Startup = (&'static str, [Vec<Duration>; 2]);

/// Start-up cost: a VERSION call does no work beyond exec, dynamic linking, runtime
/// init, reading stdin and printing. It is the part of every ADD/DEL (twice for a
/// delegating plugin) that no kernel work explains.
pub fn startup(dirs: &Dirs, iterations: usize) -> Result<Vec<Startup>> {
    let host = Netns::with_label("startup");
    let mut results = Vec::new();
    for plugin in ["bridge", "macvlan", "host-local", "loopback", "tuning"] {
        let binaries = Side::BOTH.map(|side| dirs.binary(side, plugin));
        let mut times: [Vec<Duration>; 2] = Default::default();
        for i in 0..iterations + 1 {
            check_stop()?;
            for k in 0..2 {
                let who = (i + k) % 2;
                let outcome = spawn::run(
                    &Call {
                        binary: &binaries[who],
                        command: "VERSION",
                        container_id: "",
                        netns: Path::new(""),
                        ifname: "",
                        config: br#"{"cniVersion":"1.0.0"}"#,
                    },
                    &host,
                )?;
                if !outcome.success {
                    bail!(
                        "VERSION of {} failed: {}",
                        binaries[who].display(),
                        outcome.output
                    );
                }
                // The first round only warms the page cache.
                if i > 0 {
                    times[who].push(outcome.elapsed);
                }
            }
        }
        results.push((plugin, times));
    }
    Ok(results)
}

/// Cold-start result: one scenario's ADDs, each with the page cache dropped just before.
pub struct ColdStart {
    pub name: &'static str,
    /// Index 0 ours, 1 reference.
    pub sides: [Samples; 2],
    /// KiB read from disk per ADD (the plugin, its IPAM plugin and any tool it ran).
    pub read_kib: [Vec<u64>; 2],
    /// Major page faults per ADD, likewise.
    pub major_faults: [Vec<u64>; 2],
}

/// The cold-start scenarios: loopback (nothing but the binary itself), bridge + host-local
/// (two binaries), and bridge with `ipMasq` through each backend (plus `nft` or `iptables`
/// and their libraries when the plugin runs them).
fn cold_scenarios() -> Vec<Scenario> {
    let masq = |name, config: fn(&Path) -> Value| Scenario {
        name,
        plugin: "bridge",
        ifname: "eth0",
        with_floor: false,
        host_setup: no_setup,
        container_setup: no_container_setup,
        config,
    };
    let mut all: Vec<Scenario> = scenarios()
        .into_iter()
        .filter(|s| matches!(s.name, "loopback" | "bridge+host-local"))
        .collect();
    all.push(masq("bridge ipMasq nftables", |dir| {
        masq_config(dir, "nftables")
    }));
    all.push(masq("bridge ipMasq iptables", |dir| {
        masq_config(dir, "iptables")
    }));
    all
}

/// Empties the page cache, dentries and inodes (`sync` first, so every page is clean and
/// can go): the next exec reads its binary, libraries and directories from disk, as the
/// first calls after a node boots do.
fn drop_page_cache() -> Result<()> {
    nix::unistd::sync();
    fs::write("/proc/sys/vm/drop_caches", "3").context("writing /proc/sys/vm/drop_caches")
}

/// Cold start: per scenario, one untimed warm-up ADD+DEL per side (it creates the bridge and
/// the masquerade table, which a node has after its first pod), then `rounds` rounds in which
/// each side, in alternating order, gets a fresh container, the page cache dropped, and one
/// timed ADD; its DEL is untimed. Dropping the cache slows every process on the machine for
/// a moment, so keep `rounds` small.
pub fn cold_start(dirs: &Dirs, rounds: usize) -> Result<Vec<ColdStart>> {
    let mut results = Vec::new();
    for scenario in cold_scenarios() {
        eprintln!("cold start: {} ({rounds} rounds)", scenario.name);
        let (worlds, binaries) = both_sides(dirs, &scenario, "cold")?;
        let mut sides: [Samples; 2] = Default::default();
        let mut read_kib: [Vec<u64>; 2] = Default::default();
        let mut major_faults: [Vec<u64>; 2] = Default::default();
        for i in 0..rounds + 1 {
            check_stop()?;
            for k in 0..2 {
                let who = (i + k) % 2;
                let (world, binary) = (&worlds[who], &binaries[who]);
                let ctr = scenario.container(&world.host)?;
                if i > 0 {
                    drop_page_cache()?;
                }
                let add = spawn::run(
                    &call(binary, "ADD", &ctr, scenario.ifname, &world.config),
                    &world.host,
                )?;
                let del = spawn::run(
                    &call(binary, "DEL", &ctr, scenario.ifname, &world.config),
                    &world.host,
                )?;
                if i > 0 {
                    sides[who].record("ADD", &add);
                    sides[who].record("DEL", &del);
                    read_kib[who].push(add.read_kib);
                    major_faults[who].push(add.major_faults);
                } else if !add.success {
                    bail!("warm-up ADD of {} failed: {}", binary.display(), add.output);
                }
            }
            settle(2);
        }
        results.push(ColdStart {
            name: scenario.name,
            sides,
            read_kib,
            major_faults,
        });
    }
    Ok(results)
}

/// Memory of one side in one scenario, one sample per call.
#[derive(Debug, Default, Clone)]
pub struct RssSamples {
    pub add: Vec<rss::Memory>,
    pub del: Vec<rss::Memory>,
    pub failures: Failures,
}

impl RssSamples {
    fn record(&mut self, verb: &str, traced: &rss::Traced) {
        if !traced.success {
            self.failures
                .note(|| format!("{verb}: {}", traced.output.trim()));
            return;
        }
        match verb {
            "ADD" => self.add.push(traced.memory),
            _ => self.del.push(traced.memory),
        }
    }
}

/// Item 5 (RSS) result: one plugin scenario of item 1.
pub struct Rss {
    pub name: &'static str,
    /// Index 0 ours, 1 reference.
    pub sides: [RssSamples; 2],
}

/// `/bin/true`, a dynamically linked program that does nothing: the process floor, measured
/// both ways.
pub struct RssFloor {
    /// Median traced peak (`rss.rs`), KiB.
    pub traced_kib: u64,
    /// Median `ru_maxrss` when started like a timed call (a fork of cni-bench), KiB.
    pub forked_kib: u64,
}

/// Peak RSS pass, untimed and after every timed phase: `runs` ADD+DEL rounds per side of
/// each latency scenario, under ptrace (`rss::run_traced`), plus the `/bin/true` floor.
pub fn peak_rss(dirs: &Dirs, runs: usize) -> Result<(Vec<Rss>, RssFloor)> {
    let mut results = Vec::new();
    for scenario in scenarios() {
        eprintln!("peak RSS: {} ({runs} traced runs)", scenario.name);
        let (worlds, binaries) = both_sides(dirs, &scenario, "rss")?;
        let mut sides: [RssSamples; 2] = Default::default();
        for i in 0..runs {
            check_stop()?;
            for k in 0..2 {
                let who = (i + k) % 2;
                let (w, bin) = (&worlds[who], &binaries[who]);
                let ctr = scenario.container(&w.host)?;
                let add =
                    rss::run_traced(&call(bin, "ADD", &ctr, scenario.ifname, &w.config), &w.host)?;
                let del =
                    rss::run_traced(&call(bin, "DEL", &ctr, scenario.ifname, &w.config), &w.host)?;
                sides[who].record("ADD", &add);
                sides[who].record("DEL", &del);
            }
        }
        results.push(Rss {
            name: scenario.name,
            sides,
        });
    }
    let host = Netns::with_label("rss-floor");
    let true_bin = Path::new("/bin/true");
    let version = Call {
        binary: true_bin,
        command: "VERSION",
        container_id: "",
        netns: Path::new(""),
        ifname: "",
        config: br#"{"cniVersion":"1.0.0"}"#,
    };
    let (mut traced, mut forked) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        check_stop()?;
        traced.push(rss::run_traced(&version, &host)?.memory.peak_kib);
        forked.push(spawn::run(&version, &host)?.max_rss_kib);
    }
    let floor = RssFloor {
        traced_kib: crate::stats::median_u64(&traced),
        forked_kib: crate::stats::median_u64(&forked),
    };
    Ok((results, floor))
}
