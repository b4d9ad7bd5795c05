//! The iptables backend of port forwarding, rule for rule the reference's
//! (upstream `plugins/meta/portmap/portmap_iptables.go`), all in the `nat` table:
//!
//! - `PREROUTING`, `OUTPUT`: `-m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT`;
//! - `CNI-HOSTPORT-DNAT`: per protocol, `-m multiport --dports <ports> -j CNI-DN-<hash>`,
//!   commented `dnat name: "<network>" id: "<container ID>"`;
//! - `CNI-DN-<hash>` (network + container ID): per mapping, the hairpin and localhost marks,
//!   then the DNAT;
//! - `CNI-HOSTPORT-SETMARK` sets the mark bit, `CNI-HOSTPORT-MASQ` (first in `POSTROUTING`)
//!   masquerades marked packets.
//!
//! Unlike the reference, which runs `iptables` once per rule, ADD is one
//! `iptables-restore --noflush` batch per family, so it applies whole or not at all. The shared
//! rules are written in the form `iptables -S` prints them, so "already there" is a string
//! comparison.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{MarkChain, PortMapSpec, both_families, ip_port};
use crate::masq::Family;
use crate::masq::iptables::{Saved, list, quote, restore};
use crate::{Error, Result, format_chain_name_with_prefix};

const TOP_DNAT: &str = "CNI-HOSTPORT-DNAT";
const SET_MARK: &str = "CNI-HOSTPORT-SETMARK";
const MARK_MASQ: &str = "CNI-HOSTPORT-MASQ";
/// Where older reference versions jumped to their `CNI-SN-` chains; DEL removes those too.
const OLD_TOP_SNAT: &str = "CNI-HOSTPORT-SNAT";
/// iptables keeps at most 255 bytes of comment; the reference cuts to 253 and adds `...`.
const COMMENT_MAX: usize = 255;
/// `-m multiport` takes at most 15 ports.
const MULTIPORT_MAX: usize = 15;

fn family(v6: bool) -> Family {
    if v6 { Family::V6 } else { Family::V4 }
}

/// The container's DNAT chain, `CNI-DN-` + hash of network and container ID.
fn dnat_chain(network: &str, container_id: &str) -> Result<String> {
    format_chain_name_with_prefix(network, container_id, "DN-")
}

/// The chain of older reference versions, removed by DEL if a node still has it.
fn old_snat_chain(network: &str, container_id: &str) -> Result<String> {
    format_chain_name_with_prefix(network, container_id, "SN-")
}

/// The entry rules' comment: `dnat name: "<network>" id: "<container ID>"`, cut as the
/// reference cuts it.
fn dnat_comment(network: &str, container_id: &str) -> String {
    let comment = format!(r#"dnat name: "{network}" id: "{container_id}""#);
    if comment.len() <= COMMENT_MAX {
        return comment;
    }
    let mut cut = COMMENT_MAX - 2;
    while !comment.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &comment[..cut])
}

/// `0x2000/0x2000` for bit 13, as the reference writes the mark (Go `%#x`).
fn mark_def(bit: u8) -> String {
    let value = 1u32 << bit;
    format!("{value:#x}/{value:#x}")
}

/// A rule line as `iptables -S` prints it, without the leading `-A`.
fn spec(chain: &str, rule: &str) -> String {
    format!(" {chain} {rule}")
}

/// Appends `-A chain rule` unless the listing has it; declares `chain` if absent.
fn ensure(batch: &mut String, saved: &Saved, chain: &str, rule: &str, prepend: bool) {
    let wanted = spec(chain, rule);
    if saved.rules.iter().any(|r| r.spec == wanted) {
        return;
    }
    if prepend {
        let _ = writeln!(batch, "-I {chain} 1 {rule}");
    } else {
        let _ = writeln!(batch, "-A {chain} {rule}");
    }
}

fn declare(batch: &mut String, saved: &Saved, chain: &str) {
    if !saved.chains.contains(chain) {
        let _ = writeln!(batch, ":{chain} - [0:0]");
    }
}

/// One word of a rule, quoted if `iptables-restore` would otherwise split it.
fn word(w: &str) -> String {
    if w.is_empty()
        || w.chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\')
    {
        quote(w)
    } else {
        w.to_owned()
    }
}

