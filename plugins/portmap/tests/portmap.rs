//! The portmap binary in a lab: a host netns routing between a container (an HTTP listener on
//! 10.99.0.2:80) and a client netns; every rule lives in the lab host's own tables.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cni_conformance::{Invocation, Lab, Netns, PluginRun};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONTAINER_ID: &str = "pm-ctr";

struct World {
    lab: Lab,
    client: Netns,
    listener: Option<Child>,
}

impl World {
    fn new() -> World {
        let lab = Lab::new();
        let client = lab.new_container();
        let host = lab.host();
        host.bring_up_loopback();
        lab.container().bring_up_loopback();
        lab.container()
            .add_veth_to("eth0", host, "pm-h0", "10.99.0.1/24");
        lab.container()
            .ip(&["addr", "add", "10.99.0.2/24", "dev", "eth0"]);
        lab.container()
            .ip(&["route", "add", "default", "via", "10.99.0.1"]);
        client.add_veth_to("eth0", host, "pm-c0", "10.98.0.1/24");
        client.ip(&["addr", "add", "10.98.0.2/24", "dev", "eth0"]);
        client.ip(&["route", "add", "default", "via", "10.98.0.1"]);
        // IPv6 beside IPv4, without duplicate address detection so it is usable at once.
        for (ns, ifname, addr, gateway) in [
            (lab.container(), "eth0", "fd00:99::2/64", "fd00:99::1"),
            (&client, "eth0", "fd00:98::2/64", "fd00:98::1"),
        ] {
            ns.ip(&["addr", "add", addr, "dev", ifname, "nodad"]);
            ns.ip(&["-6", "route", "add", "default", "via", gateway]);
        }
        host.ip(&["addr", "add", "fd00:99::1/64", "dev", "pm-h0", "nodad"]);
        host.ip(&["addr", "add", "fd00:98::1/64", "dev", "pm-c0", "nodad"]);
        host.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        host.exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        World {
            lab,
            client,
            listener: None,
        }
    }

