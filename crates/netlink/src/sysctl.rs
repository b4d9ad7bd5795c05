//! Sysctls under `/proc/sys`.
//!
//! `/proc/sys/net` shows the netns of the thread that **opens** the file, so these
//! functions act on the calling thread's netns. To change a container's sysctls, call them
//! inside [`crate::Netns::run`]:
//!
//! ```no_run
//! # fn f(netns: &cni_netlink::Netns) -> cni_netlink::Result<()> {
//! netns.run(|| cni_netlink::sysctl::ensure("net.ipv6.conf.eth0.disable_ipv6", "0"))??;
//! # Ok(()) }
//! ```
//!
//! Names use `.` or `/` separators; the first separator in the name decides, as with
//! `sysctl(8)` and the reference plugins' helper. With `.` separators a `/` stands for a
//! literal dot, so `net.ipv4.conf.eth0/100.forwarding` and
//! `net/ipv4/conf/eth0.100/forwarding` name the same key for the VLAN link `eth0.100`.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};

const PROC_SYS: &str = "/proc/sys";
/// Directories kept open per thread; a plugin touches two or three netns at most.
const CACHED_DIRS: usize = 8;

thread_local! {
    /// `/proc/sys/net/<dir>` directories this thread opened: (netns inode, `<dir>`, fd).
    static NET_DIRS: RefCell<Vec<(u64, String, OwnedFd)>> = const { RefCell::new(Vec::new()) };
}

/// Opens a `/proc/sys` file for reading or writing.
///
/// Files under `net/<dir>/` are opened relative to `/proc/sys/net/<dir>`, kept open per thread
/// and netns. Why: every netns has its own `ipv4`, `ipv6`... dentry under the one shared
/// `/proc/sys/net` dentry, all in one dcache hash chain, and the kernel's `proc_sys_compare`
/// rejects them one by one until it meets the caller's. New ones go first, so a lookup from an
/// old netns (the host's, on a node) walks past every netns made since: with 1 000 pods that
/// is ≈ 0.5 ms per open against 8 µs (bench/analysis.md, "Density"). Below `<dir>` nothing is
/// shared, so one walk per directory and netns is enough.
fn open(path: &Path, write: bool) -> io::Result<File> {
    let flags = OFlag::O_CLOEXEC
        | if write {
            OFlag::O_WRONLY
        } else {
            OFlag::O_RDONLY
        };
    let split = path.strip_prefix("/proc/sys/net").ok().and_then(|rest| {
        let mut parts = rest.iter();
        let dir = parts.next()?.to_str()?.to_owned();
        let file = parts.as_path().to_owned();
        (!file.as_os_str().is_empty()).then_some((dir, file))
    });
    let Some((dir, file)) = split else {
        return std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .open(path);
    };
    let netns = std::fs::metadata("/proc/thread-self/ns/net")?.ino();
    NET_DIRS.with(|dirs| {
        let mut dirs = dirs.borrow_mut();
        // A cached directory of a netns that died, whose inode number a new one reuses,
        // answers ENOENT: it is dropped and the lookup done again.
        for fresh in [false, true] {
            let cached = dirs.iter().position(|(ns, d, _)| *ns == netns && *d == dir);
            let at = match cached {
                Some(at) if !fresh => at,
                _ => {
                    if let Some(at) = cached {
                        dirs.remove(at);
                    }
                    let fd = nix::fcntl::open(
                        &Path::new(PROC_SYS).join("net").join(&dir),
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )?;
                    if dirs.len() == CACHED_DIRS {
                        dirs.remove(0);
                    }
                    dirs.push((netns, dir.clone(), fd));
                    dirs.len() - 1
                }
            };
            match nix::fcntl::openat(dirs[at].2.as_fd(), &file, flags, Mode::empty()) {
                Ok(fd) => return Ok(File::from(fd)),
                Err(nix::errno::Errno::ENOENT) if !fresh && cached.is_some() => continue,
                Err(errno) => return Err(errno.into()),
            }
        }
        Err(io::Error::from(io::ErrorKind::NotFound))
    })
}

