//! Side by side with the Go reference (`/usr/lib/cni/firewall`, Debian's 1.1.1): the same
//! config in two identical labs gives the same result and the same rules, rule for rule and
//! in order, after ADD and after DEL; and either plugin's DEL removes what the other's ADD
//! made, so a node can switch binaries both ways.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cni_conformance::{Invocation, PluginRun, plugin_path};
use common::*;
use serde_json::{Value, json};
use std::path::Path;

fn add(w: &World, binary: &Path, conf: &Value) -> PluginRun {
    w.run_binary(
        binary,
        &Invocation::add(w.lab.container(), IFNAME).config(conf.clone()),
    )
}

fn del(w: &World, binary: &Path, conf: &Value) {
    w.run_binary(
        binary,
        &Invocation::del(w.lab.container(), IFNAME).config(conf.clone()),
    )
    .assert_success();
}

/// A result without what only differs between releases (Debian's `"dns": {}`).
fn comparable(result: &Value) -> Value {
    let mut result = result.clone();
    if result["dns"] == json!({}) {
        result.as_object_mut().unwrap().remove("dns");
    }
    result
}

fn both_families(w: &World) -> (String, String) {
    (w.rules(false), w.rules(true))
}

#[test]
fn same_rules_as_the_reference_after_add_and_del() {
    let ours = plugin_path("firewall");
    let reference = reference();
    let prev = prev_result(
        "1.0.0",
        "cni0",
        &["10.88.0.5/16", "10.88.0.6/16", "fd00::5/64"],
    );
    for keys in [
        json!({}),
        json!({"backend": "iptables", "ingressPolicy": "same-bridge"}),
        json!({"iptablesAdminChainName": "SITE-ADMIN", "ingressPolicy": "open"}),
    ] {
        let conf = conf("1.0.0", keys.clone(), prev.clone());
        let (a, b) = (World::new(), World::new());
        let ra = add(&a, &ours, &conf).assert_success();
        let rb = add(&b, &reference, &conf).assert_success();
        assert_eq!(comparable(ra.result()), comparable(rb.result()), "{keys}");
        assert_eq!(both_families(&a), both_families(&b), "{keys}");

        // A second container on the same bridge: the shared rules are not repeated.
        let second = common::conf(
            "1.0.0",
            keys.clone(),
            prev_result("1.0.0", "cni0", &["10.88.0.9/16"]),
        );
        add(&a, &ours, &second).assert_success();
        add(&b, &reference, &second).assert_success();
        assert_eq!(both_families(&a), both_families(&b), "{keys}");

        del(&a, &ours, &conf);
        del(&b, &reference, &conf);
        assert_eq!(both_families(&a), both_families(&b), "{keys}");
    }
}

#[test]
fn either_plugins_del_and_check_work_on_the_others_rules() {
    let ours = plugin_path("firewall");
    let reference = reference();
    let conf = conf(
        "1.0.0",
        json!({"ingressPolicy": "same-bridge"}),
        prev_result("1.0.0", "cni0", &["10.88.0.5/16", "fd00::5/64"]),
    );
    for (adder, deleter) in [(&reference, &ours), (&ours, &reference)] {
        let w = World::new();
        let empty = both_families(&w);
        add(&w, adder, &conf).assert_success();
        let added = both_families(&w);
        w.run_binary(
            deleter,
            &Invocation::check(w.lab.container(), IFNAME).config(conf.clone()),
        )
        .assert_success();
        del(&w, deleter, &conf);
        let left = both_families(&w);
        assert_ne!(left, added);
        assert!(
            !left.0.contains("10.88.0.5") && !left.1.contains("fd00::5"),
            "{left:?}"
        );
        assert_ne!(left, empty, "the shared chains stay with both");
    }
}
