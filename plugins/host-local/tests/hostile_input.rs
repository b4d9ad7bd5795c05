//! Regression tests for hostile configuration given to the built `host-local` binary: a
//! `resolvConf` that never ends or never opens, arrays where the reference requires
//! objects, and range edges the reference accepts.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Network;
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
