//! Regression tests for hostile input to the bridge plugin: a `CNI_NETNS` that is a FIFO,
//! an ADD whose result cannot be written, arrays where objects are required, an oversized
//! stdin, a DEL whose `CNI_NETNS` is the plugin's own netns, and too few free descriptors.
//! Each one is a real binary run in the lab's throwaway namespaces.

// A test says "this cannot happen" by panicking with the run in the message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use cni_conformance::{Invocation, Lab, plugin_path};
use common::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

/// A FIFO named by `CNI_NETNS` is refused at once with a CNI error, before anything is
/// made: opening it blocking would wait for a writer forever.
#[test]
fn a_fifo_as_netns_fails_at_once_and_creates_nothing() {
    let lab = Lab::new();
    lab.assert_fifo_netns_refused(
        "eth0",
        &full_conf(&lab, "nftables"),
        |invocation| lab.run("bridge", invocation),
        |command| {
            assert!(lab.host().link("cni0").is_none(), "{command}: bridge made");
            assert_nothing_left(&lab, &[lab.container()], "eth0", command);
        },
    );
}

/// An ADD whose result cannot be written (stdout closed, or a pipe whose reader is gone)
/// exits non-zero and undoes itself: nobody can know its result, so nothing may stay.
#[test]
fn an_add_whose_result_cannot_be_written_fails_and_leaves_nothing() {
    let lab = Lab::new();
    for (i, closed) in [true, false].into_iter().enumerate() {
        let backend = if i % 2 == 0 { "nftables" } else { "iptables" };
        let conf = full_conf(&lab, backend);
        let stdout = (!closed).then(|| {
            let (reader, writer) = nix::unistd::pipe().unwrap();
            drop(reader);
            Stdio::from(writer)
        });
        let mut child = spawn_plugin_with_stdout(
            &lab,
            &Invocation::add(lab.container(), "eth0"),
            &conf,
            stdout,
        );
        let status = wait_at_most(&mut child, Duration::from_secs(30));
        let context = if closed {
            "stdout closed"
        } else {
            "broken pipe"
        };
        assert_eq!(status.code(), Some(5), "{context}");
        assert_nothing_left(&lab, &[lab.container()], "eth0", context);
    }
}

