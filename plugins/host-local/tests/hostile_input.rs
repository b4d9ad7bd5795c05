//! Regression tests for hostile configuration given to the built `host-local` binary: a
//! `resolvConf` that never ends or never opens, arrays where the reference requires
//! objects, range edges the reference accepts, and 1 MiB configs built to take memory.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{GO_REFERENCE, Network, OURS, run};
use serde_json::json;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
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

/// A 1 MiB config (the most stdin may hold) of a hostile shape is decoded within a bound on
/// the plugin's data memory: the DEL runs under `ulimit -d` (heap and private mappings,
/// the address space a JSON tree would take) and must succeed. The bounds are about 1.3
/// times what the shapes took when measured (README.md "Limits"), and below what they took
/// when stdin was built into one JSON tree and copied from it: 17.5 MiB for the unknown
/// key, 73 MiB for the nested arrays, 38 MiB for `prevResult`, 32 MiB for
/// `runtimeConfig`, which the plugin does not even read.
#[test]
fn a_1_mib_hostile_config_is_decoded_within_a_memory_bound() {
    let net = Network::v4("1.0.0", "10.1.2.0/24");
    let nested = format!("{}{}", "[".repeat(125), "]".repeat(125));
    let port = r#"{"hostPort":8080,"containerPort":80,"protocol":"tcp"}"#;
    let ip = r#"{"address":"10.1.2.3/24","interface":0}"#;
    // (what, where the filler goes, the filler's element, bound in MiB)
    let shapes = [
        ("unknown key of small numbers", r#""junk":["#, "1", "]", 4),
        (
            "unknown key of nested arrays",
            r#""junk":["#,
            &nested,
            "]",
            4,
        ),
        (
            "prevResult of many IPs",
            r#""prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":["#,
            ip,
            "]}",
            28,
        ),
        (
            "runtimeConfig of many port mappings",
            r#""runtimeConfig":{"portMappings":["#,
            port,
            "]}",
            24,
        ),
    ];
    for (what, open, element, close, mib) in shapes {
        let head = net.config.to_string();
        let mut stdin = format!("{},{open}{element}", head.trim_end_matches('}'));
        while stdin.len() + element.len() + close.len() + 2 < 1024 * 1024 {
            stdin.push(',');
            stdin.push_str(element);
        }
        stdin.push_str(close);
        stdin.push('}');
        let limited = net.dir.path().join(format!("host-local-{mib}m"));
        std::fs::write(
            &limited,
            format!("#!/bin/sh\nulimit -d {}\nexec {OURS}\n", mib * 1024),
        )
        .unwrap();
        std::fs::set_permissions(&limited, std::fs::Permissions::from_mode(0o755)).unwrap();
        let vars = BTreeMap::from([
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/usr/lib/cni"),
        ]);
        let out = run(limited.to_str().unwrap(), &vars, stdin.as_bytes());
        assert_eq!(out.status, 0, "{what} within {mib} MiB: {out:?}");
    }
}
