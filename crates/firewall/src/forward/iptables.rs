//! The iptables rendering of the firewall plugin's rules, in the `filter` table, exactly as the
//! reference (Debian's 1.1.1) writes them and as `iptables -S` prints them:
//!
//! ```text
//! -A FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-1
//! -A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
//! -A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
//! -A CNI-FORWARD -d 10.88.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//! -A CNI-FORWARD -s 10.88.0.5/32 -j ACCEPT
//! -A CNI-ISOLATION-STAGE-1 -i cni0 ! -o cni0 -m comment --comment "..." -j CNI-ISOLATION-STAGE-2
//! -A CNI-ISOLATION-STAGE-1 -m comment --comment "..." -j RETURN
//! -A CNI-ISOLATION-STAGE-2 -o cni0 -m comment --comment "..." -j DROP
//! -A CNI-ISOLATION-STAGE-2 -m comment --comment "..." -j RETURN
//! ```
//!
//! Where the reference runs one `iptables` per rule (check, then insert), we list the table once
//! and send what is missing as one `iptables-restore --noflush` batch per family: atomic, and
//! the xtables lock taken once. Chains are created with `-N`, which fails if another ADD
//! created the chain since our listing (a `:CHAIN` line would flush its rules instead); the
//! batch is then rebuilt from a fresh listing.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use super::{FORWARD_CHAIN, ForwardPlan, Isolation};
use crate::masq::Family;
use crate::masq::iptables::{Saved, parse_saved, programs, quote};
use crate::{Error, Result, exec};

const BACKEND: &str = "iptables";
const STAGE1: &str = "CNI-ISOLATION-STAGE-1";
const STAGE2: &str = "CNI-ISOLATION-STAGE-2";
/// The comment on the bridge-independent isolation rules (Debian's 1.1.1 wording).
const ISOLATION_COMMENT: &str = "CNI firewall plugin rules (ingressPolicy: same-bridge)";
/// Attempts at a batch that lost a race with another ADD creating the same chain.
const ATTEMPTS: usize = 3;

fn family_of(ip: &IpAddr) -> Family {
    if ip.is_ipv4() { Family::V4 } else { Family::V6 }
}

