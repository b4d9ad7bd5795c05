//! The Go reference's known failures: each is a case the reference is EXPECTED to fail,
//! tied to a defect described in docs/reference.md (#defects, and #debian for the
//! Debian release we test). The suite fails if the reference fails a case that is
//! not listed here, or passes one that is (the table is then out of date).

/// One expected failure of the reference implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownDefect {
    /// The plugin type.
    pub plugin: &'static str,
    /// The case id.
    pub case: &'static str,
    /// Where the defect is described, e.g. `docs/reference.md#defect-1`.
    pub reference: &'static str,
    /// The defect in a few words.
    pub defect: &'static str,
}

const fn defect(
    plugin: &'static str,
    case: &'static str,
    reference: &'static str,
    defect: &'static str,
) -> KnownDefect {
    KnownDefect {
        plugin,
        case,
        reference,
        defect,
    }
}

/// The reference's expected failures.
pub const KNOWN_DEFECTS: &[KnownDefect] = &[
    defect(
        "bridge",
        "add/ipam-exhausted-fails-cleanly",
        "docs/reference.md#defect-6",
        "an ADD failing in IPAM (range exhausted) leaves the veth pair behind",
    ),
    defect(
        "bridge",
        "del/empty-netns-releases-everything",
        "docs/reference.md#defect-2",
        "DEL with an empty CNI_NETNS skips masquerade clean-up: the iptables rules leak",
    ),
    defect(
        "bridge",
        "del/vanished-netns-releases-everything",
        "docs/reference.md#defect-2",
        "DEL with a vanished netns skips masquerade clean-up: the iptables rules leak",
    ),
    defect(
        "bridge",
        "check/detects-deleted-address",
        "docs/reference.md#defect-2",
        "CHECK notices, but the DEL that follows finds the iptables masquerade chain by the \
         container's addresses; with the address gone the chain leaks",
    ),
    defect(
        "bridge",
        "bridge/l2-add-check-del",
        "docs/reference.md#defect-1",
        "CHECK in L2 mode delegates to an IPAM that does not exist (`no plugin name provided`)",
    ),
    defect(
        "bridge",
        "delegation/missing-ipam-fails-cleanly",
        "docs/reference.md#defect-6",
        "a failed ADD leaves the veth pair behind",
    ),
    defect(
        "macvlan",
        "add/ipam-exhausted-fails-cleanly",
        "docs/reference.md#defect-6",
        "an ADD failing in IPAM (range exhausted) leaves the macvlan in the container",
    ),
    defect(
        "macvlan",
        "delegation/missing-ipam-fails-cleanly",
        "docs/reference.md#defect-6",
        "a failed ADD in the L3 path leaves the macvlan in the container",
    ),
    defect(
        "macvlan",
        "del/master-gone",
        "docs/reference.md#debian-macvlan-del",
        "Debian 1.1.1 macvlan DEL loads the master and fails when it is gone (the lease leaks)",
    ),
    defect(
        "loopback",
        "result/0.1.0",
        "docs/reference.md#defect-8",
        "loopback prints a 1.x-shaped result labelled 0.1.0",
    ),
    defect(
        "loopback",
        "result/0.2.0",
        "docs/reference.md#defect-8",
        "loopback prints a 1.x-shaped result labelled 0.2.0",
    ),
    defect(
        "loopback",
        "result/0.3.0",
        "docs/reference.md#defect-8",
        "loopback prints a 1.x-shaped result labelled 0.3.0 (no per-IP version)",
    ),
    defect(
        "loopback",
        "result/0.3.1",
        "docs/reference.md#defect-8",
        "loopback prints a 1.x-shaped result labelled 0.3.1 (no per-IP version)",
    ),
    defect(
        "loopback",
        "result/0.4.0",
        "docs/reference.md#defect-8",
        "loopback prints a 1.x-shaped result labelled 0.4.0 (no per-IP version)",
    ),
    defect(
        "tuning",
        "del/empty-netns-releases-everything",
        "docs/reference.md#defect-13",
        "DEL with an empty CNI_NETNS returns before removing the saved-state file",
    ),
    defect(
        "tuning",
        "del/vanished-netns-releases-everything",
        "docs/reference.md#defect-13",
        "DEL with a vanished netns returns before removing the saved-state file",
    ),
    defect(
        "portmap",
        "lifecycle/add-check-del-del",
        "docs/reference.md#defect-14",
        "CHECK of an IPv4-only container looks for its chain in ip6tables too",
    ),
];

/// The known defect for `(plugin, case)`, if the reference is expected to fail it.
pub fn lookup(plugin: &str, case: &str) -> Option<&'static KnownDefect> {
    KNOWN_DEFECTS
        .iter()
        .find(|d| d.plugin == plugin && d.case == case)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::cases::cases_for;
    use crate::suite::world::PluginKind;

    /// A typo in the table would make a defect silently unexpected and its case
    /// unaccounted for: every entry must name a real case.
    #[test]
    fn every_known_defect_names_an_existing_case() {
        for defect in KNOWN_DEFECTS {
            let kind = PluginKind::from_type(defect.plugin)
                .unwrap_or_else(|| panic!("unknown plugin in {defect:?}"));
            assert!(
                cases_for(kind).iter().any(|case| case.id == defect.case),
                "no case {} for {}",
                defect.case,
                defect.plugin
            );
        }
    }

    #[test]
    fn every_known_defect_cites_the_docs() {
        for defect in KNOWN_DEFECTS {
            assert!(
                defect.reference.starts_with("docs/reference.md#"),
                "{defect:?}"
            );
        }
    }
}
