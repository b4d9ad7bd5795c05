//! Masquerade (nftables and iptables backends) and MAC spoof check: rules appear with ADD,
//! are scoped per attachment (network + container + ifname), and disappear with DEL in
//! every DEL situation a runtime produces (idempotent repeat, empty CNI_NETNS, vanished
//! netns, interface already gone) and with GC.

// A test says "this cannot happen" by panicking with the run in the message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use cni_conformance::{Invocation, Lab, Netns};
use common::*;
use serde_json::{Value, json};

const BACKENDS: [&str; 2] = ["nftables", "iptables"];

/// The masquerade rules of one attachment in `backend`, found by the comment that names
/// its interface and container.
fn masq_rules_of(lab: &Lab, backend: &str, container: &Netns, ifname: &str) -> Vec<String> {
    masq_rules_of_id(lab, backend, container.name(), ifname)
}

fn masq_rules_of_id(lab: &Lab, backend: &str, id: &str, ifname: &str) -> Vec<String> {
    let tag = format!("if: {ifname}, id: {id}");
    match backend {
        "nftables" => nft_masq_rules(lab.host())
            .into_iter()
            .map(|r| r.to_string())
            .filter(|r| r.contains(&tag))
            .collect(),
        _ => iptables_cni_lines(lab.host())
            .into_iter()
            .filter(|l| l.contains(&tag))
            .collect(),
    }
}

/// Rules for both IPs of a dual-stack attachment: nftables one per IP; iptables a
/// POSTROUTING jump plus ACCEPT and MASQUERADE in the chain, per family.
fn expected_rule_count(backend: &str) -> usize {
    if backend == "nftables" { 2 } else { 6 }
}

fn assert_masq_present(lab: &Lab, backend: &str, container: &Netns, ifname: &str, ips: &[&str]) {
    let rules = masq_rules_of(lab, backend, container, ifname);
    assert_eq!(
        rules.len(),
        expected_rule_count(backend),
        "{backend} {ifname}: {rules:#?}"
    );
    for ip in ips {
        assert!(
            rules.iter().any(|r| r.contains(ip)),
            "{backend} {ifname}: no rule for {ip}: {rules:#?}"
        );
    }
}

/// Waits up to 3 s for the host end of a veth whose netns was destroyed: the kernel
/// removes it asynchronously, in its netns cleanup work.
fn wait_for_no_veth(lab: &Lab) {
    wait_for_no_veth_but(lab, 0);
}

/// Waits up to 3 s until at most `left` veths remain in the host (see above).
fn wait_for_no_veth_but(lab: &Lab, left: usize) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while veths(lab.host()).len() > left && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn result_ips(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ip| ip_of(ip["address"].as_str().unwrap()).to_owned())
        .collect()
}

#[test]
fn masquerade_rules_follow_add_and_del_in_both_backends() {
    for backend in BACKENDS {
        let lab = Lab::new();
        let conf = full_conf(&lab, backend);
        let result = add(&lab, &conf).assert_success().result().clone();
        let ips = result_ips(&result);
        let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
        assert_masq_present(&lab, backend, lab.container(), "eth0", &ips);
        if backend == "iptables" {
            // Source = the container's own address (not its network), exempt its subnet.
            let nat = iptables_nat(lab.host());
            assert!(
                nat.contains(&format!("-A POSTROUTING -s {}/32", ips[0])),
                "{nat}"
            );
            assert!(nat.contains("-d 10.1.2.0/24"), "{nat}");
            assert!(nat.contains("! -d 224.0.0.0/4"), "{nat}");
            assert!(
                nat.contains(&format!("-A POSTROUTING -s {}/128", ips[1])),
                "{nat}"
            );
        } else {
            let text = nft_masq_rules(lab.host())
                .iter()
                .map(Value::to_string)
                .collect::<String>();
            assert!(text.contains("masquerade"), "{text}");
            assert!(text.contains("10.1.2.0"), "the subnet is exempt: {text}");
        }
        del(&lab, &conf).assert_success();
        assert_nothing_left(&lab, &[lab.container()], "eth0", backend);
        del(&lab, &conf).assert_success();
    }
}

