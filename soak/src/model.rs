//! What the soak's "runtime" believes: which attachments exist on each network, with the
//! result of their ADD. The node's actual state is checked against this after every batch.

use std::net::IpAddr;
use std::path::PathBuf;

use cni_conformance::Netns;
use serde_json::Value;

/// Every attachment uses this interface name.
pub const IFNAME: &str = "eth0";

/// An attachment the runtime must still DEL some day.
#[derive(Debug)]
pub struct Attachment {
    pub id: String,
    /// The container netns; `None` for host-local (no netns of its own) or once it has been
    /// deleted under the live attachment.
    pub netns: Option<Netns>,
    /// `CNI_NETNS`: still passed after the netns is gone, as a runtime does, unless
    /// `unset_netns_when_gone` (some runtimes send none then).
    pub netns_path: PathBuf,
    pub unset_netns_when_gone: bool,
    /// The ADD result; `None` when the ADD was killed or failed (its state is unknown until
    /// the DEL that must follow).
    pub result: Option<Value>,
}

impl Attachment {
    /// The addresses of the ADD result, without prefix length.
    pub fn ips(&self) -> Vec<IpAddr> {
        let Some(result) = &self.result else {
            return Vec::new();
        };
        result["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok())
            .collect()
    }

    /// The host end of a bridge attachment's veth: the result's interface that has no
    /// sandbox and is not the bridge.
    pub fn host_veth(&self, bridge: &str) -> Option<String> {
        self.result.as_ref()?["interfaces"]
            .as_array()?
            .iter()
            .filter(|i| i.get("sandbox").is_none())
            .filter_map(|i| i["name"].as_str())
            .find(|name| *name != bridge)
            .map(str::to_owned)
    }

    /// Whether the attachment's netns still exists and it was fully added.
    pub fn checkable(&self) -> bool {
        self.result.is_some() && self.netns.is_some()
    }
}

/// Attachment slots per network: `slots[network][slot]`.
#[derive(Debug)]
pub struct Model {
    pub slots: Vec<Vec<Option<Attachment>>>,
    generation: u64,
}

impl Model {
    pub fn new(networks: usize, slots_per_network: usize) -> Model {
        Model {
            slots: (0..networks)
                .map(|_| (0..slots_per_network).map(|_| None).collect())
                .collect(),
            generation: 0,
        }
    }

    /// A container ID never used before in this run, so state left by an earlier
    /// attachment of the same slot can never pass for the current one's.
    pub fn next_id(&mut self, network: usize, slot: usize) -> String {
        self.generation += 1;
        format!("soak-n{network}-s{slot}-g{}", self.generation)
    }

    /// The attachments of one network.
    pub fn of(&self, network: usize) -> impl Iterator<Item = &Attachment> {
        self.slots[network].iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn result_addresses_and_host_veth() {
        let attachment = Attachment {
            id: "c1".to_owned(),
            netns: None,
            netns_path: PathBuf::from("/run/netns/c1"),
            unset_netns_when_gone: false,
            result: Some(json!({
                "interfaces": [{"name": "soakbr0"}, {"name": "veth1234abcd"},
                               {"name": "eth0", "sandbox": "/run/netns/c1"}],
                "ips": [{"address": "10.201.0.2/24"}, {"address": "2001:db8::2/64"}],
            })),
        };
        assert_eq!(
            attachment.ips(),
            vec![
                "10.201.0.2".parse::<IpAddr>().unwrap(),
                "2001:db8::2".parse().unwrap()
            ]
        );
        assert_eq!(
            attachment.host_veth("soakbr0").as_deref(),
            Some("veth1234abcd")
        );
        assert!(!attachment.checkable(), "no netns any more");
    }
}
