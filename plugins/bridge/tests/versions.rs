//! ADD / CHECK / DEL for IPv4, IPv6 and dual stack with isGateway + isDefaultGateway, for
//! every result version 0.1.0…1.1.0: result shape per version, the kernel state the
//! attachment made (bridge, port, addresses, routes, sysctls), connectivity to the gateway
//! and between two containers, and that DEL removes it all. Plus STATUS and GC (1.1.0).

// A test says "this cannot happen" by panicking with the run in the message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cni_conformance::{Invocation, IpFamily, Lab, Netns};
use common::*;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug)]
enum Stack {
    V4,
    V6,
    Dual,
}

impl Stack {
    fn ipam(self, lab: &Lab) -> Value {
        match self {
            Stack::V4 => ipam_v4(lab, "10.1.2.0/24"),
            Stack::V6 => ipam_v6(lab, "2001:db8:1::/64"),
            Stack::Dual => ipam_dual(lab),
        }
    }
    fn has_v4(self) -> bool {
        !matches!(self, Stack::V6)
    }
    fn has_v6(self) -> bool {
        !matches!(self, Stack::V4)
    }
    /// The gateway CIDRs the bridge must carry.
    fn gateways(self) -> Vec<&'static str> {
        let mut gws = Vec::new();
        if self.has_v4() {
            gws.push("10.1.2.1/24");
        }
        if self.has_v6() {
            gws.push("2001:db8:1::1/64");
        }
        gws
    }
}

/// The container's global addresses, as the result reports them for `version`.
fn result_addresses(result: &Value, version: &str) -> Vec<String> {
    let mut addrs = Vec::new();
    if version < "0.3.0" {
        for key in ["ip4", "ip6"] {
            if let Some(ip) = result[key]["ip"].as_str() {
                addrs.push(ip.to_owned());
            }
        }
    } else {
        for ip in result["ips"].as_array().unwrap() {
            addrs.push(ip["address"].as_str().unwrap().to_owned());
        }
    }
    addrs
}

