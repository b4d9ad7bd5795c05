//! The built `cluster-ipam` binary against a real etcd (Debian's `etcd-server`, started on
//! loopback by [`EtcdCluster`]), run as a runtime runs it in a lab namespace that reaches
//! etcd through a [`LoopbackRelay`]. The keys are read back with `etcdctl`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cni_conformance::{EtcdCluster, Invocation, Lab, LoopbackRelay, PluginRun, TestCa};
use serde_json::{Value, json};
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PREFIX: &str = "/cni/cluster-ipam/";

/// An etcd cluster, and a lab whose host namespace reaches every member.
struct World {
    etcd: EtcdCluster,
    lab: Lab,
    relays: Vec<LoopbackRelay>,
}

/// The address of an `http://` or `https://` URL.
fn socket_addr(url: &str) -> SocketAddr {
    let (_, address) = url.split_once("://").unwrap();
    address.parse().unwrap()
}

impl World {
    fn new() -> World {
        World::with_members(1)
    }

    fn with_members(members: usize) -> World {
        World::around(EtcdCluster::start(members))
    }

    /// One member that serves clients over TLS and requires their certificates; [`conf`]
    /// configures the CA, certificate and key.
    ///
    /// [`conf`]: World::conf
    fn with_tls() -> World {
        World::around(EtcdCluster::start_tls(1))
    }

    fn around(etcd: EtcdCluster) -> World {
        let lab = Lab::new();
        let relays = etcd
            .endpoints()
            .iter()
            .map(|url| LoopbackRelay::new(lab.host(), socket_addr(url)))
            .collect();
        World { etcd, lab, relays }
    }

    /// The endpoints as the plugin in the lab sees them.
    fn endpoints(&self) -> Vec<String> {
        let url = match self.etcd.client_tls() {
            Some(_) => LoopbackRelay::https_url,
            None => LoopbackRelay::url,
        };
        self.relays.iter().map(url).collect()
    }

    /// A 1.1.0 network `pool` on `subnet` for node `node` (with the client's TLS files
    /// when etcd serves TLS).
    fn conf(&self, node: &str, subnet: &str) -> Value {
        let mut conf = json!({
            "cniVersion": "1.1.0", "name": "pool", "type": "cluster-ipam",
            "ipam": {
                "type": "cluster-ipam", "subnet": subnet, "nodeName": node,
                "routes": [{"dst": "0.0.0.0/0"}],
                "etcd": {"endpoints": self.endpoints(), "dialTimeoutMs": 1000, "requestTimeoutMs": 2000},
            }
        });
        if let Some(tls) = self.etcd.client_tls() {
            let etcd = &mut conf["ipam"]["etcd"];
            etcd["ca"] = json!(tls.ca);
            etcd["cert"] = json!(tls.cert);
            etcd["key"] = json!(tls.key);
        }
        conf
    }

    fn run(&self, invocation: Invocation) -> PluginRun {
        self.lab.run("cluster-ipam", &invocation)
    }

    fn verb(&self, command: &str, id: &str, conf: &Value) -> PluginRun {
        self.run(
            Invocation::new(command)
                .container_id(id)
                .netns_path(self.lab.container().path())
                .ifname("eth0")
                .config(conf.clone()),
        )
    }

    /// ADD for container `id`; the address without its prefix length.
    fn add(&self, id: &str, conf: &Value) -> String {
        let run = self.verb("ADD", id, conf).assert_success();
        let address = run.result()["ips"][0]["address"]
            .as_str()
            .unwrap()
            .to_owned();
        address.split('/').next().unwrap().to_owned()
    }

    /// Every key under the prefix with its value parsed.
    fn keys(&self) -> Vec<(String, Value)> {
        self.etcd
            .get_prefix(PREFIX)
            .into_iter()
            .map(|(key, value)| (key, serde_json::from_str(&value).unwrap()))
            .collect()
    }

