//! Our binary and the Go reference share one data directory: each reads the other's leases,
//! lock and round-robin cursor (docs/reference.md#lease-store: the formats are identical). Needs the Debian
//! package; without it these tests fail, they never pass silently.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{GO_REFERENCE, Network, OURS, ip};
use serde_json::json;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The reference binary, or a failure saying how to get it.
fn go() -> &'static str {
    assert!(
        std::path::Path::new(GO_REFERENCE).exists(),
        "the Go reference plugin {GO_REFERENCE} is missing: apt-get install containernetworking-plugins (CI installs it)"
    );
    GO_REFERENCE
}

/// The reference speaks up to 1.0.0.
fn network(subnet: &str) -> Network {
    Network::v4("1.0.0", subnet)
}

#[test]
fn a_store_written_by_go_is_read_by_ours() {
    let net = network("10.1.2.0/24");
    assert_eq!(net.run(go(), "ADD", "c1").ips(), [ip("10.1.2.2")]);
    assert_eq!(net.run(go(), "ADD", "c2").ips(), [ip("10.1.2.3")]);
    // Round robin continues from Go's last_reserved_ip; Go's leases are never reused.
    assert_eq!(net.ours("ADD", "c3").ips(), [ip("10.1.2.4")]);
    net.ours("ADD", "c1").error(103);
    net.ours("CHECK", "c2").ok();
    // Our DEL releases Go's lease (a scan: Go keeps no index).
    net.ours("DEL", "c1").ok();
    let leases = net.leases();
    assert_eq!(
        leases.keys().copied().collect::<Vec<_>>(),
        [ip("10.1.2.3"), ip("10.1.2.4")]
    );
    assert_eq!(leases[&ip("10.1.2.3")], "c2\r\neth0");
    // A requested address Go holds is refused.
    let mut requested = net.config.clone();
    requested["args"] = json!({"cni": {"ips": ["10.1.2.3"]}});
    net.run_with(OURS, "ADD", &[("CNI_CONTAINERID", "c9")], &requested)
        .error(103);
}

#[test]
fn a_store_written_by_ours_is_read_by_go() {
    let net = network("10.1.2.0/24");
    assert_eq!(net.ours("ADD", "c1").ips(), [ip("10.1.2.2")]);
    assert_eq!(net.ours("ADD", "c2").ips(), [ip("10.1.2.3")]);
    assert_eq!(net.run(go(), "ADD", "c3").ips(), [ip("10.1.2.4")]);
    assert_ne!(
        net.run(go(), "ADD", "c1").status,
        0,
        "Go sees our lease as a duplicate"
    );
    net.run(go(), "CHECK", "c1").ok();
    net.run(go(), "DEL", "c1").ok();
    assert!(
        !net.leases().contains_key(&ip("10.1.2.2")),
        "Go released our lease"
    );
    // Our index still names .2 for c1: verified, found stale, and replaced by a scan.
    assert_eq!(net.ours("ADD", "c1").ips(), [ip("10.1.2.5")]);
    net.ours("DEL", "c2").ok();
    let holders: Vec<(IpAddr, String)> = net.leases().into_iter().collect();
    assert_eq!(
        holders,
        [
            (ip("10.1.2.4"), "c3\r\neth0".into()),
            (ip("10.1.2.5"), "c1\r\neth0".into())
        ]
    );
    // Go's CHECK of a container we deleted fails: our index never looks like a lease.
    net.ours("DEL", "c1").ok();
    assert_ne!(net.run(go(), "CHECK", "c1").status, 0);
}

#[test]
fn error_messages_match_the_reference() {
    let net = network("10.1.2.0/30");
    net.ours("ADD", "c1").ok();
    let ours = net.ours("ADD", "c2").error(102);
    let theirs = net.run(go(), "ADD", "c2").json()["msg"].clone();
    assert_eq!(json!(ours), theirs);
    let ours = net.ours("ADD", "c1").error(103);
    let theirs = net.run(go(), "ADD", "c1").json()["msg"].clone();
    assert_eq!(json!(ours), theirs);
}

#[test]
fn concurrent_adds_from_both_plugins_never_collide() {
    let net = network("10.1.0.0/16");
    let go = go();
    let results: Vec<Vec<IpAddr>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..60)
            .map(|n| {
                let net = &net;
                let binary = if n % 2 == 0 { OURS } else { go };
                scope.spawn(move || net.run(binary, "ADD", &format!("ctr{n}")).ips())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: BTreeSet<IpAddr> = results.into_iter().flatten().collect();
    assert_eq!(distinct.len(), 60);
    assert_eq!(net.leases().len(), 60);
}
