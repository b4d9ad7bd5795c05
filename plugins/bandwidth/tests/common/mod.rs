//! Test world for the bandwidth plugin: a lab (throwaway host and container netns, see
//! `cni-conformance`) with a veth made by the test, `bw-h0` in the lab host and `eth0` in
//! the container, as the plugin before bandwidth in a chain would have made it, and the
//! `prevResult` that plugin would report. Every kernel read runs `tc`/`ip` in the lab.

#![allow(dead_code)] // Each test binary uses its own subset.

use cni_conformance::{Invocation, Lab, PluginRun};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The container interface.
pub const IFNAME: &str = "eth0";
/// The host end of the veth.
pub const HOST_VETH: &str = "bw-h0";
/// The host end's address.
pub const HOST_IP: &str = "10.99.0.1";
/// The container's address.
pub const CONTAINER_IP: &str = "10.99.0.2";
/// The network name of every config here.
pub const NETWORK: &str = "bwnet";

/// Both directions limited: 1 Mbit/s in (burst 80 kbit), 2 Mbit/s out (burst 160 kbit).
pub fn both_limits() -> Value {
    json!({
        "ingressRate": 1_000_000, "ingressBurst": 80_000,
        "egressRate": 2_000_000, "egressBurst": 160_000,
    })
}

/// A lab whose container has `eth0`, a veth whose peer `bw-h0` is in the lab host.
pub struct World {
    /// Host + container + tempdir.
    pub lab: Lab,
}

impl World {
    /// The lab with the veth, addressed and up.
    pub fn new() -> World {
        let lab = Lab::new();
        lab.host()
            .add_veth_to(HOST_VETH, lab.container(), IFNAME, "10.99.0.2/24");
        lab.host()
            .ip(&["addr", "add", "10.99.0.1/24", "dev", HOST_VETH]);
        World { lab }
    }

    /// The `prevResult` the plugin before bandwidth reported.
    pub fn prev_result(&self, version: &str) -> Value {
        let mut ip = json!({"interface": 1, "address": "10.99.0.2/24", "gateway": HOST_IP});
        if !version.starts_with('1') {
            ip["version"] = json!("4");
        }
        json!({
            "cniVersion": version,
            "interfaces": [
                {"name": HOST_VETH},
                {"name": IFNAME, "sandbox": self.lab.container().path()},
            ],
            "ips": [ip],
        })
    }

    /// A bandwidth config in `version` with `keys`, chained after the test's veth.
    pub fn conf(&self, version: &str, keys: Value) -> Value {
        let mut conf = json!({
            "cniVersion": version,
            "name": NETWORK,
            "type": "bandwidth",
            "prevResult": self.prev_result(version),
        });
        if let (Some(conf), Value::Object(keys)) = (conf.as_object_mut(), keys) {
            conf.extend(keys);
        }
        conf
    }

    /// Runs `binary` (ours or the reference) in the lab host.
    pub fn run_binary(&self, binary: &Path, inv: &Invocation) -> PluginRun {
        self.lab.run_binary(binary, inv)
    }

    /// Runs our `bandwidth` in the lab host.
    pub fn run(&self, inv: &Invocation) -> PluginRun {
        self.lab.run("bandwidth", inv)
    }

    /// ADD with `conf`, which must succeed; the result.
    pub fn add(&self, conf: &Value) -> Value {
        self.run(&Invocation::add(self.lab.container(), IFNAME).config(conf.clone()))
            .assert_success()
            .result()
            .clone()
    }

    /// DEL with `conf` minus its `prevResult`, which must succeed.
    pub fn del(&self, conf: &Value) {
        self.run(&Invocation::del(self.lab.container(), IFNAME).config(without_prev(conf)))
            .assert_success();
    }

    /// `tc -j <args>` in the lab host, parsed.
    pub fn tc(&self, args: &[&str]) -> Value {
        let argv: Vec<&str> = ["tc", "-j"].iter().chain(args).copied().collect();
        let out = self.lab.host().exec(&argv);
        assert!(out.status.success(), "{argv:?}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            return json!([]);
        }
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{argv:?}: {e}: {text}"))
    }

    /// Every qdisc of the lab host that is not a device default (no `noqueue`, `noop`
    /// or `pfifo_fast`), without reference counts.
    pub fn qdiscs(&self) -> Vec<Value> {
        let all = self.tc(&["qdisc", "show"]);
        all.as_array()
            .into_iter()
            .flatten()
            .filter(|q| !matches!(q["kind"].as_str(), Some("noqueue" | "noop" | "pfifo_fast")))
            .map(|q| {
                let mut q = q.clone();
                q.as_object_mut().map(|q| q.remove("refcnt"));
                q
            })
            .collect()
    }

    /// The names of the lab host's ifb links.
    pub fn ifbs(&self) -> Vec<String> {
        let links = self.lab.host().ip_json(&["link", "show", "type", "ifb"]);
        links
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_owned))
            .collect()
    }
}

/// `conf` without `prevResult` (DEL may come without one).
pub fn without_prev(conf: &Value) -> Value {
    let mut conf = conf.clone();
    conf.as_object_mut().map(|c| c.remove("prevResult"));
    conf
}

/// The Go reference binary, which the side-by-side tests need: they fail, not skip,
/// without it.
pub fn reference() -> PathBuf {
    let path = PathBuf::from("/usr/lib/cni/bandwidth");
    assert!(
        path.is_file(),
        "the Go reference {} is missing: apt-get install containernetworking-plugins",
        path.display()
    );
    path
}
