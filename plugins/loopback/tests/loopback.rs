//! The built `loopback` binary, run by the conformance lab in a throwaway "host" netns
//! against throwaway "container" netns; state is read back through `cni-netlink`.

// Tests: a failed step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use cni_conformance::{Invocation, Lab, PluginRun};
use cni_netlink::{AddressOptions, Handle, Link};
use serde_json::{Value, json};

const ALL_VERSIONS: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

fn conf(version: &str) -> Value {
    json!({"cniVersion": version, "name": "loopback-test", "type": "loopback"})
}

fn run(lab: &Lab, invocation: &Invocation) -> PluginRun {
    lab.run_binary(Path::new(env!("CARGO_BIN_EXE_loopback")), invocation)
}

fn lo_in(netns: &cni_conformance::Netns) -> Link {
    let ns = cni_netlink::Netns::from_path(netns.path()).unwrap();
    Handle::for_netns(&ns).unwrap().link_by_name("lo").unwrap()
}

#[test]
fn add_sets_lo_up_and_reports_it() {
    let lab = Lab::new();
    let ctr = lab.container();
    assert!(!lo_in(ctr).admin_up, "a new netns starts with lo down");

    // CNI_IFNAME is ignored, as in the reference.
    let added = run(&lab, &Invocation::add(ctr, "eth0").config(conf("1.0.0"))).assert_success();
    assert!(lo_in(ctr).admin_up);
    let sandbox = ctr.path().display().to_string();
    assert_eq!(
        added.result(),
        &json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": sandbox}],
            "ips": [
                {"interface": 0, "address": "127.0.0.1/8"},
                {"interface": 0, "address": "::1/128"}
            ]
        })
    );
    // The runtime's CHECK after ADD passes.
    let mut check_conf = conf("1.0.0");
    check_conf["prevResult"] = added.result().clone();
    run(&lab, &Invocation::check(ctr, "lo").config(check_conf)).assert_success();
}

/// The reference's own test passes `CNI_ARGS=none`, which neither Go's skel nor its
/// loopback ever parses.
#[test]
fn cni_args_none_is_ignored_like_the_reference() {
    let lab = Lab::new();
    let ctr = lab.container();
    run(
        &lab,
        &Invocation::add(ctr, "lo")
            .args("none")
            .config(conf("1.0.0")),
    )
    .assert_success();
    run(
        &lab,
        &Invocation::del(ctr, "lo")
            .args("none")
            .config(conf("1.0.0")),
    )
    .assert_success();
}

#[test]
fn every_version_gets_its_own_shape() {
    let lab = Lab::new();
    for version in ALL_VERSIONS {
        let ctr = lab.new_container();
        let out = run(&lab, &Invocation::add(&ctr, "lo").config(conf(version))).assert_success();
        let result = out.result();
        assert_eq!(result["cniVersion"], version);
        match version {
            "0.1.0" | "0.2.0" => {
                assert_eq!(result["ip4"]["ip"], "127.0.0.1/8", "{version}: {result}");
                assert_eq!(result["ip6"]["ip"], "::1/128", "{version}: {result}");
                assert!(result.get("interfaces").is_none() && result.get("ips").is_none());
            }
            "0.3.0" | "0.3.1" | "0.4.0" => {
                assert_eq!(result["ips"][0]["version"], "4", "{version}: {result}");
                assert_eq!(result["ips"][0]["address"], "127.0.0.1/8");
                assert_eq!(result["ips"][1]["version"], "6", "{version}: {result}");
                assert_eq!(result["interfaces"][0]["name"], "lo");
            }
            _ => {
                assert!(
                    result["ips"][0].get("version").is_none(),
                    "{version}: {result}"
                );
                assert_eq!(result["ips"][1]["address"], "::1/128");
                assert_eq!(result["interfaces"][0]["mac"], "00:00:00:00:00:00");
            }
        }
        assert!(lo_in(&ctr).admin_up, "{version}");
        run(&lab, &Invocation::del(&ctr, "lo").config(conf(version))).assert_success();
        assert!(!lo_in(&ctr).admin_up, "{version}");
    }
}

