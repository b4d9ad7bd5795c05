//! IP masquerade per attachment (network, container ID, ifname), as the bridge plugin's
//! `ipMasq` needs it (docs/reference.md#masquerade, PL:pkg/ip/ipmasq_*.go).
//!
//! This module owns the *plan*: which rules an attachment needs, and which existing rules belong
//! to an attachment or a network. The two backends ([`nftables`], [`iptables`]) only render the
//! plan and run it. Nothing here touches the container's netns, so DEL and GC work when the
//! netns or the interface is already gone (the reference's iptables teardown needs the
//! container's IPs and leaks its chain in that case: defect #810, docs/reference.md#defect-2).

pub(crate) mod iptables;
mod nftables;

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::naming::{INSTANCE_HASH_LEN, instance_hash, masquerade_comment, network_hash};
use crate::{Error, Result, iptables_usable, nftables_usable};

/// Which tool programs the masquerade rules (`ipMasqBackend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MasqBackend {
    /// `table inet cni_plugins_masquerade`, one rule per IP (reference v1.6.0+).
    Nftables,
    /// A `nat` chain per attachment jumped to from `POSTROUTING`, via iptables and ip6tables.
    Iptables,
}

impl MasqBackend {
    /// The config spelling: `nftables` or `iptables`.
    pub fn as_str(self) -> &'static str {
        match self {
            MasqBackend::Nftables => "nftables",
            MasqBackend::Iptables => "iptables",
        }
    }

    fn usable(self) -> Result<bool> {
        match self {
            MasqBackend::Nftables => nftables_usable(),
            MasqBackend::Iptables => iptables_usable(),
        }
    }
}

impl fmt::Display for MasqBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Picks the backend from the config's `ipMasqBackend` value, with the reference's rule
/// (PL:pkg/ip/ipmasq_linux.go): `"iptables"` and `"nftables"` are taken as given; absent means
/// iptables, unless iptables is unusable and nftables usable.
///
/// Unlike the reference, which then fails later on a missing binary, an absent value with neither
/// backend usable is [`Error::NotAvailable`] right away. Anything else is
/// [`Error::UnknownBackend`] (`unknown ipmasq backend "X"`). Probes run only for an absent value.
pub fn choose_backend(config: Option<&str>) -> Result<MasqBackend> {
    match config {
        Some("iptables") => Ok(MasqBackend::Iptables),
        Some("nftables") => Ok(MasqBackend::Nftables),
        Some(other) => Err(Error::UnknownBackend(other.to_owned())),
        None if iptables_usable()? => Ok(MasqBackend::Iptables),
        None if nftables_usable()? => Ok(MasqBackend::Nftables),
        None => Err(Error::NotAvailable {
            backend: "iptables or nftables",
        }),
    }
}

/// Installs masquerading for one attachment: traffic from each of `ips` (the container's
/// addresses, with their prefix length) to anything outside that prefix, and not multicast, is
/// masqueraded.
///
/// Re-running it for the same attachment replaces that attachment's previous rules, whatever
/// their IPs (a stale rule from an earlier ADD, or an IP reused from another container, is
/// handled as the reference does). Runs in the calling thread's netns (the host's).
///
/// Process spawns: nftables none (a netlink dump of `masq_checks`, then one netlink batch); iptables
/// 1 per address family present in `ips` (`iptables-restore --noflush`), 3 when the attachment
/// is set up again. Neither reads the whole ruleset, so the cost does not grow with the number
/// of attachments on the node (bench/analysis.md, "Density").
pub fn setup_masquerade(
    backend: MasqBackend,
    network: &str,
    container_id: &str,
    ifname: &str,
    ips: &[IpNetwork],
) -> Result<()> {
    let plan = MasqPlan::new(network, container_id, ifname, ips);
    log::info!(
        "masquerade setup ({backend}) for {}: {} address(es)",
        plan.comment,
        plan.rules.len()
    );
    match backend {
        MasqBackend::Nftables => nftables::setup(&plan),
        MasqBackend::Iptables => iptables::setup(&plan),
    }
}