/// The whole ADD batch for one family, given the current `nat` listing.
fn render_forward(spec_: &PortMapSpec, saved: &Saved) -> Result<String> {
    let mut batch = String::new();
    let mark_chain = match &spec_.mark {
        MarkChain::Bit(bit) => {
            if spec_.snat {
                let mark = mark_def(*bit);
                for chain in [SET_MARK, MARK_MASQ] {
                    declare(&mut batch, saved, chain);
                }
                let set_mark = format!(
                    r#"-m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark {mark}"#
                );
                ensure(&mut batch, saved, SET_MARK, &set_mark, false);
                let masq = format!("-m mark --mark {mark} -j MASQUERADE");
                ensure(&mut batch, saved, MARK_MASQ, &masq, false);
                let entry = format!(
                    r#"-m comment --comment "CNI portfwd requiring masquerade" -j {MARK_MASQ}"#
                );
                ensure(&mut batch, saved, "POSTROUTING", &entry, true);
            }
            SET_MARK
        }
        MarkChain::External(chain) => chain.as_str(),
    };

    declare(&mut batch, saved, TOP_DNAT);
    for entry in ["PREROUTING", "OUTPUT"] {
        let rule = format!("-m addrtype --dst-type LOCAL -j {TOP_DNAT}");
        ensure(&mut batch, saved, entry, &rule, false);
    }

    // The container's chain is rebuilt: declaring it creates or flushes it, and its old entry
    // rules go in the same batch.
    let chain = dnat_chain(&spec_.network, &spec_.container_id)?;
    let jump = format!(" -j {chain}");
    for rule in &saved.rules {
        if rule.chain == TOP_DNAT && rule.spec.ends_with(&jump) {
            let _ = writeln!(batch, "-D{}", rule.spec);
        }
    }
    let _ = writeln!(batch, ":{chain} - [0:0]");
    render_dnat_rules(&mut batch, spec_, &chain, mark_chain);
    render_entry_rules(&mut batch, spec_, &chain);
    Ok(batch)
}

/// Per mapping: mark hairpin traffic, mark localhost traffic (IPv4), DNAT; the marks first.
fn render_dnat_rules(batch: &mut String, spec_: &PortMapSpec, chain: &str, mark_chain: &str) {
    let container = spec_.container;
    let hairpin_source = if spec_.masq_all {
        String::new()
    } else {
        format!("-s {}/{} ", container.network(), container.prefix())
    };
    for m in spec_.mappings() {
        let destination = m
            .host_destination()
            .map(|ip| format!("-d {ip}/{} ", if ip.is_ipv4() { 32 } else { 128 }))
            .unwrap_or_default();
        let proto = m.protocol.as_str();
        let port = format!("-p {proto} -m {proto} --dport {}", m.host_port);
        if spec_.snat {
            let _ = writeln!(
                batch,
                "-A {chain} {hairpin_source}{destination}{port} -j {mark_chain}"
            );
            if !spec_.is_v6() && !spec_.masq_all {
                let _ = writeln!(
                    batch,
                    "-A {chain} -s 127.0.0.1/32 {destination}{port} -j {mark_chain}"
                );
            }
        }
        let _ = writeln!(
            batch,
            "-A {chain} {destination}{port} -j DNAT --to-destination {}",
            ip_port(container.ip(), m.container_port)
        );
    }
}

/// The jumps from `CNI-HOSTPORT-DNAT`: per protocol (sorted), up to 15 ports each.
fn render_entry_rules(batch: &mut String, spec_: &PortMapSpec, chain: &str) {
    let comment = quote(&dnat_comment(&spec_.network, &spec_.container_id));
    let conditions: String = spec_
        .conditions
        .iter()
        .map(|c| format!(" {}", word(c)))
        .collect();
    // Every mapping counts here, even one whose `hostIP` is of the other family: the
    // reference groups them all, and the same rules let a node switch plugins.
    let protocols: BTreeSet<_> = spec_.mappings.iter().map(|m| m.protocol).collect();
    for protocol in protocols {
        let ports: Vec<String> = spec_
            .mappings
            .iter()
            .filter(|m| m.protocol == protocol)
            .map(|m| m.host_port.to_string())
            .collect();
        for group in ports.chunks(MULTIPORT_MAX) {
            let _ = writeln!(
                batch,
                "-A {TOP_DNAT} -p {} -m comment --comment {comment} -m multiport --dports {}{conditions} -j {chain}",
                protocol.as_str(),
                group.join(",")
            );
        }
    }
}