#[test]
fn prev_result_is_returned_unchanged() {
    let lab = Lab::new();
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:01:02:03", "sandbox": "/x"}],
        "ips": [{"interface": 0, "address": "10.1.2.3/24", "gateway": "10.1.2.1"}],
        "custom": {"kept": true}
    });
    let mut config = conf("1.0.0");
    config["prevResult"] = prev.clone();
    let out = run(&lab, &Invocation::add(lab.container(), "lo").config(config)).assert_success();
    assert_eq!(out.result(), &prev);
    assert!(lo_in(lab.container()).admin_up, "lo is still brought up");
}

#[test]
fn del_sets_lo_down_and_check_then_fails() {
    let lab = Lab::new();
    let ctr = lab.container();
    let added = run(&lab, &Invocation::add(ctr, "lo").config(conf("1.1.0"))).assert_success();
    run(&lab, &Invocation::del(ctr, "lo").config(conf("1.1.0"))).assert_success();
    assert!(!lo_in(ctr).admin_up);
    // DEL again is fine (idempotent).
    run(&lab, &Invocation::del(ctr, "lo").config(conf("1.1.0"))).assert_success();

    let mut check_conf = conf("1.1.0");
    check_conf["prevResult"] = added.result().clone();
    let failed = run(&lab, &Invocation::check(ctr, "lo").config(check_conf)).assert_error(106);
    assert_eq!(failed.result()["msg"], "loopback interface is down");
}

#[test]
fn del_tolerates_a_vanished_or_empty_netns() {
    let lab = Lab::new();
    let gone = lab.new_container();
    let gone_path = gone.path().to_owned();
    drop(gone);
    assert!(!gone_path.exists());
    run(
        &lab,
        &Invocation::del(lab.container(), "lo")
            .netns_path(&gone_path)
            .config(conf("1.0.0")),
    )
    .assert_success();
    run(
        &lab,
        &Invocation::del(lab.container(), "lo")
            .no_netns()
            .config(conf("1.0.0")),
    )
    .assert_success();
    run(
        &lab,
        &Invocation::del(lab.container(), "lo")
            .netns_path("")
            .config(conf("1.0.0")),
    )
    .assert_success();
}

#[test]
fn a_path_that_is_not_a_netns_is_refused() {
    let lab = Lab::new();
    let file = lab.dir().join("not-a-netns");
    std::fs::write(&file, b"").unwrap();
    let add = run(
        &lab,
        &Invocation::add(lab.container(), "lo")
            .netns_path(&file)
            .config(conf("1.0.0")),
    )
    .assert_error(100);
    assert!(
        add.result()["msg"]
            .as_str()
            .unwrap()
            .starts_with("unknown FS magic"),
        "{add}"
    );
    // Unlike a missing path, DEL does not tolerate this (as the Go reference).
    run(
        &lab,
        &Invocation::del(lab.container(), "lo")
            .netns_path(&file)
            .config(conf("1.0.0")),
    )
    .assert_error(100);
}

#[test]
fn add_refuses_lo_with_a_non_loopback_address() {
    let lab = Lab::new();
    let ctr = lab.container();
    let ns = cni_netlink::Netns::from_path(ctr.path()).unwrap();
    let handle = Handle::for_netns(&ns).unwrap();
    let lo = handle.link_by_name("lo").unwrap();
    handle
        .add_address(
            lo.index,
            "10.200.0.1/32".parse().unwrap(),
            AddressOptions::default(),
        )
        .unwrap();
    let out = run(&lab, &Invocation::add(ctr, "lo").config(conf("1.0.0"))).assert_error(999);
    assert_eq!(
        out.result()["msg"],
        "loopback interface found with non-loopback address"
    );
}

#[test]
fn status_and_gc_succeed() {
    let lab = Lab::new();
    let status = run(&lab, &Invocation::status().config(conf("1.1.0"))).assert_success();
    assert!(status.stdout.is_empty(), "{status}");
    run(&lab, &Invocation::gc().config(conf("1.1.0"))).assert_success();
}

/// A FIFO named by `CNI_NETNS` is refused at once with a CNI error: opening it blocking
/// would wait for a writer forever.
#[test]
fn a_fifo_as_netns_fails_at_once() {
    let lab = Lab::new();
    lab.assert_fifo_netns_refused(
        "lo",
        &conf("1.0.0"),
        |invocation| run(&lab, invocation),
        |_| {},
    );
    assert!(!lo_in(lab.container()).admin_up, "lo untouched");
}
