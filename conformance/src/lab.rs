//! A throwaway test world: a fake host netns, a container netns and a private directory.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::bins::plugin_path;
use crate::invocation::Invocation;
use crate::netns::Netns;
use crate::plugin_run::PluginRun;

/// The addresses host-local holds in one network's store directory
/// (`<dataDir>/<network>`): its entries named by an IP, sorted; empty when the directory
/// does not exist.
pub fn host_local_leases(network_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(network_dir) else {
        return Vec::new();
    };
    let mut ips: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.parse::<std::net::IpAddr>().is_ok())
        .collect();
    ips.sort();
    ips
}

/// A fake host network namespace, a container network namespace and a private temporary
/// directory, all removed when the `Lab` is dropped (also when a test panics).
///
/// Plugins run inside [`Lab::host`], never in the machine's own namespace, so a bridge, a
/// firewall rule or a route a plugin makes cannot reach the real host. Put every on-disk
/// path a plugin needs (host-local `dataDir`, caches) under [`Lab::dir`].
///
/// ```no_run
/// use cni_conformance::{Invocation, Lab};
/// use serde_json::json;
///
/// let lab = Lab::new();
/// let conf = json!({
///     "cniVersion": "1.0.0", "name": "net1", "type": "host-local",
///     "ipam": {"type": "host-local", "subnet": "10.1.2.0/24",
///              "dataDir": lab.dir().join("ipam")},
/// });
/// let result = lab
///     .run("host-local", &Invocation::add(lab.container(), "eth0").config(conf))
///     .assert_success();
/// assert_eq!(result.result()["ips"][0]["address"], "10.1.2.2/24");
/// ```
pub struct Lab {
    host: Netns,
    container: Netns,
    dir: TempDir,
    containers_made: AtomicU32,
}

impl Lab {
    /// Creates the two namespaces and the directory.
    ///
    /// # Panics
    /// If not run as root, or `/run/netns` or the temporary directory cannot be written.
    pub fn new() -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("cnitest-lab-")
            .tempdir()
            .expect("cannot create the lab's temporary directory");
        Lab {
            host: Netns::with_label("host"),
            container: Netns::with_label("ctr"),
            dir,
            containers_made: AtomicU32::new(0),
        }
    }

    /// The fake host namespace that plugins run in.
    pub fn host(&self) -> &Netns {
        &self.host
    }

    /// The first container namespace.
    pub fn container(&self) -> &Netns {
        &self.container
    }

    /// One more container namespace, e.g. to test two attachments on one bridge. The
    /// caller owns it: it is removed when the returned guard is dropped.
    pub fn new_container(&self) -> Netns {
        let index = self.containers_made.fetch_add(1, Ordering::Relaxed) + 2;
        Netns::with_label(&format!("ctr{index}"))
    }

    /// The lab's private directory; also the plugins' working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the plugin binary `plugin` (a CNI `type`, found with
    /// [`crate::plugin_path`]) in the host namespace.
    ///
    /// # Panics
    /// If the binary is missing, cannot be started or runs past the invocation's timeout.
    pub fn run(&self, plugin: &str, invocation: &Invocation) -> PluginRun {
        self.run_binary(&plugin_path(plugin), invocation)
    }

    /// Runs ADD, CHECK and DEL on `ifname` with `conf` through `run`, `CNI_NETNS` naming a
    /// FIFO made in the lab's directory, and checks each is refused at once (under 5 s;
    /// opening the FIFO blocking would wait for a writer forever) with a CNI error naming
    /// the path. `after` then checks what the command must have left alone (it gets the
    /// command's name).
    ///
    /// # Panics
    /// When a command is not refused so, or `after` panics.
    pub fn assert_fifo_netns_refused(
        &self,
        ifname: &str,
        conf: &serde_json::Value,
        run: impl Fn(&Invocation) -> PluginRun,
        after: impl Fn(&str),
    ) {
        let fifo = self.dir().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo in the lab's directory");
        for invocation in [
            Invocation::add(self.container(), ifname),
            Invocation::check(self.container(), ifname),
            Invocation::del(self.container(), ifname),
        ] {
            let command = invocation.command().to_owned();
            let started = Instant::now();
            let refused = run(&invocation
                .netns_path(&fifo)
                .config(conf.clone())
                .timeout(Duration::from_secs(10)));
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{command}: {refused}"
            );
            assert!(
                !refused.succeeded() && refused.error_code().is_some(),
                "{command}: {refused}"
            );
            assert!(
                refused.stdout.contains("fifo"),
                "{command}: names the path: {refused}"
            );
            after(&command);
        }
    }

    /// Runs ADD on `ifname` with `conf` through `run`, made to fail at each of `points` in
    /// turn (`CNI_TEST_FAIL_AT`), and checks each failure is code 999 naming its point and
    /// leaves the container with `lo` alone. `after` then checks the rest (it gets the point).
    ///
    /// # Panics
    /// When a failure is not so, or `after` panics.
    pub fn assert_add_faults_undone(
        &self,
        ifname: &str,
        conf: &serde_json::Value,
        points: &[&str],
        run: impl Fn(&Invocation) -> PluginRun,
        after: impl Fn(&str),
    ) {
        for point in points {
            let failed = run(&Invocation::add(self.container(), ifname)
                .config(conf.clone())
                .env("CNI_TEST_FAIL_AT", point))
            .assert_error(999);
            let msg = failed.result()["msg"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(msg.contains(point), "{failed}");
            let links = self.container().link_names();
            assert_eq!(links, ["lo"], "after a failure at {point}");
            after(point);
        }
    }

    /// Runs any executable as a plugin in the host namespace, e.g. a fake plugin script.
    ///
    /// # Panics
    /// As [`Lab::run`].
    pub fn run_binary(&self, binary: &Path, invocation: &Invocation) -> PluginRun {
        invocation.run_in(&self.host, self.dir(), binary)
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}
