//! The built `host-local` binary, run as a runtime runs it, with the store checked on disk.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{GO_REFERENCE, Network, OURS, ip};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::IpAddr;

const VERSIONS: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// The reference test's network: two range sets (v4 with two pools, v6), routes, resolvConf.
fn dual_stack(version: &str) -> Network {
    let mut net = Network::new(
        version,
        json!({
            "ranges": [[{"subnet": "10.1.2.0/24"}, {"subnet": "10.2.2.0/24"}],
                       [{"subnet": "2001:db8:1::/64"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"},
                       {"dst": "192.168.0.0/16", "gw": "1.1.1.1"}, {"dst": "2001:db8:2::0/64", "gw": "2001:db8:3::1"}]
        }),
    );
    let resolv = net.dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 192.0.2.3\nsearch example.com\n").unwrap();
    net.config["ipam"]["resolvConf"] = json!(resolv);
    net
}

#[test]
fn add_result_has_the_shape_of_every_version_and_del_removes_the_files() {
    for version in VERSIONS {
        let net = dual_stack(version);
        let out = net.ours("ADD", "dummy");
        let result = out.ok();
        assert_eq!(result["cniVersion"], json!(version));
        assert!(
            result.get("interfaces").is_none(),
            "IPAM results have no interfaces: {result}"
        );
        assert_eq!(
            result["dns"]["nameservers"],
            json!(["192.0.2.3"]),
            "{version}"
        );
        assert_eq!(result["dns"]["search"], json!(["example.com"]), "{version}");
        if version == "0.1.0" || version == "0.2.0" {
            assert_eq!(result["ip4"]["ip"], json!("10.1.2.2/24"), "{result}");
            assert_eq!(result["ip4"]["gateway"], json!("10.1.2.1"));
            assert_eq!(result["ip6"]["ip"], json!("2001:db8:1::2/64"));
            assert_eq!(result["ip6"]["gateway"], json!("2001:db8:1::1"));
        } else {
            let ips = result["ips"].as_array().unwrap();
            assert_eq!(ips[0]["address"], json!("10.1.2.2/24"));
            assert_eq!(ips[0]["gateway"], json!("10.1.2.1"));
            assert_eq!(ips[1]["address"], json!("2001:db8:1::2/64"));
            assert_eq!(ips[1]["gateway"], json!("2001:db8:1::1"));
            assert!(
                ips.iter().all(|ip| ip.get("interface").is_none()),
                "{result}"
            );
            let has_version = version < "1.0.0";
            assert_eq!(
                out.stdout.contains("\"version\":"),
                has_version,
                "{version}: {result}"
            );
            assert_eq!(result["routes"].as_array().unwrap().len(), 4);
            assert_eq!(
                result["routes"][2],
                json!({"dst": "192.168.0.0/16", "gw": "1.1.1.1"})
            );
        }
        assert_eq!(net.read("10.1.2.2"), "dummy\r\neth0");
        assert_eq!(net.read("2001:db8:1::2"), "dummy\r\neth0");
        assert_eq!(net.read("last_reserved_ip.0"), "10.1.2.2");
        assert_eq!(net.read("last_reserved_ip.1"), "2001:db8:1::2");
        if version >= "0.4.0" {
            net.ours("CHECK", "dummy").ok();
        }
        net.ours("DEL", "dummy").ok();
        assert!(net.leases().is_empty(), "{version}: {:?}", net.leases());
    }
}

#[test]
fn a_second_interface_of_the_same_container_gets_its_own_address() {
    let net = Network::v4("1.0.0", "10.1.2.0/24");
    let eth0 = net.ours("ADD", "dummy").ips();
    let eth1 = net
        .run_with(OURS, "ADD", &[("CNI_IFNAME", "eth1")], &net.config)
        .ips();
    assert_eq!((eth0, eth1), (vec![ip("10.1.2.2")], vec![ip("10.1.2.3")]));
    assert_eq!(net.read("10.1.2.3"), "dummy\r\neth1");
    net.ours("DEL", "dummy").ok();
    assert_eq!(
        net.leases().into_keys().collect::<Vec<_>>(),
        [ip("10.1.2.3")]
    );
}

#[test]
fn requested_ips_from_all_three_sources() {
    let ranges = json!({"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8:1::/64"}]]});
    // args.cni.ips, one per family.
    let mut net = Network::new("1.0.0", ranges.clone());
    net.config["args"] = json!({"cni": {"ips": ["10.1.2.88", "2001:db8:1::999/64"]}});
    assert_eq!(
        net.ours("ADD", "c1").ips(),
        [ip("10.1.2.88"), ip("2001:db8:1::999")]
    );
    // runtimeConfig.ips.
    let mut net = Network::new("1.0.0", ranges.clone());
    net.config["runtimeConfig"] = json!({"ips": ["10.1.2.77/24"]});
    assert_eq!(
        net.ours("ADD", "c1").ips(),
        [ip("10.1.2.77"), ip("2001:db8:1::2")]
    );
    // CNI_ARGS IP=, used only when args.cni.ips is absent.
    let net = Network::new("1.0.0", ranges.clone());
    let out = net.run_with(
        OURS,
        "ADD",
        &[("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.1.2.66")],
        &net.config,
    );
    assert_eq!(out.ips(), [ip("10.1.2.66"), ip("2001:db8:1::2")]);
    let mut net = Network::new("1.0.0", ranges);
    net.config["args"] = json!({"cni": {"ips": ["10.1.2.55"]}});
    let out = net.run_with(OURS, "ADD", &[("CNI_ARGS", "IP=10.1.2.66")], &net.config);
    assert_eq!(out.ips()[0], ip("10.1.2.55"));
    assert_eq!(net.leases().len(), 2);
}

