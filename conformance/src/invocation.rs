//! One plugin call, described as the CNI spec describes it: a verb, the `CNI_*`
//! environment and the config on stdin; and the code that performs it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::netns::Netns;
use crate::plugin_run::PluginRun;

/// `conf` with `prevResult` set to `result`, as libcni passes the cached result to CHECK
/// and DEL (and a chain passes one plugin's result to the next).
pub fn with_prev(conf: &Value, result: &Value) -> Value {
    let mut conf = conf.clone();
    conf["prevResult"] = result.clone();
    conf
}

/// How long a plugin may run before it is killed and the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Used when the test process itself has no `PATH`; plugins need it to find `nft`,
/// `iptables` and the like.
const FALLBACK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A plugin call to make with [`crate::Lab::run`]: built with a verb constructor, then
/// adjusted with the chainable setters.
///
/// The plugin sees a cleared environment: `PATH`, the `CNI_*` variables set here, and the
/// variables added with [`Invocation::env`]. `CNI_PATH` defaults to the directory of the
/// plugin binary, so delegated IPAM plugins next to it are found.
///
/// ```no_run
/// use cni_conformance::{Invocation, Lab};
/// use serde_json::json;
///
/// let lab = Lab::new();
/// let conf = json!({"cniVersion": "1.0.0", "name": "demo", "type": "loopback"});
/// let added = lab
///     .run("loopback", &Invocation::add(lab.container(), "lo").config(conf.clone()))
///     .assert_success();
/// assert_eq!(added.result()["cniVersion"], "1.0.0");
/// lab.run("loopback", &Invocation::del(lab.container(), "lo").config(conf))
///     .assert_success();
/// ```
#[derive(Debug, Clone)]
pub struct Invocation {
    command: String,
    container_id: Option<String>,
    netns: Option<PathBuf>,
    ifname: Option<String>,
    cni_args: Option<String>,
    cni_path: Option<OsString>,
    stdin: Vec<u8>,
    extra_env: Vec<(String, String)>,
    unset_env: Vec<String>,
    timeout: Duration,
}

