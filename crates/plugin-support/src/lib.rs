//! What the interface plugins share, so each stays thin: the one mapping from kernel errors
//! to CNI codes ([`kernel_error`]), the ADD undo stack ([`Rollback`]) and ADD's last step
//! ([`finish_add`]), DEL's common part ([`delete_link_and_release_ip`]), the test-only
//! fault points ([`fault_point`]), configuring addresses and routes inside a container
//! ([`configure_iface`], the reference's `ConfigureIface`), the container netns and its
//! sockets ([`Namespaces`]), delegation to IPAM ([`ipam`]), CHECK's comparisons
//! ([`check`]) and the sub-interface plugins' own steps ([`sublink`]).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod check;
mod iface;
pub mod ipam;
mod namespaces;
mod rollback;
pub mod sublink;

pub use iface::{configure_iface, configure_iface_at, random_link_name};
pub use namespaces::Namespaces;
pub use rollback::Rollback;

use cni::error::code;
use cni::{CmdArgs, CniResult, Command, Error, NetConf, Result, Version};
use cni_netlink::{Handle, Netns};
use std::path::Path;

/// The one place a kernel (netlink, netns, sysctl) error becomes a CNI error: a link kind
/// or feature the kernel lacks is [`code::KERNEL_FEATURE`], anything else [`code::KERNEL`].
pub fn kernel_error(err: cni_netlink::Error) -> cni::Error {
    let code = if err.is_unsupported() {
        code::KERNEL_FEATURE
    } else {
        code::KERNEL
    };
    let details = err
        .errno()
        .map(|errno| std::io::Error::from_raw_os_error(errno).to_string());
    cni::Error::plugin(code, err.to_string(), details)
}

/// A test-only fault point: in debug builds, fails with code 999 when the environment
/// variable `CNI_TEST_FAIL_AT` names this point, so tests can make each ADD step fail in
/// turn and prove the rollback; aborts when `CNI_TEST_KILL_AT` names it, which like a
/// SIGKILL runs no rollback, so tests can prove DEL cleans up after a killed ADD. Release
/// builds compile it to nothing.
pub fn fault_point(name: &str) -> cni::Result<()> {
    #[cfg(debug_assertions)]
    {
        if std::env::var("CNI_TEST_FAIL_AT").is_ok_and(|at| at == name) {
            return Err(cni::Error::internal(format!("injected fault at {name}")));
        }
        if std::env::var("CNI_TEST_KILL_AT").is_ok_and(|at| at == name) {
            std::process::abort();
        }
    }
    let _ = name;
    Ok(())
}

/// ADD's last step: fails now, not after printing, if `result` cannot be expressed in the
/// request's `version` (e.g. L2 with 0.2.0), so that the rollback still removes
/// everything; otherwise keeps everything. `plugin` prefixes the fault point
/// `<plugin>-before-result`.
pub fn finish_add(
    result: CniResult,
    version: Version,
    plugin: &str,
    rollback: Rollback,
) -> Result<CniResult> {
    result.to_value(version)?;
    fault_point(&format!("{plugin}-before-result"))?;
    rollback.commit();
    Ok(result)
}

/// One error for many (DEL and GC do every step and report all failures): the first one's
/// code, every message in the details.
pub fn combine_errors(mut errors: Vec<Error>) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        n => {
            let details = errors
                .iter()
                .map(|e| format!("{} ({})", e.msg(), e.details().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("; ");
            let first = errors.remove(0);
            Err(Error::plugin(
                first.code(),
                format!("{n} cleanup steps failed, first: {}", first.msg()),
                Some(details),
            ))
        }
    }
}

/// DEL's common part: deletes `CNI_IFNAME` in the container, then has IPAM (if any)
/// release the address; each is attempted whatever the other did, and every failure is
/// returned. IPAM starts at once and loads while the kernel deletes the link, but gets its
/// request only once the link is gone: the address is released strictly after the device
/// that used it (plugins #666).
pub fn delete_link_and_release_ip(net: &NetConf, args: &CmdArgs) -> Vec<Error> {
    let mut errors = Vec::new();
    let ipam = net
        .ipam_type()
        .map(|ipam| cni::invoke::spawn_delegate(ipam, Command::Del, args));
    if let Some(path) = &args.netns {
        if let Err(e) = delete_container_link(path, &args.ifname) {
            errors.push(e);
        }
    }
    if let Some(Err(e)) = ipam.map(|pending| pending.and_then(cni::invoke::Pending::finish)) {
        errors.push(e);
    }
    errors
}

/// Deletes `ifname` in the container netns at `path` (a veth's peer goes with it). A
/// missing netns or link is already the goal state: DEL must succeed on it.
pub(crate) fn delete_container_link(path: &Path, ifname: &str) -> Result<()> {
    let netns = match Netns::from_path(path) {
        Ok(netns) => netns,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(kernel_error(e)),
    };
    let container = Handle::for_netns(&netns).map_err(kernel_error)?;
    match container.link_by_name(ifname) {
        Ok(link) => container
            .delete_link_if_present(link.index)
            .map_err(kernel_error),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(kernel_error(e)),
    }
}
