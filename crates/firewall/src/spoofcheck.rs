//! The bridge plugin's MAC spoof check (`macspoofchk`), with the reference's nftables layout
//! (PL:pkg/link/spoofcheck.go, docs/reference.md#spoof-check):
//!
//! ```text
//! table bridge nat
//!   chain PREROUTING   (filter hook prerouting priority -300, policy accept)
//!     iifname "<host veth>" jump cni-br-iface-<id>-<ifname>     comment "macspoofchk-<id>-<ifname>"
//!   chain cni-br-iface-<id>-<ifname>
//!     jump cni-br-iface-<id>-<ifname>-mac                       comment ...
//!   chain cni-br-iface-<id>-<ifname>-mac
//!     ether saddr <container MAC> return                        comment ...
//!     drop                                                      comment ...
//! ```
//!
//! Transactions are JSON (`nft -j -f -`), as go-nft's are: chain names embed the container ID
//! and ifname, and nft 1.0.6's text parser rejects quoted chain names, so JSON is the only form
//! in which any valid ID or ifname renders safely. Nothing here touches the container's netns.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use cni_netlink::nftables::Family;

use crate::naming::{spoofcheck_comment, spoofcheck_iface_chain, spoofcheck_mac_chain};
use crate::nft::{self, ListedRule, Listing};
use crate::{Error, Result};

const FAMILY: &str = "bridge";
const TABLE: &str = "nat";
const BASE_CHAIN: &str = "PREROUTING";
const COMMENT_PREFIX: &str = "macspoofchk-";

fn chain_obj(name: &str) -> Value {
    json!({ "chain": { "family": FAMILY, "table": TABLE, "name": name } })
}

fn rule_cmd(chain: &str, expr: Value, comment: &str) -> Value {
    json!({ "add": { "rule": {
        "family": FAMILY, "table": TABLE, "chain": chain, "expr": expr, "comment": comment,
    } } })
}

fn delete_rule_cmd(chain: &str, handle: u64) -> Value {
    json!({ "delete": { "rule": {
        "family": FAMILY, "table": TABLE, "chain": chain, "handle": handle,
    } } })
}

/// Lists `table bridge nat` (1 spawn); `None` if it does not exist. The whole table rather than
/// only PREROUTING (the reference's choice) because it also tells which of our chains exist:
/// nft 1.0.6 cannot "delete if exists", and a failed delete aborts the whole transaction. For
/// GC only: it grows with every attachment on the node.
fn list_table() -> Result<Option<Listing>> {
    nft::list(&["table", FAMILY, TABLE])
}

fn netlink_error(what: &'static str) -> impl FnOnce(cni_netlink::Error) -> Error {
    move |source| Error::Netlink { what, source }
}

/// The PREROUTING rules whose comment is `comment`, with their handles, from one filtered
/// netlink dump: no process, and only PREROUTING (`nft -j list` of the table rendered three
/// rules and two chains per attachment on the node as JSON). The kernel still sends every
/// PREROUTING rule, one per attachment.
fn prerouting_rules(comment: &str) -> Result<Vec<ListedRule>> {
    let rules = cni_netlink::nftables::chain_rules(Family::Bridge, TABLE, BASE_CHAIN)
        .map_err(netlink_error("list bridge nat PREROUTING"))?;
    Ok(rules
        .into_iter()
        .filter(|r| r.comment.as_deref() == Some(comment))
        .map(|r| ListedRule {
            chain: BASE_CHAIN.to_owned(),
            handle: r.handle,
            comment: r.comment,
            expr: Value::Null,
        })
        .collect())
}

/// Whether `table bridge nat` has chain `name` (a lookup by name over netlink).
fn chain_exists(name: &str) -> Result<bool> {
    let found = cni_netlink::nftables::existing_chains(Family::Bridge, TABLE, &[name])
        .map_err(netlink_error("look up a bridge nat chain"))?;
    Ok(!found.is_empty())
}

/// What teardown needs of one attachment: its PREROUTING jumps and which of its two chains
/// exist, read over netlink (one dump, two lookups by name).
fn attachment_listing(container_id: &str, ifname: &str) -> Result<Listing> {
    let rules = prerouting_rules(&spoofcheck_comment(container_id, ifname))?;
    let (iface, mac) = (
        spoofcheck_iface_chain(container_id, ifname),
        spoofcheck_mac_chain(container_id, ifname),
    );
    let chains = cni_netlink::nftables::existing_chains(Family::Bridge, TABLE, &[&iface, &mac])
        .map_err(netlink_error("look up bridge nat chains"))?;
    Ok(Listing {
        chains: chains.into_iter().map(str::to_owned).collect(),
        rules,
    })
}

