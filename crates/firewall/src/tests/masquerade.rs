//! Masquerade against real nft/iptables in throwaway netns.

use serde_json::Value;

use super::{TestNetns, sh, spawns};
use crate::{IpNetwork, MasqBackend, gc_masquerade, setup_masquerade, teardown_masquerade};

fn nets(addrs: &[&str]) -> Vec<IpNetwork> {
    addrs.iter().map(|a| a.parse().unwrap()).collect()
}

/// `masq_checks` rules from `nft -j list ruleset`, as "comment-hash saddr daddr" strings.
fn nft_masq_rules() -> Vec<String> {
    let doc: Value = serde_json::from_str(&sh("nft", &["-j", "list", "ruleset"])).unwrap();
    doc["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.get("rule"))
        .filter(|r| r["chain"] == "masq_checks")
        .map(|r| {
            let expr = r["expr"].as_array().unwrap();
            let right = |m: &Value| match &m["match"]["right"] {
                Value::String(s) => s.clone(),
                p => format!(
                    "{}/{}",
                    p["prefix"]["addr"].as_str().unwrap(),
                    p["prefix"]["len"]
                ),
            };
            assert_eq!(expr[0]["match"]["op"], "==");
            assert_eq!(expr[1]["match"]["op"], "!=");
            assert!(expr[2].get("masquerade").is_some());
            format!(
                "{} {} {}",
                &r["comment"].as_str().unwrap()[..33],
                right(&expr[0]),
                right(&expr[1])
            )
        })
        .collect()
}

/// The reference's commands for one attachment with an address of each family and prefixes
/// that end on and inside a byte, as `nft -f` takes them (knftables text syntax).
const REFERENCE_SCRIPT: &str = r#"add table inet cni_plugins_masquerade { comment "Masquerading for plugins from github.com/containernetworking/plugins" ; }
add chain inet cni_plugins_masquerade masq_checks { comment "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet" ; }
add chain inet cni_plugins_masquerade postrouting { type nat hook postrouting priority 100 ; }
flush chain inet cni_plugins_masquerade postrouting
add rule inet cni_plugins_masquerade postrouting ip daddr == 224.0.0.0/4 return
add rule inet cni_plugins_masquerade postrouting ip6 daddr == ff00::/8 return
add rule inet cni_plugins_masquerade postrouting goto masq_checks
add rule inet cni_plugins_masquerade masq_checks ip saddr == 192.168.1.2 ip daddr != 192.168.1.0/24 masquerade comment "6fd94d501e58f0aa-d750b2c8f0f25d5f, net: unit-test, if: eth0, id: two"
add rule inet cni_plugins_masquerade masq_checks ip saddr == 10.1.2.3 ip daddr != 10.1.0.0/20 masquerade comment "6fd94d501e58f0aa-d750b2c8f0f25d5f, net: unit-test, if: eth0, id: two"
add rule inet cni_plugins_masquerade masq_checks ip6 saddr == 2001:db8::2 ip6 daddr != 2001:db8::/64 masquerade comment "6fd94d501e58f0aa-d750b2c8f0f25d5f, net: unit-test, if: eth0, id: two"
add rule inet cni_plugins_masquerade masq_checks ip6 saddr == fd00::3 ip6 daddr != fd00::/60 masquerade comment "6fd94d501e58f0aa-d750b2c8f0f25d5f, net: unit-test, if: eth0, id: two"
"#;

/// Our netlink batch leaves in the kernel exactly what `nft -f` of the reference's commands
/// leaves: the same listing, and the same expressions down to each register load
/// (`nft --debug=netlink list ruleset` prints the kernel's rules as the VM runs them).
#[test]
fn netlink_batch_equals_nft_of_the_reference_commands() {
    let ours = TestNetns::new();
    let theirs = TestNetns::new();
    let addrs = nets(&[
        "192.168.1.2/24",
        "10.1.2.3/20",
        "2001:db8::2/64",
        "fd00::3/60",
    ]);
    let listing = || {
        let text = sh("nft", &["--debug=netlink", "list", "ruleset"]);
        let plain = sh("nft", &["list", "ruleset"]);
        (text, plain)
    };
    let ours = ours.run(|| {
        setup_masquerade(MasqBackend::Nftables, "unit-test", "two", "eth0", &addrs).unwrap();
        listing()
    });
    let theirs = theirs.run(|| {
        let mut nft = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut nft.stdin.take().unwrap(), REFERENCE_SCRIPT.as_bytes())
            .unwrap();
        assert!(nft.wait().unwrap().success());
        listing()
    });
    assert!(
        ours.1
            .contains("ip6 saddr fd00::3 ip6 daddr != fd00::/60 masquerade")
    );
    assert_eq!(ours, theirs);
}

