//! iptables rendering of a masquerade plan: one `nat` chain per attachment, jumped to from
//! `POSTROUTING` once per address, with the reference's rules inside
//! (PL:pkg/ip/ipmasq_iptables_linux.go).
//!
//! Deviations from the reference, all so that DEL and GC can find everything from the
//! attachment alone (docs/reference.md#defect-2 and docs/reference.md#defect-3):
//! - the chain is [`masquerade_chain_name`](crate::masquerade_chain_name), keyed by ifname too;
//! - every rule carries the nftables backend's comment (`<h1>-<h2>, net: ..., if: ..., id: ...`)
//!   instead of `name: "<net>" id: "<id>"`, so rules are found by attachment or by network
//!   without knowing the IPs;
//! - changes go through one `iptables-restore --noflush` batch per family, which applies
//!   atomically and takes the xtables lock once, instead of one `iptables` run per rule (the lock
//!   contention users report at scale, docs/reference.md#field-reports);
//! - all `ACCEPT` rules come before the single `MASQUERADE` rule. The reference appends per IP,
//!   so with two IPs of one family the second `ACCEPT` lands after `MASQUERADE` and never matches.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{Family, MasqPlan, Selector};
use crate::naming::MASQ_CHAIN_PREFIX;
use crate::{Error, Result, exec};

const BACKEND: &str = "iptables";

/// (`iptables`, `iptables-restore`) for the family.
pub(crate) fn programs(family: Family) -> (&'static str, &'static str) {
    match family {
        Family::V4 => ("iptables", "iptables-restore"),
        Family::V6 => ("ip6tables", "ip6tables-restore"),
    }
}

/// A host prefix for `-s`: iptables prints `-s 10.0.0.2/32`, so we write it that way too.
fn host_len(family: Family) -> u8 {
    match family {
        Family::V4 => 32,
        Family::V6 => 128,
    }
}

/// One `-A` line of `iptables -S`.
#[derive(Debug)]
pub(crate) struct SavedRule {
    pub(crate) chain: String,
    /// The line after `-A`: ` CHAIN <rule spec>`, re-usable as `-D` + `spec` in a restore batch.
    pub(crate) spec: String,
    pub(crate) comment: Option<String>,
}

/// A table as `iptables -t <table> -S` prints it.
#[derive(Debug, Default)]
pub(crate) struct Saved {
    /// User chains (`-N` lines).
    pub(crate) chains: BTreeSet<String>,
    pub(crate) rules: Vec<SavedRule>,
}

/// Lists the `nat` table (1 spawn). Listing does not create the table (iptables-nft 1.8.9,
/// checked in an empty netns).
///
/// Its cost grows with every chain in the table: iptables-nft fetches the rules one chain at a
/// time, so with 1 000 masqueraded attachments this is 1 009 netlink dumps and 1.9 MB read.
pub(crate) fn list(family: Family) -> Result<Saved> {
    list_args(family, &[])
}

/// Lists one chain of the `nat` table (1 spawn): one dump of that chain's rules (at 1 000
/// attachments, 11 netlink requests and 0.6 MB for `POSTROUTING`, against `list`'s 1 009 and
/// 1.9 MB).
fn list_chain(family: Family, chain: &str) -> Result<Saved> {
    list_args(family, &[chain])
}

fn list_args(family: Family, chain: &[&str]) -> Result<Saved> {
    let (iptables, _) = programs(family);
    let mut args = vec!["--wait", "-t", "nat", "-S"];
    args.extend_from_slice(chain);
    let out = exec::run(iptables, BACKEND, &args, None)?;
    Ok(parse_saved(&out))
}

pub(crate) fn parse_saved(out: &str) -> Saved {
    let mut saved = Saved::default();
    for line in out.lines() {
        if let Some(chain) = line.strip_prefix("-N ") {
            saved.chains.insert(chain.trim().to_owned());
        } else if let Some(spec) = line.strip_prefix("-A") {
            if let Some(chain) = spec.split_whitespace().next() {
                saved.rules.push(SavedRule {
                    chain: chain.to_owned(),
                    spec: spec.to_owned(),
                    comment: parse_comment(line),
                });
            }
        }
    }
    saved
}

/// The `--comment` argument of a saved rule. iptables-save quotes it when it contains spaces and
/// escapes `"` and `\` with a backslash (`xtables_save_string`).
fn parse_comment(line: &str) -> Option<String> {
    let (_, rest) = line.split_once(" --comment ")?;
    let Some(quoted) = rest.strip_prefix('"') else {
        return rest.split_whitespace().next().map(str::to_owned);
    };
    let mut comment = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => comment.push(chars.next()?),
            '"' => return Some(comment),
            _ => comment.push(c),
        }
    }
    None
}