/// ADD for one address: list, then one batch (2 spawns).
pub(super) fn forward(spec_: &PortMapSpec) -> Result<()> {
    let family = family(spec_.is_v6());
    let saved = list(family)?;
    restore(family, &render_forward(spec_, &saved)?)
}

/// The batch removing `chains` and every jump to them from `entry_chains`, or `None`.
fn render_remove(saved: &Saved, chains: &[(&str, String)]) -> Option<String> {
    let mut batch = String::new();
    for (entry_chain, chain) in chains {
        if !saved.chains.contains(chain) {
            continue;
        }
        let jump = format!(" -j {chain}");
        for rule in &saved.rules {
            if rule.chain == *entry_chain && rule.spec.ends_with(&jump) {
                let _ = writeln!(batch, "-D{}", rule.spec);
            }
        }
        let _ = writeln!(batch, "-F {chain}\n-X {chain}");
    }
    (!batch.is_empty()).then_some(batch)
}

/// DEL: the container's `CNI-DN-` chain (and an old `CNI-SN-` one) with their jumps, in both
/// families (1 spawn per family, plus 1 where there is something to remove).
pub(super) fn unforward(network: &str, container_id: &str) -> Result<()> {
    let chains = [
        (TOP_DNAT, dnat_chain(network, container_id)?),
        (OLD_TOP_SNAT, old_snat_chain(network, container_id)?),
    ];
    both_families(|v6| {
        let family = family(v6);
        match render_remove(&list(family)?, &chains) {
            Some(batch) => restore(family, &batch),
            None => Ok(()),
        }
    })
}

