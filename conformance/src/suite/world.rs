//! The per-case test world: a lab, the plugin's config, its master link if it needs one,
//! and read-back of everything a plugin may leave behind.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{Value, json};

use super::{Checked, Ctx, Stop};
use crate::{
    EtcdCluster, Invocation, Lab, LoopbackRelay, Netns, PluginRun, host_local_leases, with_prev,
};

/// The network name in every config (also host-local's store directory name).
pub const NETWORK: &str = "conformance";
/// The IPAM subnet; host-local hands out `.2` first, `.1` is the gateway.
pub const SUBNET: &str = "10.88.0.0/24";
pub const GATEWAY: &str = "10.88.0.1";
/// The bridge the bridge plugin makes in the lab host.
pub const BRIDGE: &str = "cnibr0";
/// The macvlan/ipvlan master in the lab host.
pub const MASTER: &str = "cnimaster0";
/// The MTU tuning sets (a fresh veth has 1500).
pub const TUNED_MTU: u64 = 1400;
/// The address the stand-in for the plugin before tuning reports.
const CHAINED_IP: &str = "10.88.0.5/24";
/// The rate (bits/s) bandwidth limits both directions to, and its burst (bits).
pub const BANDWIDTH_RATE: u64 = 8_000_000;
pub const BANDWIDTH_BURST: u64 = 800_000;
/// The start of the host end's name of the stand-in veth before bandwidth: the stand-in
/// made it, not the plugin, so it is no leak.
const STAND_IN_HOST_PREFIX: &str = "standin";
/// The one host port portmap forwards, and where to: 8080 to the chained address's 80.
pub static PORTMAP_MAPPING: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| json!({"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}));
/// The DNAT target portmap's rules name for [`PORTMAP_MAPPING`].
pub const PORTMAP_TARGET: &str = "10.88.0.5:80";

/// The plugin types the suite knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    Bridge,
    Macvlan,
    Ipvlan,
    HostLocal,
    ClusterIpam,
    Loopback,
    Tuning,
    Bandwidth,
    Firewall,
    Portmap,
}

impl PluginKind {
    pub fn from_type(name: &str) -> Option<PluginKind> {
        Some(match name {
            "bridge" => PluginKind::Bridge,
            "macvlan" => PluginKind::Macvlan,
            "ipvlan" => PluginKind::Ipvlan,
            "host-local" => PluginKind::HostLocal,
            "cluster-ipam" => PluginKind::ClusterIpam,
            "loopback" => PluginKind::Loopback,
            "tuning" => PluginKind::Tuning,
            "bandwidth" => PluginKind::Bandwidth,
            "firewall" => PluginKind::Firewall,
            "portmap" => PluginKind::Portmap,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            PluginKind::Bridge => "bridge",
            PluginKind::Macvlan => "macvlan",
            PluginKind::Ipvlan => "ipvlan",
            PluginKind::HostLocal => "host-local",
            PluginKind::ClusterIpam => "cluster-ipam",
            PluginKind::Loopback => "loopback",
            PluginKind::Tuning => "tuning",
            PluginKind::Bandwidth => "bandwidth",
            PluginKind::Firewall => "firewall",
            PluginKind::Portmap => "portmap",
        }
    }

    /// The interface the plugin is asked to configure.
    pub fn ifname(self) -> &'static str {
        match self {
            PluginKind::Loopback => "lo",
            _ => "eth0",
        }
    }

    /// Whether the plugin is an IPAM plugin run directly (host-local, cluster-ipam).
    pub fn is_ipam(self) -> bool {
        matches!(self, PluginKind::HostLocal | PluginKind::ClusterIpam)
    }

    /// Whether the plugin reserves addresses through an IPAM plugin (itself or delegated).
    pub fn uses_ipam(self) -> bool {
        !matches!(
            self,
            PluginKind::Loopback
                | PluginKind::Tuning
                | PluginKind::Bandwidth
                | PluginKind::Firewall
                | PluginKind::Portmap
        )
    }

    /// Whether the plugin changes an interface an earlier plugin of a chain made, and
    /// needs that plugin's result as `prevResult` (tuning, bandwidth, firewall, portmap).
    pub fn is_chained(self) -> bool {
        matches!(
            self,
            PluginKind::Tuning | PluginKind::Bandwidth | PluginKind::Firewall | PluginKind::Portmap
        )
    }

    /// Whether the plugin delegates to an IPAM plugin found in `CNI_PATH`.
    pub fn delegates_ipam(self) -> bool {
        matches!(
            self,
            PluginKind::Bridge | PluginKind::Macvlan | PluginKind::Ipvlan
        )
    }

    /// Whether the plugin creates `CNI_IFNAME` (so a second ADD must fail).
    pub fn creates_interface(self) -> bool {
        self.delegates_ipam()
    }

    /// Whether the plugin writes firewall rules (bridge `ipMasq`, firewall, portmap).
    pub fn touches_firewall(self) -> bool {
        matches!(
            self,
            PluginKind::Bridge | PluginKind::Firewall | PluginKind::Portmap
        )
    }

    /// Whether the plugin's DEL legitimately keeps shared chains and jumps that name no
    /// container (firewall's `CNI-FORWARD`, `CNI-ADMIN`, as the reference keeps them).
    pub fn keeps_shared_firewall_chains(self) -> bool {
        self == PluginKind::Firewall
    }

    /// Firewall lines the plugin legitimately leaves after DEL: portmap's chains shared by
    /// every container (`CNI-HOSTPORT-*`), as the spec lets bridge keep its bridge.
    pub fn persistent_firewall_marker(self) -> Option<&'static str> {
        match self {
            PluginKind::Portmap => Some("CNI-HOSTPORT-"),
            _ => None,
        }
    }

    /// Host links the plugin legitimately leaves after DEL (the spec lets bridge keep
    /// its bridge).
    pub fn persistent_host_links(self) -> &'static [&'static str] {
        match self {
            PluginKind::Bridge => &[BRIDGE],
            _ => &[],
        }
    }
}

