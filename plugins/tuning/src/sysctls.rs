//! The `sysctl` entries, written and read inside the container's netns (a `/proc/sys/net`
//! file belongs to the netns of the thread that opens it, docs/design.md#sysctls-and-child-processes).

use crate::config::Sysctl;
use cni::error::code;
use cni::{Error, Result};
use cni_netlink::{Netns, sysctl};
use cni_plugin_support::kernel_error;

/// A sysctl error: a key the container's netns does not have (a typo, or a key that is
/// not per-netns, which the kernel hides there) or a value it refuses is the
/// configuration's fault (code 7); anything else is the kernel's (code 100).
fn sysctl_error(entry: &Sysctl, err: cni_netlink::Error) -> Error {
    if err.is_not_found() {
        return Error::invalid_config(format!(
            "unknown sysctl {:?}: no /proc/sys/{} in the container's network namespace",
            entry.key, entry.name
        ));
    }
    if err.errno() == Some(libc::EACCES) {
        return Error::invalid_config(format!(
            "sysctl {:?} is read-only in the container's network namespace: it is not per netns",
            entry.key
        ));
    }
    if err.errno() == Some(libc::EINVAL) {
        return Error::invalid_config(format!(
            "invalid value {:?} for sysctl {:?}",
            entry.value, entry.key
        ));
    }
    kernel_error(err)
}

/// The current values of `entries`, in order.
fn read_all(entries: &[Sysctl]) -> Result<Vec<String>> {
    entries
        .iter()
        .map(|e| sysctl::read(&e.name).map_err(|err| sysctl_error(e, err)))
        .collect()
}

/// The current values of `entries`, once each has been found writable.
fn read_all_writable(entries: &[Sysctl]) -> Result<Vec<String>> {
    for entry in entries {
        sysctl::check_writable(&entry.name).map_err(|err| sysctl_error(entry, err))?;
    }
    read_all(entries)
}

/// Writes every entry inside `netns` and returns the values they had, for the undo. All
/// keys are read and opened for writing before the first write, so an unknown or
/// read-only key changes nothing; a write that fails (a value the kernel refuses) puts
/// back the ones written before it.
pub fn apply(netns: &Netns, entries: &[Sysctl]) -> Result<Vec<String>> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    netns
        .run(|| {
            let old = read_all_writable(entries)?;
            for (at, entry) in entries.iter().enumerate() {
                if let Err(err) = sysctl::write(&entry.name, &entry.value) {
                    put_back(&entries[..at], &old);
                    return Err(sysctl_error(entry, err));
                }
            }
            Ok(old)
        })
        .map_err(kernel_error)?
}

/// Writes the old values back inside `netns` (the ADD undo); failures are logged.
pub fn restore(netns: &Netns, entries: &[Sysctl], old: &[String]) -> Result<()> {
    netns.run(|| put_back(entries, old)).map_err(kernel_error)
}

fn put_back(entries: &[Sysctl], old: &[String]) {
    for (entry, value) in entries.iter().zip(old) {
        if let Err(err) = sysctl::write(&entry.name, value) {
            log::warn!("cannot put sysctl {} back to {value:?}: {err}", entry.name);
        }
    }
}

/// CHECK: every entry still has its configured value. Whitespace between words does not
/// count (the kernel prints multi-value sysctls with tabs).
pub fn check(netns: &Netns, entries: &[Sysctl]) -> Result<()> {
    let current = netns.run(|| read_all(entries)).map_err(kernel_error)??;
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for (entry, value) in entries.iter().zip(current) {
        if words(&value) != words(&entry.value) {
            return Err(Error::plugin(
                code::CHECK_FAILED,
                format!(
                    "sysctl {} is {value:?}, the config says {:?}",
                    entry.key, entry.value
                ),
                None,
            ));
        }
    }
    Ok(())
}
