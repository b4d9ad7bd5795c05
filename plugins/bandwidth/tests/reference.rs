//! Side by side with the Go reference (`/usr/lib/cni/bandwidth`, Debian's 1.1.1): the same
//! config in two identical labs gives the same result, the same qdiscs with the same
//! parameters and the same ifb name, and each plugin's CHECK and DEL accept what the
//! other's ADD made, so a node can switch binaries both ways. cniVersion 1.0.0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cni_conformance::{Invocation, PluginRun, plugin_path};
use common::*;
use serde_json::{Value, json};
use std::path::Path;

/// One container ID for both labs, so both name the ifb alike.
const CONTAINER_ID: &str = "bw-side-by-side";

fn run(w: &World, binary: &Path, inv: Invocation, conf: &Value) -> PluginRun {
    w.run_binary(binary, &inv.container_id(CONTAINER_ID).config(conf.clone()))
}

/// A result without what differs between labs or releases: the sandbox path, the ifb's
/// random MAC and Debian's `"dns": {}`.
fn comparable(result: &Value) -> Value {
    let mut result = result.clone();
    result.as_object_mut().unwrap().remove("dns");
    for iface in result["interfaces"].as_array_mut().into_iter().flatten() {
        let iface = iface.as_object_mut().unwrap();
        iface.remove("sandbox");
        iface.remove("mac");
    }
    result
}

/// The veth's ingress filters, each action without its kernel-assigned index and
/// counters.
fn filters(w: &World) -> Value {
    let mut filters = w.tc(&["filter", "show", "dev", HOST_VETH, "ingress"]);
    for filter in filters.as_array_mut().into_iter().flatten() {
        for action in filter["options"]["actions"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            for key in ["index", "ref", "bind"] {
                action.as_object_mut().unwrap().remove(key);
            }
        }
    }
    filters
}

#[test]
fn same_result_qdiscs_and_ifb_as_the_reference_and_each_cleans_up_after_the_other() {
    let go = World::new();
    let ours = World::new();
    let (go_conf, our_conf) = (
        go.conf("1.0.0", both_limits()),
        ours.conf("1.0.0", both_limits()),
    );
    let add = |w: &World, binary: &Path, conf: &Value| {
        run(w, binary, Invocation::add(w.lab.container(), IFNAME), conf).assert_success()
    };
    let go_result = add(&go, &reference(), &go_conf);
    let our_result = add(&ours, &plugin_path("bandwidth"), &our_conf);

    assert_eq!(
        comparable(our_result.result()),
        comparable(go_result.result())
    );
    assert_eq!(ours.ifbs(), go.ifbs());
    assert_eq!(ours.qdiscs(), go.qdiscs());
    // The reference's netlink library adds a second mirred action behind the first,
    // which never runs: the first one steals the packet (docs/reference.md#bandwidth).
    let mut go_filters = filters(&go);
    go_filters[2]["options"]["actions"]
        .as_array_mut()
        .unwrap()
        .truncate(1);
    assert_eq!(filters(&ours), go_filters);

    // Each CHECK accepts the other's state.
    for (w, binary, conf) in [
        (&go, plugin_path("bandwidth"), &go_conf),
        (&ours, reference(), &our_conf),
    ] {
        run(
            w,
            &binary,
            Invocation::check(w.lab.container(), IFNAME),
            conf,
        )
        .assert_success();
    }
    // Each DEL removes the other's ifb.
    for (w, binary, conf) in [
        (&go, plugin_path("bandwidth"), &go_conf),
        (&ours, reference(), &our_conf),
    ] {
        run(
            w,
            &binary,
            Invocation::del(w.lab.container(), IFNAME),
            &without_prev(conf),
        )
        .assert_success();
        assert_eq!(w.ifbs(), Vec::<String>::new());
    }
}

#[test]
fn runtime_config_gives_the_same_qdiscs_as_the_reference() {
    let go = World::new();
    let ours = World::new();
    let keys = json!({"runtimeConfig": {"bandwidth": {
        "ingressRate": 123_456_789, "ingressBurst": 9_999_999,
        "egressRate": 10_000, "egressBurst": 4_000_000,
    }}});
    for (w, binary) in [(&go, reference()), (&ours, plugin_path("bandwidth"))] {
        let conf = w.conf("1.0.0", keys.clone());
        run(
            w,
            &binary,
            Invocation::add(w.lab.container(), IFNAME),
            &conf,
        )
        .assert_success();
    }
    assert_eq!(ours.qdiscs(), go.qdiscs());
    for w in [&go, &ours] {
        let conf = w.conf("1.0.0", keys.clone());
        run(
            w,
            &plugin_path("bandwidth"),
            Invocation::del(w.lab.container(), IFNAME),
            &conf,
        )
        .assert_success();
    }
}