/// Quotes `s` for an iptables-restore line, escaping as iptables-save does.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Feeds one `*nat ... COMMIT` batch to `iptables-restore --noflush` (1 spawn). `--noflush`
/// leaves everything not named in the batch alone.
pub(crate) fn restore(family: Family, commands: &str) -> Result<()> {
    let (_, restore) = programs(family);
    let batch = format!("*nat\n{commands}COMMIT\n");
    exec::run(restore, BACKEND, &["--wait", "--noflush"], Some(&batch)).map(drop)
}

/// Installs the plan, one batch per family that has addresses.
///
/// A new attachment costs 1 spawn per family and reads nothing back: the batch starts with
/// `-N`, which fails (and the whole batch with it) if the attachment's chain exists. No chain
/// means no `POSTROUTING` jump of ours either, as neither kernel backend lets a rule jump to a
/// missing chain or a chain be deleted while jumped to. Only when the chain exists (the same
/// attachment set up again) is `POSTROUTING` listed (2 more spawns) and the state replaced:
/// the `:CHAIN` declaration flushes the chain and the previous jumps, found by comment, are
/// deleted in the same batch. A family with no address now is left as it is (a previous ADD of
/// the same attachment with other families is undone by DEL, which covers both).
pub(super) fn setup(plan: &MasqPlan) -> Result<()> {
    let own = Selector::Attachment {
        instance: plan.instance.clone(),
        chain: plan.chain.clone(),
    };
    let chain = &plan.chain;
    for family in [Family::V4, Family::V6] {
        let Some(rules) = render_rules(plan, family) else {
            continue;
        };
        match restore(family, &format!("-N {chain}\n{rules}")) {
            Ok(()) => continue,
            Err(e @ Error::CommandFailed { .. }) => {
                log::debug!("{chain} is not new ({e}); replacing it");
            }
            Err(e) => return Err(e),
        }
        let saved = list_chain(family, "POSTROUTING")?;
        let mut batch = String::new();
        // `writeln!` into a String cannot fail; the results are ignored on purpose.
        let _ = writeln!(batch, ":{chain} - [0:0]");
        for rule in &saved.rules {
            if rule.chain != *chain && rule.comment.as_deref().is_some_and(|c| own.matches(c)) {
                let _ = writeln!(batch, "-D{}", rule.spec);
            }
        }
        batch.push_str(&rules);
        restore(family, &batch)?;
    }
    Ok(())
}

/// The `-A` lines of the plan's `family` addresses: the chain's rules, then one `POSTROUTING`
/// jump per address. `None` if the plan has no address of that family.
fn render_rules(plan: &MasqPlan, family: Family) -> Option<String> {
    let rules: Vec<_> = plan.rules_of(family).collect();
    if rules.is_empty() {
        return None;
    }
    let chain = &plan.chain;
    let comment = quote(&plan.comment);
    let mut batch = String::new();
    let subnets: BTreeSet<_> = rules.iter().map(|r| r.subnet).collect();
    for subnet in subnets {
        let _ = writeln!(
            batch,
            "-A {chain} -d {subnet} -m comment --comment {comment} -j ACCEPT"
        );
    }
    let _ = writeln!(
        batch,
        "-A {chain} ! -d {} -m comment --comment {comment} -j MASQUERADE",
        family.multicast()
    );
    for rule in rules {
        let _ = writeln!(
            batch,
            "-A POSTROUTING -s {}/{} -m comment --comment {comment} -j {chain}",
            rule.addr,
            host_len(family)
        );
    }
    Some(batch)
}

/// The restore commands that remove what `selector` matches, or `None` if there is nothing:
/// `-D` for matching rules in other chains (the `POSTROUTING` jumps), then `-F`/`-X` for our
/// chains that hold matching rules (plus the selector's own chain if it exists).
fn render_remove(saved: &Saved, selector: &Selector) -> Option<String> {
    let matching = |r: &&SavedRule| r.comment.as_deref().is_some_and(|c| selector.matches(c));
    // Only chains with our prefix are ever deleted, whatever their comments say.
    let mut chains: BTreeSet<&str> = saved
        .rules
        .iter()
        .filter(matching)
        .map(|r| r.chain.as_str())
        .filter(|c| c.starts_with(MASQ_CHAIN_PREFIX) && saved.chains.contains(*c))
        .collect();
    if let Some(own) = selector.own_chain().filter(|c| saved.chains.contains(*c)) {
        chains.insert(own);
    }

    let mut batch = String::new();
    for rule in saved.rules.iter().filter(matching) {
        if !chains.contains(rule.chain.as_str()) {
            let _ = writeln!(batch, "-D{}", rule.spec);
        }
    }
    for chain in &chains {
        let _ = writeln!(batch, "-F {chain}\n-X {chain}");
    }
    (!batch.is_empty()).then_some(batch)
}

