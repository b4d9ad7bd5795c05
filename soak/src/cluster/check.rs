//! What the store must hold, read back with `etcdctl` as an operator would: one
//! reservation per live attachment, under the right node and container; nothing else
//! (except, before GC in a fault run, what an interrupted call may have left); claimed
//! blocks inside the pool and disjoint.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use cni_conformance::EtcdCluster;
use serde_json::Value;

use super::node::{IFNAME, Node};
use super::{NETWORK, PREFIX};

/// An IPv4 pool as host-local reads a range with only a subnet: every address but the
/// network, broadcast and gateway (the first host) addresses.
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    network: u32,
    pub prefix_len: u32,
}

impl Pool {
    /// `subnet` as "a.b.c.d/len" (a constant of this tool).
    pub fn parse(subnet: &str) -> Pool {
        let (address, len) = subnet.split_once('/').expect("a subnet has a /");
        let address: Ipv4Addr = address.parse().expect("a subnet is IPv4");
        Pool {
            network: u32::from(address),
            prefix_len: len.parse().expect("a prefix length is a number"),
        }
    }

    fn size(self) -> u32 {
        1 << (32 - self.prefix_len)
    }

    /// The number of addresses the plugin may hand out.
    pub fn capacity(self) -> usize {
        self.size() as usize - 3
    }

    /// Whether `address` may be handed out.
    pub fn usable(self, address: &str) -> bool {
        let Ok(ip) = address.parse::<Ipv4Addr>() else {
            return false;
        };
        let offset = u32::from(ip).wrapping_sub(self.network);
        offset > 1 && offset < self.size() - 1
    }

    /// Whether the block `first/len` lies inside the pool.
    fn holds_block(self, first: u32, len: u32) -> bool {
        len >= self.prefix_len
            && len <= 32
            && first.wrapping_sub(self.network) < self.size()
            && first.trailing_zeros() >= 32 - len
    }
}

fn key_prefix(kind: &str) -> String {
    format!("{PREFIX}/{NETWORK}/{kind}/")
}

/// Every claimed block as (first address, prefix length) with its raw key.
pub fn blocks(etcd: &EtcdCluster) -> Vec<(String, Option<(u32, u32)>)> {
    let prefix = key_prefix("blocks");
    etcd.get_prefix(&prefix)
        .into_iter()
        .map(|(key, _)| {
            let name = key.trim_start_matches(&prefix).to_owned();
            let parsed = name.split_once('-').and_then(|(first, len)| {
                Some((
                    u32::from(first.parse::<Ipv4Addr>().ok()?),
                    len.parse().ok()?,
                ))
            });
            (name, parsed)
        })
        .collect()
}

/// The number of reservations (`ips/` keys) in the store.
pub fn reservations(etcd: &EtcdCluster) -> usize {
    etcd.get_prefix(&key_prefix("ips")).len()
}

/// Reservations of attachments whose interrupted ADD was cleaned up by a successful DEL:
/// the ADD's transaction committed after that DEL.
pub fn late_commits(etcd: &EtcdCluster, nodes: &[Node]) -> usize {
    let cleaned: BTreeSet<&str> = nodes
        .iter()
        .flat_map(|n| n.cleaned.iter().map(String::as_str))
        .collect();
    etcd.get_prefix(&key_prefix("ips"))
        .iter()
        .filter_map(|(_, value)| serde_json::from_str::<Value>(value).ok())
        .filter(|v| cleaned.contains(v["containerID"].as_str().unwrap_or_default()))
        .count()
}

/// The index of the etcd member that is the leader now.
///
/// # Panics
/// If no running member says it leads.
pub fn leader(etcd: &EtcdCluster) -> usize {
    // `endpoint status -w simple`: "URL, ID, VERSION, DB SIZE, IS LEADER, ..." per line.
    let out = etcd
        .etcdctl(&["endpoint", "status", "-w", "simple"])
        .expect("etcdctl endpoint status");
    let url = out
        .lines()
        .find(|line| line.split(", ").nth(4) == Some("true"))
        .and_then(|line| line.split(", ").next())
        .unwrap_or_else(|| panic!("no etcd member leads:\n{out}"))
        .to_owned();
    etcd.endpoints()
        .iter()
        .position(|e| *e == url)
        .expect("the leader is one of ours")
}