    /// An HTTP server on 10.99.0.2:80 in the container, ready when this returns.
    fn listen(&mut self) {
        let mut command = Command::new("python3");
        command
            // `::` listens on IPv4 too (Python's dual-stack server).
            .args(["-m", "http.server", "80", "--bind", "::"])
            .current_dir(self.lab.dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.lab.container().enter_before_exec(&mut command);
        self.listener = Some(command.spawn().expect("python3 http.server"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !fetch(self.lab.container(), "10.99.0.2:80") {
            assert!(Instant::now() < deadline, "the listener did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn conf(&self, backend: &str, mappings: Value) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": "pmnet",
            "type": "portmap",
            "backend": backend,
            "runtimeConfig": {"portMappings": mappings},
            "prevResult": {
                "cniVersion": "1.0.0",
                "interfaces": [{"name": "eth0", "sandbox": self.lab.container().path()}],
                "ips": [
                    {"interface": 0, "address": "10.99.0.2/24", "gateway": "10.99.0.1"},
                    {"interface": 0, "address": "fd00:99::2/64", "gateway": "fd00:99::1"},
                ],
            },
        })
    }

    fn run(&self, binary: Option<&PathBuf>, inv: Invocation) -> PluginRun {
        self.run_as(CONTAINER_ID, binary, inv)
    }

    fn run_as(&self, id: &str, binary: Option<&PathBuf>, inv: Invocation) -> PluginRun {
        let inv = inv.container_id(id);
        match binary {
            Some(path) => self.lab.run_binary(path, &inv),
            None => self.lab.run("portmap", &inv),
        }
    }

    fn add(&self, conf: &Value) -> PluginRun {
        self.run(
            None,
            Invocation::add(self.lab.container(), "eth0").config(conf.clone()),
        )
    }

    fn del(&self, conf: &Value) -> PluginRun {
        let mut conf = conf.clone();
        conf.as_object_mut().map(|c| c.remove("prevResult"));
        self.run(
            None,
            Invocation::del(self.lab.container(), "eth0").config(conf),
        )
    }

    /// Everything in the lab host's firewall, iptables (both families) and nftables.
    fn rules(&self) -> String {
        let host = self.lab.host();
        let mut out = String::new();
        for argv in [
            ["iptables", "-t", "nat", "-S"],
            ["ip6tables", "-t", "nat", "-S"],
        ] {
            out += &String::from_utf8_lossy(&host.exec(&argv).stdout);
        }
        let nft = host.exec(&["nft", "list", "table", "ip", "cni_hostport"]);
        out += &String::from_utf8_lossy(&nft.stdout);
        out
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(mut child) = self.listener.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether an HTTP GET of `addr` from `netns` succeeds within 3 s.
fn fetch(netns: &Netns, addr: &str) -> bool {
    let script =
        format!("import urllib.request; urllib.request.urlopen('http://{addr}/', timeout=3)");
    netns.exec(&["python3", "-c", &script]).status.success()
}

fn web() -> Value {
    json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
}

/// The rules the container's DNAT chain and jumps are made of, per backend.
fn has_container_rules(rules: &str) -> bool {
    rules.contains("CNI-DN-") || rules.contains("comment \"pm-ctr\"")
}

#[test]
fn host_port_reaches_the_container_and_hairpins_in_both_backends() {
    for backend in ["iptables", "nftables"] {
        let mut world = World::new();
        world.listen();
        let conf = world.conf(backend, web());
        assert!(
            !fetch(&world.client, "10.98.0.1:8080"),
            "{backend}: before ADD"
        );
        let result = world.add(&conf).assert_success();
        assert_eq!(
            result.result()["ips"],
            conf["prevResult"]["ips"],
            "{backend}"
        );
        for host_port in ["10.98.0.1:8080", "[fd00:98::1]:8080"] {
            assert!(
                fetch(&world.client, host_port),
                "{backend}: client to {host_port}"
            );
            assert!(
                fetch(world.lab.container(), host_port),
                "{backend}: hairpin from the container itself to {host_port}"
            );
        }
        world
            .run(
                None,
                Invocation::check(world.lab.container(), "eth0").config(conf.clone()),
            )
            .assert_success();
        world.del(&conf).assert_success();
        assert!(
            !has_container_rules(&world.rules()),
            "{backend}: {}",
            world.rules()
        );
        assert!(
            !fetch(&world.client, "10.98.0.1:8080"),
            "{backend}: after DEL"
        );
        world.del(&conf).assert_success();
        // CHECK now fails: the rules are gone.
        world
            .run(
                None,
                Invocation::check(world.lab.container(), "eth0").config(conf.clone()),
            )
            .assert_error(106);
    }
}

#[test]
fn iptables_rules_are_the_references() {
    let reference = PathBuf::from("/usr/lib/cni/portmap");
    assert!(
        reference.is_file(),
        "the Go reference {} is missing: apt-get install containernetworking-plugins",
        reference.display()
    );
    let world = World::new();
    let mappings = json!([
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 8443, "containerPort": 443, "protocol": "tcp", "hostIP": "10.98.0.1"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp"},
        {"hostPort": 9000, "containerPort": 9000, "protocol": "sctp", "hostIP": "fd00::1"},
    ]);
    let mut conf = world.conf("iptables", mappings);
    conf.as_object_mut().map(|c| c.remove("backend"));
    let add = |binary: Option<&PathBuf>| {
        world
            .run(
                binary,
                Invocation::add(world.lab.container(), "eth0").config(conf.clone()),
            )
            .assert_success();
        world.rules()
    };
    let theirs = add(Some(&reference));
    world
        .run(
            Some(&reference),
            Invocation::del(world.lab.container(), "eth0").config(conf.clone()),
        )
        .assert_success();
    let ours = add(None);
    assert_eq!(ours, theirs);
    // The reference's DEL removes our rules, as a node switching back needs.
    world
        .run(
            Some(&reference),
            Invocation::del(world.lab.container(), "eth0").config(conf.clone()),
        )
        .assert_success();
    assert!(!has_container_rules(&world.rules()), "{}", world.rules());
    // And ours removes the reference's, without a prevResult.
    add(Some(&reference));
    world.del(&conf).assert_success();
    assert!(!has_container_rules(&world.rules()), "{}", world.rules());
}

#[test]
fn bad_mappings_are_refused_and_leave_nothing() {
    let world = World::new();
    for (mapping, words) in [
        (
            json!({"hostPort": 8080, "containerPort": 80, "protocol": "icmp"}),
            "protocol",
        ),
        (
            json!({"hostPort": 0, "containerPort": 80, "protocol": "tcp"}),
            "host port",
        ),
        (
            json!({"hostPort": 65536, "containerPort": 80, "protocol": "tcp"}),
            "host port",
        ),
        (
            json!({"hostPort": 80, "containerPort": -1, "protocol": "tcp"}),
            "container port",
        ),
        (
            json!({"hostPort": 80, "containerPort": 80, "protocol": "tcp", "hostIP": "x"}),
            "hostIP",
        ),
    ] {
        let conf = world.conf("iptables", json!([web()[0], mapping]));
        let run = world.add(&conf).assert_error(7);
        let msg = run.result()["msg"].as_str().unwrap_or_default().to_owned();
        assert!(msg.contains(words), "{msg}");
        assert!(!has_container_rules(&world.rules()), "{}", world.rules());
    }
    let mut conf = world.conf("nftables", web());
    conf["externalSetMarkChain"] = json!("KUBE-MARK-MASQ");
    world.add(&conf).assert_error(7);
    let mut conf = world.conf("iptables", web());
    conf.as_object_mut().map(|c| c.remove("prevResult"));
    world.add(&conf).assert_error(7);
}

#[test]
fn a_failure_after_the_rules_removes_them() {
    let world = World::new();
    let conf = world.conf("iptables", web());
    world
        .run(
            None,
            Invocation::add(world.lab.container(), "eth0")
                .config(conf)
                .env("CNI_TEST_FAIL_AT", "portmap-before-result"),
        )
        .assert_error(999);
    assert!(!has_container_rules(&world.rules()), "{}", world.rules());
}

#[test]
fn gc_removes_rules_of_containers_not_in_the_valid_list() {
    let world = World::new();
    let conf = world.conf("iptables", web());
    world.add(&conf).assert_success();
    let mut gc = conf.clone();
    gc.as_object_mut().map(|c| c.remove("prevResult"));
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": CONTAINER_ID, "ifname": "eth0"}]);
    world
        .run(None, Invocation::gc().config(gc.clone()))
        .assert_success();
    assert!(has_container_rules(&world.rules()));
    gc["cni.dev/valid-attachments"] = json!([]);
    world
        .run(None, Invocation::gc().config(gc))
        .assert_success();
    assert!(!has_container_rules(&world.rules()), "{}", world.rules());
}

#[test]
fn nftables_gc_removes_only_this_networks_containers_not_in_the_valid_list() {
    let mut world = World::new();
    world.listen();
    let conf = world.conf("nftables", web());
    world.add(&conf).assert_success();
    // A second container of the same network, at another address and host port.
    let mut other = conf.clone();
    other["runtimeConfig"]["portMappings"][0]["hostPort"] = json!(8081);
    other["prevResult"]["ips"][0]["address"] = json!("10.99.0.3/24");
    other["prevResult"]["ips"][1]["address"] = json!("fd00:99::3/64");
    world
        .run_as(
            "pm-gone",
            None,
            Invocation::add(world.lab.container(), "eth0").config(other),
        )
        .assert_success();
    // A container of another network using the same tables: not this network's to collect.
    let mut foreign = conf.clone();
    foreign["name"] = json!("pm-othernet");
    foreign["runtimeConfig"]["portMappings"][0]["hostPort"] = json!(8082);
    foreign["prevResult"]["ips"][0]["address"] = json!("10.99.0.4/24");
    foreign["prevResult"]["ips"][1]["address"] = json!("fd00:99::4/64");
    world
        .run_as(
            "pm-foreign",
            None,
            Invocation::add(world.lab.container(), "eth0").config(foreign.clone()),
        )
        .assert_success();
    let comments = |family: &str| {
        let out = world
            .lab
            .host()
            .exec(&["nft", "list", "table", family, "cni_hostport"]);
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        let count = |id: &str| listing.matches(&format!("comment \"{id}\"")).count();
        (count(CONTAINER_ID), count("pm-gone"), count("pm-foreign"))
    };
    // One DNAT each, two masquerades in IPv4 and one in IPv6, and the network's record.
    assert_eq!(comments("ip"), (4, 4, 4));
    assert_eq!(comments("ip6"), (3, 3, 3));

    let mut gc = conf.clone();
    gc.as_object_mut().map(|c| c.remove("prevResult"));
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": CONTAINER_ID, "ifname": "eth0"}]);
    for _ in 0..2 {
        world
            .run(None, Invocation::gc().config(gc.clone()))
            .assert_success();
        assert_eq!(comments("ip"), (4, 0, 4), "{}", world.rules());
        assert_eq!(comments("ip6"), (3, 0, 3));
    }
    assert!(
        fetch(&world.client, "10.98.0.1:8080"),
        "the valid one still maps"
    );
    world.del(&conf).assert_success();
    foreign.as_object_mut().map(|c| c.remove("prevResult"));
    world
        .run_as(
            "pm-foreign",
            None,
            Invocation::del(world.lab.container(), "eth0").config(foreign),
        )
        .assert_success();
    assert_eq!(comments("ip"), (0, 0, 0));
    assert_eq!(comments("ip6"), (0, 0, 0));
}

/// The lab host's tracked UDP flows to `port` in `family` (`ipv4`, `ipv6`), as the
/// `conntrack` tool lists them (only the test needs the tool).
fn udp_flows(host: &Netns, family: &str, port: u16) -> usize {
    let port = port.to_string();
    let argv = [
        "conntrack",
        "-L",
        "-f",
        family,
        "-p",
        "udp",
        "--dport",
        &port,
    ];
    String::from_utf8_lossy(&host.exec(&argv).stdout)
        .lines()
        .count()
}

#[test]
fn add_flushes_stale_udp_conntrack_entries_of_mapped_ports_over_netlink() {
    let has_tool = Command::new("conntrack").arg("--version").output().is_ok();
    assert!(
        has_tool,
        "the conntrack tool is missing: apt-get install conntrack (scripts/test.sh installs it)"
    );
    let world = World::new();
    let host = world.lab.host();
    // Something in the lab host that needs connection tracking, so flows are tracked.
    host.exec(&["nft", "add table inet pmtrack"]);
    host.exec(&[
        "nft",
        "add chain inet pmtrack pre { type filter hook prerouting priority 0 ; ct state new accept ; }",
    ]);
    // Flows that started before the mapping: to the mapped port in both families, and to
    // a port that is not mapped.
    for (family, host_ip, port) in [
        ("AF_INET", "10.98.0.1", 5353),
        ("AF_INET", "10.98.0.1", 5354),
        ("AF_INET6", "fd00:98::1", 5353),
    ] {
        let send = format!(
            "import socket; s = socket.socket(socket.{family}, socket.SOCK_DGRAM); \
             s.sendto(b'x', ('{host_ip}', {port}))"
        );
        world.client.exec(&["python3", "-c", &send]);
    }
    let flows = || {
        [("ipv4", 5353), ("ipv4", 5354), ("ipv6", 5353)]
            .map(|(family, port)| udp_flows(host, family, port))
    };
    assert_eq!(flows(), [1, 1, 1], "the flows before ADD are tracked");

    // The plugin finds nothing but `nft` on its PATH: the flush needs no `conntrack` tool.
    let bin = world.lab.dir().join("nft-only");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink("/usr/sbin/nft", bin.join("nft")).unwrap();
    let udp = json!([{"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]);
    let conf = world.conf("nftables", udp);
    world
        .run(
            None,
            Invocation::add(world.lab.container(), "eth0")
                .config(conf.clone())
                .env("PATH", bin.to_str().unwrap()),
        )
        .assert_success();
    assert_eq!(
        flows(),
        [0, 1, 0],
        "ADD flushed the mapped port's flows only"
    );
    world.del(&conf).assert_success();
}