/// Why a kernel cannot run ipvlan cases, or `None` if it can. Probed once per process in
/// a throwaway namespace.
fn ipvlan_unsupported() -> Option<String> {
    static PROBE: OnceLock<Option<String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let ns = Netns::with_label("probe");
            // A dummy master: ipvlan refuses veth masters even where the driver exists.
            let dummy = ns.exec(&["ip", "link", "add", "probe0", "type", "dummy"]);
            let ipvlan = ns.exec(&[
                "ip", "link", "add", "probe1", "link", "lo", "type", "ipvlan", "mode", "l2",
            ]);
            let ipvlan_err = String::from_utf8_lossy(&ipvlan.stderr).to_string();
            if ipvlan_err.contains("Unknown device type") {
                return Some("kernel lacks ipvlan".to_owned());
            }
            if !dummy.status.success() {
                return Some("kernel lacks dummy links (the ipvlan master)".to_owned());
            }
            let on_dummy = ns.exec(&[
                "ip", "link", "add", "probe2", "link", "probe0", "type", "ipvlan", "mode", "l2",
            ]);
            if !on_dummy.status.success() {
                return Some(format!(
                    "kernel cannot make an ipvlan link: {}",
                    String::from_utf8_lossy(&on_dummy.stderr).trim()
                ));
            }
            None
        })
        .clone()
}

/// One case's world. Everything in it is removed on drop.
pub struct World {
    pub lab: Lab,
    /// The far end of the master's segment (macvlan).
    _peer: Option<Netns>,
    pub kind: PluginKind,
    bin_dir: PathBuf,
    /// cluster-ipam's etcd, reached from the lab host through the relay.
    etcd: Option<(LoopbackRelay, EtcdCluster)>,
}

/// A one-member etcd for cluster-ipam, and a relay from the lab host's loopback to it.
fn etcd_for(kind: PluginKind, lab: &Lab) -> Option<(LoopbackRelay, EtcdCluster)> {
    if kind != PluginKind::ClusterIpam {
        return None;
    }
    let etcd = EtcdCluster::start(1);
    let target = etcd.endpoints()[0]
        .trim_start_matches("http://")
        .parse()
        .expect("the harness gives http://IP:PORT endpoints");
    Some((LoopbackRelay::new(lab.host(), target), etcd))
}

