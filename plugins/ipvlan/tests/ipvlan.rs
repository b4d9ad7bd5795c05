//! The built `ipvlan` binary, run as a runtime runs it, inside throwaway namespaces (needs
//! root). IPAM is our `host-local`, storing in the lab's directory.
//!
//! Two lanes:
//! * tests without a `vm_` prefix run everywhere, also on this machine's kernel, which has
//!   no ipvlan: ADD must then fail cleanly (code 101), and what needs no ipvlan link
//!   (config errors, DEL, STATUS, GC) is tested for real;
//! * `vm_*` tests need a kernel with ipvlan and `dummy` (ipvlan refuses a veth master:
//!   EOPNOTSUPP). They are ignored here and run by `scripts/vm-lane.sh` in a guest booting
//!   Debian's kernel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../macvlan/tests/common/mod.rs"]
mod common;
mod shared;

use cni_conformance::{Invocation, IpFamily, Lab, Netns};
use common::*;
use serde_json::{Value, json};
use shared::*;

fn conf(lab: &Lab) -> Value {
    conf_with_routes(lab, json!([{"dst": "0.0.0.0/0"}]))
}

fn without_master(mut conf: Value) -> Value {
    conf.as_object_mut().unwrap().remove("master");
    conf
}

/// On a kernel without ipvlan (this machine), ADD fails with 101 naming ipvlan, before
/// IPAM is asked: no lease, no link. On a kernel with ipvlan, a veth master is refused
/// with EOPNOTSUPP, which is the same code — so this test holds on both.
#[test]
fn add_without_kernel_support_fails_with_101_and_reserves_nothing() {
    let w = World::new();
    let run = w.run(
        "ipvlan",
        &Invocation::add(w.lab.container(), "eth0").config(conf(&w.lab)),
    );
    let run = run.assert_error(101);
    let msg = run.result()["msg"].as_str().unwrap().to_owned();
    assert!(msg.contains("ipvlan"), "{run}");
    if !std::path::Path::new("/sys/module/ipvlan").exists() {
        assert!(msg.contains("kernel lacks ipvlan support"), "{run}");
    }
    assert!(leases(&w.lab).is_empty(), "a lease was left");
    assert_eq!(w.lab.container().link_names(), ["lo"]);
    assert_eq!(w.lab.host().link_names(), ["lo", MASTER]);
}

#[test]
fn config_errors_are_reported_before_any_change() {
    let w = World::new();
    let ctr = w.lab.container();
    let add = |conf: Value| {
        w.run("ipvlan", &Invocation::add(ctr, "eth0").config(conf))
            .assert_error(7)
    };

    let mut bad_mode = conf(&w.lab);
    bad_mode["mode"] = json!("bridge");
    assert_eq!(
        add(bad_mode).result()["msg"],
        r#"unknown ipvlan mode: "bridge""#
    );

    let mut no_addresses = conf(&w.lab);
    no_addresses.as_object_mut().unwrap().remove("ipam");
    add(no_addresses.clone());

    let mut two_ifaces = without_master(no_addresses);
    two_ifaces["prevResult"] = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "a"}, {"name": "b"}],
        "ips": [{"address": "10.77.0.2/24", "interface": 0}],
    });
    let run = add(two_ifaces);
    assert_eq!(
        run.result()["msg"],
        "chained master failure. PrevResult lacks a single named interface"
    );

    let run = add(without_master(conf(&w.lab)));
    assert_eq!(run.result()["msg"], "no default route interface found");

    let mut mtu = conf(&w.lab);
    mtu["mtu"] = json!(9000);
    assert_eq!(
        add(mtu).result()["msg"],
        "invalid MTU 9000, must be [0, master MTU(1500)]"
    );

    assert!(leases(&w.lab).is_empty());
    assert_eq!(ctr.link_names(), ["lo"]);
}

