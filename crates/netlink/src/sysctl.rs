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

use std::io;
use std::path::PathBuf;

use crate::error::{Error, Result};

const PROC_SYS: &str = "/proc/sys";

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
    match std::fs::read_to_string(&path) {
        Ok(value) => Ok(value.trim_end_matches('\n').to_owned()),
        Err(source) => Err(map_err("read sysctl", name, path, source)),
    }
}

/// Writes a sysctl. A missing key is [`Error::SysctlNotFound`]; a read-only `/proc/sys`
/// (a container without `CAP_SYS_ADMIN` over its netns) is an [`Error::Io`] with EROFS or
/// EACCES.
pub fn write(name: &str, value: &str) -> Result<()> {
    let path = path_of(name);
    // No O_CREAT and no truncation games: a /proc/sys file takes the value in one write.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
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
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map(drop)
        .map_err(|source| map_err("open sysctl for writing", name, path, source))
}

/// Writes `value` only if the current value differs (netavark's and the Go plugins'
/// `ip_forward` behaviour: no write, so no EROFS, when it is already right). Returns
/// whether it wrote.
///
/// One open serves the read and the write. Why: every netns has its own `ipv4`/`ipv6`
/// dentry under the one shared `/proc/sys/net` dentry, in one dcache hash chain, newest
/// first, and the kernel's `proc_sys_compare` rejects the others one by one; an open from an
/// old netns (the host's, on a node) walks past every netns made since (≈ 0.13 ms with 1 000
/// pods, 0.57 ms with 3 000, against 8 µs; bench/analysis.md, "Density").
pub fn ensure(name: &str, value: &str) -> Result<bool> {
    let path = path_of(name);
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
    {
        Ok(file) => file,
        // Read-only here (a key that is not per netns, a read-only /proc/sys): fine if the
        // value is already right.
        Err(source)
            if matches!(
                source.raw_os_error(),
                Some(libc::EACCES | libc::EROFS | libc::EPERM)
            ) =>
        {
            if read(name)?.trim() == value.trim() {
                return Ok(false);
            }
            return Err(map_err("write sysctl", name, path, source));
        }
        Err(source) => return Err(map_err("read sysctl", name, path, source)),
    };
    let mut current = String::new();
    io::Read::read_to_string(&mut file, &mut current)
        .map_err(|source| map_err("read sysctl", name, path.clone(), source))?;
    if current.trim() == value.trim() {
        return Ok(false);
    }
    // At offset 0: with `kernel.sysctl_writes_strict` a write past the start is ignored.
    std::os::unix::fs::FileExt::write_all_at(&file, value.as_bytes(), 0)
        .map_err(|source| map_err("write sysctl", name, path, source))?;
    log::info!("sysctl {name} = {value}");
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
