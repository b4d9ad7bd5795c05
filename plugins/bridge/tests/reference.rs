//! Side by side with the Go reference (Debian 1.1.1: /usr/lib/cni/bridge and host-local,
//! cniVersion 1.0.0): the same config gives the same result shape and the same kernel
//! state. Ignored on purpose: MACs, the random veth name, key order, and Debian's empty
//! `"dns": {}` (docs/reference.md#comparing-side-by-side). Differences we make on purpose are asserted by name.

// A test says "this cannot happen" by panicking with the run in the message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cni_conformance::{
    Invocation, IpFamily, Lab, Netns, PluginRun, REFERENCE_DIR, reference_plugin,
};
use common::*;
use serde_json::{Map, Value, json};

/// The reference bridge binary; panics (never skips) when it is missing.
fn reference_bridge() -> PathBuf {
    reference_plugin("host-local");
    reference_plugin("bridge")
}

/// Which implementation a lab runs: ours (built binaries, our host-local) or the
/// reference (Debian bridge, Debian host-local).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Impl {
    Ours,
    Reference,
}

fn run(lab: &Lab, which: Impl, invocation: Invocation) -> PluginRun {
    match which {
        Impl::Ours => lab.run("bridge", &invocation),
        Impl::Reference => lab.run_binary(&reference_bridge(), &invocation.cni_path(REFERENCE_DIR)),
    }
}

/// The result with what may differ removed: MACs, the veth name, the lab-specific sandbox
/// path, and an empty `dns`.
fn normalise_result(result: &Value, lab: &Lab) -> Value {
    let mut result = result.clone();
    let object = result.as_object_mut().unwrap();
    if object.get("dns") == Some(&json!({})) {
        object.remove("dns");
    }
    for iface in object
        .get_mut("interfaces")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let iface = iface.as_object_mut().unwrap();
        let mac = iface.remove("mac");
        assert!(mac.is_some_and(|m| m.as_str().unwrap().len() == 17));
        if iface["name"].as_str().unwrap().starts_with("veth") {
            iface.insert("name".into(), json!("veth*"));
        }
        if let Some(sandbox) = iface.get("sandbox") {
            assert_eq!(
                sandbox,
                &json!(lab.container().path().display().to_string())
            );
            iface.insert("sandbox".into(), json!("<container>"));
        }
    }
    result
}

/// The kernel state a comparison looks at.
fn kernel_state(lab: &Lab, container: &Netns) -> Value {
    let host = lab.host();
    let veth = veths(host)
        .first()
        .map(|v| v["ifname"].as_str().unwrap().to_owned());
    let mut bridge_addrs = global_addresses(host, "cni0");
    bridge_addrs.sort();
    let mut ctr_addrs = global_addresses(container, "eth0");
    ctr_addrs.sort();
    let routes = |ns: &Netns| -> Vec<Value> {
        let mut routes: Vec<Value> = [IpFamily::V4, IpFamily::V6]
            .into_iter()
            .flat_map(|f| ns.routes(f))
            .filter(|r| r["dst"].as_str() != Some("fe80::/64"))
            .map(|r| {
                let keep = ["dst", "gateway", "dev", "protocol", "scope", "metric"];
                let kept: Map<String, Value> = keep
                    .iter()
                    .filter_map(|k| Some((k.to_string(), r.get(*k)?.clone())))
                    .collect();
                Value::Object(kept)
            })
            .collect();
        routes.sort_by_key(Value::to_string);
        routes
    };
    let bridge = host.link("cni0");
    // Read again until UP: operstate follows carrier a moment after ADD returns.
    let eth0 = container
        .link("eth0")
        .map(|_| link_once_up(container, "eth0"));
    json!({
        "bridge exists": bridge.is_some(),
        "bridge up": bridge.as_ref().map(|b| b["operstate"].clone()),
        "bridge mtu": bridge.as_ref().map(|b| b["mtu"].clone()),
        "bridge addresses": bridge_addrs,
        "bridge accept_ra": host.sysctl("net/ipv6/conf/cni0/accept_ra"),
        "ip_forward": host.sysctl("net.ipv4.ip_forward"),
        "ipv6 forwarding": host.sysctl("net.ipv6.conf.all.forwarding"),
        "host veths": veths(host).len(),
        "veth master": veths(host).first().map(|v| v["master"].clone()),
        "veth accept_ra": veth.map(|v| host.sysctl(&format!("net/ipv6/conf/{v}/accept_ra"))),
        "host routes": routes(host),
        "container eth0 up": eth0.as_ref().map(|l| l["operstate"].clone()),
        "container eth0 mtu": eth0.as_ref().map(|l| l["mtu"].clone()),
        "container addresses": ctr_addrs,
        "container routes": routes(container),
        "container accept_dad": container.sysctl("net/ipv6/conf/eth0/accept_dad"),
        "container arp_notify": container.sysctl("net/ipv4/conf/eth0/arp_notify"),
    })
}

