//! Real etcd clusters for tests: members on 127.0.0.1, started by the test and gone again
//! when its guard is dropped.
//!
//! Each member runs Debian's `etcd` (package `etcd-server`) with its own temporary data
//! directory and ports the kernel reported free, so tests run in parallel and never meet a
//! system etcd (Debian's package enables one on port 2379) or each other. Reads for checks go
//! through `etcdctl` (package `etcd-client`), as an operator would read the store.
//!
//! [`EtcdCluster::start_in`] runs the members inside a test network namespace instead, on
//! an address of one of its links, for set-ups where plugins in other namespaces reach etcd
//! over a simulated network (several "nodes" on one L2).
//!
//! [`EtcdCluster::start_tls`] starts members that serve clients over TLS only and ask them
//! for a certificate: a CA made for the cluster signs the members' certificate and one for
//! clients ([`ClientTls`]), which the harness's own `etcdctl` calls use too. Peers still
//! talk plain HTTP: what is tested is the client side.
//!
//! Clean-up: `Drop` kills every member with SIGKILL and removes the data directories, also
//! while a panicking test unwinds. A test process that is itself SIGKILLed leaves its
//! members running; they hold only loopback ports and a `cnitest-etcd-*` temp directory.

use std::fs::File;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::netns::Netns;
use crate::tls::{CertKey, Role, TestCa};

/// The etcd server binary, looked up in `PATH`.
pub const ETCD_BIN: &str = "etcd";
/// The etcd command-line client, looked up in `PATH`.
pub const ETCDCTL_BIN: &str = "etcdctl";

/// How long a (re)started cluster may take to answer on every live member. Generous: the
/// machines the tests run on are often loaded, and a 3-member election takes a few rounds.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one `etcdctl` call may take (its `--command-timeout`).
const ETCDCTL_TIMEOUT: &str = "10s";
/// Attempts at starting a cluster: a port found free can be taken by another process
/// before etcd binds it, and then a fresh set of ports is tried.
const START_ATTEMPTS: usize = 3;

/// The etcd binaries that are not in `PATH` (empty when both are there).
///
/// Tests that need etcd fail with this list rather than skipping: `scripts/test.sh`
/// installs both (Debian packages `etcd-server` and `etcd-client`).
pub fn missing_etcd_binaries() -> Vec<&'static str> {
    [ETCD_BIN, ETCDCTL_BIN]
        .into_iter()
        .filter(|bin| find_in_path(bin).is_none())
        .collect()
}

fn find_in_path(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(bin))
        .find(|candidate| candidate.is_file())
}

/// The files a client of a [`EtcdCluster::start_tls`] cluster is configured with (PEM).
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The certificate of the CA that signed the members' certificate.
    pub ca: PathBuf,
    /// A client certificate the members accept.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl ClientTls {
    /// `etcdctl`'s flags for these files.
    fn etcdctl_flags(&self) -> [String; 3] {
        [
            format!("--cacert={}", self.ca.display()),
            format!("--cert={}", self.cert.display()),
            format!("--key={}", self.key.display()),
        ]
    }
}

/// A TLS cluster's certificates, made in its temporary directory.
struct ClusterTls {
    /// What the members present.
    server: CertKey,
    /// What clients present, and the CA that signed both (the one the members trust).
    client: ClientTls,
}

impl ClusterTls {
    /// A new CA, and a member certificate for `host` (and 127.0.0.1, where relays and
    /// port forwards reach it) and a client certificate it signed, in `dir`.
    fn create(dir: &Path, host: &str) -> ClusterTls {
        let ca = TestCa::create(dir, "ca");
        let server = ca.issue(dir, "member", &Role::Server(&[host, "127.0.0.1"]));
        let client = ca.issue(dir, "client", &Role::Client);
        ClusterTls {
            server,
            client: ClientTls {
                ca: ca.cert().to_owned(),
                cert: client.cert,
                key: client.key,
            },
        }
    }