/// The reference's golden test (PL:pkg/ip/ipmasq_nftables_linux_test.go), on a real kernel.
#[test]
fn nft_matches_reference_golden_dump_reuse_and_gc() {
    TestNetns::new().run(|| {
        let containers: [(&str, &str, &str, &[&str]); 4] = [
            ("unit-test", "eth0", "one", &["192.168.1.1/24"]),
            ("unit-test", "eth0", "two", &["192.168.1.2/24", "2001:db8::2/64"]),
            ("unit-test", "eth0", "three", &["192.168.99.5/24"]),
            (
                "alternate",
                "net1",
                "three",
                &[
                    "10.0.0.5/24",
                    "10.0.0.6/24",
                    "10.0.1.7/24",
                    "2001:db8::5/64",
                    "2001:db8::6/64",
                    "2001:db8:1::7/64",
                ],
            ),
        ];
        for (net, ifname, id, addrs) in containers {
            setup_masquerade(MasqBackend::Nftables, net, id, ifname, &nets(addrs)).unwrap();
            assert_eq!(spawns(), 0, "setup = a netlink dump and a netlink batch");
        }
        let expected = r#"table inet cni_plugins_masquerade {
	comment "Masquerading for plugins from github.com/containernetworking/plugins"
	chain masq_checks {
		comment "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"
		ip saddr 192.168.1.1 ip daddr != 192.168.1.0/24 masquerade comment "6fd94d501e58f0aa-287fc69eff0574a2, net: unit-test, if: eth0, id: one"
		ip saddr 192.168.1.2 ip daddr != 192.168.1.0/24 masquerade comment "6fd94d501e58f0aa-d750b2c8f0f25d5f, net: unit-test, if: eth0, id: two"
		ip6 saddr 2001:db8::2 ip6 daddr != 2001:db8::/64 masquerade comment "6fd94d501e58f0aa-d750b2c8f0f25d5f, net: unit-test, if: eth0, id: two"
		ip saddr 192.168.99.5 ip daddr != 192.168.99.0/24 masquerade comment "6fd94d501e58f0aa-a4d4adb82b669cfe, net: unit-test, if: eth0, id: three"
		ip saddr 10.0.0.5 ip daddr != 10.0.0.0/24 masquerade comment "82783ef24bdc7036-acb19d111858e348, net: alternate, if: net1, id: three"
		ip saddr 10.0.0.6 ip daddr != 10.0.0.0/24 masquerade comment "82783ef24bdc7036-acb19d111858e348, net: alternate, if: net1, id: three"
		ip saddr 10.0.1.7 ip daddr != 10.0.1.0/24 masquerade comment "82783ef24bdc7036-acb19d111858e348, net: alternate, if: net1, id: three"
		ip6 saddr 2001:db8::5 ip6 daddr != 2001:db8::/64 masquerade comment "82783ef24bdc7036-acb19d111858e348, net: alternate, if: net1, id: three"
		ip6 saddr 2001:db8::6 ip6 daddr != 2001:db8::/64 masquerade comment "82783ef24bdc7036-acb19d111858e348, net: alternate, if: net1, id: three"
		ip6 saddr 2001:db8:1::7 ip6 daddr != 2001:db8:1::/64 masquerade comment "82783ef24bdc7036-acb19d111858e348, net: alternate, if: net1, id: three"
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip daddr 224.0.0.0/4 return
		ip6 daddr ff00::/8 return
		goto masq_checks
	}
}
"#;
        assert_eq!(
            sh("nft", &["list", "table", "inet", "cni_plugins_masquerade"]),
            expected
        );
        assert_eq!(nft_masq_rules().len(), 10);

        // "four" reuses "one"'s address before "one" is deleted; DEL of "one" must not touch it.
        setup_masquerade(
            MasqBackend::Nftables,
            "unit-test",
            "four",
            "eth0",
            &nets(&["192.168.1.1/24"]),
        )
        .unwrap();
        teardown_masquerade("unit-test", "one", "eth0").unwrap();
        let rules = nft_masq_rules();
        assert!(!rules.iter().any(|r| r.starts_with("6fd94d501e58f0aa-287fc69eff0574a2")));
        assert!(rules.contains(
            &"6fd94d501e58f0aa-e766de567ef6c543 192.168.1.1 192.168.1.0/24".to_owned()
        ));
        assert_eq!(rules.len(), 10);

        // GC "four" from unit-test (one is an irrelevant extra), keep alternate as is.
        gc_masquerade(
            "unit-test",
            &[("two", "eth0"), ("three", "eth0"), ("one", "eth0")],
        )
        .unwrap();
        gc_masquerade("alternate", &[("three", "net1")]).unwrap();
        let rules = nft_masq_rules();
        assert_eq!(rules.len(), 9);
        assert!(!rules.iter().any(|r| r.starts_with("6fd94d501e58f0aa-e766de567ef6c543")));

        // GC everything: the table, chains and postrouting rules stay, as in the reference.
        gc_masquerade("unit-test", &[]).unwrap();
        gc_masquerade("alternate", &[]).unwrap();
        assert!(nft_masq_rules().is_empty());
        let listing = sh("nft", &["list", "table", "inet", "cni_plugins_masquerade"]);
        assert!(listing.contains("goto masq_checks"), "{listing}");
    });
}

