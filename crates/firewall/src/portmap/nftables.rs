//! The nftables backend of port forwarding, as the reference's
//! (upstream `plugins/meta/portmap/portmap_nftables.go`, knftables text syntax):
//! `table ip cni_hostport` and `table ip6 cni_hostport`, one DNAT rule per mapping in
//! `hostports` and the hairpin/localhost masquerades in `masquerading`, each commented with the
//! container ID.
//!
//! Better than the reference: a repeated ADD replaces the container's rules of that family in
//! the same transaction instead of adding duplicates, and GC works per network: the
//! reference's comments name only the container, so ADD also records it in an inert chain of
//! the network's own (`network_<hash>`, one `continue` rule with the same comment), and GC
//! judges only the containers recorded there.

use std::fmt::Write as _;

use super::{PortMapSpec, both_families, ip_port};
use crate::nft::{self, Listing};
use crate::{Error, Result};

const TABLE_NAME: &str = "cni_hostport";
const HOSTPORTS: &str = "hostports";
/// Kept (empty) because older reference versions put `hostIP` rules there.
const HOSTIP_HOSTPORTS: &str = "hostip_hostports";
const HOSTPORTS_ALL: &str = "hostports_all";
const MASQUERADING: &str = "masquerading";

/// The chain recording which containers `network` forwarded ports for. Nothing jumps to it.
fn owner_chain(network: &str) -> String {
    format!("network_{}", crate::naming::network_hash(network))
}

fn family_word(v6: bool) -> &'static str {
    if v6 { "ip6" } else { "ip" }
}

fn table(v6: bool) -> String {
    format!("{} {TABLE_NAME}", family_word(v6))
}

/// The rule comment: the container ID, without what cannot sit in a quoted comment.
fn comment(container_id: &str) -> String {
    container_id
        .chars()
        .filter(|c| *c != '"' && !c.is_control())
        .collect()
}

/// The family's table, if it exists (1 spawn).
fn list(v6: bool) -> Result<Option<Listing>> {
    nft::list(&["table", family_word(v6), TABLE_NAME])
}

/// `delete rule` lines for the container's rules in the listing.
fn render_deletes(out: &mut String, listing: Option<&Listing>, v6: bool, container_id: &str) {
    let comment = comment(container_id);
    render_deletes_where(out, listing, v6, |c| c == comment);
}

/// `delete rule` lines for the per-container rules (those with a comment) whose comment
/// `stale` picks; the shared jumps carry none.
fn render_deletes_where(
    out: &mut String,
    listing: Option<&Listing>,
    v6: bool,
    stale: impl Fn(&str) -> bool,
) {
    let table = table(v6);
    for rule in listing.into_iter().flat_map(|l| &l.rules) {
        if rule.comment.as_deref().is_some_and(&stale) {
            let _ = writeln!(
                out,
                "delete rule {table} {} handle {}",
                rule.chain, rule.handle
            );
        }
    }
}

/// The whole ADD transaction for one address.
fn render_forward(spec: &PortMapSpec, listing: Option<&Listing>) -> String {
    let v6 = spec.is_v6();
    let t = table(v6);
    let ip = family_word(v6);
    let mut s = String::new();
    let _ = writeln!(s, "add table {t} {{ comment \"CNI portmap plugin\" ; }}");
    for chain in [HOSTPORTS, HOSTIP_HOSTPORTS, HOSTPORTS_ALL] {
        let _ = writeln!(s, "add chain {t} {chain}");
    }
    let _ = writeln!(s, "flush chain {t} {HOSTPORTS_ALL}");
    for target in [HOSTIP_HOSTPORTS, HOSTPORTS] {
        let _ = writeln!(s, "add rule {t} {HOSTPORTS_ALL} jump {target}");
    }
    let conditions: String = spec.conditions.iter().map(|c| format!("{c} ")).collect();
    for (chain, hook) in [("prerouting", "prerouting"), ("output", "output")] {
        let _ = writeln!(
            s,
            "add chain {t} {chain} {{ type nat hook {hook} priority -100 ; }}"
        );
        let _ = writeln!(s, "flush chain {t} {chain}");
        let _ = writeln!(
            s,
            "add rule {t} {chain} {conditions}fib daddr type local jump {HOSTPORTS_ALL}"
        );
    }
    if spec.snat {
        let _ = writeln!(
            s,
            "add chain {t} {MASQUERADING} {{ type nat hook postrouting priority 100 ; }}"
        );
    }
    render_deletes(&mut s, listing, v6, &spec.container_id);
    let comment = comment(&spec.container_id);
    let owners = owner_chain(&spec.network);
    let _ = writeln!(s, "add chain {t} {owners}");
    let _ = writeln!(s, "add rule {t} {owners} continue comment \"{comment}\"");
    let container = spec.container.ip();
    for m in spec.mappings() {
        let destination = m
            .host_destination()
            .map(|host| format!("{ip} daddr {host} "))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "add rule {t} {HOSTPORTS} {destination}{} dport {} dnat to {} comment \"{comment}\"",
            m.protocol.as_str(),
            m.host_port,
            ip_port(container, m.container_port)
        );
    }
    if spec.snat {
        let source = match (spec.masq_all, v6) {
            (false, _) => container.to_string(),
            (true, false) => "0.0.0.0/0".into(),
            (true, true) => "::/0".into(),
        };
        let mut sources = vec![source];
        if !v6 && !spec.masq_all {
            sources.push("127.0.0.1".into());
        }
        for source in sources {
            let _ = writeln!(
                s,
                "add rule {t} {MASQUERADING} {ip} saddr {source} {ip} daddr {container} masquerade comment \"{comment}\""
            );
        }
    }
    s
}