/// DEL needs neither `master` nor a default route (the reference's DEL fails with `no
/// default route interface found` here, defect 7): a reservation made for this attachment
/// is released, and the missing link is fine. Runs on any kernel.
#[test]
fn del_needs_neither_master_nor_default_route() {
    let lab = Lab::new();
    let conf = without_master(conf(&lab));
    // Reserve as the ADD would have, through host-local itself (same network, container
    // and ifname).
    let mut ipam_only = conf.clone();
    ipam_only["type"] = json!("host-local");
    lab.run(
        "host-local",
        &Invocation::add(lab.container(), "eth0").config(ipam_only),
    )
    .assert_success();
    assert_eq!(leases(&lab).len(), 1);
    assert!(
        lab.host().routes(IpFamily::V4).is_empty(),
        "the lab host has no routes"
    );
    lab.run(
        "ipvlan",
        &Invocation::del(lab.container(), "eth0").config(conf.clone()),
    )
    .assert_success();
    assert!(leases(&lab).is_empty());
    // Idempotent, and fine without a netns.
    lab.run(
        "ipvlan",
        &Invocation::del(lab.container(), "eth0").config(conf.clone()),
    )
    .assert_success();
    lab.run(
        "ipvlan",
        &Invocation::del(lab.container(), "eth0")
            .no_netns()
            .config(conf),
    )
    .assert_success();
}

#[test]
fn gc_and_status_are_forwarded_to_ipam() {
    let lab = Lab::new();
    let mut conf = conf(&lab);
    conf["cniVersion"] = json!("1.1.0");
    let mut ipam_only = conf.clone();
    ipam_only["type"] = json!("host-local");
    lab.run(
        "host-local",
        &Invocation::add(lab.container(), "eth0").config(ipam_only),
    )
    .assert_success();
    lab.run("ipvlan", &Invocation::status().config(conf.clone()))
        .assert_success();
    conf["cni.dev/valid-attachments"] = json!([]);
    lab.run("ipvlan", &Invocation::gc().config(conf))
        .assert_success();
    assert!(leases(&lab).is_empty(), "GC did not reach host-local");
}

// ---------------------------------------------------------------------------------------
// VM lane: a kernel with ipvlan and dummy.

/// A lab whose host netns has a `dummy` master `mv0` (up). ipvlan cannot sit on a veth.
fn dummy_lab() -> Lab {
    let lab = Lab::new();
    add_dummy(lab.host());
    lab
}

fn add_dummy(ns: &Netns) {
    ns.ip(&["link", "add", MASTER, "type", "dummy"]);
    ns.ip(&["link", "set", MASTER, "up"]);
}

fn add_ok(lab: &Lab, ctr: &Netns, conf: &Value) -> Value {
    lab.run("ipvlan", &Invocation::add(ctr, "eth0").config(conf.clone()))
        .assert_success()
        .result()
        .clone()
}

fn check_ok(lab: &Lab, ctr: &Netns, conf: &Value, result: &Value) {
    lab.run(
        "ipvlan",
        &Invocation::check(ctr, "eth0").config(with_prev(conf, result)),
    )
    .assert_success();
}

fn del_ok(lab: &Lab, ctr: &Netns, conf: &Value) {
    lab.run("ipvlan", &Invocation::del(ctr, "eth0").config(conf.clone()))
        .assert_success();
}

/// DEL succeeds and leaves no eth0 in the container and no lease.
fn del_leaves_nothing(lab: &Lab, ctr: &Netns, conf: &Value) {
    del_ok(lab, ctr, conf);
    assert!(ctr.link("eth0").is_none());
    assert!(leases(lab).is_empty());
}