/// Parses a MAC address (`aa:bb:cc:dd:ee:ff` or with `-`) into nft's lower-case colon form.
fn normalize_mac(mac: &str) -> Result<String> {
    let invalid = |reason| Error::InvalidArgument {
        what: "MAC address",
        value: mac.to_owned(),
        reason,
    };
    let octets: Vec<&str> = mac.split([':', '-']).collect();
    if octets.len() != 6 {
        return Err(invalid("expected 6 octets"));
    }
    let mut out = Vec::with_capacity(6);
    for octet in octets {
        if octet.len() != 2 || !octet.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("each octet must be two hex digits"));
        }
        out.push(octet.to_ascii_lowercase());
    }
    Ok(out.join(":"))
}

/// Installs the spoof check for one attachment in the calling thread's netns (the host's): only
/// frames from `host_veth_name` with source MAC `container_mac` pass the bridge.
///
/// One atomic transaction (the reference needs two: its flush fails on a missing chain, but
/// within one transaction nft sees the chains added before it). A repeated setup replaces the
/// attachment's earlier PREROUTING jump instead of adding a second one. 1 spawn (apply), after
/// a netlink lookup of the attachment's chain (and, when it exists, a read of PREROUTING).
pub fn setup_spoofcheck(
    container_id: &str,
    ifname: &str,
    host_veth_name: &str,
    container_mac: &str,
) -> Result<()> {
    let mac = normalize_mac(container_mac)?;
    if host_veth_name.is_empty() || host_veth_name.len() > 15 {
        return Err(Error::InvalidArgument {
            what: "host interface name",
            value: host_veth_name.to_owned(),
            reason: "must be 1 to 15 bytes",
        });
    }
    let iface_chain = spoofcheck_iface_chain(container_id, ifname);
    let mac_chain = spoofcheck_mac_chain(container_id, ifname);
    let comment = spoofcheck_comment(container_id, ifname);
    log::info!("spoof check setup {comment}: {host_veth_name} may only send from {mac}");

    // A PREROUTING jump of this attachment needs its iface chain (the kernel refuses a jump to
    // a missing chain, and a chain that is jumped to cannot be deleted), so without the chain
    // there is nothing to replace and PREROUTING, which grows with every attachment on the
    // node, is not read: a new attachment's setup costs the same at any density.
    let stale: Vec<u64> = if chain_exists(&iface_chain)? {
        prerouting_rules(&comment)?
            .iter()
            .map(|r| r.handle)
            .collect()
    } else {
        Vec::new()
    };

    let mut commands = vec![
        json!({ "add": { "table": { "family": FAMILY, "name": TABLE } } }),
        json!({ "add": { "chain": {
            "family": FAMILY, "table": TABLE, "name": BASE_CHAIN,
            "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept",
        } } }),
        json!({ "add": chain_obj(&iface_chain) }),
        json!({ "add": chain_obj(&mac_chain) }),
        json!({ "flush": chain_obj(&iface_chain) }),
        json!({ "flush": chain_obj(&mac_chain) }),
    ];
    commands.extend(stale.iter().map(|h| delete_rule_cmd(BASE_CHAIN, *h)));
    commands.extend([
        rule_cmd(
            BASE_CHAIN,
            json!([
                { "match": { "op": "==", "left": { "meta": { "key": "iifname" } },
                             "right": host_veth_name } },
                { "jump": { "target": iface_chain } },
            ]),
            &comment,
        ),
        rule_cmd(
            &iface_chain,
            json!([{ "jump": { "target": mac_chain } }]),
            &comment,
        ),
        rule_cmd(
            &mac_chain,
            json!([
                { "match": { "op": "==",
                             "left": { "payload": { "protocol": "ether", "field": "saddr" } },
                             "right": mac } },
                { "return": null },
            ]),
            &comment,
        ),
        rule_cmd(&mac_chain, json!([{ "drop": null }]), &comment),
    ]);
    nft::apply_json(commands)
}

/// The commands removing the given attachments' PREROUTING jumps and chains, as far as they
/// exist in `listing`. `comments` are spoof-check comments (`macspoofchk-<id>-<ifname>`).
fn removal_commands(listing: &Listing, comments: &HashSet<String>) -> Vec<Value> {
    let mut commands: Vec<Value> = listing
        .rules
        .iter()
        .filter(|r| r.chain == BASE_CHAIN)
        .filter(|r| r.comment.as_ref().is_some_and(|c| comments.contains(c)))
        .map(|r| delete_rule_cmd(BASE_CHAIN, r.handle))
        .collect();
    let chains: Vec<String> = comments
        .iter()
        .filter_map(|c| c.strip_prefix(COMMENT_PREFIX))
        .flat_map(|r| {
            let iface = format!("cni-br-iface-{r}");
            let mac = format!("{iface}-mac");
            [iface, mac]
        })
        .filter(|c| listing.chains.contains(c))
        .collect();
    // Flush all before deleting any: the iface chain's jump references the mac chain, and a
    // referenced chain cannot be deleted.
    commands.extend(chains.iter().map(|c| json!({ "flush": chain_obj(c) })));
    commands.extend(chains.iter().map(|c| json!({ "delete": chain_obj(c) })));
    commands
}

