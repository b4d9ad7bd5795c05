//! Running one plugin process the way a runtime does, and measuring it.
//!
//! Owns the exec-to-reap timing and the child's rusage. The child joins the fake host
//! netns between fork and exec (as `cni_conformance::Lab` does), so nothing a plugin
//! does can reach the machine's own namespace. We reap with `wait4` ourselves instead of
//! `Child::wait` because only `wait4` hands back the rusage (CPU time).
//!
//! Peak RSS is *not* taken from this rusage: see `rss.rs` for why and for what is used.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ChildStderr, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Set by SIGINT/SIGTERM/SIGHUP; every loop checks it so that guards are dropped (and
/// namespaces removed) on the way out instead of the process dying with them in place.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the Ctrl-C handler. Without SA_RESTART, so a blocking `wait4` returns EINTR
/// and the loop above notices at once; the plugins in the same process group get the
/// SIGINT too and die, which is what we want.
pub fn install_signal_handlers() -> Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(signal, &action) }.context("sigaction")?;
    }
    Ok(())
}

/// Fails once a stop signal arrived, so `?` unwinds to `main` dropping every guard.
pub fn check_stop() -> Result<()> {
    if STOP.load(Ordering::SeqCst) {
        bail!("interrupted; cleaning up");
    }
    Ok(())
}

/// One CNI call: what goes into the environment and on stdin.
pub struct Call<'a> {
    pub binary: &'a Path,
    pub command: &'a str,
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    pub config: &'a [u8],
}

/// What one finished call cost.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// From just before fork to just after the child was reaped.
    pub elapsed: Duration,
    /// The child's `ru_maxrss` in KiB. Not used as the plugin's peak (see `rss.rs`); kept
    /// for the report's `/bin/true` line, which shows the floor a fork of cni-bench sets.
    pub max_rss_kib: u64,
    /// User + system CPU time of the child and its reaped children (the IPAM plugin).
    pub cpu: Duration,
    /// KiB the child and its reaped children read from disk (`ru_inblock`): what a cold
    /// page cache costs a call.
    pub read_kib: u64,
    /// Page faults of the child and its reaped children that waited for a disk read
    /// (`ru_majflt`): how many times a cold call stopped for I/O, whatever the load.
    pub major_faults: u64,
    pub success: bool,
    /// stdout then stderr, kept for failure messages.
    pub output: String,
}

/// A started child, not yet reaped.
pub struct Running {
    pid: libc::pid_t,
    start: Instant,
    stdout: ChildStdout,
    stderr: ChildStderr,
}

/// Starts `call.binary` inside `host` (any netns fd). The environment is cleared as a
/// runtime does; `CNI_PATH` is the binary's own directory so each side delegates to its
/// own host-local.
pub fn spawn(call: &Call<'_>, host: &impl AsFd) -> Result<Running> {
    let mut command = command(call, host);
    let start = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", call.binary.display()))?;
    let (pid, stdout, stderr) = feed(&mut child, call.config)?;
    Ok(Running {
        pid,
        start,
        stdout,
        stderr,
    })
}