#[test]
#[ignore = "needs ipvlan: runs in the VM lane"]
fn vm_every_mode_add_check_del() {
    for mode in ["l2", "l3", "l3s"] {
        let lab = dummy_lab();
        let ctr = lab.container();
        let mut conf = conf(&lab);
        conf["mode"] = json!(mode);
        let result = add_ok(&lab, ctr, &conf);
        assert_eq!(
            result["interfaces"].as_array().unwrap().len(),
            1,
            "{result}"
        );
        assert_eq!(result["interfaces"][0]["name"], "eth0");
        assert_eq!(
            result["interfaces"][0]["sandbox"],
            ctr.path().display().to_string()
        );
        assert_eq!(result["ips"][0]["address"], "10.77.0.10/24");
        assert_eq!(result["ips"][0]["interface"], 0);
        let link = ctr.link("eth0").unwrap();
        assert_eq!(kind(ctr, "eth0"), "ipvlan");
        assert_eq!(info_data(ctr, "eth0")["mode"], mode, "{link}");
        // Slaves share the master's MAC.
        assert_eq!(link["address"], lab.host().link(MASTER).unwrap()["address"]);
        assert_eq!(result["interfaces"][0]["mac"], link["address"]);
        assert_eq!(ipv4_addresses(ctr, "eth0"), ["10.77.0.10/24"]);
        assert_eq!(ctr.sysctl("net/ipv4/conf/eth0/arp_notify"), "1");
        assert_eq!(
            lab.host().link_names(),
            ["lo", MASTER],
            "a link showed up in the host"
        );
        check_ok(&lab, ctr, &conf, &result);
        // A CHECK with another mode notices.
        let mut other = conf.clone();
        other["mode"] = json!(if mode == "l2" { "l3" } else { "l2" });
        lab.run(
            "ipvlan",
            &Invocation::check(ctr, "eth0").config(with_prev(&other, &result)),
        )
        .assert_error(106);
        del_leaves_nothing(&lab, ctr, &conf);
    }
}

/// Two containers on one dummy master reach each other through the ipvlan driver, in L2
/// and L3 mode (the master itself carries no traffic: a dummy drops everything).
#[test]
#[ignore = "needs ipvlan: runs in the VM lane"]
fn vm_two_containers_on_one_master_reach_each_other() {
    for mode in ["l2", "l3"] {
        let lab = dummy_lab();
        let other = lab.new_container();
        let mut conf = conf(&lab);
        conf["mode"] = json!(mode);
        let first = add_ok(&lab, lab.container(), &conf);
        let second = add_ok(&lab, &other, &conf);
        let (ip1, ip2) = (result_ip(&first, 0), result_ip(&second, 0));
        assert!(
            pings_eventually(lab.container(), &ip2),
            "{mode}: {ip1} → {ip2}"
        );
        assert!(pings_eventually(&other, &ip1), "{mode}: {ip2} → {ip1}");
        del_ok(&lab, &other, &conf);
        del_ok(&lab, lab.container(), &conf);
        assert!(leases(&lab).is_empty());
    }
}

#[test]
#[ignore = "needs ipvlan: runs in the VM lane"]
fn vm_link_in_container() {
    let lab = Lab::new();
    let ctr = lab.container();
    add_dummy(ctr);
    let mut conf = conf(&lab);
    conf["linkInContainer"] = json!(true);
    let result = add_ok(&lab, ctr, &conf);
    assert_eq!(ctr.link("eth0").unwrap()["link"], MASTER);
    check_ok(&lab, ctr, &conf, &result);
    // The same config without linkInContainer looks in the host, where there is no mv0.
    let mut host_side = conf.clone();
    host_side["linkInContainer"] = json!(false);
    lab.run("ipvlan", &Invocation::add(ctr, "eth1").config(host_side))
        .assert_error(7);
    del_ok(&lab, ctr, &conf);
    assert!(ctr.link(MASTER).is_some() && ctr.link("eth0").is_none());
    assert!(leases(&lab).is_empty());
}

