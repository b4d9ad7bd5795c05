//! Test world for the firewall plugin: a lab (throwaway host and container netns, see
//! `cni-conformance`) and the `prevResult` the bridge plugin before firewall would report.
//! Every rule is read back inside the lab host (`iptables -S`), never on the machine.

#![allow(dead_code)] // Each test binary uses its own subset.

use cni_conformance::{Invocation, Lab, Netns, PluginRun};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The container interface.
pub const IFNAME: &str = "eth0";

/// A lab and the firewall's view of it.
pub struct World {
    /// Host + container + tempdir.
    pub lab: Lab,
}

impl World {
    /// A fresh lab.
    pub fn new() -> World {
        World { lab: Lab::new() }
    }

    /// Runs `binary` in the lab host.
    pub fn run_binary(&self, binary: &Path, inv: &Invocation) -> PluginRun {
        self.lab.run_binary(binary, inv)
    }

    /// Runs our `firewall` in the lab host.
    pub fn run(&self, inv: &Invocation) -> PluginRun {
        self.lab.run("firewall", inv)
    }

    /// `iptables -S` (`v6`: `ip6tables -S`) of the lab host's filter table.
    pub fn rules(&self, v6: bool) -> String {
        let program = if v6 { "ip6tables" } else { "iptables" };
        output(self.lab.host(), &[program, "-S"])
    }

    /// The lab host's whole nftables ruleset (iptables-nft keeps its tables there too).
    pub fn ruleset(&self) -> String {
        output(self.lab.host(), &["nft", "list", "ruleset"])
    }
}

/// Runs `argv` in `ns`; it must succeed.
pub fn output(ns: &Netns, argv: &[&str]) -> String {
    let out = ns.exec(argv);
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `prevResult` of a bridge ADD in `version`: the bridge first, as the reference needs
/// for `ingressPolicy`, then the container's interface with `ips`.
pub fn prev_result(version: &str, bridge: &str, ips: &[&str]) -> Value {
    let ips: Vec<Value> = ips
        .iter()
        .map(|address| {
            let mut ip = json!({"interface": 2, "address": address});
            if !version.starts_with('1') {
                let family = if address.contains(':') { "6" } else { "4" };
                ip["version"] = json!(family);
            }
            ip
        })
        .collect();
    json!({
        "cniVersion": version,
        "interfaces": [
            {"name": bridge, "mac": "0a:58:0a:58:00:01"},
            {"name": "veth1234", "mac": "0a:58:0a:58:00:02"},
            {"name": IFNAME, "mac": "0a:58:0a:58:00:03", "sandbox": "/var/run/netns/x"},
        ],
        "ips": ips,
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {},
    })
}

/// A firewall config in `version` with `keys`, chained after `prev`.
pub fn conf(version: &str, keys: Value, prev: Value) -> Value {
    let mut conf = json!({
        "cniVersion": version,
        "name": "fwnet",
        "type": "firewall",
        "prevResult": prev,
    });
    if let (Some(conf), Value::Object(keys)) = (conf.as_object_mut(), keys) {
        conf.extend(keys);
    }
    conf
}

/// `conf` without `prevResult`.
pub fn without_prev(conf: &Value) -> Value {
    let mut conf = conf.clone();
    conf.as_object_mut().map(|c| c.remove("prevResult"));
    conf
}

/// The Go reference binary, which the side-by-side tests need: they fail, not skip,
/// without it.
pub fn reference() -> PathBuf {
    cni_conformance::reference_plugin("firewall")
}