/// Checks the result's shape for `version` (docs/spec.md#results).
fn assert_shape(result: &Value, version: &str, stack: Stack, container: &Netns) {
    assert_eq!(result["cniVersion"], version, "{result}");
    if version < "0.3.0" {
        // 0.1.0/0.2.0: ip4/ip6 objects, no interfaces.
        assert!(result.get("interfaces").is_none(), "{result}");
        assert_eq!(result.get("ip4").is_some(), stack.has_v4(), "{result}");
        assert_eq!(result.get("ip6").is_some(), stack.has_v6(), "{result}");
        if stack.has_v4() {
            assert_eq!(result["ip4"]["gateway"], "10.1.2.1", "{result}");
            assert!(
                result["ip4"]["routes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["dst"] == "0.0.0.0/0" && r["gw"] == "10.1.2.1"),
                "{result}"
            );
        }
        return;
    }
    let ifaces = result["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifaces.len(), 3, "bridge, host veth, container: {result}");
    assert_eq!(ifaces[0]["name"], "cni0");
    assert!(ifaces[0].get("sandbox").is_none());
    assert!(ifaces[1]["name"].as_str().unwrap().starts_with("veth"));
    assert!(ifaces[1].get("sandbox").is_none());
    assert_eq!(ifaces[2]["name"], "eth0");
    assert_eq!(ifaces[2]["sandbox"], container.path().display().to_string());
    for iface in ifaces {
        assert_eq!(iface["mac"].as_str().unwrap().len(), 17, "{iface}");
    }
    let ips = result["ips"].as_array().unwrap();
    assert_eq!(ips.len(), stack.gateways().len(), "{result}");
    for ip in ips {
        assert_eq!(ip["interface"], 2, "{ip}");
        let v6 = ip["address"].as_str().unwrap().contains(':');
        if version < "1.0.0" {
            // 0.3.x/0.4.0 carry a per-IP version; 1.x dropped it.
            assert_eq!(ip["version"], if v6 { "6" } else { "4" }, "{ip}");
        } else {
            assert!(ip.get("version").is_none(), "{ip}");
        }
        let gw = if v6 { "2001:db8:1::1" } else { "10.1.2.1" };
        assert_eq!(ip["gateway"], gw, "{ip}");
        let any = if v6 { "::/0" } else { "0.0.0.0/0" };
        let default = json!({"dst": any, "gw": gw});
        assert!(
            result["routes"].as_array().unwrap().contains(&default),
            "{result}"
        );
    }
}

/// Kernel state after ADD: bridge with gateway addresses and the result's MAC, the host
/// veth enslaved and up, the container end up with the addresses and default routes,
/// forwarding and accept_ra/accept_dad sysctls.
fn assert_kernel_state(lab: &Lab, container: &Netns, result: &Value, version: &str, stack: Stack) {
    let host = lab.host();
    let bridge = host.link("cni0").expect("bridge cni0");
    assert_eq!(bridge["linkinfo"]["info_kind"], "bridge");
    assert_eq!(bridge["operstate"], "UP", "{bridge}");
    let bridge_addrs = global_addresses(host, "cni0");
    for gw in stack.gateways() {
        assert!(bridge_addrs.contains(&gw.to_owned()), "{bridge_addrs:?}");
    }
    assert_eq!(host.sysctl("net/ipv6/conf/cni0/accept_ra"), "0");
    if stack.has_v4() {
        assert_eq!(host.sysctl("net.ipv4.ip_forward"), "1");
    }
    if stack.has_v6() {
        assert_eq!(host.sysctl("net.ipv6.conf.all.forwarding"), "1");
    }
    let host_veths = veths(host);
    let eth0 = link_once_up(container, "eth0");
    assert_eq!(eth0["linkinfo"]["info_kind"], "veth");
    assert_eq!(eth0["operstate"], "UP", "{eth0}");
    // The host end is the container end's peer, enslaved to cni0, up, accept_ra off.
    let peer = host_veths
        .iter()
        .find(|l| l["ifindex"] == eth0["link_index"])
        .expect("the container end's peer in the host");
    assert_eq!(peer["master"], "cni0");
    assert_eq!(peer["operstate"], "UP");
    let peer_name = peer["ifname"].as_str().unwrap();
    assert_eq!(
        host.sysctl(&format!("net/ipv6/conf/{peer_name}/accept_ra")),
        "0"
    );
    if version >= "0.3.0" {
        let ifaces = result["interfaces"].as_array().unwrap();
        assert_eq!(ifaces[0]["mac"], bridge["address"], "bridge MAC");
        assert_eq!(ifaces[1]["name"], peer["ifname"]);
        assert_eq!(ifaces[1]["mac"], peer["address"], "host veth MAC");
        assert_eq!(ifaces[2]["mac"], eth0["address"], "container MAC");
        // The bridge MAC is pinned, not borrowed from a port (plugins #805).
        assert_ne!(bridge["address"], peer["address"]);
    }
    let mut addrs = global_addresses(container, "eth0");
    let mut want = result_addresses(result, version);
    addrs.sort();
    want.sort();
    assert_eq!(addrs, want);
    assert_eq!(container.sysctl("net/ipv6/conf/eth0/accept_dad"), "0");
    assert_eq!(container.sysctl("net/ipv4/conf/eth0/arp_notify"), "1");
    for (family, any, gw, enabled) in [
        (IpFamily::V4, "default", "10.1.2.1", stack.has_v4()),
        (IpFamily::V6, "default", "2001:db8:1::1", stack.has_v6()),
    ] {
        let routes = container.routes(family);
        let found = routes
            .iter()
            .any(|r| r["dst"] == any && r["gateway"] == gw && r["dev"] == "eth0");
        assert_eq!(found, enabled, "{family:?} default route: {routes:?}");
    }
}

fn lifecycle(stack: Stack) {
    let lab = Lab::new();
    let other = lab.new_container();
    for version in ALL_VERSIONS {
        let context = format!("{stack:?} {version}");
        let conf = conf(
            version,
            json!({"isGateway": true, "isDefaultGateway": true, "ipam": stack.ipam(&lab)}),
        );
        let added = add(&lab, &conf).assert_success();
        let result = added.result().clone();
        assert_shape(&result, version, stack, lab.container());
        assert_kernel_state(&lab, lab.container(), &result, version, stack);

        // A second container on the same bridge: both reach the gateway and each other.
        let second = add_in(&lab, &other, "eth0", &conf).assert_success();
        let mine = result_addresses(&result, version);
        let theirs = result_addresses(second.result(), version);
        for (target, from) in mine.iter().zip(&theirs) {
            let gw = if target.contains(':') {
                "2001:db8:1::1"
            } else {
                "10.1.2.1"
            };
            assert!(ping(lab.container(), gw), "{context}: ping gateway {gw}");
            assert!(ping(&other, ip_of(target)), "{context}: ping {target}");
            assert!(ping(lab.container(), ip_of(from)), "{context}: ping {from}");
        }

        let check = lab.run(
            "bridge",
            &Invocation::check(lab.container(), "eth0").config(with_prev(&conf, &result)),
        );
        if version >= "0.4.0" {
            check.assert_success();
        } else {
            // CHECK does not exist before 0.4.0 (spec): code 1, incompatible version.
            check.assert_error(1);
        }

        del(&lab, &conf).assert_success();
        del_in(&lab, &other, "eth0", &conf).assert_success();
        assert_nothing_left(&lab, &[lab.container(), &other], "eth0", &context);
        // DEL is idempotent.
        del(&lab, &conf).assert_success();
    }
}

#[test]
fn ipv4_add_check_del_every_version() {
    lifecycle(Stack::V4);
}

#[test]
fn ipv6_add_check_del_every_version() {
    lifecycle(Stack::V6);
}

#[test]
fn dual_stack_add_check_del_every_version() {
    lifecycle(Stack::Dual);
}

/// CHECK notices what it promises to check: a missing address and a missing route.
#[test]
fn check_fails_when_the_container_state_drifts() {
    let lab = Lab::new();
    let conf = conf(
        "1.0.0",
        json!({"isDefaultGateway": true, "ipam": ipam_v4(&lab, "10.1.2.0/24")}),
    );
    let result = add(&lab, &conf).assert_success().result().clone();
    let check = || {
        lab.run(
            "bridge",
            &Invocation::check(lab.container(), "eth0").config(with_prev(&conf, &result)),
        )
    };
    check().assert_success();
    lab.container()
        .ip(&["route", "del", "default", "via", "10.1.2.1"]);
    let run = check();
    assert!(!run.succeeded(), "{run}");
    assert!(run.stdout.contains("route"), "{run}");
    lab.container()
        .ip(&["addr", "del", "10.1.2.2/24", "dev", "eth0"]);
    let run = check();
    assert!(run.stdout.contains("10.1.2.2"), "{run}");
    del(&lab, &conf).assert_success();
    assert_nothing_left(&lab, &[lab.container()], "eth0", "after DEL");
}

/// STATUS is forwarded to IPAM (and succeeds without IPAM); GC with every attachment
/// valid keeps the attachment, GC with none valid releases its lease.
#[test]
fn status_and_gc_1_1_0() {
    let lab = Lab::new();
    let l3 = conf("1.1.0", json!({"ipam": ipam_v4(&lab, "10.1.2.0/24")}));
    lab.run("bridge", &Invocation::status().config(l3.clone()))
        .assert_success();
    let l2 = conf("1.1.0", json!({}));
    lab.run("bridge", &Invocation::status().config(l2))
        .assert_success();

    add(&lab, &l3).assert_success();
    let reserved = leases(&lab);
    assert!(reserved.contains(&"10.1.2.2".to_owned()), "{reserved:?}");
    let mut gc = l3.clone();
    gc["cni.dev/valid-attachments"] =
        json!([{"containerID": lab.container().name(), "ifname": "eth0"}]);
    lab.run("bridge", &Invocation::gc().config(gc))
        .assert_success();
    assert_eq!(leases(&lab), reserved, "a valid attachment survives GC");
    let mut gc = l3.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    lab.run("bridge", &Invocation::gc().config(gc))
        .assert_success();
    assert_eq!(
        leases(&lab),
        Vec::<String>::new(),
        "GC is forwarded to IPAM"
    );
    del(&lab, &l3).assert_success();
    assert_nothing_left(&lab, &[lab.container()], "eth0", "after DEL");
}
