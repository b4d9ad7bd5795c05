//! Running `nft`, `iptables` and friends: the only place in the crate that spawns processes.
//!
//! Children inherit the *calling thread's* network namespace (fork copies the thread's
//! namespaces), so callers pick the netns by choosing the thread; this module never enters one.
//! Like the Go plugins we exec the binaries to change rules rather than speak nf_tables netlink
//! ourselves; only the masquerade chain, which grows with the node's attachments, is read over
//! netlink (`masq/nftables.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// Finds `program`. Runtimes normally pass `PATH` to plugins, and then `Command` searches it.
/// Without `PATH`, glibc's `execvp` falls back to `/bin:/usr/bin`, which misses Debian's
/// `/usr/sbin/nft` and `/usr/sbin/iptables`, so we look in the sbin directories ourselves.
fn resolve(program: &str) -> PathBuf {
    if std::env::var_os("PATH").is_none() {
        for dir in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
            let candidate = Path::new(dir).join(program);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from(program)
}

#[cfg(test)]
thread_local! {
    /// Processes spawned by this thread, so tests can pin the cost of each operation.
    static SPAWNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Returns and resets the number of processes this thread has spawned.
#[cfg(test)]
pub(crate) fn take_spawn_count() -> usize {
    SPAWNS.with(|s| s.replace(0))
}

/// Runs `program args...`, feeding `stdin` if given, and returns its stdout.
///
/// A missing program is [`Error::NotAvailable`] for `backend`; a non-zero exit is
/// [`Error::CommandFailed`] carrying the status and stderr.
pub(crate) fn run(
    program: &'static str,
    backend: &'static str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String> {
    #[cfg(test)]
    SPAWNS.with(|s| s.set(s.get() + 1));
    log::debug!("exec: {program} {}", args.join(" "));
    if let Some(script) = stdin {
        log::debug!("exec: {program} stdin:\n{script}");
    }

    let mut child = Command::new(resolve(program))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => Error::NotAvailable { backend },
            _ => Error::Spawn { program, source },
        })?;

    if let (Some(script), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // The scripts are a few KiB at most, well under the pipe buffer, so writing everything
        // before reading the output cannot deadlock. A write error (the child exited early) is
        // left for the exit status and stderr to explain.
        if let Err(e) = pipe.write_all(script.as_bytes()) {
            log::debug!("exec: writing {program} stdin: {e}");
        }
        // Dropping the pipe closes it, so the child sees end of input.
    }

    let output = child
        .wait_with_output()
        .map_err(|source| Error::Spawn { program, source })?;
    if !output.status.success() {
        return Err(Error::CommandFailed {
            program,
            args: args.join(" "),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    String::from_utf8(output.stdout).map_err(|e| Error::UnexpectedOutput {
        program,
        reason: format!("stdout is not UTF-8: {e}"),
    })
}
