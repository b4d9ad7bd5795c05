//! Config options and modes, asserted on kernel state: L2 mode, disableContainerInterface,
//! hairpinMode, promiscMode, portIsolation, mtu, container MAC precedence, forceAddress,
//! enabledad, and VLANs (which this kernel cannot do: the positive VLAN tests are `vm_*`
//! tests that the VM lane runs with `--ignored` on a Debian kernel).

// A test says "this cannot happen" by panicking with the run in the message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cni_conformance::{Invocation, Lab, Netns};
use common::*;
use serde_json::{Value, json};

/// The host end of the attachment (the only veth in the host).
fn host_veth(lab: &Lab) -> Value {
    let veths = veths(lab.host());
    assert_eq!(veths.len(), 1, "{veths:#?}");
    veths[0].clone()
}

/// docs/reference.md#defect-1: the reference delegates CHECK to IPAM unconditionally, so an
/// L2 (`ipam: {}`) CHECK always fails with `no plugin name provided`. Ours checks the
/// interfaces and passes.
#[test]
fn l2_mode_add_check_del_and_check_passes_unlike_reference_2_6_1() {
    let lab = Lab::new();
    for version in ["0.4.0", "1.0.0", "1.1.0"] {
        let conf = conf(version, json!({"ipam": {}}));
        let result = add(&lab, &conf).assert_success().result().clone();
        assert_eq!(
            result["interfaces"].as_array().unwrap().len(),
            3,
            "{result}"
        );
        assert!(
            result.get("ips").is_none_or(|ips| ips == &json!([])),
            "{result}"
        );
        let eth0 = link_once_up(lab.container(), "eth0");
        assert_eq!(
            eth0["operstate"], "UP",
            "L2 mode brings the container end up"
        );
        assert_eq!(
            global_addresses(lab.container(), "eth0"),
            Vec::<String>::new()
        );
        assert_eq!(host_veth(&lab)["master"], "cni0");
        lab.run(
            "bridge",
            &Invocation::check(lab.container(), "eth0").config(with_prev(&conf, &result)),
        )
        .assert_success();
        del(&lab, &conf).assert_success();
        assert_nothing_left(&lab, &[lab.container()], "eth0", version);
    }
}

#[test]
fn disable_container_interface_leaves_l2_down_and_is_invalid_with_ipam() {
    let lab = Lab::new();
    let l2 = conf("1.0.0", json!({"disableContainerInterface": true}));
    add(&lab, &l2).assert_success();
    let eth0 = link_once_up(lab.container(), "eth0");
    assert_eq!(eth0["operstate"], "DOWN", "{eth0}");
    assert!(!eth0["flags"].as_array().unwrap().contains(&json!("UP")));
    del(&lab, &l2).assert_success();

    let l3 = conf(
        "1.0.0",
        json!({"disableContainerInterface": true, "ipam": ipam_v4(&lab, "10.1.2.0/24")}),
    );
    let run = add(&lab, &l3).assert_error(7);
    assert!(run.stdout.contains("DisableContainerInterface"), "{run}");
    assert_nothing_left(&lab, &[lab.container()], "eth0", "after DEL");
    assert!(
        lab.host().link("cni0").is_some(),
        "the L2 ADD's bridge stays"
    );
}

#[test]
fn hairpin_promisc_and_port_isolation_reach_the_kernel() {
    let lab = Lab::new();
    for (hairpin, promisc, isolated) in [
        (false, false, false),
        (true, false, true),
        (false, true, false),
    ] {
        let context = format!("hairpin {hairpin} promisc {promisc} isolated {isolated}");
        let conf = conf(
            "1.0.0",
            json!({"hairpinMode": hairpin, "promiscMode": promisc, "portIsolation": isolated,
                   "ipam": ipam_v4(&lab, "10.1.2.0/24")}),
        );
        let result = add(&lab, &conf).assert_success().result().clone();
        let port = host_veth(&lab);
        let slave = &port["linkinfo"]["info_slave_data"];
        assert_eq!(slave["hairpin"], hairpin, "{context}: {port}");
        assert_eq!(slave["isolated"], isolated, "{context}: {port}");
        let bridge = lab.host().link("cni0").unwrap();
        if promisc {
            assert!(
                bridge["promiscuity"].as_u64().unwrap() > 0,
                "{context}: {bridge}"
            );
        }
        lab.run(
            "bridge",
            &Invocation::check(lab.container(), "eth0").config(with_prev(&conf, &result)),
        )
        .assert_success();
        del(&lab, &conf).assert_success();
        assert_nothing_left(&lab, &[lab.container()], "eth0", &context);
    }
    let both = conf("1.0.0", json!({"hairpinMode": true, "promiscMode": true}));
    add(&lab, &both).assert_error(7);
    assert_nothing_left(&lab, &[lab.container()], "eth0", "hairpin+promisc");
}

