//! Named network namespaces for tests, each removed again when its guard is dropped.
//!
//! This module owns the `/run/netns/cnitest-*` names. It never enters or changes the netns
//! of the test process itself: work inside a namespace happens on a short-lived thread
//! ([`Netns::run_inside`]) or in a child process that joins the namespace before `exec`
//! ([`Netns::exec`]).
//!
//! Clean-up happens at three levels:
//! 1. [`Netns`]'s `Drop`, which also runs while a panicking test unwinds;
//! 2. an `atexit` handler that removes every namespace this process still holds when it
//!    exits, for guards that are never dropped (a `static` fixture, `mem::forget`);
//! 3. [`cleanup_stale`], for what a killed process (SIGKILL, OOM, a test-runner timeout)
//!    left behind: such a process runs neither of the above.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};
use std::thread;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use serde_json::Value;

/// Where named network namespaces live; the same directory `ip netns` uses.
pub const NETNS_DIR: &str = "/run/netns";

/// Every namespace made by this crate is named `cnitest-<pid>-<counter>-<hex>[-<label>]`.
/// The creating pid is part of the name so that [`cleanup_stale`] can tell a leftover from
/// a namespace that a running test still uses.
pub const NETNS_PREFIX: &str = "cnitest-";

/// Namespaces this process created and has not removed yet, for the `atexit` safety net.
static LIVE_NETNS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
static NETNS_COUNTER: AtomicU32 = AtomicU32::new(0);
static PREPARE_NETNS_DIR: Once = Once::new();
static REGISTER_ATEXIT: Once = Once::new();

/// An IP address family, for [`Netns::routes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    /// IPv4 (`ip -4`).
    V4,
    /// IPv6 (`ip -6`).
    V6,
}

impl IpFamily {
    fn ip_flag(self) -> &'static str {
        match self {
            IpFamily::V4 => "-4",
            IpFamily::V6 => "-6",
        }
    }
}

/// A named network namespace at `/run/netns/<name>`, deleted when dropped.
///
/// Creating one needs root (CAP_SYS_ADMIN); without it [`Netns::new`] panics and says so,
/// rather than letting the test pass without testing anything.
///
/// The namespace starts as the kernel makes it: only `lo`, and `lo` is down. Call
/// [`Netns::bring_up_loopback`] if a test needs it.
pub struct Netns {
    name: String,
    path: PathBuf,
    /// Kept open so that children can `setns` into it and so the namespace outlives a
    /// concurrent `ip netns del` until the guard is dropped.
    fd: OwnedFd,
}

impl Netns {
    /// Creates a namespace with a fresh unique name.
    ///
    /// # Panics
    /// If the namespace cannot be created (not root, no `/run` write access).
    pub fn new() -> Netns {
        Netns::create(None)
    }

    /// Creates a namespace whose unique name ends in `-<label>` (e.g. `host`), so that
    /// `ip netns list` shows what each one is for while a test runs.
    ///
    /// # Panics
    /// As [`Netns::new`].
    pub fn with_label(label: &str) -> Netns {
        Netns::create(Some(label))
    }

    fn create(label: Option<&str>) -> Netns {
        let name = unique_name(label);
        let path = Path::new(NETNS_DIR).join(&name);
        if let Err(err) = create_named_netns(&path) {
            panic!(
                "cannot create network namespace {}: {err} \
                 (these tests need root: CAP_SYS_ADMIN and CAP_NET_ADMIN)",
                path.display()
            );
        }
        let fd = match File::open(&path) {
            Ok(file) => OwnedFd::from(file),
            Err(err) => {
                remove_named_netns(&path);
                panic!(
                    "cannot open new network namespace {}: {err}",
                    path.display()
                );
            }
        };
        Netns { name, path, fd }
    }

