//! Race-free ADD and DEL: 50 containers attach at once to a bridge that does not exist yet
//! (everyone races to create it and to put the gateway address on it), get distinct
//! addresses and can all talk; then 50 DELs at once leave nothing.

// A test says "this cannot happen" by panicking with the run in the message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use cni_conformance::{Lab, Netns};
use common::*;
use serde_json::json;

const CONTAINERS: usize = 50;

#[test]
fn fifty_concurrent_adds_onto_a_new_bridge_then_fifty_concurrent_dels() {
    let lab = Lab::new();
    assert!(lab.host().link("cni0").is_none());
    let conf = conf(
        "1.0.0",
        json!({"isDefaultGateway": true, "ipMasq": true, "ipMasqBackend": "nftables",
               "macspoofchk": true, "ipam": ipam_v4(&lab, "10.1.0.0/16")}),
    );
    let containers: Vec<Netns> = (0..CONTAINERS).map(|_| lab.new_container()).collect();

    let started = Instant::now();
    let addresses: Vec<String> = add_concurrently(&lab, &containers, "eth0", &conf)
        .into_iter()
        .map(|run| {
            let run = run.assert_success();
            let address = run.result()["ips"][0]["address"].as_str().unwrap();
            ip_of(address).to_owned()
        })
        .collect();
    eprintln!("{CONTAINERS} concurrent ADDs: {:?}", started.elapsed());

    let distinct: BTreeSet<&String> = addresses.iter().collect();
    assert_eq!(distinct.len(), CONTAINERS, "{addresses:?}");
    assert_eq!(veths(lab.host()).len(), CONTAINERS);
    assert_eq!(global_addresses(lab.host(), "cni0"), ["10.1.0.1/16"]);
    assert_eq!(nft_masq_rules(lab.host()).len(), CONTAINERS);

    // Each container reaches the gateway and two others (a sample of the full mesh).
    std::thread::scope(|scope| {
        for (i, ns) in containers.iter().enumerate() {
            let targets = [
                "10.1.0.1".to_owned(),
                addresses[(i + 1) % CONTAINERS].clone(),
                addresses[(i + 17) % CONTAINERS].clone(),
            ];
            scope.spawn(move || {
                for target in &targets {
                    assert!(ping(ns, target), "container {i} cannot reach {target}");
                }
            });
        }
    });

    let started = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = containers
            .iter()
            .map(|ns| scope.spawn(|| del_in(&lab, ns, "eth0", &conf)))
            .collect();
        for w in workers {
            w.join().unwrap().assert_success();
        }
    });
    eprintln!("{CONTAINERS} concurrent DELs: {:?}", started.elapsed());
    let all: Vec<&Netns> = containers.iter().collect();
    assert_nothing_left(&lab, &all, "eth0", "after 50 DELs");
}
