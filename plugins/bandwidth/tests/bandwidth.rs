//! The built `bandwidth` binary, run as a runtime runs it in a chain, inside throwaway
//! namespaces (needs root). The veth is made by the test, standing in for the plugin
//! before bandwidth; every assertion reads the kernel back (`tc -j`, `ip -j`), and the
//! transfer tests time real TCP traffic between the lab host and the container.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cni_conformance::Invocation;
use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn add_shapes_both_ways_check_passes_and_del_removes_the_ifb() {
    let w = World::new();
    let conf = w.conf("1.0.0", both_limits());
    let result = w.add(&conf);

    let ifbs = w.ifbs();
    assert_eq!(ifbs.len(), 1, "{ifbs:?}");
    let ifb = &ifbs[0];
    assert!(ifb.starts_with("bwp") && ifb.len() == 15, "{ifb}");
    // The prevResult passes through with the ifb added.
    let mut expected = conf["prevResult"].clone();
    let mac = w.lab.host().link(ifb).unwrap()["address"].clone();
    expected["interfaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": ifb, "mac": mac}));
    assert_eq!(result, expected);

    // tbf in bytes: 1 Mbit/s = 125000 B/s with a 10000 B burst on the veth, 2 Mbit/s =
    // 250000 B/s with a 20000 B burst on the ifb; the ingress qdisc redirects to the ifb.
    let qdiscs = w.qdiscs();
    let tbf = |dev: &str, rate: u64, burst: u64| {
        json!({"kind": "tbf", "handle": "1:", "dev": dev, "root": true,
               "options": {"rate": rate, "burst": burst, "lat": 25000}})
    };
    assert_eq!(
        qdiscs,
        vec![
            tbf(HOST_VETH, 125_000, 10_000),
            json!({"kind": "ingress", "handle": "ffff:", "dev": HOST_VETH,
                   "parent": "ffff:fff1", "options": {}}),
            tbf(ifb, 250_000, 20_000),
        ]
    );
    let filters = w.tc(&["filter", "show", "dev", HOST_VETH, "ingress"]);
    let actions = &filters[2]["options"]["actions"];
    assert_eq!(actions[0]["kind"], "mirred");
    assert_eq!(actions[0]["to_dev"], ifb.as_str());
    assert_eq!(actions[0]["control_action"]["type"], "stolen");
    assert_eq!(filters[2]["options"]["flowid"], "1:1");

    w.run(&Invocation::check(w.lab.container(), IFNAME).config(conf.clone()))
        .assert_success();

    w.del(&conf);
    assert_eq!(w.ifbs(), Vec::<String>::new());
    // The veth's qdiscs stay until the veth goes, as with the reference.
    w.del(&conf);
}

#[test]
fn check_finds_a_missing_or_changed_tbf_and_a_missing_ifb() {
    let w = World::new();
    let conf = w.conf("1.0.0", both_limits());
    w.add(&conf);
    let check = || w.run(&Invocation::check(w.lab.container(), IFNAME).config(conf.clone()));
    let host = w.lab.host();
    let tc = |args: &[&str]| {
        let argv: Vec<&str> = ["tc"].iter().chain(args).copied().collect();
        assert!(host.exec(&argv).status.success(), "{argv:?}");
    };
    tc(&[
        "qdisc", "change", "dev", HOST_VETH, "root", "handle", "1:", "tbf", "rate", "2mbit",
        "burst", "10000", "latency", "25ms",
    ]);
    let run = check().assert_error(106);
    assert!(
        run.result()["msg"].as_str().unwrap().contains("rate"),
        "{run}"
    );
    tc(&["qdisc", "del", "dev", HOST_VETH, "root"]);
    let run = check().assert_error(106);
    assert!(
        run.result()["msg"].as_str().unwrap().contains("no tbf"),
        "{run}"
    );
    tc(&[
        "qdisc", "add", "dev", HOST_VETH, "root", "handle", "1:", "tbf", "rate", "1mbit", "burst",
        "10000", "latency", "25ms",
    ]);
    check().assert_success();

    let ifb = w.ifbs().pop().unwrap();
    host.ip(&["link", "del", &ifb]);
    let run = check().assert_error(106);
    assert!(
        run.result()["msg"].as_str().unwrap().contains(&ifb),
        "{run}"
    );
    w.del(&conf);
}