#[test]
fn mtu_applies_to_a_new_bridge_and_both_veth_ends() {
    let lab = Lab::new();
    let conf = conf(
        "1.0.0",
        json!({"mtu": 1400, "ipam": ipam_v4(&lab, "10.1.2.0/24")}),
    );
    add(&lab, &conf).assert_success();
    assert_eq!(lab.host().link("cni0").unwrap()["mtu"], 1400);
    assert_eq!(host_veth(&lab)["mtu"], 1400);
    assert_eq!(lab.container().link("eth0").unwrap()["mtu"], 1400);
    del(&lab, &conf).assert_success();
    assert_nothing_left(&lab, &[lab.container()], "eth0", "after DEL");
}

/// Container MAC: `runtimeConfig.mac` > `args.cni.mac` > `CNI_ARGS MAC=`.
#[test]
fn container_mac_precedence_runtime_config_then_args_then_cni_args() {
    let lab = Lab::new();
    let (rc, args, env) = (
        "02:00:00:00:00:01",
        "02:00:00:00:00:02",
        "02:00:00:00:00:03",
    );
    let cases = [
        (json!({}), env),
        (json!({"args": {"cni": {"mac": args}}}), args),
        (
            json!({"args": {"cni": {"mac": args}}, "runtimeConfig": {"mac": rc}}),
            rc,
        ),
    ];
    for (extra, want) in cases {
        let mut conf = conf("1.0.0", json!({"ipam": ipam_v4(&lab, "10.1.2.0/24")}));
        for (k, v) in extra.as_object().unwrap() {
            conf[k] = v.clone();
        }
        let run = lab
            .run(
                "bridge",
                &Invocation::add(lab.container(), "eth0")
                    // host-local, like the reference, rejects CNI_ARGS keys it does not know
                    // (MAC), so runtimes pass IgnoreUnknown with it.
                    .args(&format!("IgnoreUnknown=1;MAC={env}"))
                    .config(conf.clone()),
            )
            .assert_success();
        assert_eq!(run.result()["interfaces"][2]["mac"], want, "{extra}");
        assert_eq!(
            lab.container().link("eth0").unwrap()["address"],
            want,
            "{extra}"
        );
        lab.run(
            "bridge",
            &Invocation::del(lab.container(), "eth0")
                // host-local, like the reference, rejects CNI_ARGS keys it does not know
                // (MAC), so runtimes pass IgnoreUnknown with it.
                .args(&format!("IgnoreUnknown=1;MAC={env}"))
                .config(conf),
        )
        .assert_success();
    }
    let bad = conf("1.0.0", json!({"runtimeConfig": {"mac": "not-a-mac"}}));
    add(&lab, &bad).assert_error(7);
    assert_nothing_left(&lab, &[lab.container()], "eth0", "after DEL");
}

fn gateway_conf(lab: &Lab, subnet: &str, force: bool) -> Value {
    conf(
        "1.0.0",
        json!({"isGateway": true, "forceAddress": force, "ipam": ipam_v4(lab, subnet)}),
    )
}

/// The bridge address rules: an IPv4 bridge already carrying another address, or an IPv6
/// one carrying an overlapping prefix, makes ADD fail unless forceAddress (then the old
/// address is replaced); a non-overlapping IPv6 address coexists.
#[test]
fn force_address_matrix_for_bridge_addresses() {
    // (existing bridge address, IPAM subnet, force, ADD succeeds, bridge addresses after)
    let cases: [(&str, &str, bool, bool, &[&str]); 6] = [
        ("10.9.9.1/24", "10.1.2.0/24", false, false, &["10.9.9.1/24"]),
        ("10.9.9.1/24", "10.1.2.0/24", true, true, &["10.1.2.1/24"]),
        (
            "2001:db8:1::99/64",
            "2001:db8:1::/64",
            false,
            false,
            &["2001:db8:1::99/64"],
        ),
        (
            "2001:db8:1::99/64",
            "2001:db8:1::/64",
            true,
            true,
            &["2001:db8:1::1/64"],
        ),
        (
            "2001:db8:9::1/64",
            "2001:db8:1::/64",
            false,
            true,
            &["2001:db8:1::1/64", "2001:db8:9::1/64"],
        ),
        (
            "2001:db8:9::1/64",
            "2001:db8:1::/64",
            true,
            true,
            &["2001:db8:1::1/64", "2001:db8:9::1/64"],
        ),
    ];
    for (existing, subnet, force, ok, after) in cases {
        let context = format!("{existing} then {subnet} force={force}");
        let lab = Lab::new();
        lab.host().ip(&["link", "add", "cni0", "type", "bridge"]);
        lab.host()
            .ip(&["addr", "add", existing, "dev", "cni0", "nodad"]);
        let conf = gateway_conf(&lab, subnet, force);
        let run = add(&lab, &conf);
        assert_eq!(run.succeeded(), ok, "{context}: {run}");
        if !ok {
            assert!(
                run.stdout.contains("already has an IP address"),
                "{context}: {run}"
            );
            assert_nothing_left(&lab, &[lab.container()], "eth0", &context);
        }
        let mut have = global_addresses(lab.host(), "cni0");
        have.sort();
        assert_eq!(have, after, "{context}");
        del(&lab, &conf).assert_success();
        assert_nothing_left(&lab, &[lab.container()], "eth0", &context);
    }
}