/// A host link named like `CNI_IFNAME` does not stop ADD, with the master in the host or
/// in the container: the ipvlan is created as `eth0` straight into the container, where
/// the kernel checks its name. DEL removes the container's `eth0`, never the host's.
#[test]
#[ignore = "needs ipvlan: runs in the VM lane"]
fn vm_a_host_link_named_like_ifname_does_not_clash() {
    for link_in_container in [false, true] {
        let lab = Lab::new();
        let (host, ctr) = (lab.host(), lab.container());
        add_dummy(if link_in_container { ctr } else { host });
        host.ip(&["link", "add", "eth0", "type", "dummy"]);
        let host_eth0 = host.link("eth0").unwrap();
        let mut conf = conf(&lab);
        conf["linkInContainer"] = json!(link_in_container);
        let result = add_ok(&lab, ctr, &conf);
        assert_eq!(result["interfaces"][0]["name"], "eth0");
        assert_eq!(kind(ctr, "eth0"), "ipvlan");
        assert_eq!(host.link("eth0").unwrap()["ifindex"], host_eth0["ifindex"]);
        del_ok(&lab, ctr, &conf);
        assert!(ctr.link("eth0").is_none());
        assert_eq!(host.link("eth0").unwrap()["ifindex"], host_eth0["ifindex"]);
        assert!(leases(&lab).is_empty());
    }
}

/// An ADD killed right after creating the link (no rollback runs), with a host link named
/// like `CNI_IFNAME`: on this kernel (6.1 checks the name in the host too) the link still
/// has the attachment's temporary name, and DEL removes it.
#[test]
#[ignore = "needs ipvlan: runs in the VM lane"]
fn vm_del_after_an_add_killed_after_the_create_leaves_nothing() {
    let lab = dummy_lab();
    let ctr = lab.container();
    lab.host().ip(&["link", "add", "eth0", "type", "dummy"]);
    let conf = conf(&lab);
    let inv = Invocation::add(ctr, "eth0")
        .config(conf.clone())
        .env("CNI_TEST_KILL_AT", "ipvlan-after-create");
    let run = lab.run("ipvlan", &inv);
    // The run ends when its stderr closes, so also its IPAM child is done: unable to
    // hand over its result, host-local undoes its reservation.
    assert!(!run.succeeded(), "{run}");
    assert_eq!(ctr.link_names().len(), 2, "the link is left: {run}");
    del_ok(&lab, ctr, &conf);
    assert_eq!(ctr.link_names(), ["lo"]);
    assert!(leases(&lab).is_empty());
    assert!(lab.host().link("eth0").is_some());
}

/// Chained without IPAM: the master is the prevResult's single interface, the addresses
/// and routes are the prevResult's; the result names only the ipvlan. CHECK and DEL of
/// that chained config (no `master`, no IPAM) work.
#[test]
#[ignore = "needs ipvlan: runs in the VM lane"]
fn vm_chained_from_prev_result() {
    let lab = dummy_lab();
    let ctr = lab.container();
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "mvnet",
        "type": "ipvlan",
        "prevResult": {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": MASTER}],
            "ips": [{"address": "10.1.2.2/24", "gateway": "10.1.2.1", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["10.1.2.53"]},
        },
    });
    let result = add_ok(&lab, ctr, &conf);
    assert_eq!(
        result["interfaces"].as_array().unwrap().len(),
        1,
        "{result}"
    );
    assert_eq!(result["interfaces"][0]["name"], "eth0");
    assert_eq!(result["ips"][0]["address"], "10.1.2.2/24");
    assert_eq!(result["ips"][0]["interface"], 0);
    assert_eq!(result["dns"]["nameservers"], json!(["10.1.2.53"]));
    let link = ctr.link("eth0").unwrap();
    assert_eq!(
        link["link_index"],
        lab.host().link(MASTER).unwrap()["ifindex"],
        "{link}"
    );
    assert_eq!(ipv4_addresses(ctr, "eth0"), ["10.1.2.2/24"]);
    let routes = ctr.routes(IpFamily::V4);
    assert!(
        routes
            .iter()
            .any(|r| r["dst"] == "default" && r["gateway"] == "10.1.2.1"),
        "{routes:?}"
    );
    let mut check = conf.clone();
    check["prevResult"] = result.clone();
    lab.run(
        "ipvlan",
        &Invocation::check(ctr, "eth0").config(check.clone()),
    )
    .assert_success();
    lab.run("ipvlan", &Invocation::del(ctr, "eth0").config(check))
        .assert_success();
    assert!(ctr.link("eth0").is_none());
}