    /// The member flags that serve clients over TLS and require their certificates.
    fn etcd_flags(&self) -> [&std::ffi::OsStr; 7] {
        [
            "--cert-file".as_ref(),
            self.server.cert.as_os_str(),
            "--key-file".as_ref(),
            self.server.key.as_os_str(),
            "--trusted-ca-file".as_ref(),
            self.client.ca.as_os_str(),
            "--client-cert-auth".as_ref(),
        ]
    }
}

/// Whether members serve clients plain or over TLS with client certificates.
#[derive(Debug, Clone, Copy)]
enum Security {
    Plain,
    Tls,
}

/// Where the members listen: the namespace to run them in (`None`: ours) and the address.
#[derive(Debug, Clone)]
struct Place {
    netns: Option<String>,
    host: String,
}

impl Place {
    /// A command for `program`, run in the place's namespace (`ip netns exec` execs the
    /// program itself, so the child's pid is the program's and killing it kills etcd).
    fn command(&self, program: &str) -> Command {
        match &self.netns {
            Some(name) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", name, program]);
                command
            }
            None => Command::new(program),
        }
    }
}

/// One member: its fixed ports and data directory, and its process while it runs.
struct Member {
    name: String,
    /// `https` for a TLS cluster's clients, else `http`.
    client_scheme: &'static str,
    host: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    process: Option<Child>,
}

impl Member {
    fn client_url(&self) -> String {
        format!(
            "{}://{}:{}",
            self.client_scheme, self.host, self.client_port
        )
    }