impl World {
    /// A lab with the plugin's prerequisites: a master link for macvlan (a veth whose
    /// peer sits in a netns of its own) and ipvlan (a dummy; n/a where the kernel lacks
    /// ipvlan or dummy).
    pub fn new(ctx: &Ctx) -> Result<World, Stop> {
        if ctx.kind == PluginKind::Ipvlan {
            if let Some(why) = ipvlan_unsupported() {
                return Err(Stop::NotApplicable(why));
            }
        }
        let lab = Lab::new();
        let peer = match ctx.kind {
            PluginKind::Macvlan => {
                let peer = Netns::with_label("peer");
                lab.host()
                    .add_veth_to(MASTER, &peer, "peer0", &format!("{GATEWAY}/24"));
                Some(peer)
            }
            PluginKind::Ipvlan => {
                lab.host().ip(&["link", "add", MASTER, "type", "dummy"]);
                lab.host().ip(&["link", "set", MASTER, "up"]);
                None
            }
            PluginKind::Tuning
            | PluginKind::Bandwidth
            | PluginKind::Firewall
            | PluginKind::Portmap => {
                add_chained_interface(ctx.kind, lab.host(), lab.container());
                None
            }
            _ => None,
        };
        Ok(World {
            etcd: etcd_for(ctx.kind, &lab),
            lab,
            _peer: peer,
            kind: ctx.kind,
            bin_dir: ctx.bin_dir.clone(),
        })
    }

    /// A plain lab, for cases that never reach the kernel (protocol errors).
    pub fn bare(ctx: &Ctx) -> World {
        let lab = Lab::new();
        World {
            etcd: etcd_for(ctx.kind, &lab),
            lab,
            _peer: None,
            kind: ctx.kind,
            bin_dir: ctx.bin_dir.clone(),
        }
    }

    /// Runs `plugin` from the directory under test in the lab host.
    pub fn run(&self, plugin: &str, invocation: &Invocation) -> PluginRun {
        self.lab.run_binary(&self.bin_dir.join(plugin), invocation)
    }

    /// Runs the plugin under test.
    pub fn run_plugin(&self, invocation: &Invocation) -> PluginRun {
        self.run(self.kind.name(), invocation)
    }

    pub fn bin_dir(&self) -> &std::path::Path {
        &self.bin_dir
    }

    pub fn data_dir(&self) -> PathBuf {
        self.lab.dir().join("ipam")
    }

    /// tuning's `dataDir`, where it saves the original link attributes.
    pub fn tuning_dir(&self) -> PathBuf {
        self.lab.dir().join("tuning")
    }

