//! Delegating to the IPAM plugin: ADD started early and finished later (so it runs while
//! the plugin builds its links), with its DEL as the undo; STATUS and GC forwarded.

use crate::{Rollback, fault_point};
use cni::error::code;
use cni::invoke::Pending;
use cni::{CmdArgs, CniResult, Command, Dns, Error, NetConf, Request, Result, Version};

/// Starts IPAM ADD (it runs while the caller creates the link: the two are independent,
/// and in series IPAM's process start was a third of ADD) and registers its DEL as the
/// undo. Declare the returned [`Pending`] after the [`Rollback`]: on an early return it is
/// dropped first, which waits for the process, before the undo releases what it took.
pub fn start_ipam<C>(req: &Request<C>, ipam: &str, rollback: &mut Rollback) -> Result<Pending> {
    let mut pending = cni::invoke::spawn_delegate(ipam, Command::Add, &req.args)?;
    pending.send();
    let (name, args) = (ipam.to_owned(), req.args.clone());
    rollback.push("IPAM reservation", move || {
        cni::invoke::delegate(&name, Command::Del, &args).map(drop)
    });
    Ok(pending)
}

/// [`start_ipam`] when the config names an IPAM plugin; `None` without one (L2 mode).
pub fn start_configured_ipam<C>(
    req: &Request<C>,
    rollback: &mut Rollback,
) -> Result<Option<Pending>> {
    req.net
        .ipam_type()
        .map(|ipam| start_ipam(req, ipam, rollback))
        .transpose()
}

/// The result of [`start_ipam`]; no IP is an error. `plugin` prefixes the fault point
/// `<plugin>-after-ipam`.
pub fn finish_ipam(pending: Pending, version: Version, plugin: &'static str) -> Result<CniResult> {
    let result = pending.finish_add(version)?;
    fault_point(&format!("{plugin}-after-ipam"))?;
    if result.ips.is_empty() {
        return Err(Error::plugin(
            code::DELEGATE,
            "IPAM plugin returned missing IP config",
            None,
        ));
    }
    Ok(result)
}

/// The result's DNS: the top-level `dns` when set, else what IPAM (or the prevResult)
/// gave. The reference keeps only the top-level one and drops e.g. host-local's
/// `resolvConf` (docs/reference.md#defect-9).
pub fn result_dns(net: &NetConf, from_ipam: Dns) -> Dns {
    net.dns
        .clone()
        .filter(|d| !d.is_empty())
        .unwrap_or(from_ipam)
}

/// STATUS and GC are IPAM's business (the spec requires forwarding GC; the reference
/// does not). Without IPAM there is nothing to report or collect.
pub fn forward_to_ipam(net: &NetConf, args: &CmdArgs, command: Command) -> Result<()> {
    match net.ipam_type() {
        Some(ipam) => cni::invoke::delegate(ipam, command, args).map(drop),
        None => Ok(()),
    }
}