#[test]
fn runtime_config_applies_when_the_config_has_no_limits() {
    let w = World::new();
    let mut conf = w.conf("1.0.0", json!({}));
    conf["runtimeConfig"] =
        json!({"bandwidth": {"ingressRate": 8_000_000, "ingressBurst": 800_000}});
    let result = w.add(&conf);
    assert_eq!(result["interfaces"].as_array().unwrap().len(), 2, "no ifb");
    let qdiscs = w.qdiscs();
    assert_eq!(qdiscs.len(), 1, "{qdiscs:?}");
    assert_eq!(qdiscs[0]["options"]["rate"], 1_000_000);
    assert_eq!(w.ifbs(), Vec::<String>::new());

    // Top-level keys win over the capability.
    let w = World::new();
    let mut conf = w.conf(
        "1.0.0",
        json!({"egressRate": 800_000, "egressBurst": 80_000}),
    );
    conf["runtimeConfig"] =
        json!({"bandwidth": {"ingressRate": 8_000_000, "ingressBurst": 800_000}});
    w.add(&conf);
    let qdiscs = w.qdiscs();
    assert_eq!(
        qdiscs.len(),
        2,
        "ingress qdisc and the ifb's tbf only: {qdiscs:?}"
    );
    assert_eq!(qdiscs[1]["options"]["rate"], 100_000);
    w.del(&conf);
}

#[test]
fn no_limits_pass_the_prev_result_through_and_change_nothing() {
    let w = World::new();
    let conf = w.conf("0.4.0", json!({"ingressRate": 0, "ingressBurst": 0}));
    let result = w.add(&conf);
    // A 0.4.0 result always prints `dns`.
    let mut expected = conf["prevResult"].clone();
    expected["dns"] = json!({});
    assert_eq!(result, expected);
    assert_eq!(w.qdiscs(), Vec::<Value>::new());
}

#[test]
fn bad_input_is_refused_with_code_7_and_leaves_nothing() {
    let w = World::new();
    let cases: [(Value, &str); 6] = [
        (
            json!({"ingressRate": 1000}),
            "if rate is set, burst must also be set",
        ),
        (
            json!({"egressBurst": 1000}),
            "if burst is set, rate must also be set",
        ),
        (
            json!({"ingressRate": -1, "ingressBurst": 100}),
            "ingressRate",
        ),
        (
            json!({"egressRate": 1000, "egressBurst": 40_000_000_000u64}),
            "burst cannot be more than 4GB",
        ),
        (
            json!({"ingressRate": 4, "ingressBurst": 4000}),
            "at least 8 bits",
        ),
        (
            json!({"runtimeConfig": {"bandwidth": {"egressRate": "fast"}}}),
            "runtimeConfig.bandwidth",
        ),
    ];
    for (keys, text) in cases {
        let conf = w.conf("1.0.0", keys.clone());
        let run = w
            .run(&Invocation::add(w.lab.container(), IFNAME).config(conf))
            .assert_error(7);
        let msg = run.result()["msg"].as_str().unwrap();
        let details = run.result()["details"].as_str().unwrap_or("");
        assert!(
            msg.contains(text) || details.contains(text),
            "{keys}: {run}"
        );
        assert_eq!(w.qdiscs(), Vec::<Value>::new(), "{keys}");
        assert_eq!(w.ifbs(), Vec::<String>::new(), "{keys}");
    }
    let run = w
        .run(
            &Invocation::add(w.lab.container(), IFNAME)
                .config(without_prev(&w.conf("1.0.0", both_limits()))),
        )
        .assert_error(7);
    assert!(
        run.result()["msg"].as_str().unwrap().contains("chained"),
        "{run}"
    );
    // DEL needs no valid limits.
    w.del(&w.conf("1.0.0", json!({"ingressRate": 1000})));
}