/// Removes every masquerade rule and chain of one attachment, in both backends. Needs no IPs
/// and no netns, is idempotent (nothing there is success), and never creates a table.
///
/// As in the reference, a backend's failure is reported only if that backend is usable (so a
/// host without iptables does not fail DEL), and both backends are always tried.
///
/// Process spawns when nothing is installed: 2 (`iptables -S POSTROUTING`,
/// `ip6tables -S POSTROUTING`; nftables is read and written over netlink); each iptables family
/// that has something to remove adds 1.
pub fn teardown_masquerade(network: &str, container_id: &str, ifname: &str) -> Result<()> {
    let selector = Selector::Attachment {
        instance: instance_hash(network, container_id, ifname),
        chain: crate::naming::masquerade_chain_name(network, container_id, ifname),
    };
    for_both_backends(&selector)
}

/// Removes the masquerade state of `network` for every attachment not listed in `valid`
/// (`(container_id, ifname)` pairs, i.e. CNI GC's `cni.dev/valid-attachments`), in both
/// backends. Other networks' rules are never touched: they are told apart by the network hash
/// that starts every comment.
///
/// The reference implements this for nftables only; for iptables it is a FIXME. Process spawns:
/// as [`teardown_masquerade`], listing the whole `nat` table instead of `POSTROUTING`.
pub fn gc_masquerade(network: &str, valid: &[(&str, &str)]) -> Result<()> {
    for_both_backends(&Selector::stale(network, valid))
}

fn for_both_backends(selector: &Selector) -> Result<()> {
    let mut errors = Vec::new();
    for (backend, result) in [
        (MasqBackend::Iptables, iptables::remove(selector)),
        (MasqBackend::Nftables, nftables::remove(selector)),
    ] {
        match result {
            Ok(()) => {}
            // The probe costs spawns, so it only runs when there is an error to judge.
            // A probe that cannot run leaves the backend's own error as the one to report.
            Err(e) if backend.usable().is_ok_and(|usable| !usable) => {
                log::debug!("ignoring {backend} (not usable): {e}")
            }
            Err(e) => errors.push(e),
        }
    }
    Error::collect(errors)
}

/// IP family of one masqueraded address (also the family of a port mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    /// Multicast destinations are never masqueraded, so containers can use multicast on the
    /// local network (reference comment in `SetupIPMasq`).
    fn multicast(self) -> IpNetwork {
        let (addr, prefix) = match self {
            Family::V4 => (IpAddr::from([224, 0, 0, 0]), 4),
            Family::V6 => (IpAddr::from([0xff00, 0, 0, 0, 0, 0, 0, 0]), 8),
        };
        // Both prefixes fit their family, so `new` cannot fail; the fallback is never used.
        IpNetwork::new(addr, prefix).unwrap_or(IpNetwork::from(addr))
    }
}

/// One masqueraded address: traffic from `addr` to outside `subnet` is masqueraded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MasqRule {
    family: Family,
    addr: IpAddr,
    /// The address's own prefix, e.g. 10.1.2.0/24 for 10.1.2.3/24.
    subnet: IpNetwork,
}

/// Everything both backends need to install one attachment.
#[derive(Debug)]
struct MasqPlan {
    /// `<h1>-<h2>`: prefix of `comment`, used to find this attachment's existing rules.
    instance: String,
    /// Full comment on every rule of the attachment.
    comment: String,
    /// Our iptables chain for the attachment.
    chain: String,
    rules: Vec<MasqRule>,
}

impl MasqPlan {
    fn new(network: &str, container_id: &str, ifname: &str, ips: &[IpNetwork]) -> Self {
        let rules = ips
            .iter()
            .map(|ip| {
                let family = if ip.is_ipv4() { Family::V4 } else { Family::V6 };
                // `IpNetwork::new` only fails on a prefix too long for the family; this prefix
                // comes from a valid network of the same family, so the fallback is never used.
                let subnet = IpNetwork::new(ip.network(), ip.prefix()).unwrap_or(*ip);
                MasqRule {
                    family,
                    addr: ip.ip(),
                    subnet,
                }
            })
            .collect();
        MasqPlan {
            instance: instance_hash(network, container_id, ifname),
            comment: masquerade_comment(network, container_id, ifname),
            chain: crate::naming::masquerade_chain_name(network, container_id, ifname),
            rules,
        }
    }

    /// The rules of one family, in the caller's order.
    fn rules_of(&self, family: Family) -> impl Iterator<Item = &MasqRule> {
        self.rules.iter().filter(move |r| r.family == family)
    }
}