/// `master` unset: ADD takes the default route's interface; CHECK works without `master`
/// (the reference fails: `failed to lookup master ""`), and DEL works after the default
/// route is gone (the reference fails: `no default route interface found`) — defect 7.
#[test]
#[ignore = "needs ipvlan: runs in the VM lane"]
fn vm_check_without_master_and_del_without_default_route() {
    let lab = dummy_lab();
    let ctr = lab.container();
    let host = lab.host();
    host.ip(&["addr", "add", "10.77.0.5/24", "dev", MASTER]);
    host.ip(&["route", "add", "default", "via", PEER_IP, "dev", MASTER]);
    let conf = without_master(conf(&lab));
    let result = add_ok(&lab, ctr, &conf);
    assert_eq!(
        ctr.link("eth0").unwrap()["link_index"],
        host.link(MASTER).unwrap()["ifindex"]
    );
    check_ok(&lab, ctr, &conf, &result);
    host.ip(&["route", "del", "default"]);
    check_ok(&lab, ctr, &conf, &result);
    del_leaves_nothing(&lab, ctr, &conf);
}

#[test]
#[ignore = "needs ipvlan: runs in the VM lane"]
fn vm_del_after_the_master_is_gone_releases_the_ip() {
    let lab = dummy_lab();
    let ctr = lab.container();
    let conf = conf(&lab);
    add_ok(&lab, ctr, &conf);
    lab.host().ip(&["link", "del", MASTER]);
    assert_eq!(leases(&lab).len(), 1);
    del_leaves_nothing(&lab, ctr, &conf);
}

/// Each ADD step made to fail in turn: no link, no reservation left (the reference never
/// removes its ipvlan on failure and keeps the lease when addressing fails, defect 6).
#[test]
#[ignore = "needs ipvlan: runs in the VM lane"]
fn vm_a_failure_at_any_add_step_leaves_no_link_and_no_lease() {
    let lab = dummy_lab();
    let ctr = lab.container();
    let conf = conf(&lab);
    let points = [
        "ipvlan-after-create",
        "ipvlan-after-ipam",
        "ipvlan-after-addresses",
        "ipvlan-before-result",
    ];
    lab.assert_add_faults_undone(
        "eth0",
        &conf,
        &points,
        |invocation| lab.run("ipvlan", invocation),
        |point| {
            assert!(
                leases(&lab).is_empty(),
                "lease left after a failure at {point}"
            )
        },
    );
    add_ok(&lab, ctr, &conf);
    lab.run("ipvlan", &Invocation::add(ctr, "eth0").config(conf.clone()))
        .assert_error(100);
    del_ok(&lab, ctr, &conf);
}

/// IPAM's DNS reaches the result when the config has no `dns` (defect 9).
#[test]
#[ignore = "needs ipvlan: runs in the VM lane"]
fn vm_dns_comes_from_ipam_unless_configured() {
    let lab = dummy_lab();
    let ctr = lab.container();
    let resolv = lab.dir().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 10.77.0.53\n").unwrap();
    let mut conf = conf(&lab);
    conf["ipam"]["resolvConf"] = json!(resolv);
    let result = add_ok(&lab, ctr, &conf);
    assert_eq!(
        result["dns"]["nameservers"],
        json!(["10.77.0.53"]),
        "{result}"
    );
    del_ok(&lab, ctr, &conf);
}
