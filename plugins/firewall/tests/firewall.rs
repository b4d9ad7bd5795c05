//! The built `firewall` binary, run as a runtime runs it after the bridge plugin, inside
//! throwaway namespaces (needs root). Rules are read back in the lab host with
//! `iptables -S` / `ip6tables -S`; isolation is proven with pings between lab namespaces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cni_conformance::{Invocation, Netns};
use common::*;
use serde_json::{Value, json};

const ADMIN: &str =
    r#"-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN"#;
const JUMP: &str = r#"-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD"#;

fn container_rules(ip: &str) -> [String; 2] {
    [
        format!("-A CNI-FORWARD -d {ip} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        format!("-A CNI-FORWARD -s {ip} -j ACCEPT"),
    ]
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn add_accepts_the_container_check_finds_a_missing_rule_and_del_removes_it() {
    let w = World::new();
    let ctr = w.lab.container();
    let prev = prev_result("1.0.0", "cni0", &["10.88.0.5/16", "fd00::5/64"]);
    let conf = conf("1.0.0", json!({"backend": "iptables"}), prev.clone());
    let result = w
        .run(&Invocation::add(ctr, IFNAME).config(conf.clone()))
        .assert_success()
        .result()
        .clone();
    // The prevResult passes through (a 1.x result leaves an empty dns out).
    let mut expected = prev.clone();
    expected.as_object_mut().unwrap().remove("dns");
    assert_eq!(result, expected);

    for (v6, ip) in [(false, "10.88.0.5/32"), (true, "fd00::5/128")] {
        let rules = w.rules(v6);
        let mut want = vec![
            "-P INPUT ACCEPT",
            "-P FORWARD ACCEPT",
            "-P OUTPUT ACCEPT",
            "-N CNI-ADMIN",
            "-N CNI-FORWARD",
            JUMP,
            ADMIN,
        ];
        let [back, out] = container_rules(ip);
        want.extend([back.as_str(), out.as_str()]);
        assert_eq!(lines(&rules), want, "v6: {v6}");
    }

    let check = || w.run(&Invocation::check(ctr, IFNAME).config(conf.clone()));
    check().assert_success();
    output(
        w.lab.host(),
        &[
            "iptables",
            "-D",
            "CNI-FORWARD",
            "-s",
            "10.88.0.5/32",
            "-j",
            "ACCEPT",
        ],
    );
    let run = check().assert_error(106);
    assert!(
        run.result()["msg"]
            .as_str()
            .unwrap()
            .contains("-s 10.88.0.5/32"),
        "{run}"
    );
    output(
        w.lab.host(),
        &[
            "iptables",
            "-D",
            "FORWARD",
            "-m",
            "comment",
            "--comment",
            "CNI firewall plugin rules",
            "-j",
            "CNI-FORWARD",
        ],
    );
    let run = check().assert_error(106);
    assert!(
        run.result()["msg"].as_str().unwrap().contains("-A FORWARD"),
        "{run}"
    );

    // ADD again repairs, once each.
    w.run(&Invocation::add(ctr, IFNAME).config(conf.clone()))
        .assert_success();
    check().assert_success();
    assert_eq!(w.rules(false).matches("10.88.0.5").count(), 2);

    w.run(&Invocation::del(ctr, IFNAME).config(conf.clone()))
        .assert_success();
    for v6 in [false, true] {
        assert_eq!(
            lines(&w.rules(v6))[3..],
            ["-N CNI-ADMIN", "-N CNI-FORWARD", JUMP, ADMIN],
            "the shared chains stay, as the reference leaves them"
        );
    }
    check().assert_error(106);
    // DEL is idempotent, and copes without prevResult (nothing to find the rules by).
    w.run(&Invocation::del(ctr, IFNAME).config(conf.clone()))
        .assert_success();
    w.run(&Invocation::del(ctr, IFNAME).config(without_prev(&conf)))
        .assert_success();
}

#[test]
fn a_custom_admin_chain_and_older_versions() {
    let w = World::new();
    let ctr = w.lab.container();
    let prev = prev_result("0.4.0", "cni0", &["10.88.0.7/16"]);
    let conf = conf(
        "0.4.0",
        json!({"iptablesAdminChainName": "MY-ADMIN"}),
        prev.clone(),
    );
    let result = w
        .run(&Invocation::add(ctr, IFNAME).config(conf.clone()))
        .assert_success()
        .result()
        .clone();
    assert_eq!(result["ips"], prev["ips"]);
    assert_eq!(result["cniVersion"], "0.4.0");
    let rules = w.rules(false);
    assert!(rules.contains("-N MY-ADMIN"), "{rules}");
    assert!(rules.contains("--comment \"CNI firewall plugin admin overrides\" -j MY-ADMIN"));
    assert!(!rules.contains("CNI-ADMIN"), "{rules}");
    assert_eq!(
        w.rules(true).lines().count(),
        3,
        "no IPv6 address, no IPv6 rule"
    );
    w.run(&Invocation::check(ctr, IFNAME).config(conf.clone()))
        .assert_success();

    // A 0.3.1 prevResult inside a 1.0.0 request is converted, not refused.
    let inner = prev_result("0.3.1", "cni0", &["10.88.0.7/16"]);
    let conf = common::conf(
        "1.0.0",
        json!({"iptablesAdminChainName": "MY-ADMIN"}),
        inner,
    );
    let result = w
        .run(&Invocation::add(ctr, IFNAME).config(conf))
        .assert_success()
        .result()
        .clone();
    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(
        result["ips"][0],
        json!({"interface": 2, "address": "10.88.0.7/16"})
    );
}

#[test]
fn bad_input_is_refused_with_its_code_and_leaves_nothing() {
    let w = World::new();
    let ctr = w.lab.container();
    let before = w.ruleset();
    let prev = prev_result("1.0.0", "cni0", &["10.88.0.9/16"]);
    let cases: [(Value, u64, &str); 5] = [
        (
            conf("1.0.0", json!({"ingressPolicy": "closed"}), prev.clone()),
            7,
            "unknown ingress policy",
        ),
        (
            conf("1.0.0", json!({"backend": "ebtables"}), prev.clone()),
            7,
            "unknown firewall backend",
        ),
        (
            conf(
                "1.0.0",
                json!({"iptablesAdminChainName": "two words"}),
                prev.clone(),
            ),
            7,
            "iptablesAdminChainName",
        ),
        (
            without_prev(&conf("1.0.0", json!({}), prev.clone())),
            7,
            "missing prevResult",
        ),
        // firewalld is not installed here: a clear error, not a silent iptables fallback.
        (
            conf("1.0.0", json!({"backend": "firewalld"}), prev.clone()),
            105,
            "firewalld",
        ),
    ];
    for (conf, code, words) in cases {
        let run = w
            .run(&Invocation::add(ctr, IFNAME).config(conf))
            .assert_error(code);
        let msg = run.result()["msg"].as_str().unwrap().to_owned();
        assert!(msg.contains(words), "{words}: {msg}");
        assert_eq!(w.ruleset(), before, "{words}: nothing left");
    }
    // Below 0.4.0, as the reference: code 1, and VERSION says so.
    let old = conf(
        "0.3.1",
        json!({}),
        prev_result("0.3.1", "cni0", &["10.88.0.9/16"]),
    );
    let run = w
        .run(&Invocation::add(ctr, IFNAME).config(old))
        .assert_error(1);
    assert_eq!(run.result()["msg"], "incompatible CNI versions", "{run}");
    let version = w.run(&Invocation::version()).assert_success();
    assert_eq!(
        version.result()["supportedVersions"],
        json!(["0.4.0", "1.0.0", "1.1.0"])
    );
    // same-bridge without the bridge in prevResult.
    let mut no_ifaces = prev.clone();
    no_ifaces.as_object_mut().unwrap().remove("interfaces");
    let run = w
        .run(&Invocation::add(ctr, IFNAME).config(conf(
            "1.0.0",
            json!({"ingressPolicy": "same-bridge"}),
            no_ifaces,
        )))
        .assert_error(7);
    assert!(
        run.result()["msg"].as_str().unwrap().contains("bridge"),
        "{run}"
    );
    assert_eq!(w.ruleset(), before);

    // STATUS: iptables is usable; firewalld is not running (code 50).
    w.run(&Invocation::status().config(conf("1.1.0", json!({}), json!(null))))
        .assert_success();
    w.run(&Invocation::status().config(conf(
        "1.1.0",
        json!({"backend": "firewalld"}),
        json!(null),
    )))
    .assert_error(50);
    // GC removes nothing: the rules cannot be traced to attachments.
    let added = conf(
        "1.1.0",
        json!({}),
        prev_result("1.1.0", "cni0", &["10.88.0.9/16"]),
    );
    w.run(&Invocation::add(ctr, IFNAME).config(added))
        .assert_success();
    let rules = w.rules(false);
    let gc = conf(
        "1.1.0",
        json!({"cni.dev/valid-attachments": []}),
        json!(null),
    );
    w.run(&Invocation::gc().config(gc)).assert_success();
    assert_eq!(w.rules(false), rules);
}

/// One container on `bridge` in the lab host with `addr` (a /24), default route via `.1`.
fn attach(w: &World, ctr: &Netns, bridge: &str, host_end: &str, addr: &str) {
    let host = w.lab.host();
    host.ip(&[
        "link",
        "add",
        host_end,
        "type",
        "veth",
        "peer",
        "name",
        IFNAME,
        "netns",
        ctr.name(),
    ]);
    host.ip(&["link", "set", host_end, "master", bridge, "up"]);
    ctr.ip(&["addr", "add", &format!("{addr}/24"), "dev", IFNAME]);
    ctr.ip(&["link", "set", IFNAME, "up"]);
    ctr.bring_up_loopback();
    let gateway = format!("{}.1", addr.rsplit_once('.').unwrap().0);
    ctr.ip(&["route", "add", "default", "via", &gateway]);
}

fn pings(from: &Netns, to: &str) -> bool {
    from.exec(&["ping", "-c", "1", "-W", "1", to])
        .status
        .success()
}

#[test]
fn same_bridge_isolation_blocks_other_bridges_and_allows_its_own() {
    let w = isolation_world(json!({"ingressPolicy": "same-bridge"}));
    let rules = w.rules(false);
    assert_eq!(
        rules.matches("-A CNI-ISOLATION-STAGE-2 -o fwa ").count(),
        1,
        "once per bridge:\n{rules}"
    );
}

#[test]
fn same_bridge_isolation_with_nftables() {
    let w = isolation_world(json!({"ingressPolicy": "same-bridge", "backend": "nftables"}));
    let rules = w.rules(false);
    assert_eq!(rules.lines().count(), 3, "no iptables rule:\n{rules}");
    let ruleset = w.ruleset();
    assert_eq!(
        ruleset.matches("oifname \"fwa\" drop").count(),
        1,
        "{ruleset}"
    );
}

/// Two bridges in the lab host, two containers on `fwa` and one on `fwb`, each added with
/// `keys`; pings prove the isolation: within `fwa` yes, between the bridges no.
fn isolation_world(keys: Value) -> World {
    let w = World::new();
    let host = w.lab.host();
    for (bridge, gateway) in [("fwa", "10.71.1.1/24"), ("fwb", "10.71.2.1/24")] {
        host.ip(&["link", "add", bridge, "type", "bridge"]);
        host.ip(&["addr", "add", gateway, "dev", bridge]);
        host.ip(&["link", "set", bridge, "up"]);
    }
    host.run_inside(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))
        .unwrap();
    let a1 = w.lab.container();
    let a2 = w.lab.new_container();
    let b1 = w.lab.new_container();
    attach(&w, a1, "fwa", "va1", "10.71.1.2");
    attach(&w, &a2, "fwa", "va2", "10.71.1.3");
    attach(&w, &b1, "fwb", "vb1", "10.71.2.2");
    assert!(
        pings(a1, "10.71.2.2"),
        "routed between bridges before the firewall"
    );

    for (ctr, bridge, addr) in [
        (a1, "fwa", "10.71.1.2/24"),
        (&a2, "fwa", "10.71.1.3/24"),
        (&b1, "fwb", "10.71.2.2/24"),
    ] {
        let conf = conf("1.0.0", keys.clone(), prev_result("1.0.0", bridge, &[addr]));
        w.run(&Invocation::add(ctr, IFNAME).config(conf))
            .assert_success();
    }
    assert!(pings(a1, "10.71.1.3"), "same bridge");
    assert!(pings(&a2, "10.71.1.2"), "same bridge");
    assert!(pings(a1, "10.71.1.1"), "the host's bridge address");
    assert!(!pings(a1, "10.71.2.2"), "fwa to fwb is blocked");
    assert!(!pings(&b1, "10.71.1.2"), "fwb to fwa is blocked");
    drop((a2, b1));
    w
}

#[test]
fn isolated_blocks_within_the_bridge_too() {
    let w = World::new();
    let host = w.lab.host();
    host.ip(&["link", "add", "fwi", "type", "bridge"]);
    host.ip(&["addr", "add", "10.72.1.1/24", "dev", "fwi"]);
    host.ip(&["link", "set", "fwi", "up"]);
    let conf = conf(
        "1.0.0",
        json!({"ingressPolicy": "isolated"}),
        prev_result("1.0.0", "fwi", &["10.72.1.2/24"]),
    );
    w.run(&Invocation::add(w.lab.container(), IFNAME).config(conf))
        .assert_success();
    let rules = w.rules(false);
    assert!(
        rules.contains(r#"-A CNI-ISOLATION-STAGE-1 -i fwi -o fwi -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP"#),
        "{rules}"
    );
}

#[test]
fn nftables_rules_are_found_by_attachment_for_del_check_and_gc() {
    let w = World::new();
    let ctr = w.lab.container();
    let keys = json!({"backend": "nftables"});
    let one = conf(
        "1.1.0",
        keys.clone(),
        prev_result("1.1.0", "cni0", &["10.88.0.5/16", "fd00::5/64"]),
    );
    let two = conf(
        "1.1.0",
        keys.clone(),
        prev_result("1.1.0", "cni0", &["10.88.0.6/16"]),
    );
    w.run(&Invocation::add(ctr, IFNAME).config(one.clone()))
        .assert_success();
    w.run(&Invocation::add(ctr, "net1").config(two.clone()))
        .assert_success();
    let ruleset = w.ruleset();
    assert!(
        ruleset.contains("table inet cni_plugins_firewall"),
        "{ruleset}"
    );
    assert!(
        ruleset.contains("ip daddr 10.88.0.5 ct state established,related accept"),
        "{ruleset}"
    );
    assert!(ruleset.contains("ip6 saddr fd00::5 accept"), "{ruleset}");
    assert_eq!(w.rules(false).lines().count(), 3, "no iptables rule");
    w.run(&Invocation::check(ctr, IFNAME).config(one.clone()))
        .assert_success();

    // DEL without prevResult finds the rules by attachment; the other one stays.
    w.run(&Invocation::del(ctr, IFNAME).config(without_prev(&one)))
        .assert_success();
    let ruleset = w.ruleset();
    assert!(
        !ruleset.contains("10.88.0.5") && !ruleset.contains("fd00::5"),
        "{ruleset}"
    );
    assert!(ruleset.contains("10.88.0.6"), "{ruleset}");
    let run = w
        .run(&Invocation::check(ctr, IFNAME).config(one.clone()))
        .assert_error(106);
    assert!(
        run.result()["msg"].as_str().unwrap().contains("10.88.0.5"),
        "{run}"
    );
    w.run(&Invocation::del(ctr, IFNAME).config(without_prev(&one)))
        .assert_success();

    // GC: the valid attachment stays, a stale one goes.
    w.run(&Invocation::add(ctr, IFNAME).config(one.clone()))
        .assert_success();
    let gc = |valid: Value| {
        let keys = json!({"backend": "nftables", "cni.dev/valid-attachments": valid});
        w.run(&Invocation::gc().config(conf("1.1.0", keys, json!(null))))
            .assert_success();
    };
    gc(json!([{"containerID": ctr.name(), "ifname": "net1"}]));
    let ruleset = w.ruleset();
    assert!(!ruleset.contains("10.88.0.5"), "{ruleset}");
    assert!(ruleset.contains("10.88.0.6"), "{ruleset}");
    gc(json!([]));
    assert!(!w.ruleset().contains("10.88.0.6"));
}

#[test]
fn a_failing_second_family_takes_the_first_familys_rules_out_again() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    let ctr = w.lab.container();
    // An ip6tables-restore that always fails, found first in PATH.
    let bin = w.lab.dir().join("failing-bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("ip6tables-restore");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'ip6tables-restore: refused by the test' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin",
        bin.display()
    );

    let before = w.rules(false);
    let conf = conf(
        "1.0.0",
        json!({"backend": "iptables"}),
        prev_result("1.0.0", "cni0", &["10.88.0.5/16", "fd00::5/64"]),
    );
    let run = w
        .run(&Invocation::add(ctr, IFNAME).config(conf).env("PATH", &path))
        .assert_error(105);
    assert!(
        run.result()["msg"]
            .as_str()
            .unwrap()
            .contains("refused by the test"),
        "{run}"
    );
    let after = w.rules(false);
    assert!(
        !after.contains("10.88.0.5"),
        "the IPv4 rules were taken out:\n{after}"
    );
    assert_ne!(before, after, "the shared chains stay, as after a DEL");
    assert!(!w.rules(true).contains("fd00::5"));
}
