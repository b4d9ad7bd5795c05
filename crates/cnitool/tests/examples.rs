//! Every file in `examples/` works: each configuration runs through our plugins as a
//! runtime runs it (the built `cnitool`, libcni's semantics), in the conformance lab's
//! throwaway namespaces, with ADD, CHECK and DEL, and what it promises is checked (an
//! address in its range, its gateway reachable, masquerade rules, nothing left after DEL).
//!
//! The examples name real node paths and links: their host-local `dataDir` is moved into
//! the lab's directory, and the `eth0` a macvlan or ipvlan example names is made in the
//! lab's fake host netns. The ipvlan example needs a kernel with ipvlan: its test is a
//! `vm_*` one, run by the VM lane. The files are built into the test executable, so the
//! lane's guest, which has no source tree, runs them too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cni_conformance::{EtcdCluster, Invocation, IpFamily, Lab, Netns};
use common::cnitool_ok;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;

/// Every example file (its path under `examples/`) and its content.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "bridge-bandwidth.conflist",
        include_str!("../../../examples/bridge-bandwidth.conflist"),
    ),
    (
        "bridge-firewall.conflist",
        include_str!("../../../examples/bridge-firewall.conflist"),
    ),
    (
        "bridge-portmap.conflist",
        include_str!("../../../examples/bridge-portmap.conflist"),
    ),
    (
        "bridge-tuning.conflist",
        include_str!("../../../examples/bridge-tuning.conflist"),
    ),
    (
        "bridge.conflist",
        include_str!("../../../examples/bridge.conflist"),
    ),
    (
        "containerd/10-containerd-net.conflist",
        include_str!("../../../examples/containerd/10-containerd-net.conflist"),
    ),
    (
        "flannel/10-flannel.conflist",
        include_str!("../../../examples/flannel/10-flannel.conflist"),
    ),
    (
        "flannel/subnet.env",
        include_str!("../../../examples/flannel/subnet.env"),
    ),
    (
        "host-local.conf",
        include_str!("../../../examples/host-local.conf"),
    ),
    (
        "ipvlan.conflist",
        include_str!("../../../examples/ipvlan.conflist"),
    ),
    (
        "loopback.conf",
        include_str!("../../../examples/loopback.conf"),
    ),
    (
        "macvlan-cluster-ipam.conflist",
        include_str!("../../../examples/macvlan-cluster-ipam.conflist"),
    ),
    (
        "macvlan.conflist",
        include_str!("../../../examples/macvlan.conflist"),
    ),
];

fn example_text(path: &str) -> &'static str {
    EXAMPLES
        .iter()
        .find(|(name, _)| *name == path)
        .unwrap_or_else(|| panic!("examples/{path} is not in EXAMPLES"))
        .1
}

fn example(path: &str) -> Value {
    serde_json::from_str(example_text(path))
        .unwrap_or_else(|err| panic!("examples/{path} is not valid JSON: {err}"))
}

/// Every `ipam` object's `dataDir` and tuning's saved-state `dataDir` (the examples name
/// the node's) in the lab's directory.
fn with_lab_data_dir(mut conf: Value, lab: &Lab) -> Value {
    let data_dir = json!(lab.dir().join("ipam"));
    if let Some(plugins) = conf["plugins"].as_array_mut() {
        for plugin in plugins.iter_mut() {
            if plugin.get("ipam").is_some() {
                plugin["ipam"]["dataDir"] = data_dir.clone();
            }
            if plugin["type"] == "tuning" {
                plugin["dataDir"] = json!(lab.dir().join("tuning"));
            }
        }
    } else if conf.get("ipam").is_some() {
        conf["ipam"]["dataDir"] = data_dir;
    }
    conf
}

/// Puts example `path` into the lab's configuration directory; returns its network name.
fn install(lab: &Lab, path: &str) -> String {
    install_conf(lab, path, &with_lab_data_dir(example(path), lab))
}

/// Puts `conf` into the lab's configuration directory as `path`'s file name; returns its
/// network name.
fn install_conf(lab: &Lab, path: &str, conf: &Value) -> String {
    let file_name = Path::new(path).file_name().unwrap();
    fs::create_dir_all(lab.dir().join("net.d")).unwrap();
    fs::write(
        lab.dir().join("net.d").join(file_name),
        serde_json::to_vec_pretty(&conf).unwrap(),
    )
    .unwrap();
    conf["name"].as_str().unwrap().to_owned()
}