/// ADD for one address: list the table, then one transaction (2 spawns).
pub(super) fn forward(spec: &PortMapSpec) -> Result<()> {
    let listing = list(spec.is_v6())?;
    nft::apply_text(&render_forward(spec, listing.as_ref()))
}

/// DEL: every rule commented with the container ID, in both families' tables.
pub(super) fn unforward(container_id: &str) -> Result<()> {
    both_families(|v6| {
        let mut script = String::new();
        render_deletes(&mut script, list(v6)?.as_ref(), v6, container_id);
        if script.is_empty() {
            return Ok(());
        }
        nft::apply_text(&script)
    })
}

/// GC: the rules, in both families' tables, of every container recorded for `network` whose
/// ID is not one of `valid`'s (1 spawn per family, plus 1 where there is something to
/// remove). Rules no ADD of ours recorded (the reference's) are left to their DEL.
pub(super) fn gc(network: &str, valid: &[&str]) -> Result<()> {
    let valid: Vec<String> = valid.iter().map(|id| comment(id)).collect();
    let owners = owner_chain(network);
    both_families(|v6| {
        let listing = list(v6)?;
        let stale: Vec<&str> = listing
            .iter()
            .flat_map(|l| &l.rules)
            .filter(|r| r.chain == owners)
            .filter_map(|r| r.comment.as_deref())
            .filter(|c| !valid.iter().any(|id| id == c))
            .collect();
        let mut script = String::new();
        render_deletes_where(&mut script, listing.as_ref(), v6, |c| stale.contains(&c));
        if script.is_empty() {
            return Ok(());
        }
        nft::apply_text(&script)
    })
}

/// CHECK as the reference: at least as many rules with the container's comment as it needs in
/// `hostports` and `masquerading`.
pub(super) fn check(spec: &PortMapSpec) -> Result<()> {
    let v6 = spec.is_v6();
    let listing = list(v6)?.unwrap_or_default();
    let comment = comment(&spec.container_id);
    let count = |chain: &str| {
        listing
            .rules
            .iter()
            .filter(|r| r.chain == chain && r.comment.as_deref() == Some(comment.as_str()))
            .count()
    };
    let masquerades = match (spec.snat, v6 || spec.masq_all) {
        (false, _) => 0,
        (true, true) => 1,
        (true, false) => 2,
    };
    for (chain, wanted) in [
        (HOSTPORTS, spec.mappings().count()),
        (MASQUERADING, masquerades),
    ] {
        if count(chain) < wanted {
            return Err(Error::Missing {
                what: format!("hostport rules in chain {chain} of table {}", table(v6)),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portmap::{MarkChain, PortMapping, Protocol};

    #[test]
    fn renders_the_reference_rules_and_the_network_record() {
        let spec = PortMapSpec {
            network: "net".into(),
            container_id: "ctr".into(),
            container: "10.0.0.2/24".parse().unwrap(),
            mappings: vec![
                PortMapping {
                    host_port: 8080,
                    container_port: 80,
                    protocol: Protocol::Tcp,
                    host_ip: Some("192.168.1.1".parse().unwrap()),
                },
                PortMapping {
                    host_port: 53,
                    container_port: 53,
                    protocol: Protocol::Udp,
                    host_ip: Some("fd00::1".parse().unwrap()),
                },
            ],
            snat: true,
            masq_all: false,
            mark: MarkChain::Bit(13),
            conditions: vec!["ip saddr 10.1.0.0/16".into()],
        };
        let expected = r#"add table ip cni_hostport { comment "CNI portmap plugin" ; }
add chain ip cni_hostport hostports
add chain ip cni_hostport hostip_hostports
add chain ip cni_hostport hostports_all
flush chain ip cni_hostport hostports_all
add rule ip cni_hostport hostports_all jump hostip_hostports
add rule ip cni_hostport hostports_all jump hostports
add chain ip cni_hostport prerouting { type nat hook prerouting priority -100 ; }
flush chain ip cni_hostport prerouting
add rule ip cni_hostport prerouting ip saddr 10.1.0.0/16 fib daddr type local jump hostports_all
add chain ip cni_hostport output { type nat hook output priority -100 ; }
flush chain ip cni_hostport output
add rule ip cni_hostport output ip saddr 10.1.0.0/16 fib daddr type local jump hostports_all
add chain ip cni_hostport masquerading { type nat hook postrouting priority 100 ; }
add chain ip cni_hostport OWNERS
add rule ip cni_hostport OWNERS continue comment "ctr"
add rule ip cni_hostport hostports ip daddr 192.168.1.1 tcp dport 8080 dnat to 10.0.0.2:80 comment "ctr"
add rule ip cni_hostport masquerading ip saddr 10.0.0.2 ip daddr 10.0.0.2 masquerade comment "ctr"
add rule ip cni_hostport masquerading ip saddr 127.0.0.1 ip daddr 10.0.0.2 masquerade comment "ctr"
"#
        .replace("OWNERS", &owner_chain("net"));
        assert_eq!(render_forward(&spec, None), expected);
    }
}
