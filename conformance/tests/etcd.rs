//! Tests of the etcd harness itself, with real etcd processes (Debian `etcd-server` and
//! `etcd-client`; scripts/test.sh installs them). Root only for the namespace test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpStream;
use std::time::{Duration, Instant};

use cni_conformance::{ETCDCTL_BIN, EtcdCluster, Netns, TestCa};

fn put(etcd: &EtcdCluster, key: &str, value: &str) {
    etcd.etcdctl(&["put", key, value]).unwrap();
}

/// `put`, retried for a while: right after the leader dies, requests time out until the
/// others have elected a new one (a few election timeouts, longer on a loaded machine).
fn put_within(etcd: &EtcdCluster, key: &str, value: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        match etcd.etcdctl(&["put", key, value]) {
            Ok(_) => return,
            Err(e) if Instant::now() > deadline => panic!("no write within {limit:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[test]
fn single_member_serves_reads_and_writes_and_is_gone_after_drop() {
    let etcd = EtcdCluster::start(1);
    let endpoints = etcd.endpoints();
    assert_eq!(endpoints.len(), 1);
    assert!(
        endpoints[0].starts_with("http://127.0.0.1:"),
        "{endpoints:?}"
    );
    put(&etcd, "/t/b", "{\"n\":2}");
    put(&etcd, "/t/a", "1");
    put(&etcd, "/u/c", "3");
    assert_eq!(
        etcd.get_prefix("/t/"),
        vec![
            ("/t/a".to_owned(), "1".to_owned()),
            ("/t/b".to_owned(), "{\"n\":2}".to_owned())
        ]
    );
    assert!(etcd.get_prefix("/none/").is_empty());
    let addr = endpoints[0].trim_start_matches("http://").to_owned();
    let dir = etcd.dir().to_owned();
    drop(etcd);
    assert!(
        TcpStream::connect(&addr).is_err(),
        "etcd still listens on {addr}"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn three_members_keep_serving_writes_with_one_killed_and_it_rejoins() {
    let etcd = EtcdCluster::start(3);
    assert_eq!(etcd.endpoints().len(), 3);
    put(&etcd, "/k/before", "1");
    etcd.kill_member(1);
    // Two of three still form a quorum: writes and linearizable reads go on (after an
    // election, if member 1 led).
    put_within(&etcd, "/k/during", "2", Duration::from_secs(30));
    assert_eq!(etcd.get_prefix("/k/").len(), 2);
    etcd.restart_member(1);
    // The restarted member caught up: read from it alone.
    let member1 = etcd.endpoints()[1].clone();
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([&format!("--endpoints={member1}"), "get", "--prefix", "/k/"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "/k/before\n1\n/k/during\n2\n"
    );
    put(&etcd, "/k/after", "3");
    assert_eq!(etcd.get_prefix("/k/").len(), 3);
}

#[test]
fn members_are_killed_when_a_test_panics() {
    let mut addr = String::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let etcd = EtcdCluster::start(1);
        addr = etcd.endpoints()[0].trim_start_matches("http://").to_owned();
        panic!("a failing test");
    }));
    assert!(result.is_err());
    assert!(
        TcpStream::connect(&addr).is_err(),
        "etcd still listens on {addr}"
    );
}

#[test]
fn start_in_runs_members_inside_a_namespace_on_its_address() {
    let ns = Netns::with_label("etcd");
    ns.ip(&["link", "add", "lan0", "type", "bridge"]);
    ns.ip(&["addr", "add", "192.168.71.2/24", "dev", "lan0"]);
    ns.ip(&["link", "set", "lan0", "up"]);
    let etcd = EtcdCluster::start_in(&ns, "192.168.71.2", 1);
    assert_eq!(etcd.endpoints(), ["http://192.168.71.2:2379"]);
    put(&etcd, "/n/k", "v");
    assert_eq!(
        etcd.get_prefix("/n/"),
        [("/n/k".to_owned(), "v".to_owned())]
    );
    // It listens in that namespace only.
    let listening = ns.exec(&["ss", "-Hltn", "sport = :2379"]);
    assert!(
        String::from_utf8_lossy(&listening.stdout).contains("192.168.71.2:2379"),
        "{listening:?}"
    );
    drop(etcd);
    let listening = ns.exec(&["ss", "-Hltn", "sport = :2379"]);
    assert!(listening.stdout.is_empty(), "{listening:?}");
}

#[test]
fn start_tls_serves_only_clients_with_a_certificate_of_its_ca() {
    let etcd = EtcdCluster::start_tls(1);
    let url = etcd.endpoints()[0].clone();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    // The harness's own etcdctl calls present the client certificate.
    put(&etcd, "/s/k", "v");
    assert_eq!(
        etcd.get_prefix("/s/"),
        [("/s/k".to_owned(), "v".to_owned())]
    );
    let tls = etcd.client_tls().unwrap();
    let stranger = TestCa::create(etcd.dir(), "stranger");
    for (case, flags) in [
        (
            "no client certificate",
            vec![format!("--cacert={}", tls.ca.display())],
        ),
        (
            "another CA",
            vec![
                format!("--cacert={}", stranger.cert().display()),
                format!("--cert={}", tls.cert.display()),
                format!("--key={}", tls.key.display()),
            ],
        ),
    ] {
        let out = std::process::Command::new(ETCDCTL_BIN)
            .env("ETCDCTL_API", "3")
            .args([
                &format!("--endpoints={url}"),
                "--dial-timeout=1s",
                "--command-timeout=2s",
            ])
            .args(&flags)
            .args(["get", "/s/k"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{case}: {out:?}");
    }
    let dir = etcd.dir().to_owned();
    drop(etcd);
    assert!(!dir.exists(), "{} left behind", dir.display());
}
