//! MAC spoof check against real nft in throwaway netns.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{TestNetns, sh, spawns};
use crate::{gc_spoofcheck, setup_spoofcheck, teardown_spoofcheck};

/// Rule count per chain of `table bridge nat` (chains without rules included), or `None` if
/// the table does not exist.
fn rule_counts() -> Option<BTreeMap<String, usize>> {
    let out = std::process::Command::new("nft")
        .args(["-j", "list", "table", "bridge", "nat"])
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut counts = BTreeMap::new();
    for item in doc["nftables"].as_array().unwrap() {
        if let Some(name) = item["chain"]["name"].as_str() {
            counts.entry(name.to_owned()).or_insert(0);
        }
        if let Some(chain) = item["rule"]["chain"].as_str() {
            *counts.entry(chain.to_owned()).or_insert(0) += 1;
        }
    }
    Some(counts)
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(c, n)| (c.to_string(), *n)).collect()
}

/// Bridge test vector: id `dummy-0`, ifname `eth0`: 1 rule in PREROUTING, 1 in the iface chain,
/// 2 in the mac chain; teardown removes the rule and both chains and keeps the table.
#[test]
fn spoofcheck_setup_teardown_reference_layout() {
    TestNetns::new().run(|| {
        assert_eq!(rule_counts(), None);
        setup_spoofcheck("dummy-0", "eth0", "veth1234", "0A:58:0A:F4:00:02").unwrap();
        assert_eq!(spawns(), 1, "one transaction (PREROUTING is read over netlink)");
        let full = counts(&[
            ("PREROUTING", 1),
            ("cni-br-iface-dummy-0-eth0", 1),
            ("cni-br-iface-dummy-0-eth0-mac", 2),
        ]);
        assert_eq!(rule_counts().unwrap(), full);
        let text = sh("nft", &["list", "table", "bridge", "nat"]);
        for want in [
            // nft names priority -300 of the bridge family `dstnat`.
            "type filter hook prerouting priority dstnat; policy accept;",
            r#"iifname "veth1234" jump cni-br-iface-dummy-0-eth0 comment "macspoofchk-dummy-0-eth0""#,
            r#"jump cni-br-iface-dummy-0-eth0-mac comment "macspoofchk-dummy-0-eth0""#,
            r#"ether saddr 0a:58:0a:f4:00:02 return comment "macspoofchk-dummy-0-eth0""#,
            r#"drop comment "macspoofchk-dummy-0-eth0""#,
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }

        // A repeated setup replaces, never duplicates.
        setup_spoofcheck("dummy-0", "eth0", "veth1234", "0a:58:0a:f4:00:02").unwrap();
        assert_eq!(rule_counts().unwrap(), full);

        // A second attachment survives the first one's teardown.
        setup_spoofcheck("other", "eth1", "veth5678", "0a:58:0a:f4:00:03").unwrap();
        spawns();
        teardown_spoofcheck("dummy-0", "eth0").unwrap();
        assert_eq!(spawns(), 1, "one transaction (read over netlink)");
        assert_eq!(
            rule_counts().unwrap(),
            counts(&[
                ("PREROUTING", 1),
                ("cni-br-iface-other-eth1", 1),
                ("cni-br-iface-other-eth1-mac", 2),
            ])
        );

        teardown_spoofcheck("dummy-0", "eth0").unwrap();
        assert_eq!(spawns(), 0, "idempotent: nothing to remove, no process");
        teardown_spoofcheck("other", "eth1").unwrap();
        assert_eq!(rule_counts().unwrap(), counts(&[("PREROUTING", 0)]));
    });
}

/// The Go plugin sets up in two transactions, so its chains can exist without the PREROUTING
/// jump; teardown, which looks the chains up by name, still removes them.
#[test]
fn spoofcheck_teardown_removes_chains_without_their_jump() {
    TestNetns::new().run(|| {
        sh(
            "nft",
            &["add table bridge nat; \
                 add chain bridge nat cni-br-iface-half-eth0; \
                 add chain bridge nat cni-br-iface-half-eth0-mac; \
                 add rule bridge nat cni-br-iface-half-eth0 jump cni-br-iface-half-eth0-mac"],
        );
        teardown_spoofcheck("half", "eth0").unwrap();
        assert_eq!(rule_counts().unwrap(), counts(&[]));
    });
}

#[test]
fn spoofcheck_teardown_on_clean_host_creates_nothing() {
    TestNetns::new().run(|| {
        teardown_spoofcheck("gone", "eth0").unwrap();
        gc_spoofcheck(&[]).unwrap();
        assert_eq!(sh("nft", &["list", "ruleset"]), "");
    });
}

/// Container IDs may hold characters nft's text syntax rejects in chain names; JSON carries them.
#[test]
fn spoofcheck_handles_unusual_names() {
    TestNetns::new().run(|| {
        setup_spoofcheck("Ctr_1.x", "net@1", "veth0", "02:00:00:00:00:01").unwrap();
        assert_eq!(rule_counts().unwrap()["cni-br-iface-Ctr_1.x-net@1-mac"], 2);
        teardown_spoofcheck("Ctr_1.x", "net@1").unwrap();
        assert_eq!(rule_counts().unwrap(), counts(&[("PREROUTING", 0)]));
    });
}

/// GC removes attachments that are neither valid nor alive (host veth gone), and keeps an
/// attachment whose veth still exists even if another network's GC does not list it.
#[test]
fn spoofcheck_gc_needs_invalid_and_dead() {
    TestNetns::new().run(|| {
        sh(
            "ip",
            &[
                "link", "add", "vethlive", "type", "veth", "peer", "name", "vethpeer",
            ],
        );
        setup_spoofcheck("live", "eth0", "vethlive", "02:00:00:00:00:01").unwrap();
        setup_spoofcheck("valid", "eth0", "vethgone1", "02:00:00:00:00:02").unwrap();
        setup_spoofcheck("dead", "eth0", "vethgone2", "02:00:00:00:00:03").unwrap();
        spawns();
        gc_spoofcheck(&[("valid", "eth0")]).unwrap();
        assert_eq!(spawns(), 2);
        let left = rule_counts().unwrap();
        assert_eq!(left["PREROUTING"], 2);
        assert!(left.contains_key("cni-br-iface-live-eth0-mac"));
        assert!(left.contains_key("cni-br-iface-valid-eth0-mac"));
        assert!(!left.contains_key("cni-br-iface-dead-eth0"));
        assert!(!left.contains_key("cni-br-iface-dead-eth0-mac"));
    });
}