    /// The namespace's name, as `ip netns list` shows it. Also a valid CNI container id,
    /// which is why [`crate::Invocation`] uses it as the default one.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`: the value for `CNI_NETNS`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a new thread that has joined this namespace, and returns its result.
    ///
    /// The thread ends afterwards, so no thread of the test process is left in the wrong
    /// namespace, even if `f` panics (the panic is passed on to the caller). Files under
    /// `/proc/sys/net` opened inside `f` belong to this namespace; netlink sockets opened
    /// inside `f` stay bound to it after `f` returns.
    pub fn run_inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        thread::scope(|scope| {
            let worker = scope.spawn(|| {
                nix::sched::setns(self.fd.as_fd(), CloneFlags::CLONE_NEWNET).unwrap_or_else(
                    |err| panic!("setns into {} failed: {err}", self.path.display()),
                );
                f()
            });
            worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Runs a command inside this namespace and returns its output; the exit status is
    /// not checked. `argv[0]` is looked up in `PATH`. Example: `ns.exec(&["ping", "-c1",
    /// "10.1.2.1"])`.
    ///
    /// # Panics
    /// If `argv` is empty or the command cannot be started.
    pub fn exec(&self, argv: &[&str]) -> Output {
        let (program, args) = argv.split_first().expect("exec needs a program name");
        let mut command = Command::new(program);
        command.args(args).stdin(Stdio::null());
        self.enter_before_exec(&mut command);
        command
            .output()
            .unwrap_or_else(|err| panic!("cannot run {argv:?} in {}: {err}", self.name))
    }

    /// Runs `ip <args>` inside this namespace, e.g. `ns.ip(&["link", "add", "veth0",
    /// "type", "veth", "peer", "veth1"])`, and returns its stdout.
    ///
    /// # Panics
    /// If `ip` fails; the message includes its stderr.
    pub fn ip(&self, args: &[&str]) -> String {
        let argv: Vec<&str> = std::iter::once("ip").chain(args.iter().copied()).collect();
        let output = self.exec(&argv);
        if !output.status.success() {
            panic!(
                "`{}` in netns {} failed ({}): {}",
                argv.join(" "),
                self.name,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs `ip -j <args>` inside this namespace and parses its JSON output. An empty
    /// output (some `ip` versions print nothing for an empty list) is returned as `[]`.
    ///
    /// # Panics
    /// If `ip` fails or prints something that is not JSON.
    pub fn ip_json(&self, args: &[&str]) -> Value {
        let args: Vec<&str> = std::iter::once("-j").chain(args.iter().copied()).collect();
        let stdout = self.ip(&args);
        if stdout.trim().is_empty() {
            return Value::Array(Vec::new());
        }
        serde_json::from_str(&stdout).unwrap_or_else(|err| {
            panic!(
                "`ip {}` printed invalid JSON ({err}): {stdout}",
                args.join(" ")
            )
        })
    }

    /// The link called `ifname`, as one object of `ip -j -d link show` (so it includes
    /// `linkinfo` with the kind and its data), or `None` if there is no such link.
    pub fn link(&self, ifname: &str) -> Option<Value> {
        into_array(self.ip_json(&["-d", "link", "show"]))
            .into_iter()
            .find(|link| link["ifname"] == ifname)
    }

    /// The names of every link, in the kernel's order (`lo` first).
    pub fn link_names(&self) -> Vec<String> {
        into_array(self.ip_json(&["link", "show"]))
            .into_iter()
            .filter_map(|link| link["ifname"].as_str().map(str::to_owned))
            .collect()
    }

    /// The addresses on `ifname` as CIDR strings (`10.1.2.3/24`, `fe80::1/64`), in the
    /// kernel's order, including IPv6 link-local ones. Empty if the link does not exist.
    pub fn addresses(&self, ifname: &str) -> Vec<String> {
        into_array(self.ip_json(&["addr", "show"]))
            .into_iter()
            .filter(|link| link["ifname"] == ifname)
            .flat_map(|link| into_array(link["addr_info"].clone()))
            .filter_map(|addr| Some(format!("{}/{}", addr["local"].as_str()?, addr["prefixlen"])))
            .collect()
    }

    /// The routes of the main table for one family, as `ip -j route show` objects (keys
    /// `dst`, `gateway`, `dev`, `protocol`, `scope`, `metric`, ...).
    pub fn routes(&self, family: IpFamily) -> Vec<Value> {
        into_array(self.ip_json(&[family.ip_flag(), "route", "show", "table", "main"]))
    }

    /// Reads a sysctl of this namespace, trimmed. `name` may use dots
    /// (`net.ipv4.ip_forward`) or slashes (`net/ipv4/conf/eth0.100/forwarding`); use
    /// slashes when a part, such as a VLAN interface name, contains a dot.
    ///
    /// # Panics
    /// If the sysctl cannot be read (e.g. it does not exist).
    pub fn sysctl(&self, name: &str) -> String {
        let relative = if name.contains('/') {
            name.to_owned()
        } else {
            name.replace('.', "/")
        };
        let path = Path::new("/proc/sys").join(relative);
        // The file must be opened by a thread inside the namespace: /proc/sys/net shows
        // the netns of the opening thread, not of the process.
        self.run_inside(|| fs::read_to_string(&path))
            .unwrap_or_else(|err| panic!("cannot read {} in {}: {err}", path.display(), self.name))
            .trim()
            .to_owned()
    }

    /// A wire to another "host" on the same L2 segment: veth `name` here (up), its peer
    /// `peer_name` in `peer` (up) with `peer_cidr` (e.g. a macvlan master and the node
    /// its containers must reach).
    pub fn add_veth_to(&self, name: &str, peer: &Netns, peer_name: &str, peer_cidr: &str) {
        self.ip(&[
            "link",
            "add",
            name,
            "type",
            "veth",
            "peer",
            "name",
            peer_name,
            "netns",
            peer.name(),
        ]);
        self.ip(&["link", "set", name, "up"]);
        peer.ip(&["addr", "add", peer_cidr, "dev", peer_name]);
        peer.ip(&["link", "set", peer_name, "up"]);
    }

    /// Sets `lo` up, as container runtimes do before calling plugins.
    pub fn bring_up_loopback(&self) {
        self.ip(&["link", "set", "lo", "up"]);
    }

    /// Makes `command` join this namespace in the child, between `fork` and `exec`: for
    /// callers that spawn and supervise a process themselves (e.g. to kill it mid-call).
    pub fn enter_before_exec(&self, command: &mut Command) {
        let netns_fd = self.fd.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec, where only
        // async-signal-safe work is allowed. It makes one raw syscall and builds an
        // io::Error from errno, which does not allocate. `netns_fd` stays open in the
        // child: O_CLOEXEC only closes it at exec, after setns has used it, and `self`
        // (which owns it) outlives the spawn.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(netns_fd, libc::CLONE_NEWNET) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

impl Default for Netns {
    fn default() -> Self {
        Netns::new()
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Debug for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netns").field("path", &self.path).finish()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove_named_netns(&self.path);
    }
}

/// Removes `cnitest-*` namespaces whose creating process is gone (a test run that was
/// SIGKILLed or timed out cannot clean up after itself), and returns their names.
/// Namespaces of running processes, including this one, are left alone.
pub fn cleanup_stale() -> Vec<String> {
    let Ok(entries) = fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = creator_pid(&name) else {
            continue;
        };
        // Signal 0 checks for existence only. EPERM means it exists under another user.
        let alive =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) != Err(Errno::ESRCH);
        if !alive {
            remove_named_netns(&entry.path());
            removed.push(name);
        }
    }
    removed.sort();
    removed
}

/// The pid in a `cnitest-<pid>-...` name, or `None` for a name that is not ours.
fn creator_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(NETNS_PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok().filter(|&pid| pid > 0)
}

fn unique_name(label: Option<&str>) -> String {
    let pid = std::process::id();
    let counter = NETNS_COUNTER.fetch_add(1, Ordering::Relaxed);
    // A few random bits keep names unique even when a pid is reused while a namespace of
    // an earlier, killed process with that pid still exists.
    let random = random_u64() & 0xffff;
    match label {
        Some(label) => format!("{NETNS_PREFIX}{pid}-{counter}-{random:04x}-{label}"),
        None => format!("{NETNS_PREFIX}{pid}-{counter}-{random:04x}"),
    }
}

/// Randomness from std's per-process hash keys; enough for name uniqueness, no crate needed.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u32(NETNS_COUNTER.load(Ordering::Relaxed));
    hasher.finish()
}

/// Creates the file `path` and bind-mounts a new network namespace on it, as
/// `ip netns add` does.
fn create_named_netns(path: &Path) -> io::Result<()> {
    PREPARE_NETNS_DIR.call_once(prepare_netns_dir);
    REGISTER_ATEXIT.call_once(|| {
        // SAFETY: registers a plain `extern "C" fn` with no arguments, as atexit expects.
        if unsafe { libc::atexit(remove_live_netns_at_exit) } != 0 {
            eprintln!("cni-conformance: atexit registration failed; leaked netns guards will not be cleaned at exit");
        }
    });

    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)?;
    lock_live_netns().insert(path.to_owned());

    // unshare on a thread of its own: only that thread moves to the new namespace, and
    // it ends right after the bind mount has pinned the namespace to `path`.
    let mounted = thread::scope(|scope| {
        scope
            .spawn(|| -> nix::Result<()> {
                nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
                nix::mount::mount(
                    Some("/proc/thread-self/ns/net"),
                    path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
            })
            .join()
            .expect("the netns creation thread panicked")
    });
    if let Err(errno) = mounted {
        remove_named_netns(path);
        return Err(errno.into());
    }
    Ok(())
}

/// Makes `/run/netns` a shared mount point, as `ip netns add` does on first use. Doing it
/// ourselves first matters: if `ip` did it later, its recursive self-bind would copy our
/// existing netns mounts, and the copies hidden underneath would keep those namespaces
/// alive after we unmount the visible ones.
fn prepare_netns_dir() {
    if let Err(err) = fs::create_dir_all(NETNS_DIR) {
        eprintln!("cni-conformance: cannot create {NETNS_DIR}: {err}");
        return;
    }
    let make_shared = || {
        nix::mount::mount(
            None::<&str>,
            NETNS_DIR,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    // EINVAL: not a mount point yet. Bind it onto itself, then retry (iproute2's netns.c).
    if make_shared() == Err(Errno::EINVAL) {
        let bound = nix::mount::mount(
            Some(NETNS_DIR),
            NETNS_DIR,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        );
        if let Err(err) = bound.and_then(|()| make_shared()) {
            eprintln!("cni-conformance: cannot make {NETNS_DIR} a shared mount: {err}");
        }
    }
}

/// Unmounts and deletes a named namespace. Never panics: it runs in `Drop`, possibly while
/// a test is already unwinding, where a second panic would abort the whole test binary.
fn remove_named_netns(path: &Path) {
    match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
        // EINVAL: not mounted (creation failed half-way); ENOENT: already gone.
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(err) => eprintln!("cni-conformance: cannot unmount {}: {err}", path.display()),
    }
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => eprintln!("cni-conformance: cannot remove {}: {err}", path.display()),
    }
    lock_live_netns().remove(path);
}

extern "C" fn remove_live_netns_at_exit() {
    let leftovers: Vec<PathBuf> = lock_live_netns().iter().cloned().collect();
    for path in leftovers {
        remove_named_netns(&path);
    }
}

/// The registry stays usable after a panic elsewhere: it holds plain paths, so a poisoned
/// lock cannot hide a half-made change.
fn lock_live_netns() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    LIVE_NETNS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn into_array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creator_pid_parses_only_our_names() {
        let cases = [
            ("cnitest-123-0-abcd", Some(123)),
            ("cnitest-123-4-abcd-host", Some(123)),
            ("cnitest-0-1-abcd", None),
            ("cnitest-abc-1-abcd", None),
            ("cnitest-", None),
            ("other-123-0-abcd", None),
            ("cni-1234", None),
        ];
        for (name, expected) in cases {
            assert_eq!(creator_pid(name), expected, "{name}");
        }
    }

    #[test]
    fn unique_names_differ_and_carry_our_pid() {
        let first = unique_name(None);
        let second = unique_name(Some("host"));
        assert_ne!(first, second);
        assert!(second.ends_with("-host"), "{second}");
        for name in [first, second] {
            assert_eq!(
                creator_pid(&name),
                Some(std::process::id() as i32),
                "{name}"
            );
        }
    }
}