/// The addresses host-local holds for `network` in the lab.
fn leases(lab: &Lab, network: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(lab.dir().join("ipam").join(network)) else {
        return Vec::new();
    };
    entries
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

fn address_of(result: &Value, index: usize) -> String {
    let cidr = result["ips"][index]["address"].as_str().unwrap();
    cidr.split('/').next().unwrap().to_owned()
}

fn assert_pings(from: &Netns, address: &str) {
    let out = from.exec(&["ping", "-c", "1", "-W", "2", address]);
    assert!(
        out.status.success(),
        "{} cannot ping {address}: {}",
        from.name(),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `cnitool add` of example `path` in a fresh container of `lab`, `inspect` on its result
/// and container, then CHECK and DEL; afterwards no lease and no `eth0` are left.
fn add_check_del(lab: &Lab, path: &str, extra: &[(&str, &str)], inspect: impl FnOnce(&Value)) {
    let network = install(lab, path);
    let ctr = lab.container();
    let result: Value =
        serde_json::from_str(&cnitool_ok(lab, "add", &network, ctr, extra)).unwrap();
    inspect(&result);
    cnitool_ok(lab, "check", &network, ctr, extra);
    cnitool_ok(lab, "del", &network, ctr, extra);
    assert!(
        leases(lab, &network).is_empty(),
        "{:?}",
        leases(lab, &network)
    );
    assert!(ctr.link("eth0").is_none(), "eth0 left in the container");
}

/// Walks `dir` for files, as paths relative to `root`.
fn files_under(root: &Path, dir: &Path, found: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(root, &path, found);
        } else {
            let relative = path.strip_prefix(root).unwrap();
            found.push(relative.to_string_lossy().into_owned());
        }
    }
}

#[test]
fn every_example_file_is_checked_here() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut on_disk = Vec::new();
    files_under(&root, &root, &mut on_disk);
    on_disk.sort();
    let listed: Vec<&str> = EXAMPLES.iter().map(|(path, _)| *path).collect();
    assert_eq!(
        on_disk, listed,
        "examples/ and EXAMPLES differ: add a test for the new file"
    );
}

#[test]
fn bridge_example_reaches_its_gateway_and_brings_up_lo() {
    let lab = Lab::new();
    add_check_del(&lab, "bridge.conflist", &[], |result| {
        let address = address_of(result, 0);
        assert!(address.starts_with("10.88.7."), "{result}");
        assert_pings(lab.container(), "10.88.7.1");
        let lo = lab.container().link("lo").unwrap();
        assert!(
            lo["flags"].as_array().unwrap().contains(&json!("UP")),
            "{lo}"
        );
    });
}

/// The netfilter rules of `ns`, nftables and iptables (our bridge may use either).
fn firewall_rules(ns: &Netns) -> String {
    let nft = ns.exec(&["nft", "list", "ruleset"]).stdout;
    let iptables = ns.exec(&["iptables-save"]).stdout;
    String::from_utf8_lossy(&nft).into_owned() + &String::from_utf8_lossy(&iptables)
}

/// As containerd's CRI plugin calls it: first its own loopback network (spec 0.3.1,
/// ifname `lo`), then the example with kubelet's pod identity in `CNI_ARGS`.
#[test]
fn containerd_example_as_containerd_calls_it() {
    let lab = Lab::new();
    let loopback = json!({"cniVersion": "0.3.1", "name": "cni-loopback", "type": "loopback"});
    lab.run(
        "loopback",
        &Invocation::add(lab.container(), "lo").config(loopback.clone()),
    )
    .assert_success();
    let cni_args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
                    K8S_POD_INFRA_CONTAINER_ID=0123456789abcdef;K8S_POD_UID=4f0c8a7e";
    add_check_del(
        &lab,
        "containerd/10-containerd-net.conflist",
        &[("CNI_ARGS", cni_args)],
        |result| {
            let address = address_of(result, 0);
            assert!(address.starts_with("10.88."), "{result}");
            assert_pings(lab.container(), "10.88.0.1");
            let rules = firewall_rules(lab.host());
            assert!(
                rules.contains(&address),
                "no masquerade rule for {address}:\n{rules}"
            );
        },
    );
    let rules = firewall_rules(lab.host());
    assert!(
        !rules.contains("10.88."),
        "masquerade rules left after DEL:\n{rules}"
    );
    lab.run(
        "loopback",
        &Invocation::del(lab.container(), "lo").config(loopback),
    )
    .assert_success();
}

