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

/// The rules of `postrouting`, in order: multicast destinations return, the rest goes to
/// `masq_checks`.
fn postrouting_rules() -> [(Vec<AddressMatch>, Action<'static>); 3] {
    let multicast = |family: Family| AddressMatch {
        field: AddressField::Destination,
        network: family.multicast(),
        equal: true,
    };
    [
        (vec![multicast(Family::V4)], Action::Return),
        (vec![multicast(Family::V6)], Action::Return),
        (Vec::new(), Action::Goto(CHAIN)),
    ]
}

/// Whether the table, both chains and `postrouting`'s rules are in place exactly as
/// [`setup_batch`] would write them (one dump of `postrouting`; its `goto` proves that
/// `masq_checks`, and so the table, exist).
fn shared_part_intact() -> Result<bool> {
    let dumped = cni_netlink::nftables::inet_chain_rules(TABLE, POSTROUTING).map_err(
        netlink_error("list inet cni_plugins_masquerade postrouting"),
    )?;
    let wanted = postrouting_rules();
    Ok(dumped.len() == wanted.len()
        && dumped
            .iter()
            .zip(&wanted)
            .all(|(rule, (matches, action))| rule.expresses(matches, *action)))
}

/// The setup transaction: delete the attachment's stale rules and add one rule per address;
/// with `declare_shared`, first declare the table and chains and rebuild `postrouting`, as the
/// reference does on every ADD (it flushes and re-adds `postrouting` each time).
///
/// Why not always: re-declaring a chain that exists, and flushing one, leave objects that
/// nf_tables frees only after an RCU grace period, and the close of the netlink socket that
/// committed them waits for that (`nft_rcv_nl_event` flushes nf_tables' destroy work). That
/// wait was 10–13 ms of every masquerading ADD here, more than all the rest of it; with only
/// new rules in the batch it is gone. So a node pays it once, and again only when someone
/// changed the shared part.
fn setup_batch(plan: &MasqPlan, stale: &[u64], declare_shared: bool) -> cni_netlink::Result<Batch> {
    let mut batch = Batch::new();
    if declare_shared {
        declare_shared_part(&mut batch)?;
    }
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

/// The table, both chains, and `postrouting` flushed and filled again.
fn declare_shared_part(batch: &mut Batch) -> cni_netlink::Result<()> {
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
    for (matches, action) in postrouting_rules() {
        batch.add_rule(TABLE, POSTROUTING, &matches, action, None)?;
    }
    Ok(())
}

/// Installs `plan`: two netlink dumps, then one batch. No process.
pub(super) fn setup(plan: &MasqPlan) -> Result<()> {
    let stale = find_rules(&Selector::Attachment {
        instance: plan.instance.clone(),
        chain: plan.chain.clone(),
    })?;
    let declare_shared = !shared_part_intact()?;
    setup_batch(plan, &stale, declare_shared)
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