    /// The files in tuning's `dataDir`.
    fn saved_state(&self) -> BTreeSet<String> {
        let Ok(entries) = std::fs::read_dir(self.tuning_dir()) else {
            return BTreeSet::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect()
    }

    /// The IPAM section every IPAM-using config shares: host-local's, or cluster-ipam's
    /// (the same range, on the world's etcd) when that is the plugin under test.
    pub fn ipam(&self) -> Value {
        if let Some((relay, _)) = &self.etcd {
            return json!({
                "type": "cluster-ipam",
                "subnet": SUBNET,
                "gateway": GATEWAY,
                "routes": [{"dst": "0.0.0.0/0"}],
                "nodeName": "conformance",
                "etcd": {"endpoints": [relay.url()]},
            });
        }
        json!({
            "type": "host-local",
            "subnet": SUBNET,
            "gateway": GATEWAY,
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": self.data_dir(),
        })
    }

    /// The bridge plugin's L2 config (no IPAM, no masquerade).
    pub fn bridge_l2_conf(&self, version: &str) -> Value {
        json!({"cniVersion": version, "name": NETWORK, "type": "bridge", "bridge": BRIDGE})
    }

    /// The plugin's config in `version`.
    pub fn conf(&self, version: &str) -> Value {
        let mut conf = json!({"cniVersion": version, "name": NETWORK, "type": self.kind.name()});
        let extra = match self.kind {
            PluginKind::Bridge => json!({
                "bridge": BRIDGE, "isGateway": true, "ipMasq": true, "ipam": self.ipam(),
            }),
            PluginKind::Macvlan => json!({"master": MASTER, "mode": "bridge", "ipam": self.ipam()}),
            PluginKind::Ipvlan => json!({"master": MASTER, "mode": "l2", "ipam": self.ipam()}),
            PluginKind::HostLocal | PluginKind::ClusterIpam => json!({"ipam": self.ipam()}),
            PluginKind::Loopback => json!({}),
            PluginKind::Tuning => json!({
                "mtu": TUNED_MTU,
                "sysctl": {"net.core.somaxconn": "512"},
                "dataDir": self.tuning_dir(),
            }),
            PluginKind::Bandwidth => json!({
                "ingressRate": BANDWIDTH_RATE, "ingressBurst": BANDWIDTH_BURST,
                "egressRate": BANDWIDTH_RATE, "egressBurst": BANDWIDTH_BURST,
            }),
            PluginKind::Firewall => json!({"backend": "iptables"}),
            PluginKind::Portmap => json!({
                "runtimeConfig": {"portMappings": [PORTMAP_MAPPING.clone()]},
            }),
        };
        merge(&mut conf, extra);
        conf
    }

    /// ADD of the plugin's interface in `ctr`; the result, or a failure with the run. A
    /// chained plugin gets the `prevResult` of a stand-in for the plugin before it.
    pub fn add(&self, ctr: &Netns, conf: &Value) -> Result<Value, Stop> {
        let conf = if self.kind.is_chained() {
            with_prev(
                conf,
                &chained_prev_result(self.kind, self.lab.host(), ctr, conf),
            )
        } else {
            conf.clone()
        };
        let run = self.run_plugin(&Invocation::add(ctr, self.kind.ifname()).config(conf));
        succeeded(&run)?;
        run.json
            .clone()
            .ok_or_else(|| Stop::Fail(format!("ADD printed no JSON result\n{run}")))
    }

    /// DEL as libcni sends it: with the ADD result as `prevResult` from 0.4.0 on.
    pub fn del(&self, ctr: &Netns, conf: &Value, result: Option<&Value>) -> Checked {
        let conf = match result {
            Some(result) if supports_prev_result(conf) => with_prev(conf, result),
            _ => conf.clone(),
        };
        succeeded(&self.run_plugin(&Invocation::del(ctr, self.kind.ifname()).config(conf)))
    }

    /// The reserved IPs: host-local's store (files named by an IP), or cluster-ipam's
    /// reservation keys in etcd.
    pub fn leases(&self) -> BTreeSet<String> {
        if let Some((_, etcd)) = &self.etcd {
            return etcd
                .get_prefix(&self.reservation_prefix())
                .into_iter()
                .filter_map(|(key, _)| Some(key.rsplit_once('/')?.1.to_owned()))
                .collect();
        }
        host_local_leases(&self.data_dir().join(NETWORK))
            .into_iter()
            .collect()
    }

    /// cluster-ipam: where its reservation keys live (`ips/<address>`).
    pub fn reservation_prefix(&self) -> String {
        format!("/cni/cluster-ipam/{NETWORK}/ips/")
    }

    /// cluster-ipam: the value of the reservation key of `ip`, if there is one.
    pub fn reservation(&self, ip: &str) -> Option<String> {
        let (_, etcd) = self.etcd.as_ref()?;
        let key = format!("{}{ip}", self.reservation_prefix());
        etcd.get_prefix(&key)
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, value)| value)
    }

    /// Removes every reservation behind the plugin's back (host-local's lease files, or
    /// cluster-ipam's keys).
    pub fn delete_leases(&self) {
        if let Some((_, etcd)) = &self.etcd {
            etcd.etcdctl(&["del", "--prefix", &self.reservation_prefix()])
                .unwrap_or_else(|e| panic!("cannot delete the reservations: {e}"));
            return;
        }
        for lease in self.leases() {
            let path = self.data_dir().join(NETWORK).join(lease);
            std::fs::remove_file(&path)
                .unwrap_or_else(|e| panic!("cannot remove {}: {e}", path.display()));
        }
    }

    /// The lab host's firewall (nftables and iptables of both families), one line each.
    pub fn firewall_text(&self) -> String {
        let lines: Vec<String> = firewall_lines(self.lab.host()).into_iter().collect();
        lines.join("\n")
    }

    /// What the plugin may leave behind, for a before/after comparison.
    pub fn snapshot(&self, ctr: Option<&Netns>) -> Snapshot {
        Snapshot {
            host_links: link_names(self.lab.host()),
            container_links: ctr.map(link_names),
            leases: self.leases(),
            saved_state: self.saved_state(),
            firewall: if self.kind.touches_firewall() {
                firewall_lines(self.lab.host())
            } else {
                BTreeSet::new()
            },
        }
    }

    /// Waits (up to 5 s) until the host has no links beyond `before`'s and the
    /// persistent ones: a dropped container netns is destroyed by the kernel
    /// asynchronously, and its veth peers in the host go with it a moment later. Returns
    /// at the deadline either way; a real leak is then reported by [`World::leaks`].
    pub fn settle_host_links(&self, before: &Snapshot) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let persistent = self.kind.persistent_host_links();
        while std::time::Instant::now() < deadline {
            let extra = link_names(self.lab.host())
                .difference(&before.host_links)
                .any(|link| !persistent.contains(&link.as_str()));
            if !extra {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Everything in `after` that was not in `before` and is not allowed to persist:
    /// links in the host or container, leases, firewall lines mentioning a CNI chain or
    /// one of `ips`. Empty when nothing leaked.
    pub fn leaks(&self, before: &Snapshot, after: &Snapshot, ips: &[String]) -> Vec<String> {
        let mut leaks = Vec::new();
        let persistent = self.kind.persistent_host_links();
        for link in after.host_links.difference(&before.host_links) {
            if !persistent.contains(&link.as_str()) && !link.starts_with(STAND_IN_HOST_PREFIX) {
                leaks.push(format!("host link {link}"));
            }
        }
        if let (Some(before_links), Some(after_links)) =
            (&before.container_links, &after.container_links)
        {
            for link in after_links.difference(before_links) {
                leaks.push(format!("container link {link}"));
            }
        }
        for lease in after.leases.difference(&before.leases) {
            leaks.push(format!("IPAM reservation {lease}"));
        }
        for file in after.saved_state.difference(&before.saved_state) {
            leaks.push(format!("tuning saved-state file {file}"));
        }
        let persistent_marker = self.kind.persistent_firewall_marker();
        for line in after.firewall.difference(&before.firewall) {
            if persistent_marker.is_some_and(|marker| persistent_line(line, marker)) {
                continue;
            }
            let bare_ips = ips.iter().map(|ip| ip.split('/').next().unwrap_or(ip));
            let shared_chain = line.contains("CNI-") && !self.kind.keeps_shared_firewall_chains();
            if shared_chain || bare_ips.clone().any(|ip| mentions_ip(line, ip)) {
                leaks.push(format!("firewall: {line}"));
            }
        }
        leaks
    }

    /// Fails with the list of leaks, if any.
    pub fn expect_no_leaks(
        &self,
        when: &str,
        before: &Snapshot,
        after: &Snapshot,
        ips: &[String],
    ) -> Checked {
        let leaks = self.leaks(before, after, ips);
        if leaks.is_empty() {
            Ok(())
        } else {
            Err(Stop::Fail(format!(
                "left behind {when}: {}",
                leaks.join("; ")
            )))
        }
    }
}

/// The stand-in for the plugin before a chained one: a veth `eth0` in `ctr`, made once.
/// Its peer stays beside it (the host untouched) for tuning; bandwidth shapes the host
/// end, so there the peer is in `host`, named by [`stand_in_host_peer`]. The container
/// netns takes the pair along.
fn add_chained_interface(kind: PluginKind, host: &Netns, ctr: &Netns) {
    if ctr.link("eth0").is_some() {
        return;
    }
    if kind == PluginKind::Bandwidth {
        let peer = stand_in_host_peer(ctr);
        host.ip(&[
            "link",
            "add",
            &peer,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ctr.name(),
        ]);
        host.ip(&["link", "set", &peer, "up"]);
    } else {
        ctr.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0-peer",
        ]);
    }
    ctr.ip(&["addr", "add", CHAINED_IP, "dev", "eth0"]);
}