    /// The block keys with their owner values.
    fn blocks(&self) -> Vec<(String, Value)> {
        self.keys()
            .into_iter()
            .filter(|(k, _)| k.contains("/blocks/"))
            .collect()
    }

    fn key_names(&self) -> Vec<String> {
        self.keys().into_iter().map(|(key, _)| key).collect()
    }

    fn block_of(&self, ip: &str) -> String {
        let ip: std::net::Ipv4Addr = ip.parse().unwrap();
        let first = u32::from(ip) & !63;
        format!("{PREFIX}pool/blocks/{}-26", std::net::Ipv4Addr::from(first))
    }
}

fn key(rest: &str) -> String {
    format!("{PREFIX}pool/{rest}")
}

#[test]
fn add_check_status_gc_del_round_trip_with_the_key_layout() {
    let w = World::new();
    let conf = w.conf("node-a", "10.97.8.0/22");
    let run = w.verb("ADD", "c1", &conf).assert_success();
    let result = run.result();
    let address = result["ips"][0]["address"].as_str().unwrap();
    assert!(
        address.starts_with("10.97.") && address.ends_with("/22"),
        "{result}"
    );
    assert_eq!(result["ips"][0]["gateway"], "10.97.8.1");
    assert_eq!(result["routes"], json!([{"dst": "0.0.0.0/0"}]));
    let ip = address.split('/').next().unwrap();

    let keys = w.keys();
    let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            key("attachments/c1/eth0"),
            w.block_of(ip),
            key(&format!("ips/{ip}"))
        ],
        "{keys:?}"
    );
    assert_eq!(keys[0].1, json!({"node": "node-a", "ips": [ip]}));
    assert_eq!(keys[1].1, json!({"node": "node-a"}));
    assert_eq!(
        keys[2].1,
        json!({"node": "node-a", "containerID": "c1", "ifname": "eth0"})
    );

    w.verb("CHECK", "c1", &conf).assert_success();
    w.run(Invocation::status().config(conf.clone()))
        .assert_success();

    // GC keeps the listed attachment and releases the other one of this node.
    let ip2 = w.add("c2", &conf);
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c1", "ifname": "eth0"}]);
    w.run(Invocation::gc().config(gc)).assert_success();
    let names = w.key_names();
    assert!(!names.contains(&key(&format!("ips/{ip2}"))), "{names:?}");
    assert!(!names.contains(&key("attachments/c2/eth0")), "{names:?}");
    assert!(names.contains(&key(&format!("ips/{ip}"))), "{names:?}");

    // DEL releases the reservation and the index, keeps the node's block; twice is fine.
    w.verb("DEL", "c1", &conf).assert_success();
    w.verb("DEL", "c1", &conf).assert_success();
    w.verb("DEL", "never-added", &conf).assert_success();
    assert_eq!(w.key_names(), [w.block_of(ip)]);
    w.verb("CHECK", "c1", &conf).assert_error(106);
}

#[test]
fn two_nodes_allocate_in_different_blocks() {
    let w = World::new();
    let a = w.add("a1", &w.conf("node-a", "10.97.8.0/22"));
    let b = w.add("b1", &w.conf("node-b", "10.97.8.0/22"));
    assert_ne!(w.block_of(&a), w.block_of(&b));
    // Each node's next address comes from its own block.
    let a2 = w.add("a2", &w.conf("node-a", "10.97.8.0/22"));
    assert_eq!(w.block_of(&a2), w.block_of(&a));
    let blocks = w.blocks();
    assert_eq!(blocks.len(), 2, "{blocks:?}");
}

#[test]
fn a_guess_never_lands_in_another_nodes_home_block() {
    let w = World::new();
    // node-a and node-1 share their home block (the same seed modulo the /22's 16 blocks):
    // node-1's one-round-trip guess names node-a's block and must lose its guard.
    let a = w.add("a1", &w.conf("node-a", "10.97.8.0/22"));
    let one = w.add("n1", &w.conf("node-1", "10.97.8.0/22"));
    assert_ne!(w.block_of(&one), w.block_of(&a));
    let owner = w.keys().into_iter().find(|(k, _)| *k == w.block_of(&one));
    assert_eq!(owner.unwrap().1["node"], "node-1");
}

