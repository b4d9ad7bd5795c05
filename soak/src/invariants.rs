//! The node's state against the model, after a batch (no call in flight): every lease,
//! index entry, link, masquerade rule and chain belongs to an attachment the runtime still
//! has, no address is held twice, and every fully added attachment still has its state.
//!
//! Attachments without a result (an ADD killed or failed, whose DEL failed too) may own
//! state or not: they excuse what is found but are not required to have any.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::net::IpAddr;
use std::path::Path;

use cni_conformance::Netns;
use cni_firewall::{masquerade_chain_name, masquerade_comment};
use serde_json::Value;

use crate::model::{Attachment, IFNAME, Model};
use crate::world::{self, Kind, Network};

/// Every violation found, one line each; empty when the node is as the model says.
pub fn check(host: &Netns, data_dir: &Path, networks: &[Network], model: &Model) -> Vec<String> {
    let mut violations = Vec::new();
    let links = host_links(host);
    for (index, network) in networks.iter().enumerate() {
        let attachments: Vec<&Attachment> = model.of(index).collect();
        let mut report = |what: String| violations.push(format!("{}: {what}", network.name));
        check_leases(&data_dir.join(network.name), &attachments, &mut report);
        if let Kind::Bridge { bridge, backend } = network.kind {
            check_bridge_links(&links, bridge, &attachments, &mut report);
            let found = match backend {
                "nftables" => nft_masq_comments(host),
                _ => iptables_masq_chains(host),
            };
            let name_of = |a: &Attachment| match backend {
                "nftables" => masquerade_comment(network.name, &a.id, IFNAME),
                _ => masquerade_chain_name(network.name, &a.id, IFNAME),
            };
            // One network per backend: all of a backend's state must be this network's.
            check_owned(&found, &attachments, name_of, backend, &mut report);
        }
    }
    let node_links = world::node_links(networks);
    for (name, link) in &links {
        let on_bridge = link["master"]
            .as_str()
            .is_some_and(|m| node_links.contains(&m));
        if !node_links.contains(&name.as_str()) && !on_bridge {
            violations.push(format!("host link of no attachment: {link}"));
        }
    }
    violations
}

/// Leases and index entries on disk against the attachments; duplicate addresses.
fn check_leases(dir: &Path, attachments: &[&Attachment], report: &mut impl FnMut(String)) {
    let by_id: HashMap<&str, &Attachment> =
        attachments.iter().map(|a| (a.id.as_str(), *a)).collect();
    let mut leased: HashMap<IpAddr, String> = HashMap::new();
    for name in dir_names(dir) {
        let Ok(ip) = name.parse::<IpAddr>() else {
            continue;
        };
        let content = fs::read_to_string(dir.join(&name)).unwrap_or_default();
        let owner = content.trim().split("\r\n").next().unwrap_or("").to_owned();
        match by_id.get(owner.as_str()) {
            None => report(format!(
                "lease {ip} held by {owner:?}, which has no attachment"
            )),
            Some(a) if a.result.is_some() && !a.ips().contains(&ip) => report(format!(
                "lease {ip} held by {owner}, whose result has {:?}",
                a.ips()
            )),
            Some(_) => {}
        }
        leased.insert(ip, owner);
    }
    let mut seen = HashSet::new();
    for attachment in attachments {
        for ip in attachment.ips() {
            if !seen.insert(ip) {
                report(format!(
                    "duplicate address {ip} (again in {})",
                    attachment.id
                ));
            }
            if leased.get(&ip) != Some(&attachment.id) {
                report(format!("{} lost its lease on {ip}", attachment.id));
            }
        }
    }
    for name in dir_names(&dir.join(".attachments")) {
        let id = name.rsplit_once('+').map_or(name.as_str(), |(id, _)| id);
        if !name.starts_with('.') && !by_id.contains_key(id) {
            report(format!("index entry {name} of no attachment"));
        }
    }
}

/// The veths on `bridge` are exactly the host ends of the attachments whose netns lives.
fn check_bridge_links(
    links: &HashMap<String, Value>,
    bridge: &str,
    attachments: &[&Attachment],
    report: &mut impl FnMut(String),
) {
    let expected: HashSet<String> = attachments
        .iter()
        .filter(|a| a.netns.is_some())
        .filter_map(|a| a.host_veth(bridge))
        .collect();
    let unknown_owners = attachments.iter().any(|a| a.result.is_none());
    for (name, link) in links {
        if link["master"] == bridge && !expected.contains(name) && !unknown_owners {
            report(format!("veth {name} on {bridge} belongs to no attachment"));
        }
    }
    for name in expected {
        if !links.contains_key(&name) {
            report(format!("host veth {name} of a live attachment is gone"));
        }
    }
}

/// Masquerade state (nftables rule comments or iptables chains) of one network against its
/// attachments: nothing of an unknown one, something of every fully added one.
fn check_owned(
    found: &[String],
    attachments: &[&Attachment],
    name_of: impl Fn(&Attachment) -> String,
    backend: &str,
    report: &mut impl FnMut(String),
) {
    let known: HashSet<String> = attachments.iter().map(|a| name_of(a)).collect();
    for name in found {
        if !known.contains(name) {
            report(format!(
                "{backend} masquerade state of no attachment: {name}"
            ));
        }
    }
    for attachment in attachments.iter().filter(|a| a.result.is_some()) {
        if !found.contains(&name_of(attachment)) {
            report(format!(
                "{backend}: {} lost its masquerade state",
                attachment.id
            ));
        }
    }
}

/// Links of the host netns by name (`ip -j -d link show`).
fn host_links(host: &Netns) -> HashMap<String, Value> {
    host.ip_json(&["-d", "link", "show"])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| Some((l["ifname"].as_str()?.to_owned(), l.clone())))
        .collect()
}

/// The comments of the rules in nftables' masquerade table.
fn nft_masq_comments(host: &Netns) -> Vec<String> {
    let out = host.exec(&["nft", "-j", "list", "ruleset"]);
    let ruleset: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    ruleset["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("rule"))
        .filter(|r| r["family"] == "inet" && r["table"] == "cni_plugins_masquerade")
        .filter(|r| r["chain"] == "masq_checks")
        .map(|r| r["comment"].as_str().unwrap_or("(no comment)").to_owned())
        .collect()
}

/// The `CNI-MASQ-*` chains of iptables' nat table.
fn iptables_masq_chains(host: &Netns) -> Vec<String> {
    let out = host.exec(&["iptables-save", "-t", "nat"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|chain| chain.starts_with("CNI-"))
        .map(str::to_owned)
        .collect()
}

fn dir_names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}
