//! The nftables rendering of the firewall plugin's rules: our addition, since the reference
//! has no nftables backend (docs/reference.md#firewall-nftables). One table of our own, so
//! nothing touches another program's rules:
//!
//! ```text
//! table inet cni_plugins_firewall {
//!     chain forward {
//!         type filter hook forward priority filter; policy accept;
//!         jump isolation_stage_1
//!         jump admin
//!         jump containers
//!     }
//!     chain admin { }                      # the operator's, as CNI-ADMIN
//!     chain containers {
//!         ip daddr 10.88.0.5 ct state established,related accept comment "<attachment>"
//!         ip saddr 10.88.0.5 accept comment "<attachment>"
//!     }
//!     chain isolation_stage_1 {
//!         iifname "cni0" oifname != "cni0" jump isolation_stage_2 comment "same-bridge: cni0"
//!     }
//!     chain isolation_stage_2 {
//!         oifname "cni0" drop comment "same-bridge: cni0"
//!     }
//! }
//! ```
//!
//! Unlike the iptables rules, each container rule carries the attachment's comment (the
//! masquerade rules' form, `<network hash>-<attachment hash>, net: ..., if: ..., id: ...`),
//! so DEL needs no `prevResult` and GC finds a stale attachment's rules. Every change is one
//! atomic `nft -f -` after one listing.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::ForwardPlan;
use crate::masq::Selector;
use crate::naming::{instance_hash, masquerade_comment};
use crate::nft::{self, Listing};
use crate::{Error, Result};

const TABLE: &str = "inet cni_plugins_firewall";
const TABLE_COMMENT: &str = "Forwarding accepted for containers by the CNI firewall plugin";

/// One attachment: who it is and what it has.
#[derive(Debug, Clone, Copy)]
pub struct Attachment<'a> {
    /// The network's name.
    pub network: &'a str,
    /// The container ID.
    pub container_id: &'a str,
    /// The interface name in the container.
    pub ifname: &'a str,
}

fn list() -> Result<Option<Listing>> {
    nft::list(&["table", "inet", "cni_plugins_firewall"])
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "ip" } else { "ip6" }
}

fn container_rules(ip: &IpAddr, comment: &str) -> [String; 2] {
    let f = family(ip);
    [
        format!("{f} daddr {ip} ct state established,related accept comment \"{comment}\""),
        format!("{f} saddr {ip} accept comment \"{comment}\""),
    ]
}

fn handles(listing: &Listing, selector: &Selector) -> Vec<(String, u64)> {
    listing
        .rules
        .iter()
        .filter(|r| r.comment.as_deref().is_some_and(|c| selector.matches(c)))
        .map(|r| (r.chain.clone(), r.handle))
        .collect()
}

fn own(attachment: &Attachment) -> Selector {
    Selector::Attachment {
        instance: instance_hash(
            attachment.network,
            attachment.container_id,
            attachment.ifname,
        ),
        chain: String::new(),
    }
}

/// The isolation rules of one bridge: `(chain, rule)`, each found again by its comment.
fn isolation_rules(plan: &ForwardPlan) -> Vec<(&'static str, String)> {
    let Some(isolation) = plan.isolation else {
        return Vec::new();
    };
    let b = &isolation.bridge;
    let mut rules = vec![
        (
            "isolation_stage_1",
            format!(
                "iifname \"{b}\" oifname != \"{b}\" jump isolation_stage_2 comment \"same-bridge: {b}\""
            ),
        ),
        (
            "isolation_stage_2",
            format!("oifname \"{b}\" drop comment \"same-bridge: {b}\""),
        ),
    ];
    if isolation.same_bridge_too {
        rules.push((
            "isolation_stage_1",
            format!("iifname \"{b}\" oifname \"{b}\" drop comment \"isolated: {b}\""),
        ));
    }
    rules
}