/// Runs ADD (and DEL) of `extra` in a fresh lab per implementation and compares.
fn compare(extra: Value, ipam: fn(&Lab) -> Value) -> [Lab; 2] {
    let labs = [Lab::new(), Lab::new()];
    let mut seen = Vec::new();
    for (lab, which) in labs.iter().zip([Impl::Ours, Impl::Reference]) {
        let mut conf = conf("1.0.0", extra.clone());
        conf["ipam"] = ipam(lab);
        let added = run(
            lab,
            which,
            Invocation::add(lab.container(), "eth0").config(conf),
        );
        let added = added.assert_success();
        seen.push((
            normalise_result(added.result(), lab),
            kernel_state(lab, lab.container()),
        ));
    }
    assert_eq!(
        seen[0].0, seen[1].0,
        "result: ours (left) vs reference (right)"
    );
    assert_eq!(
        seen[0].1, seen[1].1,
        "kernel state: ours (left) vs reference (right)"
    );
    for (lab, which) in labs.iter().zip([Impl::Ours, Impl::Reference]) {
        let mut conf = conf("1.0.0", extra.clone());
        conf["ipam"] = ipam(lab);
        run(
            lab,
            which,
            Invocation::del(lab.container(), "eth0").config(conf),
        )
        .assert_success();
        assert!(
            veths(lab.host()).is_empty(),
            "{which:?}: DEL leaves no veth"
        );
        assert!(lab.container().link("eth0").is_none());
        assert!(leases(lab).is_empty(), "{which:?}: DEL releases the lease");
    }
    labs
}

#[test]
fn same_as_reference_ipv4_default_gateway() {
    compare(json!({"isDefaultGateway": true}), |lab| {
        ipam_v4(lab, "10.1.2.0/24")
    });
}

#[test]
fn same_as_reference_dual_stack_gateway_mtu() {
    compare(json!({"isGateway": true, "mtu": 1400}), ipam_dual);
}

#[test]
fn same_as_reference_ipv6_default_gateway_with_ipam_routes() {
    compare(json!({"isDefaultGateway": true}), |lab| {
        json!({"type": "host-local", "dataDir": data_dir(lab),
               "ranges": [[{"subnet": "2001:db8:1::/64"}]],
               "routes": [{"dst": "2001:db8:9::/64"}]})
    });
}

#[test]
fn same_as_reference_plain_l3_without_gateway() {
    compare(json!({}), |lab| ipam_v4(lab, "10.1.2.0/24"));
}

