//! Test world for the macvlan and ipvlan plugins (the ipvlan tests compile this file too,
//! via `#[path]`): a lab (throwaway host + container netns, see `cni-conformance`), a
//! master link in the lab's host netns, and a "peer" netns behind it that answers pings.
//! Every namespace is a guard: it and everything in it go away on drop, also on panic.

#![allow(dead_code)] // Each test binary uses its own subset.

pub use cni_conformance::with_prev;
use cni_conformance::{Invocation, Lab, Netns, PluginRun, host_local_leases};
use serde_json::{Value, json};

/// The lab subnet: the peer is `.1` (also the gateway), containers get `.10` and up.
pub const SUBNET: &str = "10.77.0.0/24";
/// The peer's address.
pub const PEER_IP: &str = "10.77.0.1";
/// The master's name in the lab host (or in the container with `linkInContainer`).
pub const MASTER: &str = "mv0";

/// A lab whose host netns has a veth `mv0` (up) whose other end sits in `peer` with
/// `10.77.0.1/24`: the L2 segment a macvlan on `mv0` joins.
pub struct World {
    /// Host + container + tempdir.
    pub lab: Lab,
    /// The far end of the master's segment.
    pub peer: Netns,
}

impl World {
    /// The lab with the master in its host netns.
    pub fn new() -> World {
        let lab = Lab::new();
        let peer = Netns::with_label("peer");
        lab.host()
            .add_veth_to(MASTER, &peer, "peer0", &format!("{PEER_IP}/24"));
        World { lab, peer }
    }

    /// The lab with the master veth end moved into the container netns
    /// (`linkInContainer`).
    pub fn with_master_in_container() -> World {
        let lab = Lab::new();
        let peer = Netns::with_label("peer");
        lab.container()
            .add_veth_to(MASTER, &peer, "peer0", &format!("{PEER_IP}/24"));
        World { lab, peer }
    }

    /// A host-local IPAM section with its store in the lab's directory.
    pub fn ipam(&self) -> Value {
        json!({
            "type": "host-local",
            "ranges": [[{"subnet": SUBNET, "rangeStart": "10.77.0.10", "gateway": PEER_IP}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": self.lab.dir().join("ipam"),
        })
    }

    /// A config for `plugin` on the master `mv0` with host-local IPAM.
    pub fn conf(&self, plugin: &str, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": "mvnet",
            "type": plugin,
            "master": MASTER,
            "ipam": self.ipam(),
        })
    }

    /// The IPs host-local has reserved (one file per IP under `dataDir/<network>`).
    pub fn leases(&self) -> Vec<String> {
        host_local_leases(&self.lab.dir().join("ipam").join("mvnet"))
    }

    /// Runs our `plugin` binary in the lab's host netns.
    pub fn run(&self, plugin: &str, inv: &Invocation) -> PluginRun {
        self.lab.run(plugin, inv)
    }
}

/// `info_data` of a link (`ip -d -j link`): the kind-specific attributes.
pub fn info_data(ns: &Netns, ifname: &str) -> Value {
    let link = ns
        .link(ifname)
        .unwrap_or_else(|| panic!("{ifname} missing in {}", ns.name()));
    link["linkinfo"]["info_data"].clone()
}

/// The kind of a link (`macvlan`, `ipvlan`, `veth`, ...).
pub fn kind(ns: &Netns, ifname: &str) -> String {
    let link = ns
        .link(ifname)
        .unwrap_or_else(|| panic!("{ifname} missing in {}", ns.name()));
    link["linkinfo"]["info_kind"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// IPv4 addresses of a link (no link-local IPv6 noise).
pub fn ipv4_addresses(ns: &Netns, ifname: &str) -> Vec<String> {
    ns.addresses(ifname)
        .into_iter()
        .filter(|a| !a.contains(':'))
        .collect()
}

/// Whether one ping from `from` to `ip` is answered within 2 s.
pub fn pings(from: &Netns, ip: &str) -> bool {
    from.exec(&["ping", "-c1", "-W2", ip]).status.success()
}

/// Like [`pings`], with a few tries: right after link up the first ARP may race DAD-less
/// link setup; a real block (private mode) fails every try.
pub fn pings_eventually(from: &Netns, ip: &str) -> bool {
    (0..3).any(|_| pings(from, ip))
}

/// The address part of `ips[i].address` of a 1.x/0.3.x/0.4.0 result.
pub fn result_ip(result: &Value, i: usize) -> String {
    let cidr = result["ips"][i]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no ips[{i}] in {result}"));
    cidr.split('/').next().unwrap().to_owned()
}