/// The two rules of one container address in `CNI-FORWARD`, as `-S` prints them after the
/// chain name.
fn container_rules(ip: &IpAddr) -> [String; 2] {
    let len = if ip.is_ipv4() { 32 } else { 128 };
    [
        format!("-d {ip}/{len} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        format!("-s {ip}/{len} -j ACCEPT"),
    ]
}

fn commented(comment: &str, target: &str) -> String {
    format!("-m comment --comment {} -j {target}", quote(comment))
}

/// One rule of the plan: its chain, how it is added, and its spec.
struct PlannedRule {
    chain: &'static str,
    /// `true`: inserted first in the chain (`-I CHAIN 1`); `false`: appended.
    first: bool,
    spec: String,
}

/// The `FORWARD` → `CNI-FORWARD` → admin chain jumps, each inserted first.
fn base_rules(admin_chain: &str) -> Vec<PlannedRule> {
    vec![
        PlannedRule {
            chain: "FORWARD",
            first: true,
            spec: commented("CNI firewall plugin rules", FORWARD_CHAIN),
        },
        PlannedRule {
            chain: FORWARD_CHAIN,
            first: true,
            spec: commented("CNI firewall plugin admin overrides", admin_chain),
        },
    ]
}

/// The isolation rules, in the reference's order of insertion.
fn isolation_rules(isolation: &Isolation) -> Vec<PlannedRule> {
    let bridge = &isolation.bridge;
    let policy = if isolation.same_bridge_too {
        "isolated"
    } else {
        "same-bridge"
    };
    let policy_comment = format!("CNI firewall plugin rules (ingressPolicy: {policy})");
    let mut rules = vec![
        PlannedRule {
            chain: "FORWARD",
            first: true,
            spec: commented(ISOLATION_COMMENT, STAGE1),
        },
        PlannedRule {
            chain: STAGE1,
            first: true,
            spec: format!(
                "-i {bridge} ! -o {bridge} {}",
                commented(&policy_comment, STAGE2)
            ),
        },
    ];
    if isolation.same_bridge_too {
        rules.push(PlannedRule {
            chain: STAGE1,
            first: true,
            spec: format!(
                "-i {bridge} -o {bridge} {}",
                commented(&policy_comment, "DROP")
            ),
        });
    }
    rules.extend([
        PlannedRule {
            chain: STAGE1,
            first: false,
            spec: commented(ISOLATION_COMMENT, "RETURN"),
        },
        PlannedRule {
            chain: STAGE2,
            first: true,
            spec: format!("-o {bridge} {}", commented(ISOLATION_COMMENT, "DROP")),
        },
        PlannedRule {
            chain: STAGE2,
            first: false,
            spec: commented(ISOLATION_COMMENT, "RETURN"),
        },
    ]);
    rules
}

/// The filter table of one family (1 spawn).
fn list(family: Family) -> Result<Saved> {
    let (iptables, _) = programs(family);
    let out = exec::run(iptables, BACKEND, &["--wait", "-t", "filter", "-S"], None)?;
    Ok(parse_saved(&out))
}

/// The `-A` specs of `saved`, as `CHAIN spec` strings, for membership tests.
fn present(saved: &Saved) -> HashSet<String> {
    saved
        .rules
        .iter()
        .map(|r| r.spec.trim_start().to_owned())
        .collect()
}

fn restore(family: Family, commands: &str) -> Result<()> {
    let (_, restore) = programs(family);
    let batch = format!("*filter\n{commands}COMMIT\n");
    exec::run(restore, BACKEND, &["--wait", "--noflush"], Some(&batch)).map(drop)
}

/// The batch that adds what `plan` needs in `family` and `saved` lacks, and the container
/// rules it adds (for the undo).
fn render_allow(plan: &ForwardPlan, family: Family, saved: &Saved) -> (String, Vec<String>) {
    let have = present(saved);
    let mut batch = String::new();
    let mut chains = Vec::new();
    if let Some(admin_chain) = plan.admin_chain {
        chains.extend([FORWARD_CHAIN, admin_chain]);
    }
    if plan.isolation.is_some() {
        chains.extend([STAGE1, STAGE2]);
    }
    for chain in chains {
        if !saved.chains.contains(chain) {
            let _ = writeln!(batch, "-N {chain}");
        }
    }
    let mut rules = plan.admin_chain.map(base_rules).unwrap_or_default();
    let mut added = Vec::new();
    let container_ips = plan.ips.iter().filter(|_| plan.admin_chain.is_some());
    for ip in container_ips.filter(|ip| family_of(ip) == family) {
        for spec in container_rules(ip) {
            if !have.contains(&format!("{FORWARD_CHAIN} {spec}")) && !added.contains(&spec) {
                added.push(spec.clone());
            }
            rules.push(PlannedRule {
                chain: FORWARD_CHAIN,
                first: false,
                spec,
            });
        }
    }
    // The reference inserts the isolation jump after `CNI-FORWARD`'s, so it ends up first.
    rules.extend(plan.isolation.map(isolation_rules).unwrap_or_default());
    let mut written = HashSet::new();
    for rule in rules {
        let line = format!("{} {}", rule.chain, rule.spec);
        if have.contains(&line) || !written.insert(line.clone()) {
            continue;
        }
        if rule.first {
            let _ = writeln!(batch, "-I {} 1 {}", rule.chain, rule.spec);
        } else {
            let _ = writeln!(batch, "-A {line}");
        }
    }
    (batch, added)
}

/// Adds what `plan` lacks in one family, retrying when a concurrent ADD created a chain
/// between our listing and our batch. Returns the container rules added.
fn allow_family(plan: &ForwardPlan, family: Family) -> Result<Vec<String>> {
    let mut attempt = 1;
    loop {
        let (batch, added) = render_allow(plan, family, &list(family)?);
        if batch.is_empty() {
            return Ok(added);
        }
        match restore(family, &batch) {
            Ok(()) => return Ok(added),
            Err(Error::CommandFailed { ref stderr, .. })
                if attempt < ATTEMPTS && stderr.contains("Chain already exists") =>
            {
                log::debug!("firewall: a chain appeared while adding, listing again");
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

pub(super) fn allow(plan: &ForwardPlan) -> Result<()> {
    let mut done: Vec<(Family, Vec<String>)> = Vec::new();
    for family in [Family::V4, Family::V6] {
        if !plan.ips.iter().any(|ip| family_of(ip) == family) {
            continue;
        }
        match allow_family(plan, family) {
            Ok(added) => done.push((family, added)),
            Err(e) => {
                for (family, added) in done {
                    let batch: String = added
                        .iter()
                        .map(|spec| format!("-D {FORWARD_CHAIN} {spec}\n"))
                        .collect();
                    if let Err(undo) = restore(family, &batch) {
                        log::warn!("firewall: undoing the rules already added failed: {undo}");
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

pub(super) fn revoke(ips: &[IpAddr]) -> Result<()> {
    let mut errors = Vec::new();
    for family in [Family::V4, Family::V6] {
        let ours: Vec<&IpAddr> = ips.iter().filter(|ip| family_of(ip) == family).collect();
        if ours.is_empty() {
            continue;
        }
        let result = list(family).and_then(|saved| {
            let have = present(&saved);
            let batch: String = ours
                .iter()
                .flat_map(|ip| container_rules(ip))
                .map(|spec| format!("{FORWARD_CHAIN} {spec}"))
                .filter(|line| have.contains(line))
                .map(|line| format!("-D {line}\n"))
                .collect();
            if batch.is_empty() {
                Ok(())
            } else {
                restore(family, &batch)
            }
        });
        match result {
            Ok(()) | Err(Error::NotAvailable { .. }) => {}
            Err(e) => errors.push(e),
        }
    }
    Error::collect(errors)
}

pub(super) fn missing(admin_chain: &str, ips: &[IpAddr]) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    for family in [Family::V4, Family::V6] {
        if !ips.iter().any(|ip| family_of(ip) == family) {
            continue;
        }
        let saved = list(family)?;
        let have = present(&saved);
        let (iptables, _) = programs(family);
        for chain in [FORWARD_CHAIN, admin_chain] {
            if !saved.chains.contains(chain) {
                missing.push(format!("{iptables} chain {chain}"));
            }
        }
        let mut wanted: Vec<String> = base_rules(admin_chain)
            .into_iter()
            .map(|rule| format!("{} {}", rule.chain, rule.spec))
            .collect();
        for ip in ips.iter().filter(|ip| family_of(ip) == family) {
            wanted.extend(
                container_rules(ip)
                    .into_iter()
                    .map(|spec| format!("{FORWARD_CHAIN} {spec}")),
            );
        }
        missing.extend(
            wanted
                .into_iter()
                .filter(|line| !have.contains(line))
                .map(|line| format!("{iptables} rule -A {line}")),
        );
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_rules(plan: &ForwardPlan, family: Family, saved: &str) -> String {
        render_allow(plan, family, &parse_saved(saved)).0
    }

    #[test]
    fn renders_the_reference_rules_into_an_empty_table() {
        let ips: Vec<IpAddr> = vec!["10.88.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        let isolation = Isolation {
            bridge: "cni0".into(),
            same_bridge_too: false,
        };
        let plan = ForwardPlan {
            admin_chain: Some("CNI-ADMIN"),
            ips: &ips,
            isolation: Some(&isolation),
        };
        let batch = plan_rules(&plan, Family::V4, "-P FORWARD ACCEPT\n");
        let c = |s: &str| quote(s);
        assert_eq!(
            batch,
            format!(
                "-N CNI-FORWARD\n-N CNI-ADMIN\n-N {STAGE1}\n-N {STAGE2}\n\
                 -I FORWARD 1 -m comment --comment {} -j CNI-FORWARD\n\
                 -I CNI-FORWARD 1 -m comment --comment {} -j CNI-ADMIN\n\
                 -A CNI-FORWARD -d 10.88.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
                 -A CNI-FORWARD -s 10.88.0.5/32 -j ACCEPT\n\
                 -I FORWARD 1 -m comment --comment {i} -j {STAGE1}\n\
                 -I {STAGE1} 1 -i cni0 ! -o cni0 -m comment --comment {i} -j {STAGE2}\n\
                 -A {STAGE1} -m comment --comment {i} -j RETURN\n\
                 -I {STAGE2} 1 -o cni0 -m comment --comment {i} -j DROP\n\
                 -A {STAGE2} -m comment --comment {i} -j RETURN\n",
                c("CNI firewall plugin rules"),
                c("CNI firewall plugin admin overrides"),
                i = c(ISOLATION_COMMENT),
            )
        );
        // Everything present: nothing to do.
        let saved: String = batch
            .lines()
            .map(|l| {
                if let Some(rest) = l.strip_prefix("-I ") {
                    let (chain, spec) = rest.split_once(" 1 ").unwrap();
                    format!("-A {chain} {spec}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        assert_eq!(plan_rules(&plan, Family::V4, &saved), "");
        assert!(plan_rules(&plan, Family::V6, "").contains("-s fd00::5/128 -j ACCEPT"));
    }
}
