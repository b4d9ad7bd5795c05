//! The built `tuning` binary, run as a runtime runs it in a chain, inside throwaway
//! namespaces (needs root). The container's `eth0` is a veth the test makes, standing in
//! for the plugin before tuning; every assertion reads the kernel back (`ip -j link`,
//! `/proc/sys` inside the container).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cni_conformance::Invocation;
use common::*;
use serde_json::{Value, json};

/// Every key tuning has, each different from a fresh veth's value.
fn everything() -> Value {
    let mut keys = tuned_keys();
    keys["txQLen"] = json!(500);
    keys
}

#[test]
fn add_changes_everything_check_passes_and_del_puts_it_all_back() {
    let w = World::new();
    let before = w.state(&SYSCTLS);
    let conf = w.conf("1.0.0", everything());
    let result = w.add(&conf);

    let after = w.state(&SYSCTLS);
    assert_eq!(after["address"], "c2:11:22:33:44:55");
    assert_eq!(after["mtu"], 1400);
    assert_eq!(after["flags"], json!(["ALLMULTI", "PROMISC"]));
    assert_eq!(after["txqlen"], 500);
    assert_eq!(after["sysctls"]["net/ipv4/conf/eth0/arp_notify"], "1");
    assert_eq!(after["sysctls"]["net/core/somaxconn"], "512");

    // The prevResult passes through, with the container interface's new MAC only.
    let mut expected = conf["prevResult"].clone();
    expected["interfaces"][1]["mac"] = json!("c2:11:22:33:44:55");
    expected.as_object_mut().unwrap().remove("dns");
    assert_eq!(result, expected);

    // The originals of the link attributes, in the reference's format.
    let saved: Value = serde_json::from_str(&w.saved().unwrap()).unwrap();
    assert_eq!(
        saved,
        json!({
            "mac": before["address"], "promisc": false, "mtu": 1500,
            "allmulti": false, "txQLen": before["txqlen"],
        })
    );

    w.run(&Invocation::check(w.lab.container(), IFNAME).config(conf.clone()))
        .assert_success();

    w.del(&conf);
    let restored = w.state(&SYSCTLS);
    // Sysctls are per netns and go with it; the reference does not restore them either.
    assert_eq!(restored["sysctls"], after["sysctls"]);
    let link_only = |s: &Value| {
        let mut s = s.clone();
        s.as_object_mut().unwrap().remove("sysctls");
        s
    };
    assert_eq!(link_only(&restored), link_only(&before));
    assert_eq!(w.saved(), None, "the saved state is removed");
    w.del(&conf);
}

#[test]
fn check_finds_drift() {
    let w = World::new();
    let conf = w.conf("1.0.0", everything());
    w.add(&conf);
    let ctr = w.lab.container();
    let check = || w.run(&Invocation::check(ctr, IFNAME).config(conf.clone()));
    let drifts: [(&[&str], &str, &str); 5] = [
        (&["link", "set", IFNAME, "mtu", "1500"], "mtu 1400", "MTU"),
        (
            &["link", "set", IFNAME, "promisc", "off"],
            "promisc on",
            "promiscuous",
        ),
        (
            &["link", "set", IFNAME, "allmulticast", "off"],
            "allmulticast on",
            "all-multicast",
        ),
        (
            &["link", "set", IFNAME, "txqueuelen", "1000"],
            "txqueuelen 500",
            "queue length",
        ),
        (
            &["link", "set", IFNAME, "address", "c2:00:00:00:00:09"],
            "address c2:11:22:33:44:55",
            "MAC",
        ),
    ];
    for (drift, back, word) in drifts {
        ctr.ip(drift);
        let run = check().assert_error(106);
        let msg = run.result()["msg"].as_str().unwrap().to_owned();
        assert!(msg.contains(word), "{word}: {msg}");
        let mut undo = vec!["link", "set", IFNAME];
        undo.extend(back.split(' '));
        ctr.ip(&undo);
        check().assert_success();
    }
    ctr.run_inside(|| std::fs::write("/proc/sys/net/core/somaxconn", "4096"))
        .unwrap();
    let run = check().assert_error(106);
    assert!(
        run.result()["msg"].as_str().unwrap().contains("somaxconn"),
        "{run}"
    );

    let run = w.run(&Invocation::check(ctr, IFNAME).config(without_prev(&conf)));
    assert_eq!(
        run.assert_error(7).result()["msg"],
        "required prevResult missing"
    );
    ctr.ip(&["link", "del", IFNAME]);
    check().assert_error(106);
    w.del(&conf);
}