/// L2 mode: same ADD result and state; CHECK differs on purpose (docs/reference.md#defect-1:
/// the reference fails an L2 CHECK with `no plugin name provided`, ours passes).
#[test]
fn same_as_reference_l2_except_check_reference_defect_2_6_1() {
    let labs = compare(json!({}), |_| json!({}));
    for (lab, which) in labs.iter().zip([Impl::Ours, Impl::Reference]) {
        let conf = conf("1.0.0", json!({"ipam": {}}));
        let added = run(
            lab,
            which,
            Invocation::add(lab.container(), "eth0").config(conf.clone()),
        )
        .assert_success();
        let check = run(
            lab,
            which,
            Invocation::check(lab.container(), "eth0").config(with_prev(&conf, added.result())),
        );
        match which {
            Impl::Ours => {
                check.assert_success();
            }
            Impl::Reference => {
                assert!(!check.succeeded(), "{check}");
                assert!(check.stdout.contains("no plugin name provided"), "{check}");
            }
        }
        run(
            lab,
            which,
            Invocation::del(lab.container(), "eth0").config(conf),
        )
        .assert_success();
    }
}

/// docs/reference.md#defect-6: a failed ADD (here: L2 with 0.2.0, which cannot express the
/// result) leaves the reference's container veth behind; ours leaves nothing.
#[test]
fn failed_add_leaves_a_veth_only_in_the_reference_defect_2_6_6() {
    for which in [Impl::Ours, Impl::Reference] {
        let lab = Lab::new();
        let conf = conf("0.2.0", json!({"ipam": {}}));
        let run = run(
            &lab,
            which,
            Invocation::add(lab.container(), "eth0").config(conf),
        );
        assert!(!run.succeeded(), "{run}");
        assert!(run.stdout.contains("cannot convert"), "{run}");
        let left = lab.container().link("eth0").is_some();
        assert_eq!(left, which == Impl::Reference, "{which:?}");
    }
}

/// docs/reference.md#defect-2 (#810): DEL with an empty CNI_NETNS leaves the reference's
/// iptables masquerade rules; ours removes them.
#[test]
fn del_without_netns_leaks_masquerade_only_in_the_reference_defect_2_6_2() {
    for which in [Impl::Ours, Impl::Reference] {
        let lab = Lab::new();
        let conf = conf(
            "1.0.0",
            json!({"isGateway": true, "ipMasq": true, "ipam": ipam_v4(&lab, "10.1.2.0/24")}),
        );
        run(
            &lab,
            which,
            Invocation::add(lab.container(), "eth0").config(conf.clone()),
        )
        .assert_success();
        assert!(!iptables_cni_lines(lab.host()).is_empty(), "{which:?}");
        run(
            &lab,
            which,
            Invocation::del(lab.container(), "eth0")
                .no_netns()
                .config(conf),
        )
        .assert_success();
        let leaked = !iptables_cni_lines(lab.host()).is_empty();
        assert_eq!(leaked, which == Impl::Reference, "{which:?}");
    }
}

/// Wall time of ADD and DEL, ours vs the reference, both with their own host-local
/// (isGateway, IPv4). Printed, not asserted: it is a measurement (debug build for ours).
#[test]
fn add_del_wall_time_ours_vs_reference() {
    const ROUNDS: u32 = 10;
    for which in [Impl::Ours, Impl::Reference] {
        let lab = Lab::new();
        let conf = conf(
            "1.0.0",
            json!({"isDefaultGateway": true, "ipam": ipam_v4(&lab, "10.1.2.0/24")}),
        );
        let (mut add_time, mut del_time) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..ROUNDS {
            let t = Instant::now();
            run(
                &lab,
                which,
                Invocation::add(lab.container(), "eth0").config(conf.clone()),
            )
            .assert_success();
            add_time += t.elapsed();
            let t = Instant::now();
            run(
                &lab,
                which,
                Invocation::del(lab.container(), "eth0").config(conf.clone()),
            )
            .assert_success();
            del_time += t.elapsed();
        }
        eprintln!(
            "{which:?}: ADD {:?}, DEL {:?} (mean of {ROUNDS})",
            add_time / ROUNDS,
            del_time / ROUNDS
        );
    }
}