/// Regression: a bridge whose last port left has the all-zero MAC until a port joins; the
/// gateway ADD pins the bridge MAC and used to pin that stale zero MAC (EADDRNOTAVAIL).
#[test]
fn gateway_add_on_a_bridge_whose_ports_all_left() {
    let lab = Lab::new();
    let l2 = conf("1.0.0", json!({}));
    add(&lab, &l2).assert_success();
    del(&lab, &l2).assert_success();
    let l3 = gateway_conf(&lab, "10.1.2.0/24", false);
    let result = add(&lab, &l3).assert_success().result().clone();
    let bridge = lab.host().link("cni0").unwrap();
    assert_ne!(bridge["address"], "00:00:00:00:00:00");
    assert_eq!(result["interfaces"][0]["mac"], bridge["address"]);
    assert!(ping(lab.container(), "10.1.2.1"));
    del(&lab, &l3).assert_success();
    assert_nothing_left(&lab, &[lab.container()], "eth0", "after DEL");
}

/// DAD is off on the container end by default (pod start latency, plugins #680/#695) and
/// on with `enabledad` (accept_dad=1, enhanced_dad=1).
#[test]
fn enabledad_versus_default_accept_dad() {
    let lab = Lab::new();
    for (enabled, accept_dad) in [(false, "0"), (true, "1")] {
        let conf = conf(
            "1.0.0",
            json!({"enabledad": enabled, "ipam": ipam_v6(&lab, "2001:db8:1::/64")}),
        );
        add(&lab, &conf).assert_success();
        let ns = lab.container();
        assert_eq!(ns.sysctl("net/ipv6/conf/eth0/accept_dad"), accept_dad);
        if enabled {
            assert_eq!(ns.sysctl("net/ipv6/conf/eth0/enhanced_dad"), "1");
        }
        del(&lab, &conf).assert_success();
        assert_nothing_left(&lab, &[lab.container()], "eth0", "after DEL");
    }
}

fn vlan_confs(lab: &Lab) -> Vec<Value> {
    vec![
        conf("1.0.0", json!({"vlan": 100})),
        conf(
            "1.0.0",
            json!({"vlanTrunk": [{"id": 101}, {"minID": 200, "maxID": 210}]}),
        ),
        conf(
            "1.0.0",
            json!({"vlan": 100, "ipam": ipam_v4(lab, "10.1.2.0/24")}),
        ),
    ]
}

/// True when this kernel can make a VLAN-filtering bridge (CONFIG_BRIDGE_VLAN_FILTERING).
fn kernel_has_vlan_filtering() -> bool {
    let probe = Netns::new();
    probe
        .exec(&[
            "ip",
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "vlan_filtering",
            "1",
        ])
        .status
        .success()
}

/// On a kernel without bridge VLAN filtering, a VLAN config fails with a clear error
/// (code 101, naming VLAN filtering) and leaves nothing, not even the bridge.
#[test]
fn vlan_config_on_a_kernel_without_vlan_filtering_fails_cleanly() {
    if kernel_has_vlan_filtering() {
        panic!(
            "this kernel has bridge VLAN filtering: run the vm_* tests (cargo test -p \
             cni-plugin-bridge -- --ignored vm_) instead of this one"
        );
    }
    let lab = Lab::new();
    for conf in vlan_confs(&lab) {
        let run = add(&lab, &conf).assert_error(101);
        assert!(run.stdout.contains("VLAN filtering"), "{run}");
        assert_nothing_left(&lab, &[lab.container()], "eth0", &conf.to_string());
        assert!(lab.host().link("cni0").is_none(), "no bridge left: {conf}");
        del(&lab, &conf).assert_success();
    }
}