/// Bad input: the right code, a message naming the fault, and nothing changed: no sysctl,
/// no link attribute, no saved-state file.
#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let w = World::new();
    let before = w.state(&SYSCTLS);
    let with = |extra: Value| {
        let mut keys = everything();
        merge(&mut keys, extra);
        w.conf("1.0.0", keys)
    };
    let cases: Vec<(Value, Option<&str>, u64, &str)> = vec![
        (
            with(
                json!({"sysctl": {"net.core.somaxconn": "512", "net.ipv4.conf.IFNAME.no_such_key": "1"}}),
            ),
            None,
            7,
            "unknown sysctl",
        ),
        (
            with(json!({"sysctl": {"net.core.somaxconn": "512", "kernel.hostname": "x"}})),
            None,
            7,
            "invalid net sysctl key",
        ),
        // Not per netns: outside the first netns the kernel shows it read-only.
        (
            with(json!({"sysctl": {"net.core.somaxconn": "512", "net.core.rmem_max": "1"}})),
            None,
            7,
            "not per netns",
        ),
        (
            with(
                json!({"sysctl": {"net.core.somaxconn": "512", "net.ipv4.conf.IFNAME.arp_notify": "x"}}),
            ),
            None,
            7,
            "invalid value",
        ),
        (
            with(json!({"mac": "c2:11:22:33:44"})),
            None,
            7,
            "not a MAC address",
        ),
        (with(json!({"mtu": -1})), None, 7, "mtu"),
        (with(json!({"sysctl": "x"})), None, 7, "sysctl"),
        (
            with(json!({"args": {"cni": {"mtu": "x"}}})),
            None,
            7,
            "args.cni.mtu",
        ),
        (with(json!({"args": {"cni": 5}})), None, 7, "args.cni"),
        (
            without_prev(&with(json!({}))),
            None,
            7,
            "required prevResult missing",
        ),
        (with(json!({})), Some("FOO=bar"), 4, "unknown args"),
        (with(json!({})), Some("MAC=zz"), 7, "CNI_ARGS MAC"),
    ];
    for (conf, cni_args, code, words) in cases {
        let mut inv = Invocation::add(w.lab.container(), IFNAME).config(conf.clone());
        if let Some(args) = cni_args {
            inv = inv.args(args);
        }
        let run = w.run(&inv).assert_error(code);
        let msg = run.result()["msg"].as_str().unwrap().to_owned();
        assert!(msg.contains(words), "{conf}: {msg}");
        assert_eq!(w.state(&SYSCTLS), before, "{conf} changed something");
        assert_eq!(w.saved(), None, "{conf} left a saved-state file");
    }
    // A duplicated key, which a JSON value would silently collapse.
    let conf = w.conf("1.0.0", json!({}));
    let text = serde_json::to_string(&conf).unwrap().replacen(
        "\"cniVersion\"",
        "\"sysctl\":{\"net.core.somaxconn\":\"512\",\"net.core.somaxconn\":\"600\"},\"cniVersion\"",
        1,
    );
    let run = w
        .run(&Invocation::add(w.lab.container(), IFNAME).stdin(text.into_bytes()))
        .assert_error(7);
    assert!(
        run.result()["msg"]
            .as_str()
            .unwrap()
            .contains("duplicated sysctl keys"),
        "{run}"
    );
    assert_eq!(w.state(&SYSCTLS), before);
}

