//! All-or-nothing ADD: whatever step fails (an injected fault at each step, bad input, an
//! exhausted range, a SIGKILL at a random moment), no veth, lease, masquerade or
//! spoof-check rule is left, and DEL after a killed ADD cleans up. The reference leaves the
//! veth pair behind on a failed ADD (docs/reference.md#defect-6).

// A test says "this cannot happen" by panicking with the run in the message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use cni_conformance::{Invocation, Lab};
use common::*;
use serde_json::json;

/// Every fault point of add.rs, in step order.
const FAULT_POINTS: [&str; 10] = [
    "bridge-after-bridge",
    "bridge-after-veth",
    "bridge-after-port",
    "bridge-after-spoofcheck",
    "bridge-after-ipam",
    "bridge-after-addresses",
    "bridge-after-gateway",
    "bridge-after-masquerade",
    "bridge-after-container",
    "bridge-before-result",
];

#[test]
fn a_fault_at_any_step_leaves_nothing_behind() {
    let lab = Lab::new();
    for (i, point) in FAULT_POINTS.iter().enumerate() {
        // Both masquerade backends get their turn.
        let backend = if i % 2 == 0 { "nftables" } else { "iptables" };
        let conf = full_conf(&lab, backend);
        let run = lab.run(
            "bridge",
            &Invocation::add(lab.container(), "eth0")
                .config(conf.clone())
                .env("CNI_TEST_FAIL_AT", point),
        );
        assert!(!run.succeeded(), "{point}: {run}");
        assert!(
            run.stdout.contains(point),
            "{point}: not the injected fault: {run}"
        );
        assert_nothing_left(&lab, &[lab.container()], "eth0", point);
    }
    // And the same ADD without a fault works, then DEL removes it.
    let conf = full_conf(&lab, "nftables");
    add(&lab, &conf).assert_success();
    del(&lab, &conf).assert_success();
    assert_nothing_left(&lab, &[lab.container()], "eth0", "after DEL");
}

#[test]
fn a_bad_subnet_fails_and_leaves_nothing() {
    let lab = Lab::new();
    let conf = conf(
        "1.0.0",
        json!({"isGateway": true, "ipMasq": true, "macspoofchk": true,
               "ipam": ipam_v4(&lab, "10.1.2.0/33")}),
    );
    let run = add(&lab, &conf);
    assert!(!run.succeeded(), "{run}");
    assert!(run.error_code().is_some(), "a CNI error object: {run}");
    assert_nothing_left(&lab, &[lab.container()], "eth0", "bad subnet");
}

#[test]
fn a_missing_netns_fails_and_leaves_nothing() {
    let lab = Lab::new();
    let conf = full_conf(&lab, "nftables");
    let missing = lab.dir().join("no-such-netns");
    let run = lab.run(
        "bridge",
        &Invocation::add(lab.container(), "eth0")
            .netns_path(&missing)
            .config(conf),
    );
    assert!(!run.succeeded(), "{run}");
    assert!(run.error_code().is_some(), "{run}");
    assert_nothing_left(&lab, &[lab.container()], "eth0", "missing netns");
}

/// The spec: a second ADD of the same attachment fails; ours fails before touching
/// anything (before IPAM too), so the first attachment keeps working.
#[test]
fn a_second_add_of_an_existing_ifname_changes_nothing() {
    let lab = Lab::new();
    let conf = full_conf(&lab, "nftables");
    let result = add(&lab, &conf).assert_success().result().clone();
    let before = (
        veths(lab.host()).len(),
        leases(&lab),
        nft_masq_rules(lab.host()).len(),
        spoofcheck_state(lab.host()),
        global_addresses(lab.container(), "eth0"),
    );
    let run = add(&lab, &conf);
    assert!(!run.succeeded(), "{run}");
    assert!(run.stdout.contains("already exists"), "{run}");
    let after = (
        veths(lab.host()).len(),
        leases(&lab),
        nft_masq_rules(lab.host()).len(),
        spoofcheck_state(lab.host()),
        global_addresses(lab.container(), "eth0"),
    );
    assert_eq!(before, after);
    lab.run(
        "bridge",
        &Invocation::check(lab.container(), "eth0").config(with_prev(&conf, &result)),
    )
    .assert_success();
    assert!(ping(lab.container(), "10.1.2.1"));
    del(&lab, &conf).assert_success();
    assert_nothing_left(&lab, &[lab.container()], "eth0", "after DEL");
}