impl Invocation {
    /// A call with `CNI_COMMAND=<command>` and nothing else set; for verbs without a
    /// constructor, such as an unknown verb in an error test.
    pub fn new(command: &str) -> Invocation {
        Invocation {
            command: command.to_owned(),
            container_id: None,
            netns: None,
            ifname: None,
            cni_args: None,
            cni_path: None,
            stdin: Vec::new(),
            extra_env: Vec::new(),
            unset_env: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A call that names an attachment: `CNI_CONTAINERID` is the container namespace's
    /// unique name (so the ADD and DEL of one test agree, and no two tests collide),
    /// `CNI_NETNS` its path and `CNI_IFNAME` the given name.
    fn for_attachment(command: &str, container: &Netns, ifname: &str) -> Invocation {
        Invocation {
            container_id: Some(container.name().to_owned()),
            netns: Some(container.path().to_owned()),
            ifname: Some(ifname.to_owned()),
            ..Invocation::new(command)
        }
    }

    /// `ADD` of interface `ifname` in `container`.
    pub fn add(container: &Netns, ifname: &str) -> Invocation {
        Invocation::for_attachment("ADD", container, ifname)
    }

    /// `DEL` of interface `ifname` in `container`.
    pub fn del(container: &Netns, ifname: &str) -> Invocation {
        Invocation::for_attachment("DEL", container, ifname)
    }

    /// `CHECK` of interface `ifname` in `container`. Remember the `prevResult` in the
    /// config.
    pub fn check(container: &Netns, ifname: &str) -> Invocation {
        Invocation::for_attachment("CHECK", container, ifname)
    }

    /// `STATUS` (spec 1.1.0): no container, no netns, no ifname.
    pub fn status() -> Invocation {
        Invocation::new("STATUS")
    }

    /// `GC` (spec 1.1.0): put `cni.dev/valid-attachments` in the config.
    pub fn gc() -> Invocation {
        Invocation::new("GC")
    }

    /// `VERSION`, with stdin `{"cniVersion":"1.1.0"}` as libcni sends it.
    pub fn version() -> Invocation {
        Invocation::new("VERSION").stdin(br#"{"cniVersion":"1.1.0"}"#.to_vec())
    }

    /// Sets `CNI_CONTAINERID`.
    pub fn container_id(mut self, id: &str) -> Invocation {
        self.container_id = Some(id.to_owned());
        self
    }

    /// Sets `CNI_NETNS` to any path, e.g. one that does not exist.
    pub fn netns_path(mut self, path: impl Into<PathBuf>) -> Invocation {
        self.netns = Some(path.into());
        self
    }

    /// Leaves `CNI_NETNS` unset, as a runtime may on DEL when the netns is gone.
    pub fn no_netns(mut self) -> Invocation {
        self.netns = None;
        self
    }

    /// Sets `CNI_IFNAME`.
    pub fn ifname(mut self, ifname: &str) -> Invocation {
        self.ifname = Some(ifname.to_owned());
        self
    }

    /// Sets `CNI_ARGS`, e.g. `"IP=10.1.2.3;IgnoreUnknown=1"`.
    pub fn args(mut self, cni_args: &str) -> Invocation {
        self.cni_args = Some(cni_args.to_owned());
        self
    }

    /// Sets `CNI_PATH` instead of the default (the plugin binary's directory).
    pub fn cni_path(mut self, cni_path: impl Into<OsString>) -> Invocation {
        self.cni_path = Some(cni_path.into());
        self
    }

    /// The network config to send on stdin.
    pub fn config(self, config: Value) -> Invocation {
        let bytes = serde_json::to_vec(&config).expect("a serde_json::Value always serialises");
        self.stdin(bytes)
    }

    /// Raw bytes to send on stdin, e.g. invalid JSON for a decode-error test.
    pub fn stdin(mut self, bytes: Vec<u8>) -> Invocation {
        self.stdin = bytes;
        self
    }

    /// Adds an environment variable; it overrides a `CNI_*` variable of the same name.
    pub fn env(mut self, key: &str, value: &str) -> Invocation {
        self.extra_env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Removes a variable this builder would otherwise set (e.g. `CNI_PATH`), for
    /// missing-variable tests.
    pub fn unset(mut self, key: &str) -> Invocation {
        self.unset_env.push(key.to_owned());
        self
    }

    /// How long the plugin may run before it is killed (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Invocation {
        self.timeout = timeout;
        self
    }

    /// The `CNI_COMMAND` value.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The exact environment the plugin gets when `binary` is run.
    pub fn environment(&self, binary: &Path) -> BTreeMap<String, OsString> {
        let mut env = BTreeMap::new();
        let path = std::env::var_os("PATH").unwrap_or_else(|| FALLBACK_PATH.into());
        env.insert("PATH".to_owned(), path);
        env.insert("CNI_COMMAND".to_owned(), self.command.clone().into());
        let optional = [
            (
                "CNI_CONTAINERID",
                self.container_id.clone().map(OsString::from),
            ),
            ("CNI_NETNS", self.netns.clone().map(OsString::from)),
            ("CNI_IFNAME", self.ifname.clone().map(OsString::from)),
            ("CNI_ARGS", self.cni_args.clone().map(OsString::from)),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                env.insert(key.to_owned(), value);
            }
        }
        let cni_path = self
            .cni_path
            .clone()
            .unwrap_or_else(|| crate::bins::parent_dir(binary).into());
        env.insert("CNI_PATH".to_owned(), cni_path);
        for (key, value) in &self.extra_env {
            env.insert(key.clone(), value.into());
        }
        for key in &self.unset_env {
            env.remove(key);
        }
        env
    }

    /// Runs `binary` inside `netns` with `workdir` as its current directory, feeds it the
    /// config and collects its output. Kills it (and its process group) at the timeout.
    ///
    /// # Panics
    /// If the binary cannot be started or runs past the timeout.
    pub(crate) fn run_in(&self, netns: &Netns, workdir: &Path, binary: &Path) -> PluginRun {
        let label = format!(
            "{} {}",
            binary
                .file_name()
                .unwrap_or(binary.as_os_str())
                .to_string_lossy(),
            self.command
        );
        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(self.environment(binary))
            .current_dir(workdir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills whatever the plugin started too.
            .process_group(0);
        netns.enter_before_exec(&mut command);
        let mut child = spawn_when_not_busy(&mut command)
            .unwrap_or_else(|err| panic!("cannot start {label} ({}): {err}", binary.display()));

        // Each pipe gets its own thread: a plugin that does not read stdin, or writes more
        // than a pipe buffer to stderr, must not deadlock the test.
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let input = self.stdin.clone();
        let writer = thread::spawn(move || {
            // A plugin may exit without reading stdin (VERSION, early errors): not a failure.
            let _ = stdin.write_all(&input);
        });
        let stdout_reader = spawn_reader(child.stdout.take().expect("stdout is piped"));
        let stderr_reader = spawn_reader(child.stderr.take().expect("stderr is piped"));

        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let (status_tx, status_rx) = mpsc::channel::<std::io::Result<ExitStatus>>();
        let waiter = thread::spawn(move || {
            let _ = status_tx.send(child.wait());
        });
        let outcome = status_rx.recv_timeout(self.timeout);
        let timed_out = outcome.is_err();
        if timed_out {
            // The group id is the child's pid: process_group(0) above.
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        }
        let status = match outcome {
            Ok(status) => status,
            Err(_) => status_rx.recv().expect("the waiter thread always sends"),
        }
        .unwrap_or_else(|err| panic!("waiting for {label} failed: {err}"));
        waiter.join().expect("waiter thread panicked");
        writer.join().expect("stdin writer thread panicked");
        let stdout = join_reader(stdout_reader);
        let stderr = join_reader(stderr_reader);
        let run = PluginRun::new(label, status.code(), stdout, stderr);
        if timed_out {
            panic!(
                "{} timed out after {:?} and was killed\n{run}",
                run.label, self.timeout
            );
        }
        run
    }
}

fn spawn_reader(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn join_reader(reader: thread::JoinHandle<Vec<u8>>) -> String {
    let bytes = reader.join().expect("pipe reader thread panicked");
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Starts `command`, trying again while the kernel says the file is busy (ETXTBSY): a
/// script a test has just written stays open for writing in any child that another test
/// thread forked meanwhile, until that child's exec closes it.
fn spawn_when_not_busy(command: &mut Command) -> std::io::Result<Child> {
    let mut tries = 0;
    loop {
        match command.spawn() {
            Err(err) if err.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                thread::sleep(Duration::from_millis(10));
            }
            started => return started,
        }
    }
}