/// Setting up the same attachment again with a new address replaces its rules (both backends).
#[test]
fn repeated_setup_replaces_the_attachment_rules() {
    TestNetns::new().run(|| {
        for backend in [MasqBackend::Nftables, MasqBackend::Iptables] {
            setup_masquerade(backend, "net", "ctr", "eth0", &nets(&["10.9.0.2/24"])).unwrap();
            spawns();
            setup_masquerade(backend, "net", "ctr", "eth0", &nets(&["10.9.0.3/24"])).unwrap();
            let again = match backend {
                MasqBackend::Nftables => 0,
                // The `-N` batch fails, then POSTROUTING is listed and the state replaced.
                MasqBackend::Iptables => 3,
            };
            assert_eq!(spawns(), again, "{backend}");
        }
        assert_eq!(
            nft_masq_rules(),
            [format!(
                "{} 10.9.0.3 10.9.0.0/24",
                crate::naming::instance_hash("net", "ctr", "eth0")
            )]
        );
        let chain = crate::masquerade_chain_name("net", "ctr", "eth0");
        let comment = crate::masquerade_comment("net", "ctr", "eth0");
        assert_eq!(
            ipt_nat_rules("iptables-save"),
            [
                format!(
                    "-A POSTROUTING -s 10.9.0.3/32 -m comment --comment \"{comment}\" -j {chain}"
                ),
                format!("-A {chain} -d 10.9.0.0/24 -m comment --comment \"{comment}\" -j ACCEPT"),
                format!(
                    "-A {chain} ! -d 224.0.0.0/4 -m comment --comment \"{comment}\" -j MASQUERADE"
                ),
            ]
        );
    });
}

