//! Side by side with the Go reference (`/usr/lib/cni/tuning`, Debian's 1.1.1): the same
//! config in two identical labs gives the same result, the same kernel state and the same
//! saved-state file, and either plugin's DEL restores what the other's ADD saved, so a
//! node can switch binaries both ways. cniVersion 1.0.0, the highest both speak; no
//! `txQLen`, which 1.1.1 does not have (docs/reference.md#tuning).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cni_conformance::{Invocation, PluginRun, plugin_path};
use common::*;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The veth's MAC before tuning, the same in both labs so the saved files can match.
const ORIGINAL_MAC: &str = "c2:00:00:00:00:aa";

/// A lab whose veth has [`ORIGINAL_MAC`], and the config for it.
fn world() -> (World, Value) {
    let w = World::new();
    w.lab
        .container()
        .ip(&["link", "set", IFNAME, "address", ORIGINAL_MAC]);
    let conf = w.conf("1.0.0", tuned_keys());
    (w, conf)
}

fn add(w: &World, binary: &Path, conf: &Value) -> PluginRun {
    w.run_binary(
        binary,
        &Invocation::add(w.lab.container(), IFNAME).config(conf.clone()),
    )
}

fn del(w: &World, binary: &Path, conf: &Value) {
    w.run_binary(
        binary,
        &Invocation::del(w.lab.container(), IFNAME).config(without_prev(conf)),
    )
    .assert_success();
}

/// A result with what differs only between labs (the sandbox path) or releases (Debian's
/// `"dns": {}`) taken out.
fn comparable(result: &Value) -> Value {
    let mut result = result.clone();
    if result["dns"] == json!({}) {
        result.as_object_mut().unwrap().remove("dns");
    }
    for iface in result["interfaces"].as_array_mut().into_iter().flatten() {
        iface.as_object_mut().unwrap().remove("sandbox");
    }
    result
}

fn saved_mode(w: &World) -> u32 {
    let name = format!("{}_{IFNAME}.json", w.lab.container().name());
    let meta = std::fs::metadata(w.data_dir().join(name)).unwrap();
    meta.permissions().mode() & 0o777
}

#[test]
fn same_result_state_and_saved_file_as_the_reference() {
    let (go, go_conf) = world();
    let (ours, our_conf) = world();
    let go_result = add(&go, &reference(), &go_conf).assert_success();
    let our_result = add(&ours, &plugin_path("tuning"), &our_conf).assert_success();

    assert_eq!(
        comparable(our_result.result()),
        comparable(go_result.result())
    );
    assert_eq!(ours.state(&SYSCTLS), go.state(&SYSCTLS));
    assert_eq!(ours.saved(), go.saved(), "the saved-state files differ");
    assert!(ours.saved().is_some());
    assert_eq!(saved_mode(&ours), saved_mode(&go));

    // Each DEL puts back the same originals.
    del(&go, &reference(), &go_conf);
    del(&ours, &plugin_path("tuning"), &our_conf);
    assert_eq!(ours.state(&SYSCTLS), go.state(&SYSCTLS));
    assert_eq!(ours.state(&[])["address"], ORIGINAL_MAC);
    assert_eq!((ours.saved(), go.saved()), (None, None));
}

/// A node switching binaries between ADD and DEL, both ways.
#[test]
fn each_restores_what_the_other_saved() {
    for (adder, deleter) in [
        (reference(), plugin_path("tuning")),
        (plugin_path("tuning"), reference()),
    ] {
        let (w, conf) = world();
        let before = w.state(&[]);
        add(&w, &adder, &conf).assert_success();
        assert_ne!(w.state(&[]), before);
        del(&w, &deleter, &conf);
        assert_eq!(
            w.state(&[]),
            before,
            "{} ADD, {} DEL",
            adder.display(),
            deleter.display()
        );
        assert_eq!(w.saved(), None);
    }
}

/// CHECK agrees with the reference on a key without `IFNAME`; Debian's 1.1.1 CHECK does
/// not substitute `IFNAME` (fixed upstream in v1.3.0), so it fails where ours passes.
#[test]
fn check_like_the_reference_except_ifname_keys() {
    let (w, _) = world();
    let plain = w.conf(
        "1.0.0",
        json!({"sysctl": {"net.core.somaxconn": "512"}, "mtu": 1400}),
    );
    add(&w, &plugin_path("tuning"), &plain).assert_success();
    for binary in [reference(), plugin_path("tuning")] {
        w.run_binary(
            &binary,
            &Invocation::check(w.lab.container(), IFNAME).config(plain.clone()),
        )
        .assert_success();
    }
    w.lab
        .container()
        .ip(&["link", "set", IFNAME, "mtu", "1500"]);
    let go = w.run_binary(
        &reference(),
        &Invocation::check(w.lab.container(), IFNAME).config(plain.clone()),
    );
    assert!(!go.succeeded(), "{go}");
    w.run(&Invocation::check(w.lab.container(), IFNAME).config(plain.clone()))
        .assert_error(106);
    del(&w, &plugin_path("tuning"), &plain);

    let with_ifname = w.conf("1.0.0", tuned_keys());
    add(&w, &plugin_path("tuning"), &with_ifname).assert_success();
    let go = w.run_binary(
        &reference(),
        &Invocation::check(w.lab.container(), IFNAME).config(with_ifname.clone()),
    );
    assert!(
        !go.succeeded() && go.stdout.contains("IFNAME"),
        "Debian's CHECK was expected to look for a literal IFNAME: {go}"
    );
    w.run(&Invocation::check(w.lab.container(), IFNAME).config(with_ifname.clone()))
        .assert_success();
    del(&w, &plugin_path("tuning"), &with_ifname);
}

/// The MAC's sources and `args.cni`'s overrides resolve as in the reference.
#[test]
fn same_precedence_of_mac_sources_and_args_cni() {
    let cases = [
        (json!({"mac": "c2:00:00:00:00:01"}), "MAC=c2:00:00:00:00:02"),
        (
            json!({"mac": "c2:00:00:00:00:01", "runtimeConfig": {"mac": "c2:00:00:00:00:03"}}),
            "MAC=c2:00:00:00:00:02",
        ),
        (
            json!({"runtimeConfig": {"mac": "c2:00:00:00:00:03"},
                   "args": {"cni": {"mac": "c2:00:00:00:00:04", "mtu": 1280, "promisc": true}}}),
            "IgnoreUnknown=1;K8S_POD_NAME=x;MAC=c2:00:00:00:00:02",
        ),
    ];
    for (extra, cni_args) in cases {
        let mut states = Vec::new();
        for binary in [reference(), plugin_path("tuning")] {
            let (w, _) = world();
            let conf = w.conf("1.0.0", extra.clone());
            let inv = Invocation::add(w.lab.container(), IFNAME)
                .config(conf.clone())
                .args(cni_args);
            w.run_binary(&binary, &inv).assert_success();
            states.push((w.state(&[]), w.saved()));
            del(&w, &binary, &conf);
        }
        assert_eq!(states[0], states[1], "{extra} with CNI_ARGS {cni_args}");
    }
}
