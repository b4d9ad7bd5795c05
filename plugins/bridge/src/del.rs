//! Bridge DEL and GC. DEL is best effort and idempotent: it does every step, whatever
//! failed before, and reports all failures at once — runtimes retry a failing DEL forever,
//! so it must succeed on half-made state (an ADD killed between steps), an empty
//! `CNI_NETNS`, a vanished netns or interface. Masquerade and spoof-check state is found by
//! attachment, so it is removed even without the netns (reference defect #810).

use crate::config::{BridgeConfig, Settings};
use cni::{Command, Error, Request, Result};
use cni_netlink::{Handle, Netns};
use cni_plugin_support::kernel_error;

pub(crate) fn del(req: &Request<BridgeConfig>, s: &Settings) -> Result<()> {
    let mut errors = Vec::new();
    if let Some(path) = &req.args.netns {
        if let Err(e) = delete_container_link(path, &req.args.ifname) {
            errors.push(e);
        }
    }
    if let Some(ipam) = &s.ipam_type {
        if let Err(e) = cni::invoke::delegate(ipam, Command::Del, &req.args) {
            errors.push(e);
        }
    }
    if s.macspoofchk {
        if let Err(e) = cni_firewall::teardown_spoofcheck(&req.args.container_id, &req.args.ifname)
        {
            errors.push(crate::firewall_error(e));
        }
    }
    if s.ip_masq && s.ipam_type.is_some() {
        if let Err(e) = cni_firewall::teardown_masquerade(
            &req.net.name,
            &req.args.container_id,
            &req.args.ifname,
        ) {
            errors.push(crate::firewall_error(e));
        }
    }
    combine(errors)
}

/// Deletes the container end (the host end goes with it). A missing netns or link is
/// already the goal state.
fn delete_container_link(path: &std::path::Path, ifname: &str) -> Result<()> {
    let netns = match Netns::from_path(path) {
        Ok(netns) => netns,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(kernel_error(e)),
    };
    let container = Handle::for_netns(&netns).map_err(kernel_error)?;
    let link = match container.link_by_name(ifname) {
        Ok(link) => link,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(kernel_error(e)),
    };
    match container.delete_link(link.index) {
        Err(e) if !e.is_not_found() => Err(kernel_error(e)),
        _ => Ok(()),
    }
}

/// GC (1.1.0): forwarded to IPAM (the spec requires it; the reference does not), then the
/// masquerade and spoof-check state of attachments not in `cni.dev/valid-attachments`.
pub(crate) fn gc(req: &Request<BridgeConfig>, s: &Settings) -> Result<()> {
    let valid = req.net.valid_attachments.clone().unwrap_or_default();
    let valid: Vec<(&str, &str)> = valid
        .iter()
        .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
        .collect();
    let mut errors = Vec::new();
    if let Some(ipam) = &s.ipam_type {
        if let Err(e) = cni::invoke::delegate(ipam, Command::Gc, &req.args) {
            errors.push(e);
        }
    }
    if let Err(e) = cni_firewall::gc_masquerade(&req.net.name, &valid) {
        errors.push(crate::firewall_error(e));
    }
    if s.macspoofchk {
        if let Err(e) = cni_firewall::gc_spoofcheck(&valid) {
            errors.push(crate::firewall_error(e));
        }
    }
    combine(errors)
}

/// One error for many: the first one's code, every message in the details.
fn combine(mut errors: Vec<Error>) -> Result<()> {
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