    fn peer_url(&self) -> String {
        format!("http://{}:{}", self.host, self.peer_port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            // Already exited is fine; the point is that it no longer runs.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last lines of the member's log, for failure messages.
    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

/// A running etcd cluster of one or more members on 127.0.0.1, stopped and removed on drop.
///
/// ```no_run
/// use cni_conformance::EtcdCluster;
///
/// let etcd = EtcdCluster::start(3);
/// let endpoints = etcd.endpoints(); // ["http://127.0.0.1:PORT", ...]
/// etcd.kill_member(0); // the other two still form a quorum
/// etcd.restart_member(0); // same ports, same data: it rejoins
/// for (key, value) in etcd.get_prefix("/cni/cluster-ipam/") {
///     println!("{key} = {value}");
/// }
/// ```
pub struct EtcdCluster {
    members: std::sync::Mutex<Vec<Member>>,
    place: Place,
    cluster_spec: String,
    token: String,
    tls: Option<ClusterTls>,
    /// Holds every member's data directory and log; removed after the members are killed.
    dir: TempDir,
}

impl EtcdCluster {
    /// Starts a cluster of `members` members and waits until every one of them answers.
    ///
    /// # Panics
    /// If `etcd` or `etcdctl` is not installed (the message says which and how to install
    /// it), or the cluster does not become healthy in time (the message shows the logs).
    pub fn start(members: usize) -> EtcdCluster {
        EtcdCluster::start_at(
            Place {
                netns: None,
                host: "127.0.0.1".to_owned(),
            },
            members,
            Security::Plain,
        )
    }

    /// Starts a cluster of `members` members on 127.0.0.1 that serves clients over TLS
    /// only and requires a client certificate; [`EtcdCluster::client_tls`] has the files a
    /// client needs, and [`EtcdCluster::endpoints`] are `https://` URLs.
    ///
    /// # Panics
    /// As [`EtcdCluster::start`], and if `openssl` cannot make the certificates.
    pub fn start_tls(members: usize) -> EtcdCluster {
        EtcdCluster::start_at(
            Place {
                netns: None,
                host: "127.0.0.1".to_owned(),
            },
            members,
            Security::Tls,
        )
    }

    /// Starts a cluster of `members` members inside `netns`, listening on `address` (which
    /// one of its links must have), ports 2379 and 2380 for the first member and two more
    /// for each next one: the namespace is the test's own, so they are free. The members
    /// live until the cluster is dropped; drop it before `netns`.
    ///
    /// # Panics
    /// As [`EtcdCluster::start`].
    pub fn start_in(netns: &Netns, address: &str, members: usize) -> EtcdCluster {
        // Traffic to the namespace's own address goes through its loopback.
        netns.bring_up_loopback();
        EtcdCluster::start_at(
            Place {
                netns: Some(netns.name().to_owned()),
                host: address.to_owned(),
            },
            members,
            Security::Plain,
        )
    }

    fn start_at(place: Place, members: usize, security: Security) -> EtcdCluster {
        assert!(members > 0, "an etcd cluster needs at least one member");
        let missing = missing_etcd_binaries();
        assert!(
            missing.is_empty(),
            "{} not found in PATH: these tests run a real etcd; install the Debian packages \
             etcd-server and etcd-client (scripts/test.sh does)",
            missing.join(" and ")
        );
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let cluster = EtcdCluster::spawn(place.clone(), members, security);
            match cluster.wait_ready() {
                Ok(()) => return cluster,
                Err(why) => failures.push(why),
            }
        }
        panic!(
            "etcd cluster of {members} did not start after {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n---\n")
        );
    }

    /// Creates the data directories (and the certificates) and starts every member,
    /// without waiting.
    fn spawn(place: Place, count: usize, security: Security) -> EtcdCluster {
        let dir = tempfile::Builder::new()
            .prefix("cnitest-etcd-")
            .tempdir()
            .expect("cannot create the etcd cluster's temporary directory");
        let tls = match security {
            Security::Plain => None,
            Security::Tls => Some(ClusterTls::create(dir.path(), &place.host)),
        };
        let client_scheme = if tls.is_some() { "https" } else { "http" };
        let ports = match place.netns {
            None => free_ports(2 * count),
            Some(_) => (0..2 * count as u16).map(|i| 2379 + i).collect(),
        };
        let members: Vec<Member> = (0..count)
            .map(|i| Member {
                name: format!("m{i}"),
                client_scheme,
                host: place.host.clone(),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                data_dir: dir.path().join(format!("m{i}.data")),
                log: dir.path().join(format!("m{i}.log")),
                process: None,
            })
            .collect();
        let cluster_spec = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        // Unique per cluster so that members of two test clusters can never join each other.
        let token = dir
            .path()
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cluster = EtcdCluster {
            members: std::sync::Mutex::new(members),
            place,
            cluster_spec,
            token,
            tls,
            dir,
        };
        for i in 0..count {
            cluster.launch(i);
        }
        cluster
    }

    /// Starts member `i`'s process with its fixed ports and data directory.
    fn launch(&self, i: usize) {
        let mut members = self.lock();
        let member = &mut members[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&member.log)
            .expect("cannot open the etcd member's log");
        let child = self
            .place
            .command(ETCD_BIN)
            .arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(&member.data_dir)
            .args(["--listen-client-urls", &member.client_url()])
            .args(["--advertise-client-urls", &member.client_url()])
            .args(["--listen-peer-urls", &member.peer_url()])
            .args(["--initial-advertise-peer-urls", &member.peer_url()])
            .args(["--initial-cluster", &self.cluster_spec])
            .args(["--initial-cluster-token", &self.token])
            // "new" is only read on first start; a restart finds its data dir and rejoins.
            .args(["--initial-cluster-state", "new"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .args(self.tls.iter().flat_map(ClusterTls::etcd_flags))
            .env_remove("ETCD_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cannot share the etcd log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {ETCD_BIN}: {e}"));
        member.process = Some(child);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Member>> {
        // A panic while the lock was held leaves plain data behind; keep using it.
        self.members
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until every running member answers `etcdctl endpoint health`; `Err` (with the
    /// members' logs) if one exits or the time runs out.
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut unhealthy = Vec::new();
            for (i, url) in self.running_urls() {
                if let Some(status) = self.exited(i) {
                    return Err(format!(
                        "etcd member {i} exited ({status}):\n{}",
                        self.logs()
                    ));
                }
                let health = etcdctl(
                    &self.place,
                    self.client_tls(),
                    &[url.as_str()],
                    &["endpoint", "health"],
                );
                if health.is_err() {
                    unhealthy.push(url);
                }
            }
            if unhealthy.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "etcd members {unhealthy:?} not healthy after {READY_TIMEOUT:?}:\n{}",
                    self.logs()
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// `Some(status)` if member `i` was started and its process has exited since.
    fn exited(&self, i: usize) -> Option<String> {
        let mut members = self.lock();
        let child = members[i].process.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    /// (index, client URL) of every member whose process is running.
    fn running_urls(&self) -> Vec<(usize, String)> {
        self.lock()
            .iter()
            .enumerate()
            .filter(|(_, m)| m.process.is_some())
            .map(|(i, m)| (i, m.client_url()))
            .collect()
    }

    fn logs(&self) -> String {
        self.lock()
            .iter()
            .map(|m| format!("--- {} ({}):\n{}", m.name, m.log.display(), m.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The client URL of every member, killed ones included (a client configured with all
    /// of them must cope with some being down), e.g. `http://127.0.0.1:40123` (`https://`
    /// for a [`EtcdCluster::start_tls`] cluster).
    pub fn endpoints(&self) -> Vec<String> {
        self.lock().iter().map(Member::client_url).collect()
    }

    /// The CA, client certificate and key a client of a [`EtcdCluster::start_tls`] cluster
    /// needs; `None` for a plain cluster.
    pub fn client_tls(&self) -> Option<&ClientTls> {
        self.tls.as_ref().map(|tls| &tls.client)
    }

    /// The temporary directory holding every member's data directory and log (and a TLS
    /// cluster's certificates).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills member `i` with SIGKILL, as a crashed machine would stop; its data stays.
    pub fn kill_member(&self, i: usize) {
        self.lock()[i].kill();
    }

    /// Starts member `i` again on the same ports with the same data directory (it rejoins
    /// the cluster) and waits until every running member answers.
    ///
    /// # Panics
    /// If it is still running, or the cluster does not become healthy in time.
    pub fn restart_member(&self, i: usize) {
        assert!(
            self.lock()[i].process.is_none(),
            "etcd member {i} is still running; kill_member first"
        );
        self.launch(i);
        if let Err(why) = self.wait_ready() {
            panic!("etcd member {i} did not rejoin: {why}");
        }
    }

    /// Every key under `prefix` with its value, sorted by key, read with
    /// `etcdctl get --prefix` from the running members (a linearizable read: it needs a
    /// quorum).
    ///
    /// # Panics
    /// If `etcdctl` fails, or a value spans several lines (the plain output it parses has
    /// one key line then one value line per entry).
    pub fn get_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let out = self
            .etcdctl(&["get", "--prefix", prefix])
            .unwrap_or_else(|e| panic!("etcdctl get --prefix {prefix}: {e}"));
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines.len() % 2 == 0,
            "etcdctl get --prefix {prefix}: odd line count (a multi-line value?):\n{out}"
        );
        lines
            .chunks(2)
            .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
            .collect()
    }

    /// Runs `etcdctl ARGS` (API v3) against the running members; its stdout, or an error
    /// with its stderr.
    pub fn etcdctl(&self, args: &[&str]) -> Result<String, String> {
        let urls: Vec<String> = self.running_urls().into_iter().map(|(_, u)| u).collect();
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        etcdctl(&self.place, self.client_tls(), &urls, args)
    }
}

/// Runs `etcdctl --endpoints URLS ARGS` in `place`'s namespace, presenting `tls`'s files
/// to a TLS cluster.
fn etcdctl(
    place: &Place,
    tls: Option<&ClientTls>,
    urls: &[&str],
    args: &[&str],
) -> Result<String, String> {
    let out = place
        .command(ETCDCTL_BIN)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", urls.join(",")))
        .arg(format!("--command-timeout={ETCDCTL_TIMEOUT}"))
        .args(tls.iter().flat_map(|tls| tls.etcdctl_flags()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {ETCDCTL_BIN}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "etcdctl {args:?} ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `count` distinct TCP ports on 127.0.0.1 that were free a moment ago: all listeners are
/// held until every port is chosen, so no two are the same.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("cannot bind a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .expect("a bound listener has an address")
                .port()
        })
        .collect()
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in self.lock().iter_mut() {
            member.kill();
        }
        // `dir` (data and logs) is removed after this, when its field is dropped.
    }
}