/// docs/reference.md#defect-3: the reference's iptables chain is keyed by network + container
/// only, so two interfaces of one container share it and DEL of the first fails with
/// `CHAIN_DEL ... Device or resource busy`. Ours is per attachment: DEL eth0 keeps eth1's
/// rules, in both backends.
#[test]
fn two_interfaces_of_one_container_have_separate_rules_unlike_reference_2_6_3() {
    for backend in BACKENDS {
        let lab = Lab::new();
        let conf = full_conf(&lab, backend);
        let first = add_in(&lab, lab.container(), "eth0", &conf).assert_success();
        let second = add_in(&lab, lab.container(), "eth1", &conf).assert_success();
        let (ips0, ips1) = (result_ips(first.result()), result_ips(second.result()));
        let ips0: Vec<&str> = ips0.iter().map(String::as_str).collect();
        let ips1: Vec<&str> = ips1.iter().map(String::as_str).collect();
        assert_masq_present(&lab, backend, lab.container(), "eth0", &ips0);
        assert_masq_present(&lab, backend, lab.container(), "eth1", &ips1);

        del_in(&lab, lab.container(), "eth0", &conf).assert_success();
        assert!(masq_rules_of(&lab, backend, lab.container(), "eth0").is_empty());
        assert_masq_present(&lab, backend, lab.container(), "eth1", &ips1);
        assert!(lab.container().link("eth1").is_some());
        assert_eq!(veths(lab.host()).len(), 1);
        // Chains and comments end in "-<ifname>"; a bare "eth0" would also match the other
        // attachment's `iifname "veth0…"` whenever its random host veth name starts with 0.
        assert!(
            spoofcheck_state(lab.host())
                .iter()
                .any(|s| s.contains("-eth1"))
        );
        assert!(
            !spoofcheck_state(lab.host())
                .iter()
                .any(|s| s.contains("-eth0"))
        );

        del_in(&lab, lab.container(), "eth1", &conf).assert_success();
        assert_nothing_left(&lab, &[lab.container()], "eth1", backend);
    }
}

/// How a DEL may find the attachment's netns.
#[derive(Debug, Clone, Copy)]
enum DelCase {
    /// `CNI_NETNS` unset (runtimes do that when the netns is already gone).
    EmptyNetns,
    /// `CNI_NETNS` names a netns that was deleted.
    VanishedNetns,
    /// The netns is there, the interface is not.
    InterfaceGone,
}

/// docs/reference.md#defect-2 (plugins #810): with an empty CNI_NETNS or a vanished netns the
/// reference DEL skips masquerade and spoof-check cleanup, and with iptables a chain leaks
/// when the interface is already gone. Ours finds the rules by attachment, so every case
/// removes them, in both backends.
#[test]
fn del_removes_rules_without_netns_or_interface_unlike_reference_2_6_2_issue_810() {
    for backend in BACKENDS {
        for case in [
            DelCase::EmptyNetns,
            DelCase::VanishedNetns,
            DelCase::InterfaceGone,
        ] {
            let context = format!("{backend} {case:?}");
            let lab = Lab::new();
            let conf = full_conf(&lab, backend);
            let container = lab.new_container();
            let path = container.path().to_owned();
            add_in(&lab, &container, "eth0", &conf).assert_success();
            assert!(!masq_rules_of(&lab, backend, &container, "eth0").is_empty());
            let mut del = Invocation::del(&container, "eth0").config(conf.clone());
            match case {
                DelCase::EmptyNetns => del = del.no_netns(),
                DelCase::VanishedNetns => {}
                DelCase::InterfaceGone => {
                    container.ip(&["link", "del", "eth0"]);
                }
            }
            let keep = match case {
                DelCase::VanishedNetns => {
                    drop(container);
                    assert!(!path.exists());
                    None
                }
                _ => Some(container),
            };
            lab.run("bridge", &del).assert_success();
            if keep.is_none() || matches!(case, DelCase::InterfaceGone) {
                wait_for_no_veth(&lab);
            }
            // With an empty CNI_NETNS the container link stays (nobody may enter the
            // netns); the rest must be gone.
            if matches!(case, DelCase::EmptyNetns) {
                let container = keep.as_ref().unwrap();
                assert!(container.link("eth0").is_some());
                container.ip(&["link", "del", "eth0"]);
            }
            let containers: Vec<&Netns> = keep.iter().collect();
            assert_nothing_left(&lab, &containers, "eth0", &context);
            // And again: idempotent.
            lab.run("bridge", &del).assert_success();
        }
    }
}