#[test]
fn a_failure_at_any_step_puts_everything_back() {
    let w = World::new();
    let before = w.state(&SYSCTLS);
    let conf = w.conf("1.0.0", everything());
    for point in [
        "tuning-after-sysctls",
        "tuning-after-save",
        "tuning-after-link",
        "tuning-before-result",
    ] {
        let run = w.run(
            &Invocation::add(w.lab.container(), IFNAME)
                .config(conf.clone())
                .env("CNI_TEST_FAIL_AT", point),
        );
        run.assert_error(999);
        assert_eq!(w.state(&SYSCTLS), before, "after a failure at {point}");
        assert_eq!(w.saved(), None, "after a failure at {point}");
    }
    // A MAC the kernel refuses (multicast) fails after the sysctls were written.
    let mut keys = everything();
    keys["mac"] = json!("01:00:5e:00:00:01");
    let run = w.run(&Invocation::add(w.lab.container(), IFNAME).config(w.conf("1.0.0", keys)));
    let msg = run.assert_error(100).result()["msg"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("set mac"), "{msg}");
    assert_eq!(w.state(&SYSCTLS), before);
    assert_eq!(w.saved(), None);
}

#[test]
fn every_version_passes_the_prev_result_through_in_its_shape() {
    for version in [
        "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
    ] {
        let w = World::new();
        let conf = w.conf(version, json!({"mtu": 1300}));
        let result = w.add(&conf);
        let mut expected = conf["prevResult"].clone();
        if version.starts_with('1') {
            expected.as_object_mut().unwrap().remove("dns");
        }
        assert_eq!(result, expected, "{version}");
        assert_eq!(w.state(&[])["mtu"], 1300);
        w.del(&conf);
        assert_eq!(w.state(&[])["mtu"], 1500, "{version}");
    }
}