#[test]
fn a_requested_address_is_honoured_in_another_nodes_block() {
    let w = World::new();
    let a = w.add("a1", &w.conf("node-a", "10.97.8.0/22"));
    // Another address of node-a's block (never its network, broadcast or the gateway).
    let a_int = u32::from(a.parse::<std::net::Ipv4Addr>().unwrap());
    let offset = if a_int & 63 == 40 { 41 } else { 40 };
    let wanted = std::net::Ipv4Addr::from((a_int & !63) + offset).to_string();
    let mut conf = w.conf("node-b", "10.97.8.0/22");
    conf["runtimeConfig"] = json!({"ips": [format!("{wanted}/22")]});
    conf["capabilities"] = json!({"ips": true});
    assert_eq!(w.add("b1", &conf), wanted);
    // Taken now, by anyone: refused with host-local's code and message.
    let msg = w.verb("ADD", "b2", &conf).assert_error(103).result()["msg"].clone();
    assert!(msg.as_str().unwrap().contains("is not available"), "{msg}");
    assert!(!w.key_names().contains(&key("attachments/b2/eth0")));
}

#[test]
fn del_leaves_alone_a_reservation_a_later_add_reused() {
    let w = World::new();
    let conf = w.conf("node-a", "10.97.8.0/22");
    let ip = w.add("c1", &conf);
    // The reservation goes (an operator's etcdctl, say) and another container requests
    // the address: c1's index still names it, but it is c2's now.
    w.etcd
        .etcdctl(&["del", &key(&format!("ips/{ip}"))])
        .unwrap();
    let mut wants = conf.clone();
    wants["runtimeConfig"] = json!({"ips": [format!("{ip}/22")]});
    wants["capabilities"] = json!({"ips": true});
    assert_eq!(w.add("c2", &wants), ip);

    w.verb("DEL", "c1", &conf).assert_success();
    let names = w.key_names();
    assert!(!names.contains(&key("attachments/c1/eth0")), "{names:?}");
    assert!(names.contains(&key(&format!("ips/{ip}"))), "{names:?}");
    w.verb("CHECK", "c2", &conf).assert_success();
}

#[test]
fn a_node_whose_home_block_is_full_allocates_in_its_next_block() {
    let w = World::new();
    // Blocks of /29: eight addresses each, so 20 ADDs fill two and go on in a third.
    let mut conf = w.conf("node-a", "10.97.8.0/24");
    conf["ipam"]["blockSizeV4"] = json!(29);
    let mut addresses = std::collections::BTreeSet::new();
    for i in 0..20 {
        assert!(addresses.insert(w.add(&format!("c{i}"), &conf)));
    }
    let blocks = w.blocks();
    assert_eq!(blocks.len(), 3, "{blocks:?}");
    assert!(blocks.iter().all(|(_, owner)| owner["node"] == "node-a"));
    // Every reservation lies in one of node-a's blocks.
    for ip in &addresses {
        let first = u32::from(ip.parse::<std::net::Ipv4Addr>().unwrap()) & !7;
        let block = key(&format!("blocks/{}-29", std::net::Ipv4Addr::from(first)));
        assert!(blocks.iter().any(|(k, _)| *k == block), "{ip} {blocks:?}");
    }
}

