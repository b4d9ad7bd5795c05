//! Reboot recovery: after a node reboot every container netns is gone (and with it every
//! veth pair), but the data dir and the masquerade rules remain. The runtime then knows no
//! attachment, and one GC per network with its empty `cni.dev/valid-attachments` list
//! must leave a clean node: no lease, no index entry, no masquerade rule or chain, in
//! both backends, each network's GC touching only its own state.

// A test says "this cannot happen" by panicking with the run in the message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use cni_conformance::{Invocation, Lab, Netns};
use common::*;
use serde_json::{Value, json};

/// One network per masquerade backend: (name, bridge, backend, subnet).
const NETWORKS: [(&str, &str, &str, &str); 2] = [
    ("reboot-nft", "cnirb0", "nftables", "10.61.0.0/24"),
    ("reboot-ipt", "cnirb1", "iptables", "10.62.0.0/24"),
];

fn network_conf(lab: &Lab, (name, bridge, backend, subnet): (&str, &str, &str, &str)) -> Value {
    let mut conf = conf(
        "1.1.0",
        json!({"bridge": bridge, "isGateway": true, "ipMasq": true,
                                        "ipMasqBackend": backend, "ipam": ipam_v4(lab, subnet)}),
    );
    conf["name"] = json!(name);
    conf
}

/// Our masquerade state in the lab's host: nftables rules and iptables `CNI-` lines.
fn masq_state(lab: &Lab) -> Vec<String> {
    let mut state: Vec<String> = nft_masq_rules(lab.host())
        .into_iter()
        .map(|r| r.to_string())
        .collect();
    state.extend(iptables_cni_lines(lab.host()));
    state
}

fn gc_empty(lab: &Lab, conf: &Value) {
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    lab.run("bridge", &Invocation::gc().config(gc))
        .assert_success();
}

#[test]
fn one_gc_per_network_after_a_reboot_leaves_a_clean_node() {
    let lab = Lab::new();
    let confs: Vec<Value> = NETWORKS.iter().map(|n| network_conf(&lab, *n)).collect();
    let mut containers: Vec<Netns> = Vec::new();
    for conf in &confs {
        for ifnames in [&["eth0"][..], &["eth0", "net1"][..]] {
            let container = lab.new_container();
            for ifname in ifnames {
                add_in(&lab, &container, ifname, conf).assert_success();
            }
            containers.push(container);
        }
    }
    assert_eq!(veths(lab.host()).len(), 6);
    // nftables: one rule per address; iptables: a POSTROUTING jump, a chain declaration
    // and ACCEPT + MASQUERADE in the chain, per attachment.
    assert_eq!(masq_state(&lab).len(), 3 + 3 * 4, "{:#?}", masq_state(&lab));

    // The reboot: every container netns is gone; the kernel removes the host veth ends
    // asynchronously, in its netns clean-up work.
    drop(containers);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !veths(lab.host()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(veths(lab.host()).is_empty(), "{:#?}", veths(lab.host()));
    let left_before = masq_state(&lab);

    gc_empty(&lab, &confs[0]);
    assert!(leases_of(&lab, NETWORKS[0].0).is_empty());
    assert!(
        nft_masq_rules(lab.host()).is_empty(),
        "{:#?}",
        masq_state(&lab)
    );
    // The other network's state is not this GC's business.
    assert_eq!(leases_of(&lab, NETWORKS[1].0).len(), 3 * 2);
    assert_eq!(iptables_cni_lines(lab.host()).len(), 3 * 4);

    gc_empty(&lab, &confs[1]);
    assert!(leases_of(&lab, NETWORKS[1].0).is_empty());
    assert_eq!(
        masq_state(&lab),
        Vec::<String>::new(),
        "before GC: {left_before:#?}"
    );

    // The node works as a fresh one afterwards.
    let container = lab.new_container();
    for conf in &confs {
        add_in(&lab, &container, "eth0", conf).assert_success();
        del_in(&lab, &container, "eth0", conf).assert_success();
    }
    assert_eq!(masq_state(&lab), Vec::<String>::new());
}