/// The command a runtime would run for `call`, with piped stdio, set to join `host`
/// between fork and exec.
pub fn command(call: &Call<'_>, host: &impl AsFd) -> Command {
    let mut command = Command::new(call.binary);
    command
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("CNI_COMMAND", call.command)
        .env("CNI_CONTAINERID", call.container_id)
        .env("CNI_NETNS", call.netns)
        .env("CNI_IFNAME", call.ifname)
        .env("CNI_PATH", call.binary.parent().unwrap_or(Path::new("/")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    enter_netns_before_exec(&mut command, host);
    command
}

/// Writes the config to a just-started child's stdin and closes it; returns the pid and the
/// output pipes. `child` may then be dropped without waiting: the caller reaps the pid.
pub fn feed(
    child: &mut std::process::Child,
    config: &[u8],
) -> Result<(libc::pid_t, ChildStdout, ChildStderr)> {
    // The config is far below the pipe buffer size, so this never waits for the child.
    let mut stdin = child.stdin.take().context("no stdin pipe")?;
    match stdin.write_all(config) {
        // A plugin may exit without reading stdin (a VERSION answer, an early error);
        // its exit status tells what happened.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.context("writing the config")?,
    }
    drop(stdin);
    let pid = child.id() as libc::pid_t;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let stderr = child.stderr.take().context("no stderr pipe")?;
    Ok((pid, stdout, stderr))
}

/// Runs one call to completion.
pub fn run(call: &Call<'_>, host: &impl AsFd) -> Result<Outcome> {
    let running = spawn(call, host)?;
    let reaped = wait4(running.pid)?;
    Ok(finish(running, reaped))
}

/// Runs many started children to completion, each timed to its own exit: `wait4(-1)`
/// reaps them in exit order, so a slow first child does not inflate the others' times.
/// Only call this when no other child of this process is running.
pub fn wait_all(children: Vec<Running>) -> Result<Vec<Outcome>> {
    let mut pending: HashMap<libc::pid_t, Running> =
        children.into_iter().map(|c| (c.pid, c)).collect();
    let mut outcomes = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let reaped = wait4(-1)?;
        if let Some(running) = pending.remove(&reaped.pid) {
            outcomes.push(finish(running, reaped));
        }
    }
    Ok(outcomes)
}

struct Reaped {
    pid: libc::pid_t,
    at: Instant,
    status: libc::c_int,
    max_rss_kib: u64,
    cpu: Duration,
    read_kib: u64,
    major_faults: u64,
}

fn wait4(pid: libc::pid_t) -> Result<Reaped> {
    let mut status = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals of the right types.
        let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        let at = Instant::now();
        if got > 0 {
            return Ok(Reaped {
                pid: got,
                at,
                status,
                max_rss_kib: usage.ru_maxrss as u64,
                cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
                // In 512-byte blocks.
                read_kib: usage.ru_inblock as u64 / 2,
                major_faults: usage.ru_majflt as u64,
            });
        }
        let err = std::io::Error::last_os_error();
        // EINTR: a stop signal arrived; the children got it too and will exit, so keep
        // reaping them rather than leaving zombies holding namespaces.
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err).context("wait4");
        }
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
}

fn finish(mut running: Running, reaped: Reaped) -> Outcome {
    Outcome {
        elapsed: reaped.at.duration_since(running.start),
        max_rss_kib: reaped.max_rss_kib,
        cpu: reaped.cpu,
        read_kib: reaped.read_kib,
        major_faults: reaped.major_faults,
        success: exited_zero(reaped.status),
        output: collect_output(&mut running.stdout, &mut running.stderr),
    }
}

/// Whether a wait status is a normal exit with status 0.
pub fn exited_zero(status: libc::c_int) -> bool {
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// stdout then stderr of an exited child.
pub fn collect_output(stdout: &mut ChildStdout, stderr: &mut ChildStderr) -> String {
    let mut output = String::new();
    // The child has exited, so these reads end at once; they only collect diagnostics.
    let _ = stdout.read_to_string(&mut output);
    let _ = stderr.read_to_string(&mut output);
    output
}

/// Makes `command` join `netns` in the child, between fork and exec.
pub fn enter_netns_before_exec(command: &mut Command, netns: &impl AsFd) {
    let fd = netns.as_fd().as_raw_fd();
    // SAFETY: runs in the forked child, where only async-signal-safe calls are allowed:
    // one raw syscall, and io::Error::last_os_error does not allocate. The fd belongs to
    // a guard that outlives the spawn; O_CLOEXEC closes it only at exec, after setns.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Raises the soft open-file limit to the hard one: 200 concurrent plugins hold two
/// pipes each plus 200 container namespaces.
pub fn raise_fd_limit() {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
