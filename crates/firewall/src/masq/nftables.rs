//! nftables backend of a masquerade plan: the reference's ruleset
//! (PL:pkg/ip/ipmasq_nftables_linux.go) in `table inet cni_plugins_masquerade`, so that the Go
//! plugin and ours share it on one node.
//!
//! Written and read over netlink (`cni_netlink::nftables`), not with `nft`: ADD and DEL run no
//! process. With a cold page cache (the first pods after a node boots) reading `nft` and its
//! 4.2 MB of libraries from disk was half of a masquerading bridge ADD (bench/analysis.md,
//! "Cold start"). The messages are the ones `nft` sends for the reference's commands, so
//! `nft list ruleset` shows the same ruleset either way.

use cni_netlink::nftables::{Action, AddressField, AddressMatch, Batch, Hook};
use ipnetwork::IpNetwork;

use super::{Family, MasqPlan, Selector};
use crate::{Error, Result};

const TABLE: &str = "cni_plugins_masquerade";
const CHAIN: &str = "masq_checks";
const POSTROUTING: &str = "postrouting";
const TABLE_COMMENT: &str = "Masquerading for plugins from github.com/containernetworking/plugins";
const CHAIN_COMMENT: &str =
    "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet";
/// `srcnat`, the reference's priority for the `postrouting` chain.
const SRCNAT_PRIORITY: i32 = 100;

fn netlink_error(what: &'static str) -> impl FnOnce(cni_netlink::Error) -> Error {
    move |source| Error::Netlink { what, source }
}

/// Handles of the `masq_checks` rules whose comment `selector` matches. No table or chain means
/// no rules (the reference's `findRules` does the same).
///
/// Read with one netlink dump rather than `nft -j list chain` (which the reference runs): the
/// chain holds a rule per masqueraded address on the node, and `nft` rendering it all as JSON
/// grew ADD and DEL with every attachment (25 ms at 1 000, against 2 ms for the dump).
fn find_rules(selector: &Selector) -> Result<Vec<u64>> {
    let rules = cni_netlink::nftables::inet_chain_rules(TABLE, CHAIN).map_err(netlink_error(
        "list inet cni_plugins_masquerade masq_checks",
    ))?;
    Ok(rules
        .into_iter()
        .filter(|r| r.comment.as_deref().is_some_and(|c| selector.matches(c)))
        .map(|r| r.handle)
        .collect())
}

/// The whole setup transaction, as the reference's: declare the table and chains, rebuild
/// `postrouting` (the reference flushes and re-adds it on every ADD), delete the attachment's
/// stale rules and add one rule per address.
fn setup_batch(plan: &MasqPlan, stale: &[u64]) -> cni_netlink::Result<Batch> {
    let mut batch = Batch::new();
    batch.add_table(TABLE, TABLE_COMMENT)?;
    batch.add_chain(TABLE, CHAIN, CHAIN_COMMENT)?;
    batch.add_base_chain(
        TABLE,
        POSTROUTING,
        Hook::NatPostrouting {
            priority: SRCNAT_PRIORITY,
        },
    );
    batch.flush_chain(TABLE, POSTROUTING);
    for family in [Family::V4, Family::V6] {
        let multicast = AddressMatch {
            field: AddressField::Destination,
            network: family.multicast(),
            equal: true,
        };
        batch.add_rule(TABLE, POSTROUTING, &[multicast], Action::Return, None)?;
    }
    batch.add_rule(TABLE, POSTROUTING, &[], Action::Goto(CHAIN), None)?;
    for &handle in stale {
        batch.delete_rule(TABLE, CHAIN, handle);
    }
    for rule in &plan.rules {
        let matches = [
            AddressMatch {
                field: AddressField::Source,
                network: IpNetwork::from(rule.addr),
                equal: true,
            },
            AddressMatch {
                field: AddressField::Destination,
                network: rule.subnet,
                equal: false,
            },
        ];
        batch.add_rule(
            TABLE,
            CHAIN,
            &matches,
            Action::Masquerade,
            Some(&plan.comment),
        )?;
    }
    Ok(batch)
}

/// Installs `plan`: one netlink dump, then one batch. No process.
pub(super) fn setup(plan: &MasqPlan) -> Result<()> {
    let stale = find_rules(&Selector::Attachment {
        instance: plan.instance.clone(),
        chain: plan.chain.clone(),
    })?;
    setup_batch(plan, &stale)
        .and_then(|batch| batch.commit("inet cni_plugins_masquerade"))
        .map_err(netlink_error("set up inet cni_plugins_masquerade"))
}

/// Deletes the rules `selector` matches: one netlink dump, plus one batch if there is
/// something to delete. The table and the shared chains stay, as in the reference.
pub(super) fn remove(selector: &Selector) -> Result<()> {
    let mut batch = Batch::new();
    for handle in find_rules(selector)? {
        batch.delete_rule(TABLE, CHAIN, handle);
    }
    batch
        .commit("inet cni_plugins_masquerade masq_checks")
        .map_err(netlink_error(
            "delete from inet cni_plugins_masquerade masq_checks",
        ))
}