/// containerd passes `runtimeConfig.ipRanges` through go-cni, whose `IPRanges` has no JSON
/// tags: the keys arrive as `Subnet`, `RangeStart`, ... The Go plugin reads them (Go
/// matches keys without regard to case), and so must ours.
#[test]
fn runtime_ip_ranges_in_containerds_spelling_are_read_as_the_reference_reads_them() {
    let ipam = json!({"ranges": [[{"subnet": "10.1.2.0/24"}]]});
    for binary in [OURS, GO_REFERENCE] {
        let mut net = Network::new("1.0.0", ipam.clone());
        net.config["runtimeConfig"] = json!({"ipRanges": [[{
            "Subnet": "10.9.8.0/24", "RangeStart": "10.9.8.40", "RangeEnd": "10.9.8.50",
            "Gateway": "10.9.8.254"
        }]]});
        let result = net.run(binary, "ADD", "c1").ok();
        assert_eq!(
            result["ips"][0]["address"],
            json!("10.9.8.40/24"),
            "{binary}: {result}"
        );
        assert_eq!(
            result["ips"][0]["gateway"],
            json!("10.9.8.254"),
            "{binary}: {result}"
        );
    }
}

#[test]
fn two_requested_ips_in_one_set_fail_and_leak_nothing() {
    let mut net = Network::v4("1.0.0", "10.1.2.0/24");
    net.config["args"] = json!({"cni": {"ips": ["10.1.2.88", "10.1.2.99"]}});
    let msg = net.ours("ADD", "c1").error(7);
    assert_eq!(msg, "failed to allocate all requested IPs: 10.1.2.99");
    assert!(net.leases().is_empty());
}

#[test]
fn unknown_cni_args_are_refused_unless_ignore_unknown() {
    let net = Network::v4("1.0.0", "10.1.2.0/24");
    let out = net.run_with(OURS, "ADD", &[("CNI_ARGS", "K8S_POD_NAME=x")], &net.config);
    assert!(
        out.status != 0 && out.json()["msg"].as_str().unwrap().contains("unknown args"),
        "{out:?}"
    );
    assert!(net.leases().is_empty());
}