/// GC: the chains that `CNI-HOSTPORT-DNAT` jumps to under `network`'s comment for a container
/// not in `valid`.
pub(super) fn gc(network: &str, valid: &[&str]) -> Result<()> {
    let prefix = format!(r#"dnat name: "{network}" id: ""#);
    both_families(|v6| {
        let family = family(v6);
        let saved = list(family)?;
        let stale: BTreeSet<String> = saved
            .rules
            .iter()
            .filter(|r| r.chain == TOP_DNAT)
            .filter(|r| {
                r.comment
                    .as_deref()
                    .and_then(|c| c.strip_prefix(&prefix))
                    .and_then(|id| id.strip_suffix('"'))
                    .is_some_and(|id| !valid.contains(&id))
            })
            .filter_map(|r| r.spec.rsplit_once(" -j ").map(|(_, c)| c.trim().to_owned()))
            .filter(|c| c.starts_with("CNI-DN-"))
            .collect();
        let chains: Vec<_> = stale.into_iter().map(|c| (TOP_DNAT, c)).collect();
        match render_remove(&saved, &chains) {
            Some(batch) => restore(family, &batch),
            None => Ok(()),
        }
    })
}

/// CHECK for one address: the container's chain exists with one rule per expected rule and
/// its DNAT targets, and `CNI-HOSTPORT-DNAT` jumps to it (1 spawn).
pub(super) fn check(spec_: &PortMapSpec) -> Result<()> {
    let saved = list(family(spec_.is_v6()))?;
    let chain = dnat_chain(&spec_.network, &spec_.container_id)?;
    let missing = |what: String| Error::Missing { what };
    if !saved.chains.contains(&chain) {
        return Err(missing(format!("chain {chain} in table nat")));
    }
    let mut expected = String::new();
    render_dnat_rules(&mut expected, spec_, &chain, "");
    for line in expected.lines().filter(|l| l.contains(" DNAT ")) {
        let target = line.rsplit_once(' ').map(|(_, t)| t).unwrap_or_default();
        let found = saved
            .rules
            .iter()
            .any(|r| r.chain == chain && r.spec.ends_with(&format!("--to-destination {target}")));
        if !found {
            return Err(missing(format!("DNAT to {target} in chain {chain}")));
        }
    }
    let jump = format!(" -j {chain}");
    if !saved
        .rules
        .iter()
        .any(|r| r.chain == TOP_DNAT && r.spec.ends_with(&jump))
    {
        return Err(missing(format!("jump to {chain} in chain {TOP_DNAT}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masq::iptables::parse_saved;
    use crate::portmap::{PortMapping, Protocol};

    fn spec(mark: MarkChain, mappings: Vec<PortMapping>) -> PortMapSpec {
        PortMapSpec {
            network: "net".into(),
            container_id: "ctr".into(),
            container: "10.0.0.2/24".parse().unwrap(),
            mappings,
            snat: true,
            masq_all: false,
            mark,
            conditions: vec!["-d".into(), "10.1.0.0/16".into()],
        }
    }

    fn tcp(host_port: u16) -> PortMapping {
        PortMapping {
            host_port,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: None,
        }
    }

    #[test]
    fn renders_the_reference_rules_and_skips_what_exists() {
        let spec = spec(MarkChain::Bit(13), vec![tcp(8080)]);
        let chain = dnat_chain("net", "ctr").unwrap();
        let batch = render_forward(&spec, &Saved::default()).unwrap();
        let expected = format!(
            r#":CNI-HOSTPORT-SETMARK - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-I POSTROUTING 1 -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
:CNI-HOSTPORT-DNAT - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
:{chain} - [0:0]
-A {chain} -s 10.0.0.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A {chain} -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A {chain} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net\" id: \"ctr\"" -m multiport --dports 8080 -d 10.1.0.0/16 -j {chain}
"#
        );
        assert_eq!(batch, expected);

        // Against a table that has all of it, only the container's chain is rebuilt.
        let listed: String = expected
            .lines()
            .map(|l| {
                if let Some(chain) = l.strip_prefix(':') {
                    format!("-N {}\n", chain.split(' ').next().unwrap())
                } else {
                    format!("{}\n", l.replace("-I POSTROUTING 1", "-A POSTROUTING"))
                }
            })
            .collect();
        let again = render_forward(&spec, &parse_saved(&listed)).unwrap();
        assert!(again.starts_with("-D CNI-HOSTPORT-DNAT -p tcp"), "{again}");
        assert!(!again.contains("SETMARK -m comment"), "{again}");
        assert!(!again.contains("PREROUTING"), "{again}");
    }

    #[test]
    fn external_mark_chain_and_multiport_groups_of_15() {
        let mappings = (1..=16).map(tcp).collect();
        let spec = spec(MarkChain::External("KUBE-MARK-MASQ".into()), mappings);
        let batch = render_forward(&spec, &Saved::default()).unwrap();
        assert!(!batch.contains("CNI-HOSTPORT-SETMARK"), "{batch}");
        assert!(batch.contains("--dport 1 -j KUBE-MARK-MASQ"), "{batch}");
        assert!(batch.contains("--dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 "));
        assert!(batch.contains("--dports 16 "));
    }

    #[test]
    fn long_comments_are_cut_as_the_reference_cuts_them() {
        let comment = dnat_comment(&"n".repeat(300), "ctr");
        assert_eq!(comment.len(), 256);
        assert!(comment.ends_with("..."));
        assert_eq!(mark_def(0), "0x1/0x1");
        assert_eq!(mark_def(31), "0x80000000/0x80000000");
    }

    #[test]
    fn removal_takes_the_jumps_and_the_chain() {
        let chain = dnat_chain("net", "ctr").unwrap();
        let saved = parse_saved(&format!(
            "-N CNI-HOSTPORT-DNAT\n-N {chain}\n-A CNI-HOSTPORT-DNAT -p tcp -m multiport --dports 80 -j {chain}\n-A {chain} -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.2:80\n"
        ));
        let batch = render_remove(&saved, &[(TOP_DNAT, chain.clone())]).unwrap();
        assert_eq!(
            batch,
            format!(
                "-D CNI-HOSTPORT-DNAT -p tcp -m multiport --dports 80 -j {chain}\n-F {chain}\n-X {chain}\n"
            )
        );
        assert_eq!(render_remove(&Saved::default(), &[(TOP_DNAT, chain)]), None);
    }
}
