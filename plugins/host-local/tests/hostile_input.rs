//! Regression tests for hostile configuration given to the built `host-local` binary: a
//! `resolvConf` that never ends or never opens, arrays where the reference requires
//! objects, and range edges the reference accepts.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{GO_REFERENCE, Network};
use serde_json::json;
use std::time::{Duration, Instant};

/// `/dev/zero` is one endless line and a FIFO has no writer: both fail at once with an
/// I/O error (code 5), reserving nothing.
#[test]
fn an_endless_or_blocking_resolv_conf_fails_at_once_and_reserves_nothing() {
    let mut net = Network::v4("1.0.0", "10.1.2.0/24");
    let fifo = net.dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for path in [json!("/dev/zero"), json!(fifo)] {
        net.config["ipam"]["resolvConf"] = path.clone();
        let started = Instant::now();
        let out = net.ours("ADD", "c1");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path}: {out:?}"
        );
        let msg = out.error(5);
        assert!(msg.contains("resolvConf"), "{path}: {msg}");
        assert!(net.leases().is_empty(), "{path}: lease left");
    }
}

/// Range edges the Go reference accepts are accepted side by side with it (a node that
/// swaps binaries must not start failing), with the same gateway in the result and a
/// warning on stderr, but the network and broadcast addresses are never handed out.
#[test]
fn range_edges_the_reference_accepts_are_accepted_with_a_warning() {
    assert!(
        std::path::Path::new(GO_REFERENCE).exists(),
        "the Go reference plugin {GO_REFERENCE} is missing: apt-get install containernetworking-plugins (CI installs it)"
    );
    // (range, its network and broadcast addresses)
    let cases = [
        (
            json!({"subnet": "10.1.2.0/24", "gateway": "10.1.3.1"}),
            ["10.1.2.0", "10.1.2.255"],
        ),
        (
            json!({"subnet": "10.1.2.0/24", "gateway": "10.1.2.0"}),
            ["10.1.2.0", "10.1.2.255"],
        ),
        (
            json!({"subnet": "10.1.2.0/24", "gateway": "10.1.2.255"}),
            ["10.1.2.0", "10.1.2.255"],
        ),
        (
            json!({"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.0"}),
            ["10.1.2.0", "10.1.2.255"],
        ),
        (
            json!({"subnet": "10.1.2.0/24", "rangeEnd": "10.1.2.255"}),
            ["10.1.2.0", "10.1.2.255"],
        ),
        (
            json!({"subnet": "10.1.2.0/29", "rangeStart": "10.1.2.0", "rangeEnd": "10.1.2.7"}),
            ["10.1.2.0", "10.1.2.7"],
        ),
    ];
    for (range, reserved) in cases {
        let go = Network::new("1.0.0", json!({"ranges": [[range.clone()]]}));
        let ours = Network::new("1.0.0", json!({"ranges": [[range.clone()]]}));
        let theirs = go.run(GO_REFERENCE, "ADD", "c0");
        let first = ours.ours("ADD", "c0");
        assert!(
            first.stderr.contains("WARN"),
            "{range}: no warning: {first:?}"
        );
        assert_eq!(
            first.ok()["ips"][0]["gateway"],
            theirs.ok()["ips"][0]["gateway"],
            "{range}"
        );
        // Every address ours hands out until the /29 is exhausted (8 tries at most).
        let mut handed_out = first.ips();
        for i in 1..8 {
            let out = ours.ours("ADD", &format!("c{i}"));
            if out.status != 0 {
                out.error(102);
                break;
            }
            handed_out.extend(out.ips());
        }
        for address in reserved {
            let address: std::net::IpAddr = address.parse().unwrap();
            assert!(
                !handed_out.contains(&address),
                "{range}: {address} handed out"
            );
        }
    }
}
