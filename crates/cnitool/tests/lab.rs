//! The built `cnitool` running our plugins, as a runtime would, inside the conformance
//! lab: cnitool runs in the lab's fake host netns (so the bridge lands there, never in the
//! machine's own netns), containers are the lab's throwaway namespaces, and the
//! configuration directory, result cache and host-local leases live in the lab's
//! temporary directory. Needs root, like every lab test; the plugins must be built
//! (`cargo build --workspace --bins`), as scripts/test.sh does first.

// Tests: a failed step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cni_conformance::{Lab, Netns, bin_dir};
use cnitool::cache::CachedInfo;
use cnitool::tool::container_id_for;
use serde_json::{Value, json};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

const NETWORK: &str = "labnet";
const SUBNET_PREFIX: &str = "10.199.0.";

/// A lab with a network configuration directory holding `conflist`.
struct Setup {
    lab: Lab,
    conflist: Vec<u8>,
}

impl Setup {
    /// A fresh lab whose `net.d/10-labnet.conflist` is `conflist(lab dir)`.
    fn new(conflist: impl FnOnce(&Path) -> Value) -> Setup {
        let lab = Lab::new();
        fs::create_dir(lab.dir().join("net.d")).unwrap();
        let conflist = serde_json::to_vec_pretty(&conflist(lab.dir())).unwrap();
        fs::write(lab.dir().join("net.d/10-labnet.conflist"), &conflist).unwrap();
        Setup { lab, conflist }
    }

    /// bridge (host-local IPAM) then loopback, spec 1.1.0, the leases in the lab.
    fn bridge_chain() -> Setup {
        Setup::new(|dir| {
            json!({
                "cniVersion": "1.1.0",
                "name": NETWORK,
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": "cnitool0",
                        "isGateway": true,
                        "capabilities": {"mac": true},
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": format!("{SUBNET_PREFIX}0/24")}]],
                            "dataDir": dir.join("ipam"),
                        },
                    },
                    {"type": "loopback"},
                ],
            })
        })
    }

    fn cache_dir(&self) -> PathBuf {
        self.lab.dir().join("cache")
    }

    fn cache_file(&self, container: &Netns) -> PathBuf {
        self.cache_dir().join("results").join(format!(
            "{NETWORK}-{}-eth0",
            container_id_for(container.path())
        ))
    }

    /// host-local's lease file for `ip` on the test network.
    fn lease_file(&self, ip: &str) -> PathBuf {
        self.lab.dir().join("ipam").join(NETWORK).join(ip)
    }

    /// Runs `cnitool <args>` in the lab's host netns (see [`common::cnitool`]).
    fn cnitool(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        common::cnitool(&self.lab, args, extra)
    }

    /// `cnitool <verb> labnet <netns>`, asserting success; returns stdout.
    fn ok(&self, verb: &str, container: &Netns, extra: &[(&str, &str)]) -> String {
        common::cnitool_ok(&self.lab, verb, NETWORK, container, extra)
    }
}