/// Maps a sysctl name to its `/proc/sys` path.
pub fn path_of(name: &str) -> PathBuf {
    let relative: String = match name.find(['.', '/']) {
        Some(at) if name.as_bytes()[at] == b'.' => name
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                other => other,
            })
            .collect(),
        _ => name.to_owned(),
    };
    PathBuf::from(PROC_SYS).join(relative.trim_start_matches('/'))
}

fn map_err(op: &'static str, name: &str, path: PathBuf, source: io::Error) -> Error {
    if source.kind() == io::ErrorKind::NotFound {
        Error::SysctlNotFound {
            name: name.to_owned(),
            path,
        }
    } else {
        Error::io(op, format!("sysctl {name} ({})", path.display()), source)
    }
}

/// Reads a sysctl, without the trailing newline. A missing key is
/// [`Error::SysctlNotFound`].
pub fn read(name: &str) -> Result<String> {
    let path = path_of(name);
    let mut value = String::new();
    match open(&path, false).and_then(|mut file| io::Read::read_to_string(&mut file, &mut value)) {
        Ok(_) => Ok(value.trim_end_matches('\n').to_owned()),
        Err(source) => Err(map_err("read sysctl", name, path, source)),
    }
}

/// Writes a sysctl. A missing key is [`Error::SysctlNotFound`]; a read-only `/proc/sys`
/// (a container without `CAP_SYS_ADMIN` over its netns) is an [`Error::Io`] with EROFS or
/// EACCES.
pub fn write(name: &str, value: &str) -> Result<()> {
    let path = path_of(name);
    // No O_CREAT and no truncation games: a /proc/sys file takes the value in one write.
    open(&path, true)
        .and_then(|mut file| io::Write::write_all(&mut file, value.as_bytes()))
        .map_err(|source| map_err("write sysctl", name, path, source))?;
    log::info!("sysctl {name} = {value}");
    Ok(())
}

/// Checks that a sysctl could be written, without writing it: the file is opened for
/// writing and closed. A missing key is [`Error::SysctlNotFound`]; a key the netns shows
/// read-only (one that is not per netns, outside the first netns) is an [`Error::Io`] with
/// EACCES.
pub fn check_writable(name: &str) -> Result<()> {
    let path = path_of(name);
    open(&path, true)
        .map(drop)
        .map_err(|source| map_err("open sysctl for writing", name, path, source))
}

/// Writes `value` only if the current value differs (netavark's and the Go plugins'
/// `ip_forward` behaviour: no write, so no EROFS, when it is already right). Returns
/// whether it wrote.
pub fn ensure(name: &str, value: &str) -> Result<bool> {
    if read(name)?.trim() == value.trim() {
        return Ok(false);
    }
    write(name, value)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_separator_decides() {
        let cases = [
            ("net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward"),
            ("net/ipv4/ip_forward", "/proc/sys/net/ipv4/ip_forward"),
            (
                "net/ipv4/conf/eth0.100/forwarding",
                "/proc/sys/net/ipv4/conf/eth0.100/forwarding",
            ),
            (
                "net.ipv4.conf.eth0/100.forwarding",
                "/proc/sys/net/ipv4/conf/eth0.100/forwarding",
            ),
            (
                "/net/ipv6/conf/all/forwarding",
                "/proc/sys/net/ipv6/conf/all/forwarding",
            ),
            ("kernel", "/proc/sys/kernel"),
        ];
        for (name, path) in cases {
            assert_eq!(path_of(name), PathBuf::from(path), "{name}");
        }
    }

    #[test]
    fn missing_key_is_its_own_kind() {
        let err = read("net.ipv4.conf.no-such-link-x.forwarding").unwrap_err();
        assert!(matches!(err, Error::SysctlNotFound { .. }), "{err}");
        assert!(err.is_not_found());
    }
}
