//! The `cluster-ipam` binary: the CNI dispatcher around
//! [`cni_plugin_cluster_ipam::ClusterIpam`], plus the admin command
//! `cluster-ipam release-node <node>` (network configuration on stdin, no `CNI_COMMAND`).

#![forbid(unsafe_code)]
#![cfg_attr(not(test), no_main)]

use std::io::{Read, Write};

const USAGE: &str = "usage: cluster-ipam release-node <node>  (network configuration on stdin)";

cni::plugin_main!(
    cni_plugin_cluster_ipam::ClusterIpam,
    "cluster-ipam",
    otherwise: admin
);

/// Runs the admin command; prints its outcome (errors as the CNI error object) and returns
/// the exit code.
fn admin(args: &[String]) -> i32 {
    let [command, node] = args else {
        eprintln!("{USAGE}");
        return 2;
    };
    if command != "release-node" || node.is_empty() {
        eprintln!("{USAGE}");
        return 2;
    }
    let mut stdin = Vec::new();
    let outcome = std::io::stdin()
        .take(cni::skel::MAX_STDIN_BYTES as u64)
        .read_to_end(&mut stdin)
        .map_err(|e| cni::Error::Io {
            msg: "reading stdin".into(),
            details: Some(e.to_string()),
        })
        .and_then(|_| cni_plugin_cluster_ipam::release_node(node, &stdin));
    match outcome {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(error) => {
            let text = serde_json::to_string(&error.to_wire(None)).unwrap_or_default();
            let _ = writeln!(std::io::stdout(), "{text}");
            i32::try_from(error.code())
                .ok()
                .filter(|c| (1..=255).contains(c))
                .unwrap_or(1)
        }
    }
}