#[test]
fn round_robin_continues_after_a_release() {
    let net = Network::v4("1.0.0", "10.1.2.0/29");
    assert_eq!(net.ours("ADD", "c1").ips(), [ip("10.1.2.2")]);
    net.ours("DEL", "c1").ok();
    assert_eq!(net.ours("ADD", "c2").ips(), [ip("10.1.2.3")]);
    assert_eq!(net.read("last_reserved_ip.0"), "10.1.2.3");
}

#[test]
fn exhaustion_has_its_code_and_leaks_nothing() {
    let net = Network::new(
        "1.0.0",
        json!({"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.3.0/30"}]]}),
    );
    net.ours("ADD", "c1").ok();
    let msg = net.ours("ADD", "c2").error(102);
    assert_eq!(
        msg,
        "failed to allocate for range 1: no IP addresses available in range set: 10.1.3.1-10.1.3.2"
    );
    let holders: BTreeSet<String> = net.leases().into_values().collect();
    assert_eq!(
        holders,
        BTreeSet::from(["c1\r\neth0".to_owned()]),
        "c2's first address was rolled back"
    );
}

#[test]
fn duplicate_allocation_is_refused() {
    let net = Network::v4("1.0.0", "10.1.2.0/24");
    net.ours("ADD", "dummy").ok();
    let msg = net.ours("ADD", "dummy").error(103);
    assert_eq!(
        msg,
        "failed to allocate for range 0: 10.1.2.2 has been allocated to dummy, duplicate allocation is not allowed"
    );
    assert_eq!(net.ours("ADD", "other").ips(), [ip("10.1.2.3")]);
    assert_eq!(net.leases().len(), 2);
}

#[test]
fn del_is_idempotent_and_check_fails_afterwards() {
    let net = Network::v4("1.0.0", "10.1.2.0/24");
    net.ours("ADD", "c1").ok();
    for _ in 0..2 {
        assert_eq!(
            net.ours("DEL", "c1").ok(),
            Value::Null,
            "DEL prints nothing"
        );
    }
    net.ours("DEL", "never-added").ok();
    let msg = net.ours("CHECK", "c1").error(106);
    assert_eq!(
        msg,
        "host-local: Failed to find address added by container c1"
    );
    // DEL needs no netns.
    net.run_with(OURS, "DEL", &[("CNI_NETNS", "")], &net.config)
        .ok();
}

#[test]
fn del_releases_legacy_id_only_files() {
    let net = Network::v4("1.0.0", "10.1.2.0/24");
    std::fs::create_dir_all(net.store()).unwrap();
    std::fs::write(net.store().join("10.1.2.2"), "dummy").unwrap();
    net.ours("CHECK", "dummy").ok();
    net.ours("DEL", "dummy").ok();
    assert!(net.leases().is_empty());
}

#[test]
fn bad_input_gets_the_right_code_and_reserves_nothing() {
    let net = Network::v4("1.0.0", "10.1.2.0/24");
    let with = |patch: &dyn Fn(&mut Value)| {
        let mut config = net.config.clone();
        patch(&mut config);
        config
    };
    // Bad JSON: 6.
    let vars = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    common::run(OURS, &vars.into_iter().collect(), b"{not json").error(6);
    // Unknown version: 1.
    net.run_with(
        OURS,
        "ADD",
        &[],
        &with(&|c| c["cniVersion"] = json!("9.9.9")),
    )
    .error(1);
    // Missing environment: 4.
    net.run_with(OURS, "ADD", &[("CNI_CONTAINERID", "")], &net.config)
        .error(4);
    // Bad CIDR, gateway outside the subnet, range faults: 7, naming the field.
    let msg = net
        .run_with(
            OURS,
            "ADD",
            &[],
            &with(&|c| c["ipam"]["ranges"][0][0]["subnet"] = json!("10.1.2.0")),
        )
        .error(7);
    assert!(msg.contains("ipam.ranges[0][0].subnet"), "{msg}");
    let msg = net
        .run_with(
            OURS,
            "ADD",
            &[],
            &with(&|c| c["ipam"]["ranges"][0][0]["gateway"] = json!("2001:db8::1")),
        )
        .error(7);
    assert!(msg.contains("ipam.ranges[0][0].gateway"), "{msg}");
    net.run_with(
        OURS,
        "ADD",
        &[],
        &with(&|c| c["ipam"]["ranges"][0][0]["rangeEnd"] = json!("10.1.3.5")),
    )
    .error(7);
    net.run_with(OURS, "ADD", &[], &with(&|c| c["ipam"] = Value::Null))
        .error(7);
    // Hostile network name and container id.
    for name in ["../../etc", "a/b", ".."] {
        net.run_with(OURS, "ADD", &[], &with(&|c| c["name"] = json!(name)))
            .error(7);
    }
    net.run_with(OURS, "ADD", &[("CNI_CONTAINERID", "../../x")], &net.config)
        .error(4);
    net.run_with(OURS, "ADD", &[("CNI_IFNAME", "../x")], &net.config)
        .error(4);
    assert!(net.leases().is_empty());
    let data = net.dir.path().join("data");
    let entries: Vec<_> = std::fs::read_dir(&data)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        entries.iter().all(|n| n == "mynet"),
        "nothing created outside the network dir: {entries:?}"
    );
    assert!(!net.dir.path().join("etc").exists() && !net.dir.path().join("x").exists());
}

