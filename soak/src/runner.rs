//! Runs one plugin call as a runtime would, in the lab's host netns, and can SIGKILL it
//! part-way through: the whole process group (the plugin and the IPAM plugin or firewall
//! tool it started), or the plugin alone, as libcni's context timeout does (Go's
//! `exec.CommandContext` kills the direct child only), leaving its children running.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use cni_conformance::{Invocation, Netns};
use nix::sys::signal::{Signal, kill as kill_pid, killpg};
use nix::unistd::Pid;
use serde_json::Value;

/// A plugin that runs this long is hung: killed, and reported.
const HANG_TIMEOUT: Duration = Duration::from_secs(30);

/// When and how to SIGKILL a call.
#[derive(Debug, Clone, Copy)]
pub struct Kill {
    pub after: Duration,
    /// Only the plugin's own process, not its process group.
    pub plugin_only: bool,
}

/// What one call did.
#[derive(Debug)]
pub struct Outcome {
    /// The exit code; `None` when a signal ended it.
    pub exit: Option<i32>,
    /// We sent the SIGKILL (planned, or for a hang) before it exited.
    pub killed: bool,
    pub hung: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.exit == Some(0)
    }

    /// Ended by our planned SIGKILL (not a hang, not a normal exit).
    pub fn was_killed(&self) -> bool {
        self.killed && !self.hung && self.exit.is_none()
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.stdout).ok()
    }

    /// Everything about the call, for a failure report.
    pub fn describe(&self) -> String {
        format!(
            "exit {:?}{}{}\n  stdout: {}\n  stderr: {}",
            self.exit,
            if self.killed { " (sigkilled)" } else { "" },
            if self.hung { " (hung)" } else { "" },
            self.stdout.trim(),
            self.stderr.trim().replace('\n', "\n          ")
        )
    }
}

/// Runs `binary` in `host` (or in our own netns when `None`: an IPAM plugin that talks to
/// a store on loopback) with `invocation`'s environment and `stdin`, from `workdir`;
/// sends SIGKILL as `kill` says if it is still running then (a hang always gets one, to
/// the whole group).
pub fn run(
    host: Option<&Netns>,
    workdir: &Path,
    binary: &Path,
    invocation: &Invocation,
    stdin: &[u8],
    kill: Option<Kill>,
) -> Outcome {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .envs(invocation.environment(binary))
        .current_dir(workdir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(host) = host {
        host.enter_before_exec(&mut command);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            return Outcome {
                exit: Some(-1),
                killed: false,
                hung: false,
                stdout: String::new(),
                stderr: format!("cannot start {}: {err}", binary.display()),
            };
        }
    };
    let pid = Pid::from_raw(child.id() as i32);
    let input = stdin.to_vec();
    let mut pipe_in = child.stdin.take();
    let writer = thread::spawn(move || {
        if let Some(pipe) = pipe_in.as_mut() {
            // A plugin may exit (or be killed) before reading: not our failure.
            let _ = pipe.write_all(&input);
        }
    });
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());

    let started = Instant::now();
    let (mut killed, mut hung) = (false, false);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        let elapsed = started.elapsed();
        let planned = kill.filter(|k| elapsed >= k.after);
        if (planned.is_some() || elapsed >= HANG_TIMEOUT) && !killed {
            hung = planned.is_none();
            // The group id is the child's pid (process_group(0)); it is not reaped yet,
            // so neither id can have been reused.
            let _ = if planned.is_some_and(|k| k.plugin_only) {
                kill_pid(pid, Signal::SIGKILL)
            } else {
                killpg(pid, Signal::SIGKILL)
            };
            killed = true;
        }
        thread::sleep(Duration::from_millis(1));
    };
    let _ = writer.join();
    // A child the plugin started (its IPAM plugin) inherits its stderr: after killing the
    // plugin alone, a runtime does not wait for that orphan, so neither do we.
    let orphans_possible = killed && kill.is_some_and(|k| k.plugin_only);
    Outcome {
        exit: status.and_then(|s| s.code()),
        killed,
        hung,
        stdout: stdout.join().unwrap_or_default(),
        stderr: if orphans_possible {
            "(not collected: an orphaned child may still hold it)".to_owned()
        } else {
            stderr.join().unwrap_or_default()
        },
    }
}

fn reader(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