#[test]
fn an_exhausted_pool_is_code_102_and_status_50_and_nodes_borrow_before() {
    let w = World::new();
    // .2 to .6: five addresses in one block, which node-a claims first.
    let a = w.conf("node-a", "10.97.9.0/29");
    let b = w.conf("node-b", "10.97.9.0/29");
    let mut got: Vec<String> = (0..3).map(|n| w.add(&format!("a{n}"), &a)).collect();
    // No free block left: node-b allocates inside node-a's block.
    got.extend((0..2).map(|n| w.add(&format!("b{n}"), &b)));
    got.sort();
    assert_eq!(
        got,
        [
            "10.97.9.2",
            "10.97.9.3",
            "10.97.9.4",
            "10.97.9.5",
            "10.97.9.6"
        ]
    );
    let err = w.verb("ADD", "b9", &b).assert_error(102);
    let msg = err.result()["msg"].as_str().unwrap();
    assert!(
        msg.contains("no IP addresses available in range set"),
        "{msg}"
    );
    w.run(Invocation::status().config(b.clone()))
        .assert_error(50);
    w.verb("DEL", "a1", &a).assert_success();
    w.run(Invocation::status().config(b)).assert_success();
}

#[test]
fn etcd_down_fails_add_with_code_11_in_time_and_leaves_nothing() {
    let w = World::new();
    let conf = w.conf("node-a", "10.97.8.0/22");
    w.etcd.kill_member(0);
    let started = Instant::now();
    let run = w.verb("ADD", "c1", &conf).assert_error(11);
    assert!(
        started.elapsed() < Duration::from_secs(3) + Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let msg = run.result()["msg"].as_str().unwrap();
    assert!(msg.contains(&w.endpoints()[0]), "names the endpoint: {msg}");
    w.run(Invocation::status().config(conf.clone()))
        .assert_error(50);
    w.etcd.restart_member(0);
    assert!(w.key_names().is_empty());
}

#[test]
fn an_etcd_that_never_answers_times_out_with_code_11() {
    let lab = Lab::new();
    lab.host().bring_up_loopback();
    // Accepts connections (the kernel's backlog) but never speaks.
    let silent = lab
        .host()
        .run_inside(|| std::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let endpoint = url.clone();
    let conf = json!({
        "cniVersion": "1.1.0", "name": "pool", "type": "cluster-ipam",
        "ipam": {"type": "cluster-ipam", "subnet": "10.97.8.0/22", "nodeName": "n",
                 "etcd": {"endpoints": [endpoint], "dialTimeoutMs": 300, "requestTimeoutMs": 500}}
    });
    let started = Instant::now();
    let run = lab.run(
        "cluster-ipam",
        &Invocation::add(lab.container(), "eth0").config(conf),
    );
    let elapsed = started.elapsed();
    let run = run.assert_error(11);
    assert!(elapsed < Duration::from_millis(800 + 700), "{elapsed:?}");
    assert!(
        run.result()["msg"].as_str().unwrap().contains(&url),
        "{run}"
    );
}

#[test]
fn configs_without_endpoints_are_code_7() {
    let lab = Lab::new();
    for ipam in [
        json!({"type": "cluster-ipam", "subnet": "10.97.8.0/22"}),
        json!({"type": "cluster-ipam", "subnet": "10.97.8.0/22", "etcd": {"endpoints": []}}),
        json!({"type": "cluster-ipam", "subnet": "10.97.8.0/22", "etcd": {"endpoints": ["http://127.0.0.1:1"]}, "blockSizeV4": 12}),
    ] {
        let conf =
            json!({"cniVersion": "1.1.0", "name": "pool", "type": "cluster-ipam", "ipam": ipam});
        add_is_refused(&lab, conf, 7, "ipam.");
    }
}

/// Runs `cluster-ipam release-node NODE` in the test's namespace, etcd reached directly.
fn release_node(w: &World, node: &str) -> (i32, String) {
    let mut conf = w.conf(node, "10.97.8.0/22");
    conf["ipam"]["etcd"]["endpoints"] = json!(w.etcd.endpoints());
    let mut child = Command::new(env!("CARGO_BIN_EXE_cluster-ipam"))
        .args(["release-node", node])
        .env_remove("CNI_COMMAND")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn release_node_frees_a_dead_nodes_reservations_and_blocks_only() {
    let w = World::new();
    let a = w.conf("node-a", "10.97.8.0/22");
    let b = w.conf("node-b", "10.97.8.0/22");
    w.add("a1", &a);
    w.add("a2", &a);
    let kept = w.add("b1", &b);
    let (code, out) = release_node(&w, "node-a");
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.trim(),
        "released 2 attachment(s) and 1 block(s) of node node-a on network pool"
    );
    assert_eq!(
        w.key_names(),
        [
            key("attachments/b1/eth0"),
            w.block_of(&kept),
            key(&format!("ips/{kept}"))
        ]
    );
    let (code, _) = release_node(&w, "node-a");
    assert_eq!(code, 0, "nothing left to release is no error");
}

#[test]
fn bridge_delegates_to_cluster_ipam_and_the_container_gets_the_address() {
    let w = World::new();
    let mut conf = w.conf("node-a", "10.97.8.0/22");
    conf["type"] = json!("bridge");
    conf["bridge"] = json!("cibr0");
    conf["isGateway"] = json!(true);
    let ctr = w.lab.container();
    let run = w
        .lab
        .run("bridge", &Invocation::add(ctr, "eth0").config(conf.clone()))
        .assert_success();
    let address = run.result()["ips"][0]["address"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        ctr.addresses("eth0").contains(&address),
        "{:?} vs {address}",
        ctr.addresses("eth0")
    );
    let ip = address.split('/').next().unwrap();
    assert!(w.key_names().contains(&key(&format!("ips/{ip}"))));
    w.lab
        .run("bridge", &Invocation::del(ctr, "eth0").config(conf))
        .assert_success();
    assert!(!w.key_names().contains(&key(&format!("ips/{ip}"))));
}

#[test]
fn a_three_member_cluster_serves_every_verb_with_one_member_down() {
    let w = World::with_members(3);
    let conf = w.conf("node-a", "10.97.8.0/22");
    let before = w.add("c1", &conf);
    w.etcd.kill_member(0);
    let started = Instant::now();
    let during = w.add("c2", &conf);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(before, during);
    w.verb("CHECK", "c1", &conf).assert_success();
    w.verb("DEL", "c1", &conf).assert_success();
    w.etcd.restart_member(0);
    w.verb("DEL", "c2", &conf).assert_success();
    let left: Vec<String> = w
        .key_names()
        .into_iter()
        .filter(|k| !k.contains("/blocks/"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn dual_stack_gets_one_address_per_range_set_in_blocks_of_each_family() {
    let w = World::new();
    let mut conf = w.conf("node-a", "10.97.8.0/22");
    conf["ipam"].as_object_mut().unwrap().remove("subnet");
    conf["ipam"]["ranges"] = json!([[{"subnet": "10.97.8.0/22"}], [{"subnet": "fd00:97::/64"}]]);
    let run = w.verb("ADD", "c1", &conf).assert_success();
    let ips = run.result()["ips"].as_array().unwrap().clone();
    assert_eq!(ips.len(), 2, "{ips:?}");
    let v6 = ips[1]["address"].as_str().unwrap();
    assert!(v6.starts_with("fd00:97::") && v6.ends_with("/64"), "{v6}");
    assert_eq!(ips[1]["gateway"], "fd00:97::1");
    let bare = v6.split('/').next().unwrap();
    let names = w.key_names();
    assert!(names.contains(&key(&format!("ips/{bare}"))), "{names:?}");
    assert!(
        names
            .iter()
            .any(|k| k.contains("/blocks/fd00:97::") && k.ends_with("-122")),
        "{names:?}"
    );
    w.verb("DEL", "c1", &conf).assert_success();
    assert!(w.key_names().iter().all(|k| k.contains("/blocks/")));
}

#[test]
fn tls_files_are_read_and_refused_with_plain_http() {
    let lab = Lab::new();
    let base = json!({"cniVersion": "1.1.0", "name": "pool", "type": "cluster-ipam",
        "ipam": {"type": "cluster-ipam", "subnet": "10.97.8.0/22", "nodeName": "n"}});
    let missing = lab.dir().join("no-such-ca.pem");
    for (etcd, code, needle) in [
        (
            json!({"endpoints": ["https://127.0.0.1:1"], "ca": missing}),
            5,
            "no-such-ca.pem",
        ),
        (
            json!({"endpoints": ["http://127.0.0.1:1"], "ca": missing}),
            5,
            "no-such-ca.pem",
        ),
        (
            json!({"endpoints": ["https://127.0.0.1:1"], "cert": "/c.pem"}),
            7,
            "ipam.etcd.cert",
        ),
    ] {
        let mut conf = base.clone();
        conf["ipam"]["etcd"] = etcd;
        add_is_refused(&lab, conf, code, needle);
    }
    // A readable CA with a plain-http endpoint: the configuration, not the network.
    let ca = lab.dir().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let mut conf = base.clone();
    conf["ipam"]["etcd"] = json!({"endpoints": ["http://127.0.0.1:1"], "ca": ca});
    add_is_refused(&lab, conf, 7, "HTTPS");
}

/// An ADD of `conf` in the lab fails with `code`, its message containing `needle`.
fn add_is_refused(lab: &Lab, conf: Value, code: u64, needle: &str) {
    let run = lab
        .run(
            "cluster-ipam",
            &Invocation::add(lab.container(), "eth0").config(conf),
        )
        .assert_error(code);
    let msg = run.result()["msg"].as_str().unwrap();
    assert!(msg.contains(needle), "{run}");
}

#[test]
fn add_check_del_over_tls_with_a_client_certificate() {
    let w = World::with_tls();
    let conf = w.conf("node-a", "10.97.8.0/22");
    assert!(w.endpoints()[0].starts_with("https://"), "{conf}");
    let ip = w.add("c1", &conf);
    assert_eq!(
        w.key_names(),
        [
            key("attachments/c1/eth0"),
            w.block_of(&ip),
            key(&format!("ips/{ip}"))
        ]
    );
    w.verb("CHECK", "c1", &conf).assert_success();
    w.verb("DEL", "c1", &conf).assert_success();
    assert_eq!(w.key_names(), [w.block_of(&ip)]);
}

#[test]
fn tls_without_a_client_certificate_or_with_another_ca_is_code_7_and_leaves_nothing() {
    let w = World::with_tls();
    let stranger = TestCa::create(w.lab.dir(), "stranger");
    let mut no_cert = w.conf("node-a", "10.97.8.0/22");
    let etcd = no_cert["ipam"]["etcd"].as_object_mut().unwrap();
    etcd.remove("cert");
    etcd.remove("key");
    let mut another_ca = w.conf("node-a", "10.97.8.0/22");
    another_ca["ipam"]["etcd"]["ca"] = json!(stranger.cert());
    // What went wrong, and the settings the message points at.
    for (mut conf, failure, setting) in [
        // Which alert depends on etcd's Go version (bad_certificate, certificate_required).
        (no_cert, "received fatal alert", "ipam.etcd.cert"),
        (
            another_ca,
            "invalid peer certificate: UnknownIssuer",
            "ipam.etcd.ca must be the CA",
        ),
    ] {
        // A short dial limit; the request limit leaves room to retry when etcd closes the
        // connection before its alert arrives (a refusal is reported as soon as one does).
        conf["ipam"]["etcd"]["dialTimeoutMs"] = json!(300);
        conf["ipam"]["etcd"]["requestTimeoutMs"] = json!(1500);
        let started = Instant::now();
        let run = w.verb("ADD", "c1", &conf).assert_error(7);
        assert!(
            started.elapsed() < Duration::from_millis(1800 + 700),
            "{run}"
        );
        let msg = run.result()["msg"].as_str().unwrap();
        let endpoint = format!("TLS with etcd at {} failed", w.endpoints()[0]);
        assert!(msg.contains(&endpoint), "{run}");
        assert!(msg.contains(failure) && msg.contains(setting), "{run}");
    }
    assert!(w.key_names().is_empty());
}
