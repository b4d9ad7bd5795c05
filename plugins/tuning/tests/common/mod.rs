//! Test world for the tuning plugin: a lab (throwaway host and container netns, see
//! `cni-conformance`) whose container has a veth made by the test, as the plugin before
//! tuning in a chain would have made it, and the `prevResult` that plugin would report.

#![allow(dead_code)] // Each test binary uses its own subset.

use cni_conformance::{Invocation, Lab, PluginRun};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The container interface.
pub const IFNAME: &str = "eth0";

/// The sysctls [`tuned_keys`] writes, as `/proc/sys` paths.
pub const SYSCTLS: [&str; 2] = ["net/ipv4/conf/eth0/arp_notify", "net/core/somaxconn"];

/// Every key tuning has but `txQLen` (which Debian's 1.1.1 lacks), each different from a
/// fresh veth's value.
pub fn tuned_keys() -> Value {
    json!({
        "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1", "net.core.somaxconn": "512"},
        "mac": "c2:11:22:33:44:55",
        "mtu": 1400,
        "promisc": true,
        "allmulti": true,
    })
}

/// A lab whose container has `eth0`, a veth whose peer is in the lab host.
pub struct World {
    /// Host + container + tempdir.
    pub lab: Lab,
    /// The container interface tuning changes.
    pub ifname: String,
}

impl World {
    /// The lab with the container's `eth0` (peer `tun-h0` in the host, up).
    pub fn new() -> World {
        World::with_ifname(IFNAME)
    }

    /// The lab with the container interface named `ifname`.
    pub fn with_ifname(ifname: &str) -> World {
        let lab = Lab::new();
        lab.container()
            .add_veth_to(ifname, lab.host(), "tun-h0", "10.99.0.1/24");
        lab.container()
            .ip(&["addr", "add", "10.99.0.2/24", "dev", ifname]);
        World {
            lab,
            ifname: ifname.to_owned(),
        }
    }

    /// Where this lab's saved-state files go (`dataDir`).
    pub fn data_dir(&self) -> PathBuf {
        self.lab.dir().join("tuning")
    }

    /// The saved-state file of the container's interface, if there is one.
    pub fn saved(&self) -> Option<String> {
        let name = format!("{}_{}.json", self.lab.container().name(), self.ifname);
        std::fs::read_to_string(self.data_dir().join(name)).ok()
    }

    /// The `prevResult` the plugin before tuning reported, in `version`'s shape.
    pub fn prev_result(&self, version: &str) -> Value {
        let ctr = self.lab.container();
        let ifname = self.ifname.as_str();
        let mac = ctr.link(ifname).expect("the test's veth")["address"].clone();
        match version {
            "0.1.0" | "0.2.0" => json!({
                "cniVersion": version,
                "ip4": {"ip": "10.99.0.2/24", "gateway": "10.99.0.1"},
                "dns": {},
            }),
            _ => {
                let mut ip =
                    json!({"interface": 0, "address": "10.99.0.2/24", "gateway": "10.99.0.1"});
                if !version.starts_with('1') {
                    ip["version"] = json!("4");
                }
                json!({
                    "cniVersion": version,
                    "interfaces": [
                        {"name": "tun-h0", "mac": "0a:00:00:00:00:01"},
                        {"name": ifname, "mac": mac, "sandbox": ctr.path()},
                    ],
                    "ips": [ip],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dns": {},
                })
            }
        }
    }

    /// A tuning config in `version` with `keys`, its `dataDir` in the lab, chained after
    /// the test's veth (`prevResult`).
    pub fn conf(&self, version: &str, keys: Value) -> Value {
        let mut conf = json!({
            "cniVersion": version,
            "name": "tunenet",
            "type": "tuning",
            "dataDir": self.data_dir(),
            "prevResult": self.prev_result(version),
        });
        merge(&mut conf, keys);
        conf
    }

    /// Runs `binary` (ours: `tuning`; the reference: a path) in the lab host.
    pub fn run_binary(&self, binary: &Path, inv: &Invocation) -> PluginRun {
        self.lab.run_binary(binary, inv)
    }

    /// Runs our `tuning` in the lab host.
    pub fn run(&self, inv: &Invocation) -> PluginRun {
        self.lab.run("tuning", inv)
    }

    /// ADD with `conf`, which must succeed; the result.
    pub fn add(&self, conf: &Value) -> Value {
        self.run(&Invocation::add(self.lab.container(), &self.ifname).config(conf.clone()))
            .assert_success()
            .result()
            .clone()
    }

    /// DEL with `conf` minus its `prevResult`, which must succeed.
    pub fn del(&self, conf: &Value) {
        self.run(&Invocation::del(self.lab.container(), &self.ifname).config(without_prev(conf)))
            .assert_success();
    }

    /// What tuning may change, read back from the kernel: MAC, MTU, flags (sorted),
    /// queue length of the interface, and the sysctls named.
    pub fn state(&self, sysctls: &[&str]) -> Value {
        let ctr = self.lab.container();
        let link = ctr.link(&self.ifname).expect("the test's veth");
        let mut flags: Vec<String> = link["flags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .filter(|f| f == "PROMISC" || f == "ALLMULTI")
            .collect();
        flags.sort();
        let sysctls: serde_json::Map<String, Value> = sysctls
            .iter()
            .map(|name| (name.to_string(), json!(ctr.sysctl(name))))
            .collect();
        json!({
            "address": link["address"],
            "mtu": link["mtu"],
            "flags": flags,
            "txqlen": link["txqlen"],
            "promiscuity": link["promiscuity"],
            "sysctls": sysctls,
        })
    }
}

/// `conf` with `extra`'s keys set (objects merged one level deep).
pub fn merge(conf: &mut Value, extra: Value) {
    if let (Some(conf), Value::Object(extra)) = (conf.as_object_mut(), extra) {
        conf.extend(extra);
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
    let path = PathBuf::from("/usr/lib/cni/tuning");
    assert!(
        path.is_file(),
        "the Go reference {} is missing: apt-get install containernetworking-plugins",
        path.display()
    );
    path
}