/// What [`remove`] needs to see. One attachment's rules are its chain and that chain's
/// `POSTROUTING` jumps, so listing `POSTROUTING` finds them all (the chain exists exactly when
/// a jump to it does, see [`setup`]) at a third of the whole table's cost. GC looks for every
/// chain of a network and lists the whole table.
fn list_for(family: Family, selector: &Selector) -> Result<Saved> {
    if selector.own_chain().is_none() {
        return list(family);
    }
    let mut saved = list_chain(family, "POSTROUTING")?;
    let targets: Vec<String> = saved
        .rules
        .iter()
        .filter_map(|r| {
            r.spec
                .rsplit_once(" -j ")
                .map(|(_, target)| target.trim().to_owned())
        })
        .collect();
    saved.chains.extend(targets);
    Ok(saved)
}

/// Removes what `selector` matches from both families (1 spawn per family, plus 1 per family
/// with something to remove). A missing `ip6tables` binary means there is nothing to remove.
pub(super) fn remove(selector: &Selector) -> Result<()> {
    let mut errors = Vec::new();
    for family in [Family::V4, Family::V6] {
        let result =
            list_for(family, selector).and_then(|saved| match render_remove(&saved, selector) {
                Some(batch) => restore(family, &batch),
                None => Ok(()),
            });
        match result {
            Ok(()) => {}
            Err(Error::NotAvailable { .. }) if family == Family::V6 => {
                log::debug!("ip6tables is not installed; no IPv6 masquerade rules to remove");
            }
            Err(e) => errors.push(e),
        }
    }
    Error::collect(errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::{instance_hash, network_hash};

    #[test]
    fn parses_saved_comments() {
        let line = r#"-A POSTROUTING -s 10.0.0.2/32 -m comment --comment "a\\b \"q\"" -j CNI-X"#;
        assert_eq!(parse_comment(line).as_deref(), Some(r#"a\b "q""#));
        assert_eq!(
            parse_comment("-A X -m comment --comment bare -j ACCEPT").as_deref(),
            Some("bare")
        );
        assert_eq!(parse_comment("-A X -j ACCEPT"), None);
        assert_eq!(parse_comment(r#"-A X --comment "unterminated"#), None);
        assert_eq!(quote(r#"a\b "q""#), r#""a\\b \"q\"""#);
    }

    #[test]
    fn remove_renders_deletes_and_chain_removal() {
        let ours = crate::masquerade_comment("net", "ctr", "eth0");
        let other = crate::masquerade_comment("net", "ctr", "eth1");
        let chain = crate::masquerade_chain_name("net", "ctr", "eth0");
        let chain1 = crate::masquerade_chain_name("net", "ctr", "eth1");
        let saved = parse_saved(&format!(
            "-P POSTROUTING ACCEPT\n-N {chain}\n-N {chain1}\n-N KUBE\n\
             -A POSTROUTING -s 10.0.0.2/32 -m comment --comment {q} -j {chain}\n\
             -A POSTROUTING -s 10.0.0.3/32 -m comment --comment {q1} -j {chain1}\n\
             -A {chain} -d 10.0.0.0/24 -m comment --comment {q} -j ACCEPT\n\
             -A {chain1} -d 10.0.0.0/24 -m comment --comment {q1} -j ACCEPT\n",
            q = quote(&ours),
            q1 = quote(&other),
        ));
        let selector = Selector::Attachment {
            instance: instance_hash("net", "ctr", "eth0"),
            chain: chain.clone(),
        };
        let batch = render_remove(&saved, &selector).unwrap();
        assert_eq!(
            batch,
            format!(
                "-D POSTROUTING -s 10.0.0.2/32 -m comment --comment {} -j {chain}\n-F {chain}\n-X {chain}\n",
                quote(&ours)
            )
        );

        // GC keeping eth1 renders the same; GC of another network renders nothing.
        let gc = Selector::NetworkExcept {
            network: network_hash("net"),
            valid: [instance_hash("net", "ctr", "eth1")].into(),
        };
        assert_eq!(render_remove(&saved, &gc).unwrap(), batch);
        let gc_other = Selector::NetworkExcept {
            network: network_hash("other"),
            valid: Default::default(),
        };
        assert_eq!(render_remove(&saved, &gc_other), None);
    }
}
