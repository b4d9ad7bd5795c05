//! The memory of one call, under ptrace: the private memory and the real peak RSS of every
//! program image the call exec'ed (the plugin and, for bridge and macvlan, its IPAM child).
//!
//! What is read, from `/proc/<pid>/status` while each process is stopped at its exit
//! (PTRACE_EVENT_EXIT, before the kernel drops its mm): `RssAnon`, the anonymous pages
//! (heap, stacks, written data) that are the process's own, which the memory target is
//! about; and `VmHWM`, the high-water mark of its whole RSS, which is mostly file pages
//! shared with every other process mapping the same binary and libc. Exec makes a fresh
//! mm, so both count the exec'ed image only. Fork, vfork and clone are followed, so the IPAM child
//! and every thread are seen; the call's peak is the largest mark of any of its processes.
//! ptrace slows every stop, so this runs in its own untimed pass, never on a timed call.
//!
//! Why not `ru_maxrss` from `wait4`, which the timed calls get for free (measured on this
//! machine, Linux 6.18, with a static C spawner and with cni-bench):
//!
//! - It can carry the parent's memory. At exec the kernel folds the *old* mm's mark into
//!   the process's maxrss (fs/exec.c, `exec_mmap` → `setmax_mm_hiwater_rss`): `/bin/true`
//!   forked from a process with 50 MB touched reports 51 528 KiB (904 KiB from an idle
//!   one), and 52 476 KiB when started with `posix_spawn`, i.e. vfork, as our bridge starts
//!   host-local. cni-bench itself is small enough that this floor (≈ 1 000 KiB, printed in
//!   the report each run) stays below every plugin, so it did not inflate the figures
//!   in practice; the traced mark cannot carry it by construction.
//! - It reads low. For the same process, `ru_maxrss` came out 30–200 KiB *below* the RSS
//!   it still had at its exit stop (`/bin/true`: 860 KiB against 1 060; `VmRSS` there equals
//!   the page-table walk of `smaps_rollup`), which a high-water mark cannot be. Likely cause,
//!   not proven: the exit path reads the mm's per-CPU RSS counters without folding in the
//!   per-CPU deltas, while `/proc/<pid>/status` sums them.

use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;

use anyhow::{Context, Result, bail};

use crate::spawn::{self, Call};

/// The memory of one process (or, for a call, the largest of its processes'), in KiB.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Memory {
    /// `VmHWM`: peak RSS, file pages included.
    pub peak_kib: u64,
    /// `RssAnon` at exit: private memory.
    pub private_kib: u64,
}

impl Memory {
    /// The larger of each figure.
    fn max(self, other: Memory) -> Memory {
        Memory {
            peak_kib: self.peak_kib.max(other.peak_kib),
            private_kib: self.private_kib.max(other.private_kib),
        }
    }
}

/// One traced call.
pub struct Traced {
    /// Largest figures of any process of the call.
    pub memory: Memory,
    pub success: bool,
    /// stdout then stderr, kept for failure messages.
    pub output: String,
}

/// Runs `call` inside `host` to completion under ptrace. Reaps with `waitpid(-1)`, so only
/// call this when no other child of this process is running.
pub fn run_traced(call: &Call<'_>, host: &impl AsFd) -> Result<Traced> {
    let mut command = spawn::command(call, host);
    // SAFETY: runs in the forked child after the setns hook: one raw syscall, and
    // io::Error::last_os_error does not allocate. With PTRACE_TRACEME the exec below stops
    // the child with SIGTRAP before the new image runs an instruction.
    unsafe {
        command.pre_exec(|| {
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", call.binary.display()))?;
    let (root, mut stdout, mut stderr) = spawn::feed(&mut child, call.config)?;
    let mut memory = Memory::default();
    let mut root_status = None;
    let mut options_set = false;
    loop {
        let mut status = 0;
        // SAFETY: the pointer is to a live local. __WALL: tracees that are not our children
        // (the IPAM child) and threads are reported too.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if pid == -1 {
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                // A stop signal: the tracees got it too and will exit; keep reaping.
                Some(libc::EINTR) => continue,
                // Every tracee is gone.
                Some(libc::ECHILD) => break,
                _ => return Err(err).context("waitpid"),
            }
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            if pid == root {
                root_status = Some(status);
            }
            continue;
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let signal = libc::WSTOPSIG(status);
        let event = status >> 16;
        let inject = if event == libc::PTRACE_EVENT_EXIT {
            memory = memory.max(exit_memory(pid));
            0
        } else if event != 0 {
            // Fork, vfork, clone or exec: the new process is traced already.
            0
        } else if pid == root && signal == libc::SIGTRAP && !options_set {
            // The stop after the first exec: from here on, follow everything.
            let options = libc::PTRACE_O_TRACEEXIT
                | libc::PTRACE_O_TRACEFORK
                | libc::PTRACE_O_TRACEVFORK
                | libc::PTRACE_O_TRACECLONE
                | libc::PTRACE_O_TRACEEXEC
                | libc::PTRACE_O_EXITKILL;
            // SAFETY: PTRACE_SETOPTIONS on our stopped tracee; no pointers involved.
            if unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, options) } == -1 {
                return Err(std::io::Error::last_os_error()).context("PTRACE_SETOPTIONS");
            }
            options_set = true;
            0
        } else if signal == libc::SIGSTOP {
            // The initial stop of an auto-attached process; a plugin is never sent SIGSTOP.
            0
        } else {
            // A real signal (Go's runtime sends itself SIGURG): deliver it.
            signal
        };
        // SAFETY: resumes a stopped tracee; no pointers involved. ESRCH (the tracee was
        // killed meanwhile, e.g. by SIGKILL) is harmless: waitpid reports its end.
        unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, inject) };
    }
    let status = root_status.context("the traced plugin was never reaped")?;
    if memory.peak_kib == 0 {
        bail!("no VmHWM read for {}", call.binary.display());
    }
    Ok(Traced {
        memory,
        success: spawn::exited_zero(status),
        output: spawn::collect_output(&mut stdout, &mut stderr),
    })
}

/// The memory of a process stopped at its exit (zeros where unreadable).
fn exit_memory(pid: libc::pid_t) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    Memory {
        peak_kib: status_kib(&status, "VmHWM:"),
        private_kib: status_kib(&status, "RssAnon:"),
    }
}

/// The value of a `<field> <n> kB` line of `/proc/<pid>/status`, 0 if absent.
fn status_kib(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\tloopback\nVmHWM:\t    1696 kB\nRssAnon:\t     148 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), 1696);
        assert_eq!(status_kib(status, "RssAnon:"), 148);
        assert_eq!(status_kib(status, "RssShmem:"), 0);
    }

    #[test]
    fn a_call_keeps_the_largest_of_each_figure() {
        let plugin = Memory {
            peak_kib: 1700,
            private_kib: 150,
        };
        let ipam = Memory {
            peak_kib: 1500,
            private_kib: 300,
        };
        assert_eq!(
            plugin.max(ipam),
            Memory {
                peak_kib: 1700,
                private_kib: 300
            }
        );
    }
}