/// The violations of the store against the nodes' live attachments. `exact`: nothing but
/// the live set may be reserved; otherwise an uncertain attachment (interrupted call) may
/// hold one reservation.
pub fn store(etcd: &EtcdCluster, pool: &Pool, nodes: &[Node], exact: bool) -> Vec<String> {
    let mut violations = Vec::new();
    // container ID → (node, address) of every live attachment.
    let live: BTreeMap<&str, (&str, &str)> = nodes
        .iter()
        .flat_map(|n| {
            n.live.iter().map(|a| {
                (
                    a.container_id.as_str(),
                    (n.name.as_str(), a.address.as_str()),
                )
            })
        })
        .collect();
    let uncertain: BTreeSet<&str> = if exact {
        BTreeSet::new()
    } else {
        nodes
            .iter()
            .flat_map(|n| n.uncertain.iter().chain(&n.cleaned).map(String::as_str))
            .collect()
    };
    check_reservations(etcd, &live, &uncertain, &mut violations);
    check_attachments(etcd, &live, &uncertain, &mut violations);
    check_blocks(etcd, pool, &mut violations);
    violations
}

fn check_reservations(
    etcd: &EtcdCluster,
    live: &BTreeMap<&str, (&str, &str)>,
    uncertain: &BTreeSet<&str>,
    violations: &mut Vec<String>,
) {
    let prefix = key_prefix("ips");
    let mut seen = BTreeMap::new();
    for (key, value) in etcd.get_prefix(&prefix) {
        let address = key.trim_start_matches(&prefix).to_owned();
        let value: Value = serde_json::from_str(&value).unwrap_or_default();
        let container = value["containerID"].as_str().unwrap_or_default().to_owned();
        let node = value["node"].as_str().unwrap_or_default();
        match live.get(container.as_str()) {
            Some(&(live_node, live_address))
                if live_node == node && live_address == address && value["ifname"] == IFNAME => {}
            None if uncertain.contains(container.as_str()) => {}
            _ => violations.push(format!("LEAKED or wrong reservation {key} = {value}")),
        }
        if let Some(other) = seen.insert(container.clone(), address.clone()) {
            violations.push(format!(
                "{container} holds two addresses: {other} and {address}"
            ));
        }
    }
    for (container, (node, address)) in live {
        if seen.get(*container).map(String::as_str) != Some(*address) {
            violations.push(format!(
                "LOST reservation: {node}'s {container} was given {address}; the store has {:?}",
                seen.get(*container)
            ));
        }
    }
}

fn check_attachments(
    etcd: &EtcdCluster,
    live: &BTreeMap<&str, (&str, &str)>,
    uncertain: &BTreeSet<&str>,
    violations: &mut Vec<String>,
) {
    let prefix = key_prefix("attachments");
    let mut seen = BTreeSet::new();
    for (key, value) in etcd.get_prefix(&prefix) {
        let path = key.trim_start_matches(&prefix);
        let (container, ifname) = path.split_once('/').unwrap_or((path, ""));
        let value: Value = serde_json::from_str(&value).unwrap_or_default();
        match live.get(container) {
            Some(&(node, address))
                if ifname == IFNAME
                    && value["node"] == node
                    && value["ips"] == serde_json::json!([address]) => {}
            None if uncertain.contains(container) => {}
            _ => violations.push(format!("LEAKED or wrong attachment {key} = {value}")),
        }
        seen.insert(container.to_owned());
    }
    for container in live.keys() {
        if !seen.contains(*container) {
            violations.push(format!("LOST attachment index of {container}"));
        }
    }
}

fn check_blocks(etcd: &EtcdCluster, pool: &Pool, violations: &mut Vec<String>) {
    let mut ranges = Vec::new();
    for (name, parsed) in blocks(etcd) {
        match parsed {
            Some((first, len)) if pool.holds_block(first, len) => {
                ranges.push((first, first + ((1u64 << (32 - len)) - 1) as u32, name));
            }
            _ => violations.push(format!("block {name} is not a block of the pool")),
        }
    }
    ranges.sort();
    for pair in ranges.windows(2) {
        if pair[1].0 <= pair[0].1 {
            violations.push(format!("blocks {} and {} overlap", pair[0].2, pair[1].2));
        }
    }
}
