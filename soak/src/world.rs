//! The soak's node: the lab's host netns with two bridges (one per masquerade backend), a
//! veth to be macvlan's master, and four networks sharing one host-local data dir.

use std::path::{Path, PathBuf};

use cni_conformance::Lab;
use serde_json::{Value, json};

/// The veth pair in the host netns whose first end is macvlan's master.
const MACVLAN_MASTER: &str = "soakmv0";
const MACVLAN_MASTER_PEER: &str = "soakmv1";

/// Which plugin a network runs, and what host state it owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// bridge with `ipMasq` through this backend (`nftables` or `iptables`).
    Bridge {
        bridge: &'static str,
        backend: &'static str,
    },
    Macvlan,
    /// host-local run directly, as a runtime's IPAM-only network.
    HostLocal,
}

/// One network of the node.
#[derive(Debug)]
pub struct Network {
    pub name: &'static str,
    pub kind: Kind,
    /// The network config without the per-call keys (`prevResult`, valid attachments).
    pub config: Value,
}

impl Network {
    /// The plugin binary's CNI type.
    pub fn plugin(&self) -> &'static str {
        match self.kind {
            Kind::Bridge { .. } => "bridge",
            Kind::Macvlan => "macvlan",
            Kind::HostLocal => "host-local",
        }
    }

    /// Whether an attachment has an interface in a container netns of its own.
    pub fn needs_netns(&self) -> bool {
        self.kind != Kind::HostLocal
    }
}

/// host-local's data dir inside the lab.
pub fn data_dir(lab: &Lab) -> PathBuf {
    lab.dir().join("ipam")
}

/// Makes the macvlan master and returns the node's networks.
pub fn setup(lab: &Lab) -> Vec<Network> {
    let host = lab.host();
    host.ip(&[
        "link",
        "add",
        MACVLAN_MASTER,
        "type",
        "veth",
        "peer",
        "name",
        MACVLAN_MASTER_PEER,
    ]);
    host.ip(&["link", "set", MACVLAN_MASTER, "up"]);
    host.ip(&["link", "set", MACVLAN_MASTER_PEER, "up"]);
    let dir = data_dir(lab);
    let ipam = |subnet: &str| ipam(&dir, subnet);
    vec![
        Network {
            name: "soak-br-nft",
            kind: Kind::Bridge {
                bridge: "soakbr0",
                backend: "nftables",
            },
            config: bridge_config("soak-br-nft", "soakbr0", "nftables", ipam("10.201.0.0/24")),
        },
        Network {
            name: "soak-br-ipt",
            kind: Kind::Bridge {
                bridge: "soakbr1",
                backend: "iptables",
            },
            config: bridge_config("soak-br-ipt", "soakbr1", "iptables", ipam("10.202.0.0/24")),
        },
        Network {
            name: "soak-macvlan",
            kind: Kind::Macvlan,
            config: json!({
                "cniVersion": "1.1.0", "name": "soak-macvlan", "type": "macvlan",
                "master": MACVLAN_MASTER, "mode": "bridge", "ipam": ipam("10.203.0.0/24"),
            }),
        },
        Network {
            name: "soak-hostlocal",
            kind: Kind::HostLocal,
            config: json!({
                "cniVersion": "1.1.0", "name": "soak-hostlocal", "type": "host-local",
                // A narrow range, so the round-robin cursor wraps often.
                "ipam": {"type": "host-local", "dataDir": dir,
                         "ranges": [[{"subnet": "10.204.0.0/24", "rangeStart": "10.204.0.10",
                                      "rangeEnd": "10.204.0.29"}]]},
            }),
        },
    ]
}

/// The links that belong to the node, not to any attachment.
pub fn node_links(networks: &[Network]) -> Vec<&'static str> {
    let mut links = vec!["lo", MACVLAN_MASTER, MACVLAN_MASTER_PEER];
    for network in networks {
        if let Kind::Bridge { bridge, .. } = network.kind {
            links.push(bridge);
        }
    }
    links
}

fn ipam(dir: &Path, subnet: &str) -> Value {
    json!({"type": "host-local", "subnet": subnet, "dataDir": dir})
}

fn bridge_config(name: &str, bridge: &str, backend: &str, ipam: Value) -> Value {
    json!({
        "cniVersion": "1.1.0", "name": name, "type": "bridge", "bridge": bridge,
        "isGateway": true, "ipMasq": true, "ipMasqBackend": backend, "ipam": ipam,
    })
}
