//! Network namespaces as open file descriptors, and running code inside one.
//!
//! A [`Netns`] owns an `O_CLOEXEC` descriptor of an nsfs file (`/var/run/netns/x`,
//! `/proc/<pid>/ns/net`). [`Netns::run`] is the only way this crate enters a namespace: it
//! enters on the calling thread and a guard brings the thread back however the work ends.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::statfs::{NSFS_MAGIC, PROC_SUPER_MAGIC, fstatfs};

use crate::error::{Error, Result};

/// The calling thread's own netns. `/proc/self/ns/net` would name the *main* thread's
/// netns, which differs as soon as any thread has called setns or unshare (docs/design.md#entering-a-netns).
const THREAD_SELF_NETNS: &str = "/proc/thread-self/ns/net";

/// An open network namespace.
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
    path: PathBuf,
}

impl Netns {
    /// Opens the netns at `path` (read-only, `O_CLOEXEC`, `O_NONBLOCK`, `O_NOCTTY`).
    ///
    /// Like Go's `ns.GetNS`, the file must live on nsfs (a bind mount made by `ip netns add`)
    /// or procfs (`/proc/<pid>/ns/net`); anything else is [`Error::NotNetns`]. A missing
    /// path is [`Error::NetnsNotFound`], which CNI DEL treats as "already gone".
    ///
    /// The open never waits: a FIFO opened for reading blocks until a writer appears, and a
    /// `CNI_NETNS` naming one would hang the plugin before the nsfs check could refuse it.
    /// `O_NONBLOCK` makes that open return at once (and is meaningless on an nsfs file);
    /// `O_NOCTTY` keeps a terminal device from becoming our controlling terminal.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        // std opens with O_CLOEXEC, so plugin children (iptables, IPAM) do not inherit it.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|source| {
                if source.kind() == io::ErrorKind::NotFound {
                    Error::NetnsNotFound {
                        path: path.to_owned(),
                    }
                } else {
                    Error::io("open netns", path.display().to_string(), source)
                }
            })?;
        let stat = fstatfs(&file)
            .map_err(|errno| Error::io("statfs netns", path.display().to_string(), errno.into()))?;
        let magic = stat.filesystem_type();
        if magic != NSFS_MAGIC && magic != PROC_SUPER_MAGIC {
            return Err(Error::NotNetns {
                path: path.to_owned(),
                // fs_type_t is a signed or unsigned word depending on the libc; the magic
                // numbers are small positive constants either way.
                magic: magic.0 as i64,
            });
        }
        Ok(Netns {
            fd: file.into(),
            path: path.to_owned(),
        })
    }

    /// The calling thread's netns (`/proc/thread-self/ns/net`).
    pub fn current() -> Result<Self> {
        Self::from_path(THREAD_SELF_NETNS)
    }

    /// The path this netns was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` inside this netns and returns its value.
    ///
    /// The calling thread enters the netns (`setns(fd, CLONE_NEWNET)`) and goes back to the
    /// netns it was in when `f` returns, unwinds from a panic, or fails: a guard restores it
    /// on drop, so a `?` or a panic inside `f` cannot leave the thread in this netns.
    /// Anything opened inside (a netlink socket, a `/proc/sys` file) stays bound to this
    /// netns afterwards.
    ///
    /// This deliberately departs from a scoped thread per call (docs/design.md#entering-a-netns): a
    /// thread start pulls glibc's thread creation and exit code (pthread, TLS teardown,
    /// resolver and RPC clean-up) and a second malloc arena into a plugin's resident set,
    /// about 0.2 MB of a 2 MB loopback call, for no gain in a single-threaded plugin. Cost
    /// here: an open, a statfs and two setns calls.
    ///
    /// If the thread cannot return to its netns the process aborts: nothing it did after
    /// that point could be trusted to land in the right namespace.
    pub fn run<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R,
    {
        let home = Netns::current()?;
        enter(self)?;
        let _return_home = ReturnTo(home);
        Ok(f())
    }

    /// Whether both handles name the same namespace (same nsfs inode), e.g. to refuse a
    /// "container" netns that is really the host's.
    pub fn is_same(&self, other: &Netns) -> Result<bool> {
        let ino = |ns: &Netns| {
            nix::sys::stat::fstat(ns.fd.as_fd())
                .map(|st| (st.st_dev, st.st_ino))
                .map_err(|errno| {
                    Error::io("stat netns", ns.path.display().to_string(), errno.into())
                })
        };
        Ok(ino(self)? == ino(other)?)
    }
}

/// Puts the calling thread into `netns`.
fn enter(netns: &Netns) -> Result<()> {
    nix::sched::setns(netns.fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|errno| {
        Error::io(
            "enter netns",
            netns.path.display().to_string(),
            errno.into(),
        )
    })
}

/// Moves the thread back into the netns it holds when dropped ([`Netns::run`]).
struct ReturnTo(Netns);

impl Drop for ReturnTo {
    fn drop(&mut self) {
        if let Err(err) = enter(&self.0) {
            eprintln!("cannot return to the original network namespace: {err}");
            std::process::abort();
        }
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