/// `postrouting`'s rules as (handle, rule text), from `nft -a -j`.
fn postrouting_rules() -> Vec<(u64, String)> {
    let out = sh(
        "nft",
        &[
            "-a",
            "-j",
            "list",
            "chain",
            "inet",
            "cni_plugins_masquerade",
            "postrouting",
        ],
    );
    let doc: Value = serde_json::from_str(&out).unwrap();
    doc["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.get("rule"))
        .map(|r| (r["handle"].as_u64().unwrap(), r["expr"].to_string()))
        .collect()
}

/// A second attachment adds only its own rule: the shared table, chains and `postrouting`
/// rules stay as they were (same handles), so the commit leaves nf_tables nothing to free
/// after a grace period, which the socket's close would wait for. A `postrouting` that is
/// not exactly ours any more is rebuilt, as the reference rebuilds it on every ADD.
#[test]
fn nftables_setup_rebuilds_the_shared_part_only_when_it_changed() {
    TestNetns::new().run(|| {
        let backend = MasqBackend::Nftables;
        setup_masquerade(backend, "net", "one", "eth0", &nets(&["10.9.0.2/24"])).unwrap();
        let first = postrouting_rules();
        assert_eq!(first.len(), 3, "{first:?}");
        setup_masquerade(backend, "net", "two", "eth0", &nets(&["10.9.0.3/24"])).unwrap();
        assert_eq!(postrouting_rules(), first, "the shared part was rewritten");
        assert_eq!(nft_masq_rules().len(), 2);

        // Someone deletes the IPv6 multicast exception: the next ADD puts it back.
        let v6_handle = first[1].0.to_string();
        sh(
            "nft",
            &[
                "delete",
                "rule",
                "inet",
                "cni_plugins_masquerade",
                "postrouting",
                "handle",
                &v6_handle,
            ],
        );
        setup_masquerade(backend, "net", "three", "eth0", &nets(&["10.9.0.4/24"])).unwrap();
        let rebuilt = postrouting_rules();
        let texts = |rules: &[(u64, String)]| rules.iter().map(|r| r.1.clone()).collect::<Vec<_>>();
        assert_eq!(texts(&rebuilt), texts(&first));
        assert_ne!(rebuilt, first, "rebuilt rules get new handles");

        // A rule with another verdict in the right place is not ours either.
        let goto_handle = rebuilt[2].0.to_string();
        sh(
            "nft",
            &[
                "replace",
                "rule",
                "inet",
                "cni_plugins_masquerade",
                "postrouting",
                "handle",
                &goto_handle,
                "accept",
            ],
        );
        setup_masquerade(backend, "net", "four", "eth0", &nets(&["10.9.0.5/24"])).unwrap();
        assert_eq!(texts(&postrouting_rules()), texts(&first));
        assert_eq!(nft_masq_rules().len(), 4);
    });
}

/// `-N`/`-A` lines of the nat table from `iptables-save` or `ip6tables-save`.
fn ipt_nat_rules(save: &str) -> Vec<String> {
    let out = sh(save, &["-t", "nat"]);
    out.lines()
        .filter(|l| l.starts_with("-A"))
        .map(str::to_owned)
        .collect()
}

fn ipt_chains(save: &str) -> Vec<String> {
    let out = sh(save, &["-t", "nat"]);
    out.lines()
        .filter(|l| l.starts_with(":CNI-"))
        .map(|l| l.split_whitespace().next().unwrap()[1..].to_owned())
        .collect()
}

#[test]
fn iptables_v4_and_v6_setup_and_teardown() {
    TestNetns::new().run(|| {
        let ips = nets(&["10.1.0.2/16", "10.2.0.2/24", "fd00:1::2/64"]);
        setup_masquerade(MasqBackend::Iptables, "mynet", "ctr1", "eth0", &ips).unwrap();
        assert_eq!(spawns(), 2, "a new attachment: one restore per family");

        let chain = crate::masquerade_chain_name("mynet", "ctr1", "eth0");
        let c = crate::masquerade_comment("mynet", "ctr1", "eth0");
        assert_eq!(
            ipt_nat_rules("iptables-save"),
            [
                format!("-A POSTROUTING -s 10.1.0.2/32 -m comment --comment \"{c}\" -j {chain}"),
                format!("-A POSTROUTING -s 10.2.0.2/32 -m comment --comment \"{c}\" -j {chain}"),
                format!("-A {chain} -d 10.1.0.0/16 -m comment --comment \"{c}\" -j ACCEPT"),
                format!("-A {chain} -d 10.2.0.0/24 -m comment --comment \"{c}\" -j ACCEPT"),
                format!("-A {chain} ! -d 224.0.0.0/4 -m comment --comment \"{c}\" -j MASQUERADE"),
            ]
        );
        assert_eq!(
            ipt_nat_rules("ip6tables-save"),
            [
                format!("-A POSTROUTING -s fd00:1::2/128 -m comment --comment \"{c}\" -j {chain}"),
                format!("-A {chain} -d fd00:1::/64 -m comment --comment \"{c}\" -j ACCEPT"),
                format!("-A {chain} ! -d ff00::/8 -m comment --comment \"{c}\" -j MASQUERADE"),
            ]
        );

        teardown_masquerade("mynet", "ctr1", "eth0").unwrap();
        // iptables v4 + v6: list POSTROUTING + restore each; nftables: a netlink dump only.
        assert_eq!(spawns(), 4);
        for save in ["iptables-save", "ip6tables-save"] {
            assert!(ipt_nat_rules(save).is_empty(), "{save}");
            assert!(ipt_chains(save).is_empty(), "{save}");
        }
        // The nat tables stay (as iptables leaves them); nothing of ours is left.
        teardown_masquerade("mynet", "ctr1", "eth0").unwrap();
        assert_eq!(spawns(), 2, "idempotent: two listings, no change");
    });
}

/// The reference keys the iptables chain by network + container ID only, so two interfaces of
/// one container share it and DEL of the first fails with `CHAIN_DEL failed (Device or resource
/// busy)` (docs/reference.md#defect-3). Ours is per attachment, in both backends.
#[test]
fn teardown_eth0_keeps_eth1_reference_defect_chain_del_busy() {
    TestNetns::new().run(|| {
        for backend in [MasqBackend::Iptables, MasqBackend::Nftables] {
            setup_masquerade(
                backend,
                "net",
                "ctr",
                "eth0",
                &nets(&["10.5.0.2/24", "fd05::2/64"]),
            )
            .unwrap();
            setup_masquerade(
                backend,
                "net",
                "ctr",
                "eth1",
                &nets(&["10.5.0.3/24", "fd05::3/64"]),
            )
            .unwrap();
        }
        let eth1_chain = crate::masquerade_chain_name("net", "ctr", "eth1");
        let before4 = ipt_nat_rules("iptables-save");
        let before6 = ipt_nat_rules("ip6tables-save");
        assert_eq!(before4.len(), 6);
        assert_eq!(nft_masq_rules().len(), 4);

        teardown_masquerade("net", "ctr", "eth0").unwrap();

        let eth1_only = |rules: Vec<String>| -> Vec<String> {
            rules
                .into_iter()
                .filter(|r| r.contains(&eth1_chain))
                .collect()
        };
        assert_eq!(ipt_nat_rules("iptables-save"), eth1_only(before4));
        assert_eq!(ipt_nat_rules("ip6tables-save"), eth1_only(before6));
        assert_eq!(
            ipt_chains("iptables-save"),
            std::slice::from_ref(&eth1_chain)
        );
        let eth1_hash = crate::naming::instance_hash("net", "ctr", "eth1");
        let rules = nft_masq_rules();
        assert_eq!(rules.len(), 2);
        assert!(rules.iter().all(|r| r.starts_with(&eth1_hash)), "{rules:?}");

        teardown_masquerade("net", "ctr", "eth1").unwrap();
        assert!(ipt_nat_rules("iptables-save").is_empty());
        assert!(ipt_chains("ip6tables-save").is_empty());
        assert!(nft_masq_rules().is_empty());
    });
}

/// DEL with no IPs, no netns and nothing installed succeeds and creates no table.
#[test]
fn teardown_on_clean_host_is_a_noop_and_creates_nothing() {
    TestNetns::new().run(|| {
        teardown_masquerade("net", "gone", "eth0").unwrap();
        assert_eq!(
            spawns(),
            2,
            "iptables -S + ip6tables -S (nft is read over netlink)"
        );
        gc_masquerade("net", &[]).unwrap();
        assert_eq!(sh("nft", &["list", "ruleset"]), "");
    });
}

#[test]
fn gc_keeps_valid_and_other_networks_in_both_backends() {
    TestNetns::new().run(|| {
        for backend in [MasqBackend::Iptables, MasqBackend::Nftables] {
            for (net, id, ifname, ip) in [
                ("net", "live", "eth0", "10.7.0.2/24"),
                ("net", "dead", "eth0", "10.7.0.3/24"),
                ("net", "live", "eth1", "10.7.0.4/24"),
                ("other", "dead", "eth0", "10.8.0.3/24"),
            ] {
                setup_masquerade(backend, net, id, ifname, &nets(&[ip])).unwrap();
            }
        }
        spawns();
        gc_masquerade("net", &[("live", "eth0"), ("live", "eth1")]).unwrap();
        assert_eq!(
            spawns(),
            3,
            "2 listings + iptables-restore (nft is over netlink)"
        );

        let mut kept: Vec<String> = ipt_chains("iptables-save");
        kept.sort();
        let mut expected = vec![
            crate::masquerade_chain_name("net", "live", "eth0"),
            crate::masquerade_chain_name("net", "live", "eth1"),
            crate::masquerade_chain_name("other", "dead", "eth0"),
        ];
        expected.sort();
        assert_eq!(kept, expected);
        assert_eq!(ipt_nat_rules("iptables-save").len(), 9);
        let dead = crate::naming::instance_hash("net", "dead", "eth0");
        let rules = nft_masq_rules();
        assert_eq!(rules.len(), 3);
        assert!(!rules.iter().any(|r| r.starts_with(&dead)));
    });
}

/// Runs `ip netns exec <ns> <args...>` and reports success; used only on our own netns.
fn in_ns(ns: &TestNetns, args: &[&str]) -> bool {
    std::process::Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn must(ns: &TestNetns, args: &[&str]) {
    assert!(in_ns(ns, args), "{}: {args:?} failed", ns.name());
}

/// Real NAT, for both backends: client 10.50.0.2 -> router -> server 10.60.0.2, where the server
/// has no route back to 10.50.0.0/24, so a ping only gets an answer when the router masquerades.
#[test]
fn masquerade_really_translates_between_three_netns() {
    let (client, router, server) = (TestNetns::new(), TestNetns::new(), TestNetns::new());
    let ipn = |ns: &TestNetns, args: &[&str]| {
        let mut all = vec!["-n", ns.name()];
        all.extend_from_slice(args);
        sh("ip", &all);
    };
    ipn(
        &router,
        &[
            "link",
            "add",
            "rc",
            "type",
            "veth",
            "peer",
            "name",
            "c0",
            "netns",
            client.name(),
        ],
    );
    ipn(
        &router,
        &[
            "link",
            "add",
            "rs",
            "type",
            "veth",
            "peer",
            "name",
            "s0",
            "netns",
            server.name(),
        ],
    );
    for (ns, dev, addr) in [
        (&router, "rc", "10.50.0.1/24"),
        (&router, "rs", "10.60.0.1/24"),
        (&client, "c0", "10.50.0.2/24"),
        (&server, "s0", "10.60.0.2/24"),
    ] {
        ipn(ns, &["addr", "add", addr, "dev", dev]);
        ipn(ns, &["link", "set", dev, "up"]);
    }
    ipn(&client, &["route", "add", "default", "via", "10.50.0.1"]);
    must(&router, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    let ping = || in_ns(&client, &["ping", "-c1", "-W1", "10.60.0.2"]);

    assert!(!ping(), "the server must not reach the client without NAT");
    for backend in [MasqBackend::Nftables, MasqBackend::Iptables] {
        router.run(|| {
            setup_masquerade(backend, "nat", "client", "c0", &nets(&["10.50.0.2/24"])).unwrap();
        });
        assert!(ping(), "{backend}: ping through masquerade");
        router.run(|| teardown_masquerade("nat", "client", "c0").unwrap());
        assert!(!ping(), "{backend}: still translated after teardown");
    }
}