#[test]
fn macvlan_example_reaches_its_gateway_on_the_lan() {
    let lab = Lab::new();
    let gateway = Netns::with_label("gw");
    lab.host()
        .add_veth_to("eth0", &gateway, "lan0", "192.168.50.1/24");
    add_check_del(&lab, "macvlan.conflist", &[], |result| {
        let last_octet: u8 = address_of(result, 0)
            .strip_prefix("192.168.50.")
            .unwrap_or_else(|| panic!("{result}"))
            .parse()
            .unwrap();
        assert!((100..=199).contains(&last_octet), "{result}");
        assert_pings(lab.container(), "192.168.50.1");
    });
}

/// Two nodes (two lab host namespaces) whose `eth0` are ports of one bridge in a "switch"
/// namespace, the LAN, where etcd also runs (at 192.168.70.2, as the example names it).
/// Each node runs the example with its own `nodeName`: their containers get distinct
/// addresses of the one pool and reach each other across the LAN.
#[test]
fn macvlan_cluster_ipam_example_two_nodes_share_one_pool() {
    let path = "macvlan-cluster-ipam.conflist";
    let switch = Netns::with_label("switch");
    switch.ip(&["link", "add", "br0", "type", "bridge"]);
    switch.ip(&["addr", "add", "192.168.70.2/24", "dev", "br0"]);
    switch.ip(&["link", "set", "br0", "up"]);
    let nodes = [Lab::new(), Lab::new()];
    for (i, lab) in nodes.iter().enumerate() {
        let port = format!("port{i}");
        let host_cidr = format!("192.168.70.{}/24", 11 + i);
        switch.add_veth_to(&port, lab.host(), "eth0", &host_cidr);
        switch.ip(&["link", "set", &port, "master", "br0"]);
    }
    let etcd = EtcdCluster::start_in(&switch, "192.168.70.2", 1);
    let mut addresses = Vec::new();
    for (i, lab) in nodes.iter().enumerate() {
        let mut conf = example(path);
        conf["plugins"][0]["ipam"]["nodeName"] = json!(format!("node-{i}"));
        let network = install_conf(lab, path, &conf);
        let result: Value =
            serde_json::from_str(&cnitool_ok(lab, "add", &network, lab.container(), &[])).unwrap();
        let address = address_of(&result, 0);
        let last_octet: u8 = address
            .strip_prefix("192.168.70.")
            .unwrap()
            .parse()
            .unwrap();
        assert!((64..=191).contains(&last_octet), "{result}");
        addresses.push(address);
    }
    assert_ne!(
        addresses[0], addresses[1],
        "two nodes were given one address"
    );
    assert_pings(nodes[0].container(), &addresses[1]);
    assert_pings(nodes[1].container(), &addresses[0]);
    // The store names each reservation's node.
    let reservations = etcd.get_prefix("/cni/cluster-ipam/lan-cluster/ips/");
    for (i, address) in addresses.iter().enumerate() {
        let value = &reservations
            .iter()
            .find(|(key, _)| key.ends_with(&format!("/{address}")))
            .unwrap_or_else(|| panic!("no reservation of {address}: {reservations:?}"))
            .1;
        assert!(value.contains(&format!("\"node-{i}\"")), "{value}");
    }
    for lab in &nodes {
        cnitool_ok(lab, "check", "lan-cluster", lab.container(), &[]);
        cnitool_ok(lab, "del", "lan-cluster", lab.container(), &[]);
        assert!(lab.container().link("eth0").is_none());
    }
    let left = etcd.get_prefix("/cni/cluster-ipam/lan-cluster/ips/");
    assert!(left.is_empty(), "reservations left after DEL: {left:?}");
}

#[test]
#[ignore = "needs ipvlan: runs in the VM lane"]
fn vm_ipvlan_example_add_check_del() {
    let lab = Lab::new();
    // ipvlan refuses a veth master; a dummy stands in for the node's NIC.
    lab.host().ip(&["link", "add", "eth0", "type", "dummy"]);
    lab.host().ip(&["link", "set", "eth0", "up"]);
    add_check_del(&lab, "ipvlan.conflist", &[], |result| {
        assert!(
            address_of(result, 0).starts_with("192.168.60.1"),
            "{result}"
        );
        let link = lab.container().ip_json(&["-d", "link", "show", "eth0"]);
        assert_eq!(link[0]["linkinfo"]["info_kind"], "ipvlan", "{link}");
    });
}

