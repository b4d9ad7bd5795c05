//! `examples/bridge-tuning.conflist` run by our `cnitool` as a runtime runs a chain, in the
//! lab (the bridge in the lab host, the container a throwaway netns, leases, cache and
//! saved state in the lab directory): tuning changes the interface bridge made, the MAC
//! comes from the `mac` capability, and DEL of the whole chain leaves nothing.
//! Needs the workspace's binaries built (`cargo build --workspace --bins`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cni_conformance::{Lab, bin_dir};
use serde_json::{Value, json};
use std::fs;
use std::path::Path;
use std::process::Output;

const NETWORK: &str = "demo-tuned";
const MAC: &str = "0a:58:0a:58:08:42";

/// The example, with every path moved into the lab directory.
fn example_in(lab: &Lab) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bridge-tuning.conflist");
    let mut conflist: Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    conflist["plugins"][0]["ipam"]["dataDir"] = json!(lab.dir().join("ipam"));
    conflist["plugins"][1]["dataDir"] = json!(lab.dir().join("tuning"));
    conflist
}

/// `cnitool <verb> demo-tuned <container>` in the lab host with a clean environment.
fn cnitool(lab: &Lab, verb: &str) -> Output {
    let tool = bin_dir().join("cnitool");
    let env = [
        format!("PATH={}", std::env::var("PATH").unwrap_or_default()),
        format!("NETCONFPATH={}", lab.dir().join("net.d").display()),
        format!("CNI_PATH={}", bin_dir().display()),
        format!("CNI_CACHE_DIR={}", lab.dir().join("cache").display()),
        format!("CAP_ARGS={}", json!({"mac": MAC})),
    ];
    let mut argv = vec!["timeout", "60", "env", "-i"];
    argv.extend(env.iter().map(String::as_str));
    let tool = tool.to_str().unwrap();
    let netns = lab.container().path().to_str().unwrap();
    argv.extend([tool, verb, NETWORK, netns]);
    let out = lab.host().exec(&argv);
    assert!(
        out.status.success(),
        "cnitool {verb} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_bridge_tuning_example_runs_as_a_chain() {
    let lab = Lab::new();
    fs::create_dir(lab.dir().join("net.d")).unwrap();
    fs::write(
        lab.dir().join("net.d/10-demo.conflist"),
        serde_json::to_vec(&example_in(&lab)).unwrap(),
    )
    .unwrap();
    let ctr = lab.container();

    let result: Value = serde_json::from_slice(&cnitool(&lab, "add").stdout).unwrap();
    let eth0 = ctr.link("eth0").unwrap();
    assert_eq!(eth0["mtu"], 1400);
    assert_eq!(eth0["address"], MAC);
    assert_eq!(result["interfaces"][2]["mac"], MAC, "{result}");
    assert_eq!(ctr.sysctl("net/ipv4/conf/eth0/arp_notify"), "1");
    assert_eq!(ctr.sysctl("net/ipv6/conf/eth0/accept_ra"), "0");
    let saved = fs::read_dir(lab.dir().join("tuning")).unwrap().count();
    assert_eq!(saved, 1, "one saved-state file");

    cnitool(&lab, "check");
    cnitool(&lab, "del");
    assert!(ctr.link("eth0").is_none(), "bridge's DEL removes the veth");
    let saved = fs::read_dir(lab.dir().join("tuning")).unwrap().count();
    assert_eq!(saved, 0, "tuning's DEL removes its saved state");
}