/// Which existing masquerade state to remove, judged from a rule's comment.
#[derive(Debug)]
pub(crate) enum Selector {
    /// One attachment (teardown). `chain` is its iptables chain, removed even if empty.
    Attachment { instance: String, chain: String },
    /// One network's attachments except the valid ones (GC).
    NetworkExcept {
        network: String,
        valid: HashSet<String>,
    },
}

impl Selector {
    /// GC's selector: `network`'s attachments except the `(container_id, ifname)` pairs in
    /// `valid`.
    pub(crate) fn stale(network: &str, valid: &[(&str, &str)]) -> Selector {
        Selector::NetworkExcept {
            network: network_hash(network),
            valid: valid
                .iter()
                .map(|(container_id, ifname)| instance_hash(network, container_id, ifname))
                .collect(),
        }
    }

    /// True if a rule with this comment is to be removed. Matching is on the hash prefix only, so
    /// it survives truncation and any later change to the human-readable part.
    pub(crate) fn matches(&self, comment: &str) -> bool {
        let Some(instance) = comment.get(..INSTANCE_HASH_LEN) else {
            return false;
        };
        match self {
            Selector::Attachment { instance: ours, .. } => instance == ours,
            Selector::NetworkExcept { network, valid } => {
                instance.starts_with(network.as_str())
                    && instance.as_bytes().get(network.len()) == Some(&b'-')
                    && !valid.contains(instance)
            }
        }
    }

    /// The iptables chain that must go even if no commented rule points at it.
    fn own_chain(&self) -> Option<&str> {
        match self {
            Selector::Attachment { chain, .. } => Some(chain),
            Selector::NetworkExcept { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_normalises_subnets_and_families() {
        let ips: Vec<IpNetwork> = vec![
            "10.1.2.3/24".parse().unwrap(),
            "2001:db8::5/64".parse().unwrap(),
        ];
        let plan = MasqPlan::new("unit-test", "one", "eth0", &ips);
        assert_eq!(plan.instance, "6fd94d501e58f0aa-287fc69eff0574a2");
        assert!(plan.comment.starts_with(&plan.instance));
        assert_eq!(
            plan.rules[0],
            MasqRule {
                family: Family::V4,
                addr: "10.1.2.3".parse().unwrap(),
                subnet: "10.1.2.0/24".parse().unwrap()
            }
        );
        assert_eq!(plan.rules[1].subnet.to_string(), "2001:db8::/64");
        assert_eq!(plan.rules_of(Family::V6).count(), 1);
    }

    #[test]
    fn selectors_match_by_hash() {
        let one = masquerade_comment("unit-test", "one", "eth0");
        let two = masquerade_comment("unit-test", "two", "eth0");
        let other_net = masquerade_comment("alternate", "one", "eth0");

        let teardown = Selector::Attachment {
            instance: instance_hash("unit-test", "one", "eth0"),
            chain: String::new(),
        };
        assert!(teardown.matches(&one));
        assert!(!teardown.matches(&two));
        assert!(!teardown.matches(&other_net));
        assert!(!teardown.matches("short"));
        assert!(!teardown.matches(r#"name: "unit-test" id: "one""#));

        let gc = Selector::NetworkExcept {
            network: network_hash("unit-test"),
            valid: [instance_hash("unit-test", "two", "eth0")].into(),
        };
        assert!(gc.matches(&one));
        assert!(!gc.matches(&two));
        assert!(!gc.matches(&other_net));
    }

    #[test]
    fn choose_backend_explicit_and_unknown() {
        // Explicit values run no probe, so this needs no netns.
        assert_eq!(
            choose_backend(Some("iptables")).unwrap(),
            MasqBackend::Iptables
        );
        assert_eq!(
            choose_backend(Some("nftables")).unwrap(),
            MasqBackend::Nftables
        );
        for bad in ["", "NFTABLES", "ebtables"] {
            let err = choose_backend(Some(bad)).unwrap_err();
            assert!(matches!(err, Error::UnknownBackend(_)));
            assert!(err.is_config_error());
            assert_eq!(err.to_string(), format!("unknown ipmasq backend {bad:?}"));
        }
        assert_eq!(MasqBackend::Nftables.to_string(), "nftables");
    }
}