/// The MAC's precedence, lowest first: `mac`, `CNI_ARGS` `MAC=`, `runtimeConfig.mac`,
/// `args.cni.mac`; and `args.cni` overriding the other keys.
#[test]
fn mac_precedence_and_args_cni_overrides() {
    let w = World::new();
    let ctr = w.lab.container();
    let cases = [
        (
            json!({"mac": "c2:00:00:00:00:01"}),
            None,
            "c2:00:00:00:00:01",
        ),
        (
            json!({"mac": "c2:00:00:00:00:01"}),
            Some("MAC=c2:00:00:00:00:02"),
            "c2:00:00:00:00:02",
        ),
        (
            json!({"mac": "c2:00:00:00:00:01", "capabilities": {"mac": true}, "runtimeConfig": {"mac": "c2:00:00:00:00:03"}}),
            Some("MAC=c2:00:00:00:00:02"),
            "c2:00:00:00:00:03",
        ),
        (
            json!({"runtimeConfig": {"mac": "c2:00:00:00:00:03"}, "args": {"cni": {"mac": "C2-00-00-00-00-04"}}}),
            Some("IgnoreUnknown=1;K8S_POD_NAME=x;MAC=c2:00:00:00:00:02"),
            "c2:00:00:00:00:04",
        ),
    ];
    for (keys, cni_args, want) in cases {
        let conf = w.conf("1.0.0", keys.clone());
        let mut inv = Invocation::add(ctr, IFNAME).config(conf.clone());
        if let Some(args) = cni_args {
            inv = inv.args(args);
        }
        let result = w.run(&inv).assert_success().result().clone();
        assert_eq!(ctr.link(IFNAME).unwrap()["address"], want, "{keys}");
        assert_eq!(result["interfaces"][1]["mac"], want);
        w.del(&conf);
    }
    let conf = w.conf(
        "1.0.0",
        json!({
            "mtu": 1400, "sysctl": {"net.core.somaxconn": "300"},
            "args": {"cni": {"mtu": 1280, "promisc": true, "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}},
        }),
    );
    w.add(&conf);
    let state = w.state(&SYSCTLS);
    assert_eq!(state["mtu"], 1280);
    assert_eq!(state["flags"], json!(["PROMISC"]));
    assert_eq!(state["sysctls"]["net/core/somaxconn"], "300");
    assert_eq!(state["sysctls"]["net/ipv4/conf/eth0/arp_notify"], "1");
    w.del(&conf);
}

/// `IFNAME` becomes the interface name after the dots became slashes, so a dotted
/// interface name (a VLAN's) keeps its dot.
#[test]
fn ifname_in_a_sysctl_key_keeps_its_dots() {
    let w = World::with_ifname("eth0.7");
    let key = "net/ipv4/conf/eth0.7/arp_notify";
    let conf = w.conf(
        "1.0.0",
        json!({"sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}),
    );
    w.run(&Invocation::add(w.lab.container(), "eth0.7").config(conf.clone()))
        .assert_success();
    assert_eq!(w.lab.container().sysctl(key), "1");
    w.run(&Invocation::check(w.lab.container(), "eth0.7").config(conf))
        .assert_success();
}

#[test]
fn del_is_idempotent_and_cleans_up_when_the_interface_or_netns_is_gone() {
    let w = World::new();
    let conf = w.conf("1.0.0", json!({"mtu": 1400}));
    // Never added: nothing to do.
    w.del(&conf);

    w.add(&conf);
    w.lab.container().ip(&["link", "del", IFNAME]);
    w.del(&conf);
    assert_eq!(w.saved(), None);

    let w = World::new();
    w.add(&conf_for(&w));
    w.run(
        &Invocation::del(w.lab.container(), IFNAME)
            .no_netns()
            .config(without_prev(&conf_for(&w))),
    )
    .assert_success();
    assert_eq!(w.saved(), None);

    let w = World::new();
    w.add(&conf_for(&w));
    w.run(
        &Invocation::del(w.lab.container(), IFNAME)
            .netns_path("/run/netns/cnitest-no-such-netns")
            .config(without_prev(&conf_for(&w))),
    )
    .assert_success();
    assert_eq!(w.saved(), None);
}

fn conf_for(w: &World) -> Value {
    w.conf("1.0.0", json!({"mtu": 1400}))
}

#[test]
fn status_is_ready_and_gc_removes_nothing() {
    let w = World::new();
    let conf = w.conf("1.1.0", json!({"mtu": 1400}));
    w.add(&conf);
    let bare = json!({"cniVersion": "1.1.0", "name": "tunenet", "type": "tuning", "dataDir": w.data_dir()});
    w.run(&Invocation::status().config(bare.clone()))
        .assert_success();
    let mut gc = bare;
    gc["cni.dev/valid-attachments"] = json!([]);
    w.run(&Invocation::gc().config(gc)).assert_success();
    assert!(w.saved().is_some(), "GC cannot tell whose file it is");
    w.del(&conf);
}

/// The node's allow list (a test copy: debug builds read `CNI_TEST_TUNING_ALLOWLIST`
/// instead of `/etc/cni/tuning/allowlist.conf`) limits the sysctl names ADD accepts.
#[test]
fn the_allow_list_limits_sysctl_names() {
    let w = World::new();
    let list = w.lab.dir().join("allowlist.conf");
    std::fs::write(&list, "^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]*$\n").unwrap();
    let list = list.to_str().unwrap();
    let before = w.state(&SYSCTLS);
    let refused = w.conf(
        "1.0.0",
        json!({"sysctl": {"net.core.somaxconn": "512"}, "mtu": 1400}),
    );
    let run = w
        .run(
            &Invocation::add(w.lab.container(), IFNAME)
                .config(refused)
                .env("CNI_TEST_TUNING_ALLOWLIST", list),
        )
        .assert_error(7);
    assert!(
        run.result()["msg"]
            .as_str()
            .unwrap()
            .contains("not allowed"),
        "{run}"
    );
    assert_eq!(w.state(&SYSCTLS), before);
    assert_eq!(w.saved(), None);

    let allowed = w.conf(
        "1.0.0",
        json!({"sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}),
    );
    w.run(
        &Invocation::add(w.lab.container(), IFNAME)
            .config(allowed.clone())
            .env("CNI_TEST_TUNING_ALLOWLIST", list),
    )
    .assert_success();
    assert_eq!(
        w.lab.container().sysctl("net/ipv4/conf/eth0/arp_notify"),
        "1"
    );
    w.del(&allowed);
}