fn vm_vlan_case(extra: Value, want: Vec<(u64, bool, bool)>) {
    let lab = Lab::new();
    let conf = conf("1.0.0", extra);
    add(&lab, &conf).assert_success();
    let bridge = lab.host().link("cni0").unwrap();
    assert_eq!(
        bridge["linkinfo"]["info_data"]["vlan_filtering"], 1,
        "{bridge}"
    );
    let port = host_veth(&lab);
    assert_eq!(port_vlans(&lab, port["ifname"].as_str().unwrap()), want);
    del(&lab, &conf).assert_success();
    assert_nothing_left(&lab, &[lab.container()], "eth0", "after DEL");
}

#[test]
#[ignore = "needs bridge VLAN filtering: runs in the VM lane"]
fn vm_vlan_access_port_removes_the_default_vlan() {
    vm_vlan_case(json!({"vlan": 100}), vec![(100, true, true)]);
}

#[test]
#[ignore = "needs bridge VLAN filtering: runs in the VM lane"]
fn vm_vlan_access_port_preserves_the_default_vlan_when_asked() {
    vm_vlan_case(
        json!({"vlan": 100, "preserveDefaultVlan": true}),
        vec![(1, false, true), (100, true, true)],
    );
}

#[test]
#[ignore = "needs bridge VLAN filtering: runs in the VM lane"]
fn vm_vlan_trunk_has_tagged_vids_and_native_vlan_1() {
    let mut want = vec![(1, true, true), (101, false, false)];
    want.extend((200..=210).map(|vid| (vid, false, false)));
    vm_vlan_case(
        json!({"vlanTrunk": [{"id": 101}, {"minID": 200, "maxID": 210}, {"id": 205}]}),
        want,
    );
}

#[test]
#[ignore = "needs bridge VLAN filtering: runs in the VM lane"]
fn vm_vlan_access_plus_trunk() {
    vm_vlan_case(
        json!({"vlan": 100, "vlanTrunk": [{"id": 101}, {"id": 102}]}),
        vec![(100, true, true), (101, false, false), (102, false, false)],
    );
}

#[test]
fn vlan_ids_out_of_range_are_invalid_config() {
    let lab = Lab::new();
    for vlan in [-100, 5000] {
        let run = add(&lab, &conf("1.0.0", json!({"vlan": vlan}))).assert_error(7);
        assert!(
            run.stdout.contains(&format!(
                "invalid VLAN ID {vlan} (must be between 0 and 4094)"
            )),
            "{run}"
        );
    }
    assert!(lab.host().link("cni0").is_none());
}

/// The bridge MAC is pinned once, when it moves as the first port joins: setting a MAC,
/// even the same one, makes the kernel flush the bridge's neighbour table, so an ADD that
/// pinned it every time threw away the host's ARP entry of every container on the bridge.
#[test]
fn a_later_add_keeps_the_bridge_mac_and_the_hosts_neighbour_entries() {
    let lab = Lab::new();
    let other = lab.new_container();
    let conf = conf(
        "1.0.0",
        json!({"isGateway": true, "ipam": ipam_v4(&lab, "10.1.7.0/24")}),
    );
    add(&lab, &conf).assert_success();
    let bridge_mac = |ns: &Netns| {
        let links = links(ns);
        let cni0 = links.iter().find(|l| l["ifname"] == "cni0").unwrap();
        cni0["address"].as_str().unwrap().to_owned()
    };
    let pinned = bridge_mac(lab.host());
    // A neighbour entry the host learnt on the bridge, as ARP leaves it.
    lab.host().ip(&[
        "neigh",
        "replace",
        "10.1.7.250",
        "lladdr",
        "02:00:00:00:07:fa",
        "dev",
        "cni0",
        "nud",
        "reachable",
    ]);
    let second = add_in(&lab, &other, "eth0", &conf).assert_success();
    assert_eq!(bridge_mac(lab.host()), pinned);
    assert_eq!(second.result()["interfaces"][0]["mac"], pinned.as_str());
    let neighbours = lab.host().ip(&["neigh", "show", "dev", "cni0"]);
    assert!(neighbours.contains("10.1.7.250"), "flushed: {neighbours}");
    // The first container's port leaving does not move it either.
    del(&lab, &conf).assert_success();
    assert_eq!(bridge_mac(lab.host()), pinned);
    del_in(&lab, &other, "eth0", &conf).assert_success();
}