#[test]
fn host_local_example_leases_one_address_per_range() {
    let lab = Lab::new();
    add_check_del(&lab, "host-local.conf", &[], |result| {
        assert_eq!(address_of(result, 0), "10.22.0.10", "{result}");
        assert!(address_of(result, 1).starts_with("fd00:22::"), "{result}");
        assert_eq!(leases(&lab, "demo").len(), 2);
    });
}

#[test]
fn loopback_example_brings_up_lo() {
    let lab = Lab::new();
    let network = install(&lab, "loopback.conf");
    let ctr = lab.container();
    cnitool_ok(&lab, "add", &network, ctr, &[]);
    let lo = ctr.link("lo").unwrap();
    assert!(
        lo["flags"].as_array().unwrap().contains(&json!("UP")),
        "{lo}"
    );
    assert_pings(ctr, "127.0.0.1");
    cnitool_ok(&lab, "del", &network, ctr, &[]);
    // A second DEL, as runtimes repeat it, succeeds too.
    cnitool_ok(&lab, "del", &network, ctr, &[]);
}

/// What flanneld writes to `/run/flannel/subnet.env`: `KEY=VALUE` lines.
fn subnet_env(text: &str) -> BTreeMap<&str, &str> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .collect()
}

/// `10.244.1.1/24` -> `10.244.1.0/24`: the node's subnet as a network.
fn ipv4_network(cidr: &str) -> String {
    let (address, prefix) = cidr.split_once('/').unwrap();
    let address: Ipv4Addr = address.parse().unwrap();
    let prefix: u32 = prefix.parse().unwrap();
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    format!("{}/{prefix}", Ipv4Addr::from(u32::from(address) & mask))
}

/// The configuration the flannel plugin hands to the plugin it delegates to, built as it
/// builds it (https://github.com/flannel-io/cni-plugin, `flannel_linux.go`): the entry's
/// `delegate` object with the network's name and version; where the delegate does not say,
/// type `bridge`, `isGateway`, masquerading only if flanneld does not, flanneld's MTU; and
/// host-local IPAM on the node's subnet with a route to the whole flannel network.
fn flannel_delegate(conflist: &Value, env: &BTreeMap<&str, &str>) -> Value {
    let mut delegate = conflist["plugins"][0]["delegate"].clone();
    delegate["name"] = conflist["name"].clone();
    delegate["cniVersion"] = conflist["cniVersion"].clone();
    let defaults = [
        ("type", json!("bridge")),
        ("isGateway", json!(true)),
        ("ipMasq", json!(env["FLANNEL_IPMASQ"] != "true")),
        ("mtu", json!(env["FLANNEL_MTU"].parse::<u32>().unwrap())),
    ];
    for (key, value) in defaults {
        if delegate.get(key).is_none() {
            delegate[key] = value;
        }
    }
    delegate["ipam"] = json!({
        "type": "host-local",
        "ranges": [[{"subnet": ipv4_network(env["FLANNEL_SUBNET"])}]],
        "routes": [{"dst": env["FLANNEL_NETWORK"]}],
    });
    delegate
}

#[test]
fn flannel_example_delegates_to_bridge_and_host_local() {
    let lab = Lab::new();
    let conflist = example("flannel/10-flannel.conflist");
    let env = subnet_env(example_text("flannel/subnet.env"));
    let delegate = with_lab_data_dir(flannel_delegate(&conflist, &env), &lab);
    let ctr = lab.container();
    let result = lab
        .run(
            "bridge",
            &Invocation::add(ctr, "eth0").config(delegate.clone()),
        )
        .assert_success()
        .result()
        .clone();
    assert!(address_of(&result, 0).starts_with("10.244.1."), "{result}");
    assert_eq!(ctr.link("eth0").unwrap()["mtu"], 1450);
    let routes = ctr.routes(IpFamily::V4);
    for dst in ["default", "10.244.0.0/16"] {
        assert!(
            routes
                .iter()
                .any(|r| r["dst"] == dst && r["gateway"] == "10.244.1.1"),
            "no route to {dst} via 10.244.1.1: {routes:?}"
        );
    }
    let bridge_addresses = lab.host().addresses("cni0");
    assert!(
        bridge_addresses.contains(&"10.244.1.1/24".to_owned()),
        "{bridge_addresses:?}"
    );
    assert_pings(ctr, "10.244.1.1");
    lab.run("bridge", &Invocation::del(ctr, "eth0").config(delegate))
        .assert_success();
    assert!(leases(&lab, "cbr0").is_empty());
    assert!(ctr.link("eth0").is_none());
}