fn comment_of(rule: &str) -> &str {
    rule.rsplit_once(" comment \"")
        .map(|(_, c)| c.trim_end_matches('"'))
        .unwrap_or_default()
}

/// Installs `plan` for `attachment`, replacing the attachment's earlier rules.
pub fn allow(plan: &ForwardPlan, attachment: &Attachment) -> Result<()> {
    let listing = list()?.unwrap_or_default();
    let comment = masquerade_comment(
        attachment.network,
        attachment.container_id,
        attachment.ifname,
    );
    let mut s = String::new();
    let _ = writeln!(s, "add table {TABLE} {{ comment \"{TABLE_COMMENT}\" ; }}");
    for chain in [
        "admin",
        "containers",
        "isolation_stage_1",
        "isolation_stage_2",
    ] {
        let _ = writeln!(s, "add chain {TABLE} {chain}");
    }
    let _ = writeln!(
        s,
        "add chain {TABLE} forward {{ type filter hook forward priority filter ; policy accept ; }}"
    );
    // The base chain holds only these jumps, so flushing and refilling it is idempotent.
    let _ = writeln!(s, "flush chain {TABLE} forward");
    for target in ["isolation_stage_1", "admin", "containers"] {
        let _ = writeln!(s, "add rule {TABLE} forward jump {target}");
    }
    for (chain, handle) in handles(&listing, &own(attachment)) {
        let _ = writeln!(s, "delete rule {TABLE} {chain} handle {handle}");
    }
    for ip in plan.ips {
        for rule in container_rules(ip, &comment) {
            let _ = writeln!(s, "add rule {TABLE} containers {rule}");
        }
    }
    for (chain, rule) in isolation_rules(plan) {
        let present = listing
            .rules
            .iter()
            .any(|r| r.chain == chain && r.comment.as_deref() == Some(comment_of(&rule)));
        if !present {
            let _ = writeln!(s, "add rule {TABLE} {chain} {rule}");
        }
    }
    nft::apply_text(&s)
}

/// Removes the rules `selector` matches (one listing, and one transaction if any).
fn remove(selector: &Selector) -> Result<()> {
    let Some(listing) = list()? else {
        return Ok(());
    };
    let mut s = String::new();
    for (chain, handle) in handles(&listing, selector) {
        let _ = writeln!(s, "delete rule {TABLE} {chain} handle {handle}");
    }
    if s.is_empty() {
        return Ok(());
    }
    nft::apply_text(&s)
}

/// Removes the attachment's rules; needs no addresses. A host without `nft` has none.
pub fn revoke(attachment: &Attachment) -> Result<()> {
    match remove(&own(attachment)) {
        Err(Error::NotAvailable { .. }) => Ok(()),
        other => other,
    }
}

/// Removes the rules of `network`'s attachments not in `valid` (GC).
pub fn collect_stale(network: &str, valid: &[(&str, &str)]) -> Result<()> {
    match remove(&Selector::stale(network, valid)) {
        Err(Error::NotAvailable { .. }) => Ok(()),
        other => other,
    }
}

/// What of the attachment's rules is missing, as readable descriptions.
pub fn missing(ips: &[IpAddr], attachment: &Attachment) -> Result<Vec<String>> {
    let Some(listing) = list()? else {
        return Ok(vec![format!("nftables table {TABLE}")]);
    };
    let selector = own(attachment);
    let mut missing = Vec::new();
    for chain in ["forward", "admin", "containers"] {
        if !listing.chains.iter().any(|c| c == chain) {
            missing.push(format!("nftables chain {chain}"));
        }
    }
    for ip in ips {
        let text = ip.to_string();
        let count = listing
            .rules
            .iter()
            .filter(|r| r.comment.as_deref().is_some_and(|c| selector.matches(c)))
            .filter(|r| r.expr.to_string().contains(&format!("\"{text}\"")))
            .count();
        if count < 2 {
            missing.push(format!("nftables rules for {text}"));
        }
    }
    Ok(missing)
}