#[test]
fn a_failure_at_any_step_leaves_nothing() {
    let w = World::new();
    for point in [
        "bandwidth-after-ingress",
        "bandwidth-after-ifb",
        "bandwidth-after-redirect",
        "bandwidth-before-result",
    ] {
        let conf = w.conf("1.0.0", both_limits());
        let run = w.run(
            &Invocation::add(w.lab.container(), IFNAME)
                .config(conf)
                .env("CNI_TEST_FAIL_AT", point),
        );
        assert!(!run.succeeded(), "{point}: {run}");
        assert_eq!(w.qdiscs(), Vec::<Value>::new(), "{point}");
        assert_eq!(w.ifbs(), Vec::<String>::new(), "{point}");
    }
    let conf = w.conf("1.0.0", both_limits());
    w.add(&conf);
    w.del(&conf);
}

/// Seconds to send `bytes` over TCP from `from` to a listener at `to_ip` in `to`: the
/// receiver answers once it has read everything, so the time covers the whole transfer.
fn transfer_seconds(
    from: &cni_conformance::Netns,
    to: &cni_conformance::Netns,
    to_ip: &str,
    bytes: usize,
) -> f64 {
    let server = format!(
        "import socket,sys\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('{to_ip}',5201))\ns.listen(1)\nprint('ready',flush=True)\nc,_=s.accept()\nn=0\n\
         while True:\n  d=c.recv(65536)\n  if not d: break\n  n+=len(d)\nc.sendall(b'ok')\nc.close()\nprint(n)"
    );
    let mut command = Command::new("python3");
    command
        .args(["-c", &server])
        .stdout(Stdio::piped())
        .stdin(Stdio::null());
    to.enter_before_exec(&mut command);
    let mut child = command.spawn().expect("python3");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let client = format!(
        "import socket,time\nc=socket.create_connection(('{to_ip}',5201))\nt=time.monotonic()\n\
         c.sendall(b'x'*{bytes})\nc.shutdown(socket.SHUT_WR)\nassert c.recv(2)==b'ok'\nprint(time.monotonic()-t)"
    );
    let out = from.exec(&["python3", "-c", &client]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(lines.next().unwrap().unwrap(), bytes.to_string());
    child.wait().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// 500 KB at 1 Mbit/s (4 s) each way, shaped in one direction at a time; unshaped the
/// same transfer takes a small fraction of that.
#[test]
fn transfers_are_shaped_to_the_configured_rate() {
    const BYTES: usize = 500_000;
    let expected = BYTES as f64 * 8.0 / 1_000_000.0;
    let w = World::new();
    let (host, ctr) = (w.lab.host(), w.lab.container());
    let unshaped = transfer_seconds(host, ctr, CONTAINER_IP, BYTES);
    assert!(unshaped < expected / 4.0, "unshaped {unshaped:.2} s");

    let conf = w.conf(
        "1.0.0",
        json!({
            "ingressRate": 1_000_000, "ingressBurst": 80_000,
            "egressRate": 1_000_000, "egressBurst": 80_000,
        }),
    );
    w.add(&conf);
    let into = transfer_seconds(host, ctr, CONTAINER_IP, BYTES);
    let out_of = transfer_seconds(ctr, host, HOST_IP, BYTES);
    eprintln!(
        "500 KB: unshaped {unshaped:.3} s, into the container {into:.2} s, out {out_of:.2} s; 1 Mbit/s makes {expected:.1} s"
    );
    for (what, took) in [("into", into), ("out of", out_of)] {
        assert!(
            (expected * 0.8..expected * 1.5).contains(&took),
            "{what} the container: {took:.2} s, expected about {expected} s"
        );
    }
    w.del(&conf);
}