/// GC (1.1.0) removes the masquerade rules and (through IPAM) the leases of attachments
/// that are not in `cni.dev/valid-attachments`, and keeps the valid ones'.
#[test]
fn gc_removes_stale_attachments_rules_and_leases() {
    for backend in BACKENDS {
        let lab = Lab::new();
        let mut conf = full_conf(&lab, backend);
        conf["cniVersion"] = json!("1.1.0");
        let stale = lab.new_container();
        let kept = add(&lab, &conf).assert_success().result().clone();
        add_in(&lab, &stale, "eth0", &conf).assert_success();
        assert!(!masq_rules_of(&lab, backend, &stale, "eth0").is_empty());
        // The stale container is gone without a DEL (a node reboot, a crashed runtime):
        // its netns and so its veth pair vanish, its rules and lease remain.
        let stale_id = stale.name().to_owned();
        drop(stale);
        wait_for_no_veth_but(&lab, 1);
        assert!(!masq_rules_of_id(&lab, backend, &stale_id, "eth0").is_empty());

        let mut gc = conf.clone();
        gc["cni.dev/valid-attachments"] =
            json!([{"containerID": lab.container().name(), "ifname": "eth0"}]);
        lab.run("bridge", &Invocation::gc().config(gc))
            .assert_success();
        assert!(
            masq_rules_of_id(&lab, backend, &stale_id, "eth0").is_empty(),
            "{backend}"
        );
        // Spoof checks carry no network name, so GC removes only those whose host veth is
        // gone (cni-firewall's rule: never another network's live attachment).
        assert!(
            !spoofcheck_state(lab.host())
                .iter()
                .any(|s| s.contains(&stale_id))
        );
        assert!(
            spoofcheck_state(lab.host())
                .iter()
                .any(|s| s.contains(lab.container().name()))
        );
        let ips = result_ips(&kept);
        let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
        assert_masq_present(&lab, backend, lab.container(), "eth0", &ips);
        let mut leases_now = leases(&lab);
        leases_now.retain(|l| !l.starts_with(".attachments"));
        let mut want: Vec<String> = ips.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(
            leases_now, want,
            "{backend}: only the valid attachment's leases"
        );

        del(&lab, &conf).assert_success();
        lab.run(
            "bridge",
            &Invocation::del(lab.container(), "eth0")
                .container_id(&stale_id)
                .no_netns()
                .config(conf.clone()),
        )
        .assert_success();
        assert_nothing_left(&lab, &[lab.container()], "eth0", backend);
    }
}

/// macspoofchk: the reference's nftables layout (bridge nat PREROUTING jump, iface chain,
/// mac chain with accept-own-MAC then drop), effective on traffic, gone after DEL.
#[test]
fn macspoofchk_rules_present_effective_and_removed() {
    let lab = Lab::new();
    let conf = conf(
        "1.0.0",
        json!({"isGateway": true, "macspoofchk": true, "ipam": ipam_v4(&lab, "10.1.2.0/24")}),
    );
    let result = add(&lab, &conf).assert_success().result().clone();
    let id = lab.container().name();
    let iface_chain = format!("cni-br-iface-{id}-eth0");
    let mac_chain = format!("{iface_chain}-mac");
    let comment = format!("macspoofchk-{id}-eth0");
    let host = lab.host();
    let prerouting = nft_rules(host, "bridge", "nat", "PREROUTING");
    assert_eq!(prerouting.len(), 1, "{prerouting:#?}");
    assert_eq!(prerouting[0]["comment"], comment.as_str());
    assert!(
        prerouting[0]
            .to_string()
            .contains(result["interfaces"][1]["name"].as_str().unwrap())
    );
    assert_eq!(nft_rules(host, "bridge", "nat", &iface_chain).len(), 1);
    let mac_rules = nft_rules(host, "bridge", "nat", &mac_chain);
    assert_eq!(mac_rules.len(), 2, "{mac_rules:#?}");
    let mac = result["interfaces"][2]["mac"].as_str().unwrap();
    assert!(mac_rules[0].to_string().contains(mac), "{mac_rules:#?}");
    assert!(mac_rules[1].to_string().contains("drop"), "{mac_rules:#?}");

    assert!(ping(lab.container(), "10.1.2.1"));
    // A spoofed source MAC is dropped.
    lab.container()
        .ip(&["link", "set", "eth0", "address", "02:00:00:00:00:99"]);
    lab.container().ip(&["neigh", "flush", "dev", "eth0"]);
    assert!(
        !ping(lab.container(), "10.1.2.1"),
        "spoofed MAC got through"
    );

    del(&lab, &conf).assert_success();
    assert_nothing_left(&lab, &[lab.container()], "eth0", "after DEL");
}