/// Removes one attachment's spoof check: its PREROUTING jumps (found by comment, so the veth name
/// and MAC are not needed) and its two chains. The table and PREROUTING stay, as in the
/// reference. Idempotent; never creates anything. 1 spawn if something is removed, none
/// otherwise.
pub fn teardown_spoofcheck(container_id: &str, ifname: &str) -> Result<()> {
    let listing = attachment_listing(container_id, ifname)?;
    let comments = HashSet::from([spoofcheck_comment(container_id, ifname)]);
    let commands = removal_commands(&listing, &comments);
    if commands.is_empty() {
        return Ok(());
    }
    nft::apply_json(commands)
}

/// True if a link with this name exists in the calling thread's netns.
fn link_exists(name: &str) -> bool {
    if name.contains('\0') {
        // Cannot be a real name; answer "exists" so GC keeps whatever refers to it.
        return true;
    }
    nix::net::if_::if_nametoindex(name).is_ok()
}

/// Removes spoof checks whose attachment is not in `valid` (`(container_id, ifname)` pairs)
/// **and** whose host veth no longer exists in the calling thread's netns.
///
/// The second condition is what makes this safe to call from one network's GC: spoof-check
/// names carry no network, so `valid` (one network's attachments) cannot tell another network's
/// live attachment from a leak, but a live attachment always has its host veth, which vanishes
/// with the container's netns. Chains that no PREROUTING rule jumps to are left alone (the Go
/// plugin's two-transaction setup briefly creates such chains). The reference has no GC here.
/// 1 spawn, plus 1 if something is removed.
pub fn gc_spoofcheck(valid: &[(&str, &str)]) -> Result<()> {
    let Some(listing) = list_table()? else {
        return Ok(());
    };
    let valid: HashSet<String> = valid
        .iter()
        .map(|(id, ifname)| spoofcheck_comment(id, ifname))
        .collect();

    // comment -> host veth names its PREROUTING jumps match on.
    let mut attachments: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for rule in listing.rules.iter().filter(|r| r.chain == BASE_CHAIN) {
        let Some(comment) = rule.comment.as_deref() else {
            continue;
        };
        if comment.starts_with(COMMENT_PREFIX) && !valid.contains(comment) {
            let iifname = rule
                .expr
                .get(0)
                .and_then(|m| m.pointer("/match/right"))
                .and_then(Value::as_str);
            attachments.entry(comment).or_default().extend(iifname);
        }
    }
    let stale: HashSet<String> = attachments
        .into_iter()
        .filter(|(_, veths)| !veths.iter().any(|v| link_exists(v)))
        .map(|(comment, _)| comment.to_owned())
        .collect();
    // A chain of a stale attachment that is also a chain of a valid one (`<id>-<if>-mac` is
    // ambiguous when an ifname ends in `-mac`) is kept.
    let keep: HashSet<String> = valid
        .iter()
        .filter_map(|c| c.strip_prefix(COMMENT_PREFIX))
        .flat_map(|r| [format!("cni-br-iface-{r}"), format!("cni-br-iface-{r}-mac")])
        .collect();

    let commands: Vec<Value> = removal_commands(&listing, &stale)
        .into_iter()
        .filter(|cmd| {
            cmd.pointer("/flush/chain/name")
                .or_else(|| cmd.pointer("/delete/chain/name"))
                .and_then(Value::as_str)
                .is_none_or(|name| !keep.contains(name))
        })
        .collect();
    if commands.is_empty() {
        return Ok(());
    }
    log::info!(
        "spoof check GC: removing {} stale attachment(s)",
        stale.len()
    );
    nft::apply_json(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_normalisation() {
        assert_eq!(
            normalize_mac("0A:58:0a:f4:01:02").unwrap(),
            "0a:58:0a:f4:01:02"
        );
        assert_eq!(
            normalize_mac("0a-58-0a-f4-01-02").unwrap(),
            "0a:58:0a:f4:01:02"
        );
        for bad in [
            "",
            "0a:58:0a:f4:01",
            "0a:58:0a:f4:01:2",
            "0a:58:0a:f4:01:0g",
            "0a:58:0a:f4:01:02:03",
        ] {
            let err = normalize_mac(bad).unwrap_err();
            assert!(err.is_config_error(), "{bad}: {err}");
        }
    }

    #[test]
    fn setup_rejects_bad_arguments_before_running_anything() {
        assert!(setup_spoofcheck("c", "eth0", "veth0", "nope").is_err());
        assert!(setup_spoofcheck("c", "eth0", "", "02:00:00:00:00:01").is_err());
        assert!(setup_spoofcheck("c", "eth0", "sixteen-bytes-xx", "02:00:00:00:00:01").is_err());
        assert_eq!(crate::exec::take_spawn_count(), 0);
    }
}