fn ipv4_of(result: &Value) -> String {
    let address = result["ips"][0]["address"].as_str().unwrap();
    address.split('/').next().unwrap().to_owned()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn add_two_containers_ping_check_del_with_the_cache() {
    let setup = Setup::bridge_chain();
    let (c1, c2) = (setup.lab.container(), setup.lab.new_container());

    let printed = setup.ok("add", c1, &[("CAP_ARGS", r#"{"mac":"0a:58:0a:c7:00:99"}"#)]);
    // Printed as the Go cnitool prints it: 4-space indent, no trailing newline.
    assert!(
        printed.starts_with("{\n    \"cniVersion\": \"1.1.0\","),
        "{printed}"
    );
    assert!(!printed.ends_with('\n'));
    let r1: Value = serde_json::from_str(&printed).unwrap();
    let ip1 = ipv4_of(&r1);
    assert!(ip1.starts_with(SUBNET_PREFIX), "{r1}");
    let eth0 = r1["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "eth0")
        .unwrap();
    assert_eq!(eth0["sandbox"], c1.path().to_str().unwrap());
    // CAP_ARGS reached the bridge through runtimeConfig (capability "mac").
    assert_eq!(eth0["mac"], "0a:58:0a:c7:00:99");
    assert_eq!(c1.link("eth0").unwrap()["address"], "0a:58:0a:c7:00:99");
    assert_eq!(
        c1.link("lo").unwrap()["operstate"],
        "UNKNOWN",
        "loopback ran: lo is up"
    );

    // The cache file, in libcni's format and modes.
    let file = setup.cache_file(c1);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&setup.cache_dir().join("results")), 0o700);
    let bytes = fs::read(&file).unwrap();
    let cached = CachedInfo::from_bytes(&bytes).unwrap();
    assert_eq!(
        cached.to_bytes(),
        bytes,
        "our reader and writer agree byte for byte"
    );
    assert_eq!(cached.container_id, container_id_for(c1.path()));
    assert_eq!(cached.netns, c1.path().to_str().unwrap());
    assert_eq!(cached.network_name, NETWORK);
    assert_eq!(
        cached.config, setup.conflist,
        "config holds the conflist file's bytes"
    );
    assert_eq!(cached.capability_args["mac"], "0a:58:0a:c7:00:99");
    assert_eq!(Value::Object(cached.result.unwrap()), r1);

    let r2: Value = serde_json::from_str(&setup.ok("add", &c2, &[])).unwrap();
    let ip2 = ipv4_of(&r2);
    assert_ne!(ip1, ip2);
    assert!(setup.cache_file(&c2).is_file());

    // The two containers reach each other over the bridge in the lab's host netns.
    for (from, to) in [(c1, &ip2), (&c2, &ip1)] {
        let ping = from.exec(&["ping", "-c", "1", "-W", "2", to]);
        assert!(
            ping.status.success(),
            "ping {to} from {} failed:\n{}",
            from.name(),
            String::from_utf8_lossy(&ping.stdout)
        );
    }
    assert!(setup.lab.host().link("cnitool0").is_some());

    // CHECK passes against the cached result, then fails once the interface is gone.
    setup.ok("check", c1, &[]);
    setup.ok("check", &c2, &[]);

    // DEL removes the interface, the lease and the cache file; a second DEL succeeds.
    setup.ok("del", c1, &[]);
    assert!(c1.link("eth0").is_none());
    assert!(!file.exists());
    assert!(!setup.lease_file(&ip1).exists());
    setup.ok("del", c1, &[]);

    // A corrupt cache must not block DEL (cni #1055): it is ignored and removed.
    let file2 = setup.cache_file(&c2);
    fs::write(&file2, "{\"kind\":\"cniCacheV1\",\"result\":").unwrap();
    setup.ok("del", &c2, &[]);
    assert!(c2.link("eth0").is_none());
    assert!(!file2.exists());
    assert!(!setup.lease_file(&ip2).exists());
    assert_eq!(
        fs::read_dir(setup.cache_dir().join("results"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn check_fails_on_a_broken_attachment_naming_the_plugin() {
    let setup = Setup::bridge_chain();
    let c1 = setup.lab.container();
    setup.ok("add", c1, &[]);
    c1.ip(&["link", "del", "eth0"]);
    let out = setup.cnitool(&["check", NETWORK, c1.path().to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("plugin type=\"bridge\" failed (check): "),
        "{stderr}"
    );
    setup.ok("del", c1, &[]);
}

#[test]
fn gc_deletes_every_cached_attachment_and_status_succeeds() {
    let setup = Setup::bridge_chain();
    let (c1, c2) = (setup.lab.container(), setup.lab.new_container());
    let r1: Value = serde_json::from_str(&setup.ok("add", c1, &[])).unwrap();
    setup.ok("add", &c2, &[]);
    setup.ok("status", c1, &[]);
    // cnitool's gc passes no valid set: both attachments are stale.
    setup.ok("gc", c1, &[]);
    assert!(c1.link("eth0").is_none() && c2.link("eth0").is_none());
    assert!(!setup.cache_file(c1).exists() && !setup.cache_file(&c2).exists());
    assert!(!setup.lease_file(&ipv4_of(&r1)).exists());
}

#[test]
fn errors_name_the_plugin_and_a_failed_add_caches_nothing() {
    let setup = Setup::new(|_| {
        json!({
            "cniVersion": "1.0.0",
            "name": NETWORK,
            "plugins": [{"type": "loopback"}, {"type": "nosuch", "name": "second"}],
        })
    });
    let c1 = setup.lab.container();
    let out = setup.cnitool(&["add", NETWORK, c1.path().to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "plugin type=\"nosuch\" name=\"second\" failed (add): failed to find plugin \"nosuch\" in path [{}]\n",
        bin_dir().display()
    );
    assert_eq!(stderr, want);
    assert!(!setup.cache_file(c1).exists());

    let out = setup.cnitool(&["add", "absent", c1.path().to_str().unwrap()], &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "no net configuration with name \"absent\" in {}\n",
            setup.lab.dir().join("net.d").display()
        )
    );
    let out = setup.cnitool(
        &["add", NETWORK, c1.path().to_str().unwrap()],
        &[("CNI_ARGS", "IP")],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "invalid CNI_ARGS pair \"IP\"\n"
    );
}
