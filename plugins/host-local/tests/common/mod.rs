//! Runs host-local binaries (ours or the Go reference) the way a runtime does: environment
//! plus config on stdin, with a timeout, and reads the store they leave on disk.

#![allow(dead_code)] // Each test binary uses its own subset of the harness.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Our binary, built by cargo for this test.
pub const OURS: &str = env!("CARGO_BIN_EXE_host-local");
/// The Go reference (Debian containernetworking-plugins 1.1.1, speaks up to 1.0.0).
pub const GO_REFERENCE: &str = "/usr/lib/cni/host-local";
/// Every command is killed after this long: a hung plugin fails the test instead of CI.
const TIMEOUT: Duration = Duration::from_secs(60);
/// host-local never enters the netns, but the skel requires the variable for ADD.
const NETNS: &str = "/run/netns/host-local-test";

/// What one invocation produced.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status (0 on success).
    pub status: i32,
    /// Stdout as printed.
    pub stdout: String,
    /// Stderr as printed.
    pub stderr: String,
}

impl Outcome {
    /// Stdout parsed (`Null` when empty).
    pub fn json(&self) -> Value {
        if self.stdout.trim().is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts success and returns the parsed stdout.
    pub fn ok(&self) -> Value {
        assert_eq!(self.status, 0, "expected success: {self:?}");
        self.json()
    }

    /// Asserts a CNI error with `code` and returns its `msg`.
    pub fn error(&self, code: u64) -> String {
        let json = self.json();
        assert_eq!(json["code"], json!(code), "expected code {code}: {self:?}");
        assert_ne!(self.status, 0, "an error exits non-zero: {self:?}");
        json["msg"].as_str().unwrap_or_default().to_owned()
    }

    /// The addresses of an ADD result (1.x / 0.3.x / 0.4.0 shape), without prefixes.
    pub fn ips(&self) -> Vec<IpAddr> {
        self.ok()["ips"]
            .as_array()
            .expect("ips")
            .iter()
            .map(|ip| {
                let cidr = ip["address"].as_str().expect("address");
                cidr.split('/').next().unwrap().parse().unwrap()
            })
            .collect()
    }
}

/// A network whose store lives in a fresh temp dir.
pub struct Network {
    /// Holds the data dir (and a resolv.conf) alive.
    pub dir: tempfile::TempDir,
    /// The request config; `ipam.dataDir` points into `dir`.
    pub config: Value,
}

impl Network {
    /// A network named `mynet` with the given `ipam` object (dataDir added).
    pub fn new(cni_version: &str, mut ipam: Value) -> Network {
        let dir = tempfile::tempdir().unwrap();
        ipam["type"] = json!("host-local");
        ipam["dataDir"] = json!(dir.path().join("data"));
        let config =
            json!({"cniVersion": cni_version, "name": "mynet", "type": "host-local", "ipam": ipam});
        Network { dir, config }
    }

    /// A single-subnet IPv4 network.
    pub fn v4(cni_version: &str, subnet: &str) -> Network {
        Network::new(cni_version, json!({"ranges": [[{"subnet": subnet}]]}))
    }

    /// The store directory.
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("data/mynet")
    }

    /// Lease files: address → content.
    pub fn leases(&self) -> BTreeMap<IpAddr, String> {
        leases_in(&self.store())
    }

    /// Content of a store file.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.store().join(name)).unwrap()
    }

    /// Runs `binary` for `command` on attachment (`container_id`, `eth0`).
    pub fn run(&self, binary: &str, command: &str, container_id: &str) -> Outcome {
        self.run_with(
            binary,
            command,
            &[("CNI_CONTAINERID", container_id)],
            &self.config,
        )
    }

    /// Runs our binary.
    pub fn ours(&self, command: &str, container_id: &str) -> Outcome {
        self.run(OURS, command, container_id)
    }

    /// Runs with extra/overriding environment and a given config.
    pub fn run_with(
        &self,
        binary: &str,
        command: &str,
        env: &[(&str, &str)],
        config: &Value,
    ) -> Outcome {
        let mut vars: BTreeMap<&str, &str> = BTreeMap::from([
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", "dummy"),
            ("CNI_NETNS", NETNS),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/usr/lib/cni"),
        ]);
        vars.extend(env.iter().copied());
        vars.retain(|_, value| !value.is_empty());
        run(binary, &vars, config.to_string().as_bytes())
    }
}

/// Lease files in a store directory: names that parse as addresses.
pub fn leases_in(store: &Path) -> BTreeMap<IpAddr, String> {
    let Ok(entries) = std::fs::read_dir(store) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| e.unwrap())
        .filter_map(|e| {
            let ip = e.file_name().to_str()?.parse().ok()?;
            Some((ip, std::fs::read_to_string(e.path()).unwrap()))
        })
        .collect()
}

/// Runs a plugin binary with exactly `vars` as its environment and `stdin` as input.
pub fn run(binary: &str, vars: &BTreeMap<&str, &str>, stdin: &[u8]) -> Outcome {
    let mut child = Command::new(binary)
        .env_clear()
        .envs(vars)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"));
    // A plugin may exit before reading stdin (bad environment): a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let deadline = Instant::now() + TIMEOUT;
    // Polling starts fine-grained so timings of a ~1 ms plugin run stay meaningful.
    let mut pause = Duration::from_micros(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{binary} {vars:?} did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
    let output = child.wait_with_output().unwrap();
    Outcome {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Parses an address.
pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}