/// The host end of the stand-in's veth for `ctr`: the prefix and a hash of the
/// container's netns name (unique per lab container, at most 15 characters).
fn stand_in_host_peer(ctr: &Netns) -> String {
    let hash = ctr.name().bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{STAND_IN_HOST_PREFIX}{hash:08x}")
}

/// What the plugin before a chained one reports for `ctr`'s `eth0` (and, for bandwidth,
/// the host end of its veth), in the shape of the `conf`'s version.
fn chained_prev_result(kind: PluginKind, host: &Netns, ctr: &Netns, conf: &Value) -> Value {
    add_chained_interface(kind, host, ctr);
    let version = conf["cniVersion"].as_str().unwrap_or("0.1.0");
    if super::version_key(version) < (0, 3, 0) {
        return json!({"cniVersion": version, "ip4": {"ip": CHAINED_IP, "gateway": GATEWAY}, "dns": {}});
    }
    let mac = ctr.link("eth0").map(|l| l["address"].clone());
    let mut interfaces = vec![json!({"name": "eth0", "mac": mac, "sandbox": ctr.path()})];
    if kind == PluginKind::Bandwidth {
        interfaces.insert(0, json!({"name": stand_in_host_peer(ctr)}));
    }
    let index = interfaces.len() - 1;
    let mut ip = json!({"interface": index, "address": CHAINED_IP, "gateway": GATEWAY});
    if super::version_key(version) < (1, 0, 0) {
        merge(&mut ip, json!({"version": "4"}));
    }
    json!({
        "cniVersion": version,
        "interfaces": interfaces,
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0", "gw": GATEWAY}],
        "dns": {},
    })
}