#[test]
fn an_exhausted_range_fails_and_leaves_nothing_of_the_loser() {
    let lab = Lab::new();
    let ipam = host_local(
        &lab,
        json!([[{"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.2", "rangeEnd": "10.1.2.2"}]]),
    );
    let conf = conf(
        "1.0.0",
        json!({"isGateway": true, "ipMasq": true, "macspoofchk": true, "ipam": ipam}),
    );
    add(&lab, &conf).assert_success();
    let before = (
        leases(&lab),
        nft_masq_rules(lab.host()),
        iptables_cni_lines(lab.host()),
    );
    let loser = lab.new_container();
    let run = add_in(&lab, &loser, "eth0", &conf);
    assert!(!run.succeeded(), "{run}");
    assert!(run.error_code().is_some(), "{run}");
    assert!(loser.link("eth0").is_none());
    assert_eq!(
        veths(lab.host()).len(),
        1,
        "only the first attachment's veth"
    );
    let after = (
        leases(&lab),
        nft_masq_rules(lab.host()),
        iptables_cni_lines(lab.host()),
    );
    assert_eq!(before, after);
    assert!(
        ping(lab.container(), "10.1.2.1"),
        "the first attachment still works"
    );
    del(&lab, &conf).assert_success();
    del_in(&lab, &loser, "eth0", &conf).assert_success();
    assert_nothing_left(&lab, &[lab.container(), &loser], "eth0", "after DEL");
}

/// docs/reference.md#defect-6: an L2 ADD with 0.2.0 (which cannot express a result without
/// IPs) fails at result conversion and the reference leaves the container veth behind.
/// We fail the same way, before printing, and roll everything back.
#[test]
fn l2_with_0_2_0_fails_with_conversion_error_and_leaves_no_veth_unlike_reference_2_6_6() {
    let lab = Lab::new();
    for version in ["0.1.0", "0.2.0"] {
        let conf = conf(version, json!({"ipam": {}}));
        let run = add(&lab, &conf);
        assert!(!run.succeeded(), "{run}");
        assert!(
            run.stdout.contains("cannot convert") && run.stdout.contains("no valid IP"),
            "{version}: the reference's conversion error: {run}"
        );
        assert_nothing_left(&lab, &[lab.container()], "eth0", version);
    }
}

/// A tiny xorshift generator seeded from std's per-process random hash keys: delays differ
/// from run to run, and a failing delay is printed.
fn random_delays(n: usize, max_ms: u64) -> Vec<Duration> {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(0);
    let mut x = hasher.finish() | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Duration::from_millis(x % (max_ms + 1))
        })
        .collect()
}

/// A runtime whose ADD was SIGKILLed calls DEL: DEL must succeed and leave nothing,
/// whichever step the kill interrupted.
#[test]
fn del_after_an_add_killed_at_a_random_moment_leaves_nothing() {
    let lab = Lab::new();
    let started = Instant::now();
    for (i, delay) in random_delays(30, 40).into_iter().enumerate() {
        let backend = if i % 2 == 0 { "nftables" } else { "iptables" };
        let conf = full_conf(&lab, backend);
        let invocation = Invocation::add(lab.container(), "eth0");
        let child = spawn_plugin(&lab, &invocation, &conf);
        std::thread::sleep(delay);
        kill_group(child);
        let context = format!("kill #{i} after {delay:?} ({backend})");
        let run = del(&lab, &conf);
        assert!(run.succeeded(), "{context}: {run}");
        assert_nothing_left(&lab, &[lab.container()], "eth0", &context);
    }
    eprintln!("30 kill/DEL rounds in {:?}", started.elapsed());
}