/// Waits for `child`, killing it after `limit`.
fn wait_at_most(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("the plugin ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A DEL whose `CNI_NETNS` is the plugin's own netns (a stale `/proc/<pid>/ns/net` that now
/// names the host) is refused with code 8, but first releases what lies outside it: the
/// lease and the masquerade rule. Nothing in that netns is touched.
#[test]
fn a_del_in_the_plugins_own_netns_releases_the_lease_then_fails() {
    let lab = Lab::new();
    let conf = full_conf(&lab, "nftables");
    add(&lab, &conf).assert_success();
    assert!(!leases(&lab).is_empty());
    let names = |ns: &cni_conformance::Netns| -> Vec<String> {
        links(ns).iter().map(|l| l["ifname"].to_string()).collect()
    };
    let host_links = names(lab.host());
    let run = lab.run(
        "bridge",
        &Invocation::del(lab.container(), "eth0")
            .netns_path(lab.host().path())
            .config(conf.clone()),
    );
    assert_eq!(run.error_code(), Some(8), "{run}");
    assert_eq!(leases(&lab), Vec::<String>::new(), "lease kept: {run}");
    assert!(nft_masq_rules(lab.host()).is_empty(), "masquerade kept");
    assert!(spoofcheck_state(lab.host()).is_empty(), "spoof check kept");
    assert_eq!(names(lab.host()), host_links, "links in the host touched");
    assert!(lab.container().link("eth0").is_some());
    del(&lab, &conf).assert_success();
    assert_nothing_left(&lab, &[lab.container()], "eth0", "after the real DEL");
}

/// Arrays where the reference requires objects are refused (code 2 naming the key, or 7
/// for `args.cni` of the wrong type), leaving nothing behind: `"ipam": []` must not run
/// bridge in L2 mode, nor `["x"]` name IPAM type `x`, nor a range or route be read
/// positionally.
#[test]
fn arrays_in_place_of_objects_are_refused_and_nothing_is_made() {
    let lab = Lab::new();
    let range_as_array = host_local(&lab, json!([[["10.79.0.0/24", "10.79.0.50"]]]));
    let mut route_as_array = ipam_v4(&lab, "10.1.2.0/24");
    route_as_array["routes"] = json!([["0.0.0.0/0", "10.1.2.1"]]);
    let cases = [
        (json!({"ipam": []}), 2, "\"ipam\"", true),
        (json!({"ipam": ["host-local"]}), 2, "\"ipam\"", true),
        (
            json!({"ipam": ipam_v4(&lab, "10.1.2.0/24"), "args": {"cni": true}}),
            7,
            "args.cni",
            true,
        ),
        (
            json!({"ipam": ipam_v4(&lab, "10.1.2.0/24"), "vlanTrunk": [[1, 2]]}),
            2,
            "\"vlanTrunk[0]\"",
            true,
        ),
        (
            json!({"ipam": range_as_array}),
            2,
            "\"ipam.ranges[0][0]\"",
            false,
        ),
        (
            json!({"ipam": route_as_array}),
            2,
            "\"ipam.routes[0]\"",
            false,
        ),
    ];
    // The last flag: refused by bridge itself, before anything is made. host-local refuses
    // the last ones while bridge builds its (shared) bridge, which then stays.
    for (extra, code, key, by_bridge) in cases {
        let conf = conf("1.0.0", extra);
        let run = add(&lab, &conf);
        assert_eq!(run.error_code(), Some(code), "{conf}: {run}");
        let error: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let msg = error["msg"].as_str().unwrap();
        assert!(msg.contains(key), "{conf}: names {key}: {run}");
        if by_bridge {
            assert!(lab.host().link("cni0").is_none(), "{conf}: bridge made");
        }
        assert_nothing_left(&lab, &[lab.container()], "eth0", &conf.to_string());
    }
}

/// A 100 MB config is refused with code 7 after reading just past the 1 MiB limit, before
/// any parsing (it took 1.66 GB of memory to parse as a JSON tree), and nothing is made.
#[test]
fn an_oversized_config_is_refused_before_parsing() {
    let lab = Lab::new();
    let head = serde_json::to_string(&full_conf(&lab, "nftables")).unwrap();
    let mut stdin = head.trim_end_matches('}').as_bytes().to_vec();
    stdin.extend_from_slice(b",\"junk\":[1");
    while stdin.len() < 100_000_000 {
        stdin.extend_from_slice(&[b',', b'1'].repeat(1 << 20));
    }
    stdin.extend_from_slice(b"]}");
    let started = Instant::now();
    let run = lab.run(
        "bridge",
        &Invocation::add(lab.container(), "eth0").stdin(stdin),
    );
    assert_eq!(run.error_code(), Some(7), "{run}");
    assert!(run.stdout.contains("larger than 1048576 bytes"), "{run}");
    assert!(started.elapsed() < Duration::from_secs(10), "{run}");
    assert!(lab.host().link("cni0").is_none(), "bridge made");
    assert_nothing_left(&lab, &[lab.container()], "eth0", "oversized config");
}

/// With few free file descriptors, whatever step runs out reports the real cause (too many
/// open files); the firewall probe no longer turns it into "iptables or nftables is not
/// available". Every failure is a CNI error that leaves nothing behind, and with enough
/// descriptors the same ADD succeeds.
#[test]
fn few_free_fds_report_the_real_cause() {
    let lab = Lab::new();
    let bridge = plugin_path("bridge");
    // ipMasqBackend absent: the backend is chosen by probing both.
    let conf = conf(
        "1.0.0",
        json!({"isGateway": true, "ipMasq": true, "ipam": ipam_v4(&lab, "10.1.2.0/24")}),
    );
    let mut succeeded = false;
    for limit in 4..=24 {
        let wrapper = lab.dir().join(format!("bridge-nofile-{limit}"));
        std::fs::write(
            &wrapper,
            format!("#!/bin/sh\nulimit -n {limit}\nexec {}\n", bridge.display()),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let run = lab.run_binary(
            &wrapper,
            &Invocation::add(lab.container(), "eth0")
                .cni_path(bridge.parent().unwrap())
                .config(conf.clone()),
        );
        let context = format!("RLIMIT_NOFILE {limit}");
        assert!(
            !run.stdout.contains("not available"),
            "{context}: the probe hid the cause: {run}"
        );
        if run.succeeded() {
            succeeded = true;
            del(&lab, &conf).assert_success();
        } else {
            assert!(run.error_code().is_some(), "{context}: {run}");
            assert!(
                run.stdout.contains("Too many open files"),
                "{context}: {run}"
            );
        }
        assert_nothing_left(&lab, &[lab.container()], "eth0", &context);
    }
    assert!(succeeded, "no limit up to 24 let the ADD through");
}
