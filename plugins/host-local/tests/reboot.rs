//! Reboot recovery: after a node reboot every container is gone but the data dir survives
//! (it is on disk; `/var/lib/cni/networks` by default). The runtime then knows no
//! attachment, and one GC with its empty `cni.dev/valid-attachments` list must leave the
//! network as a fresh one: no lease, no index entry, whoever wrote them.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{GO_REFERENCE, Network, OURS};
use serde_json::json;
use std::path::Path;

/// Every name in the store directory and its index, except the lock, the round-robin
/// cursors and the index stamp (node state, not attachment state).
fn attachment_state(store: &Path) -> Vec<String> {
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut state: Vec<String> = names(store)
        .into_iter()
        .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip.") && n != ".index-stamp")
        .filter(|n| n != ".attachments")
        .collect();
    state.extend(
        names(&store.join(".attachments"))
            .into_iter()
            .map(|n| format!(".attachments/{n}")),
    );
    state.sort();
    state
}

#[test]
fn gc_with_no_valid_attachment_after_a_reboot_leaves_a_clean_store() {
    let mut net = Network::new(
        "1.1.0",
        json!({"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8:1::/64"}]]}),
    );
    for id in ["c1", "c2", "c3", "c4"] {
        net.ours("ADD", id).ok();
    }
    net.ours("DEL", "c2").ok();
    // A second interface of one container, and a legacy lease (only the container ID, as
    // old Go versions wrote it) that the index knows nothing of.
    net.run_with(
        OURS,
        "ADD",
        &[("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "net1")],
        &net.config,
    )
    .ok();
    std::fs::write(net.store().join("10.1.2.200"), "legacy-ctr").unwrap();
    assert_eq!(net.leases().len(), 2 * 4 + 1);

    // Reboot: nothing of the above runs any more.
    let gc_env = [
        ("CNI_CONTAINERID", ""),
        ("CNI_IFNAME", ""),
        ("CNI_NETNS", ""),
    ];
    net.config["cni.dev/valid-attachments"] = json!([]);
    net.run_with(OURS, "GC", &gc_env, &net.config).ok();
    assert_eq!(attachment_state(&net.store()), Vec::<String>::new());

    // The clean store works as a new one, and a second GC has nothing to do.
    net.ours("ADD", "after-reboot").ok();
    assert_eq!(net.leases().len(), 2);
    net.run_with(OURS, "GC", &gc_env, &net.config).ok();
    assert_eq!(attachment_state(&net.store()), Vec::<String>::new());
}

/// The node ran the Go reference before the reboot (a binary swap): its leases go too.
#[test]
fn gc_after_a_reboot_clears_leases_the_go_reference_wrote() {
    assert!(
        Path::new(GO_REFERENCE).exists(),
        "the Go reference plugin {GO_REFERENCE} is missing: apt-get install containernetworking-plugins (CI installs it)"
    );
    let mut net = Network::v4("1.0.0", "10.1.2.0/24");
    for id in ["go1", "go2"] {
        net.run(GO_REFERENCE, "ADD", id).ok();
    }
    net.ours("ADD", "ours1").ok();
    assert_eq!(net.leases().len(), 3);

    let gc_env = [
        ("CNI_CONTAINERID", ""),
        ("CNI_IFNAME", ""),
        ("CNI_NETNS", ""),
    ];
    net.config["cniVersion"] = json!("1.1.0");
    net.config["cni.dev/valid-attachments"] = json!([]);
    net.run_with(OURS, "GC", &gc_env, &net.config).ok();
    assert_eq!(attachment_state(&net.store()), Vec::<String>::new());
}