/// Whether a firewall line names `ip` as a whole address (not `10.88.0.2` in `10.88.0.25`).
fn mentions_ip(line: &str, ip: &str) -> bool {
    line.match_indices(ip).any(|(at, _)| {
        let next = line[at + ip.len()..].chars().next();
        !matches!(next, Some(c) if c.is_ascii_digit())
    })
}

/// The state [`World::leaks`] compares.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub host_links: BTreeSet<String>,
    pub container_links: Option<BTreeSet<String>>,
    pub leases: BTreeSet<String>,
    pub saved_state: BTreeSet<String>,
    pub firewall: BTreeSet<String>,
}

/// The names of the links in `ns`, as a set for before/after comparisons.
pub fn link_names(ns: &Netns) -> BTreeSet<String> {
    ns.link_names().into_iter().collect()
}

/// Whether `ifname` in `ns` is administratively up.
pub fn is_up(ns: &Netns, ifname: &str) -> bool {
    ns.link(ifname)
        .and_then(|link| {
            link["flags"]
                .as_array()
                .map(|flags| flags.iter().any(|f| f == "UP"))
        })
        .unwrap_or(false)
}

/// The rules of `nft list ruleset` and `iptables-save`/`ip6tables-save` in `ns`, one
/// trimmed line each (comments and counters dropped).
fn firewall_lines(ns: &Netns) -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    for argv in [
        &["nft", "list", "ruleset"][..],
        &["iptables-save"][..],
        &["ip6tables-save"][..],
    ] {
        let output = ns.exec(argv);
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // Chain declarations carry packet counters: `:CNI-x - [0:0]`.
            let line = line.split(" [").next().unwrap_or(line);
            lines.insert(line.to_owned());
        }
    }
    lines
}

/// Fails with the whole run unless the plugin exited 0.
pub fn succeeded(run: &PluginRun) -> Checked {
    if run.succeeded() {
        Ok(())
    } else {
        Err(Stop::Fail(format!("{} failed\n{run}", run.label)))
    }
}

/// Fails unless the plugin failed as the spec says (non-zero exit, error JSON with
/// `code`).
pub fn failed_with(run: &PluginRun, code: u64) -> Checked {
    if run.succeeded() {
        return Err(Stop::Fail(format!(
            "{} succeeded, expected error code {code}\n{run}",
            run.label
        )));
    }
    match run.error_code() {
        Some(found) if found == code => Ok(()),
        _ => Err(Stop::Fail(format!(
            "{} failed, but not with error code {code}\n{run}",
            run.label
        ))),
    }
}

/// Fails unless the plugin failed with a CNI error object (any code).
pub fn failed_with_error_object(run: &PluginRun) -> Checked {
    if run.succeeded() {
        return Err(Stop::Fail(format!(
            "{} succeeded, expected an error\n{run}",
            run.label
        )));
    }
    let is_error = run
        .json
        .as_ref()
        .is_some_and(|json| json["code"].is_u64() && json["msg"].is_string());
    if is_error {
        Ok(())
    } else {
        Err(Stop::Fail(format!(
            "{} failed without a CNI error object on stdout\n{run}",
            run.label
        )))
    }
}

fn supports_prev_result(conf: &Value) -> bool {
    conf["cniVersion"]
        .as_str()
        .is_some_and(|v| super::version_key(v) >= (0, 4, 0))
}

/// Shallow-merges the keys of `extra` into `conf`.
pub fn merge(conf: &mut Value, extra: Value) {
    if let (Value::Object(conf), Value::Object(extra)) = (conf, extra) {
        conf.extend(extra);
    }
}

/// The container addresses (CIDR strings) in an ADD result of any version.
pub fn result_ips(result: &Value) -> Vec<String> {
    let mut ips: Vec<String> = result["ips"]
        .as_array()
        .map(|ips| {
            ips.iter()
                .filter_map(|ip| ip["address"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for family in ["ip4", "ip6"] {
        if let Some(ip) = result[family]["ip"].as_str() {
            ips.push(ip.to_owned());
        }
    }
    ips
}

/// Whether a firewall line only declares, fills or jumps to one of the shared chains whose
/// names start with `marker` (never a line about a container's own chain).
fn persistent_line(line: &str, marker: &str) -> bool {
    let names_own_chain = line.contains("CNI-DN-") || line.contains("CNI-SN-");
    line.contains(marker) && !names_own_chain
}