#[test]
fn a_symlinked_store_directory_is_refused() {
    let net = Network::v4("1.0.0", "10.1.2.0/24");
    let elsewhere = net.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(net.dir.path().join("data")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, net.store()).unwrap();
    net.ours("ADD", "c1").error(5);
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn a_hundred_concurrent_adds_get_a_hundred_distinct_addresses() {
    let net = Network::v4("1.0.0", "10.1.0.0/16");
    let results: Vec<Vec<IpAddr>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..100)
            .map(|n| {
                let net = &net;
                scope.spawn(move || net.ours("ADD", &format!("ctr{n}")).ips())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: BTreeSet<IpAddr> = results.into_iter().flatten().collect();
    assert_eq!(distinct.len(), 100);
    let leases = net.leases();
    assert_eq!(leases.keys().copied().collect::<BTreeSet<_>>(), distinct);
    let holders: BTreeSet<&String> = leases.values().collect();
    assert_eq!(holders.len(), 100, "one lease per container");
}

#[test]
fn status_reports_exhaustion_with_code_50() {
    let net = Network::v4("1.1.0", "10.1.2.0/30");
    let status = |net: &Network| {
        net.run_with(
            OURS,
            "STATUS",
            &[
                ("CNI_CONTAINERID", ""),
                ("CNI_IFNAME", ""),
                ("CNI_NETNS", ""),
            ],
            &net.config,
        )
    };
    assert_eq!(status(&net).ok(), Value::Null);
    net.ours("ADD", "c1").ok();
    let msg = status(&net).error(50);
    assert!(msg.contains("10.1.2.1-10.1.2.2"), "{msg}");
    net.ours("DEL", "c1").ok();
    status(&net).ok();
}

#[test]
fn gc_releases_every_lease_not_in_valid_attachments() {
    let mut net = Network::v4("1.1.0", "10.1.2.0/24");
    for id in ["c1", "c2", "c3"] {
        net.ours("ADD", id).ok();
    }
    let gc_env = [
        ("CNI_CONTAINERID", ""),
        ("CNI_IFNAME", ""),
        ("CNI_NETNS", ""),
    ];
    // Without the list (upstream cnitool's `gc`), nothing can be judged stale: GC succeeds
    // and releases nothing, rather than "release everything".
    net.run_with(OURS, "GC", &gc_env, &net.config).ok();
    assert_eq!(net.leases().len(), 3);
    net.config["cni.dev/valid-attachments"] =
        json!([{"containerID": "c1", "ifname": "eth0"}, {"containerID": "c3", "ifname": "eth0"}]);
    net.run_with(OURS, "GC", &gc_env, &net.config).ok();
    let holders: BTreeSet<String> = net.leases().into_values().collect();
    assert_eq!(
        holders,
        BTreeSet::from(["c1\r\neth0".to_owned(), "c3\r\neth0".to_owned()])
    );
}