#[test]
fn bridge_bandwidth_example_shapes_the_veth_bridge_made() {
    let lab = Lab::new();
    let ctr = lab.container();
    // 8 Mbit/s each way: tbf rates of 1000000 bytes/s.
    let cap_args = json!({"bandwidth": {
        "ingressRate": 8_000_000, "ingressBurst": 800_000,
        "egressRate": 8_000_000, "egressBurst": 800_000,
    }})
    .to_string();
    let tbf_rates = || {
        let out = lab.host().exec(&["tc", "-j", "qdisc", "show"]);
        let qdiscs: Value = serde_json::from_slice(&out.stdout).unwrap();
        qdiscs
            .as_array()
            .unwrap()
            .iter()
            .filter(|q| q["kind"] == "tbf")
            .map(|q| q["options"]["rate"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    let ifbs = || lab.host().ip_json(&["link", "show", "type", "ifb"]);
    add_check_del(
        &lab,
        "bridge-bandwidth.conflist",
        &[("CAP_ARGS", &cap_args)],
        |result| {
            assert_eq!(tbf_rates(), [1_000_000, 1_000_000]);
            let ifb = ifbs()[0]["ifname"].clone();
            assert_eq!(result["interfaces"][3]["name"], ifb, "{result}");
            assert_pings(ctr, "10.88.9.1");
        },
    );
    assert_eq!(ifbs(), json!([]), "bandwidth's DEL removes the ifb");
}

#[test]
fn bridge_firewall_example_accepts_the_container_and_isolates_its_bridge() {
    let lab = Lab::new();
    let iptables = || {
        let out = lab.host().exec(&["iptables", "-S"]);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let mut address = String::new();
    add_check_del(&lab, "bridge-firewall.conflist", &[], |result| {
        let ip = result["ips"][0]["address"].as_str().unwrap();
        address = ip.split('/').next().unwrap().to_owned();
        let rules = iptables();
        assert!(
            rules.contains(&format!("-A CNI-FORWARD -s {address}/32 -j ACCEPT")),
            "{rules}"
        );
        assert!(
            rules.contains("-A CNI-ISOLATION-STAGE-2 -o cni-fw0 "),
            "{rules}"
        );
    });
    let rules = iptables();
    assert!(!rules.contains(&format!("{address}/32")), "{rules}");
}

#[test]
fn bridge_tuning_example_tunes_the_interface_bridge_made() {
    const MAC: &str = "0a:58:0a:58:08:42";
    let lab = Lab::new();
    let ctr = lab.container();
    let cap_args = json!({"mac": MAC}).to_string();
    let saved_state = || fs::read_dir(lab.dir().join("tuning")).unwrap().count();
    add_check_del(
        &lab,
        "bridge-tuning.conflist",
        &[("CAP_ARGS", &cap_args)],
        |result| {
            let eth0 = ctr.link("eth0").unwrap();
            assert_eq!(eth0["mtu"], 1400);
            assert_eq!(eth0["address"], MAC);
            assert_eq!(result["interfaces"][2]["mac"], MAC, "{result}");
            assert_eq!(ctr.sysctl("net/ipv4/conf/eth0/arp_notify"), "1");
            assert_eq!(ctr.sysctl("net/ipv6/conf/eth0/accept_ra"), "0");
            assert_eq!(saved_state(), 1, "one saved-state file");
        },
    );
    assert_eq!(saved_state(), 0, "tuning's DEL removes its saved state");
}

#[test]
fn bridge_portmap_example_forwards_the_host_port() {
    let lab = Lab::new();
    let host = lab.host();
    let cap_args =
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
            .to_string();
    add_check_del(
        &lab,
        "bridge-portmap.conflist",
        &[("CAP_ARGS", &cap_args)],
        |result| {
            let rules = firewall_rules(host);
            let dnat = format!(
                "--dport 8080 -j DNAT --to-destination {}:80",
                address_of(result, 0)
            );
            assert!(rules.contains(&dnat), "{rules}");
            assert!(rules.contains(r#"dnat name: \"demo-ports\""#), "{rules}");
        },
    );
    let rules = firewall_rules(host);
    assert!(!rules.contains("CNI-DN-"), "portmap's DEL left {rules}");
}
