//! The CNI `tuning` meta plugin (docs/reference.md#tuning): chained after a plugin that made
//! `CNI_IFNAME`, it writes `net.*` sysctls in the container and changes the interface's
//! MAC, MTU, promiscuous and all-multicast modes and queue length, then passes the
//! `prevResult` on. The original link attributes are saved in the reference's file and put
//! back by DEL.
//!
//! Where it does better than the reference, each pinned by a test in `tests/tuning.rs`:
//! * ADD is all or nothing: every key and value is checked before the first change, and a
//!   failure after it puts back the sysctls and link attributes already changed and the
//!   saved-state file (the reference leaves them);
//! * DEL reports a failed restore (and keeps the file for the retry) instead of ignoring
//!   it, and removes the file when the netns or the interface is gone;
//! * CHECK compares MACs as addresses, not as text, and sysctl values word by word.

mod allowlist;
mod config;
mod saved;
mod sysctls;

pub use config::TuningConfig;

use cni::error::code;
use cni::{CniResult, Error, Plugin, Request, Result};
use cni_netlink::{Handle, Link, Netns, format_mac};
use cni_plugin_support::check::check_failed;
use cni_plugin_support::{Rollback, fault_point, kernel_error};
use config::{LinkSettings, Settings};
use saved::SavedLink;
use std::rc::Rc;

/// The tuning plugin.
pub struct Tuning;

impl Plugin for Tuning {
    type Config = TuningConfig;

    fn add(&self, req: Request<TuningConfig>) -> Result<CniResult> {
        let settings = Settings::from_request(&req)?;
        allowlist::check(settings.sysctls.iter().map(|s| s.key.as_str()))?;
        let mut result = prev_result(&req)?;
        let netns = Rc::new(container_netns(&req)?);
        let mut rollback = Rollback::new();

        let old = sysctls::apply(&netns, &settings.sysctls)?;
        let undo_netns = Rc::clone(&netns);
        let entries = settings.sysctls.clone();
        rollback.push("sysctls", move || {
            sysctls::restore(&undo_netns, &entries, &old)
        });
        fault_point("tuning-after-sysctls")?;

        if settings.link.any() {
            let handle = Rc::new(Handle::for_netns(&netns).map_err(kernel_error)?);
            let link = container_link(&handle, &req.args.ifname)?;
            save_and_change_link(&req, &settings, handle, &link, &mut rollback)?;
        }
        if let Some(mac) = settings.link.mac {
            for iface in result.interfaces.iter_mut() {
                if iface.name == req.args.ifname {
                    iface.mac = Some(format_mac(&mac));
                }
            }
        }
        // Fail now, not after printing, if the result cannot be expressed in the request's
        // version: the rollback still puts everything back.
        result.to_value(req.net.cni_version)?;
        fault_point("tuning-before-result")?;
        rollback.commit();
        Ok(result)
    }

    fn del(&self, req: Request<TuningConfig>) -> Result<()> {
        let path = saved::file_path(
            &config::data_dir(&req.config),
            &req.args.container_id,
            &req.args.ifname,
        );
        let Some(bytes) = saved::read(&path)? else {
            return Ok(());
        };
        // Nothing to put back once the netns or the interface is gone: the file goes.
        let Some(netns_path) = req.args.netns.as_deref() else {
            return saved::remove(&path);
        };
        let netns = match Netns::from_path(netns_path) {
            Err(e) if e.is_not_found() => return saved::remove(&path),
            other => other.map_err(kernel_error)?,
        };
        let handle = Handle::for_netns(&netns).map_err(kernel_error)?;
        let link = match handle.link_by_name(&req.args.ifname) {
            Err(e) if e.is_not_found() => return saved::remove(&path),
            other => other.map_err(kernel_error)?,
        };
        match serde_json::from_slice::<SavedLink>(&bytes) {
            Ok(saved) => saved.restore(&handle, &link)?,
            Err(e) => log::warn!(
                "{} is not a saved-state file, removing it: {e}",
                path.display()
            ),
        }
        saved::remove(&path)
    }

    fn check(&self, req: Request<TuningConfig>) -> Result<()> {
        let settings = Settings::from_request(&req)?;
        prev_result(&req)?;
        let netns = container_netns(&req)?;
        let handle = Handle::for_netns(&netns).map_err(kernel_error)?;
        let link = handle.link_by_name(&req.args.ifname).map_err(|e| {
            if e.is_not_found() {
                check_failed(format!("cannot find container link {}", req.args.ifname))
            } else {
                kernel_error(e)
            }
        })?;
        sysctls::check(&netns, &settings.sysctls)?;
        check_link(&link, &settings.link)
    }

    // STATUS: always ready (the default). GC: the default, nothing: the saved-state files
    // do not record their network, so a file of an attachment missing from one network's
    // valid list may belong to another network's live attachment.
}

/// The `prevResult` in the request's version: a chained plugin needs one (code 7).
fn prev_result(req: &Request<TuningConfig>) -> Result<CniResult> {
    req.net.required_prev_result("required prevResult missing")
}

/// The container's netns (`CNI_NETNS`, which the dispatcher requires for ADD and CHECK).
fn container_netns(req: &Request<TuningConfig>) -> Result<Netns> {
    Netns::from_path(req.args.required_netns()?).map_err(kernel_error)
}

/// `CNI_IFNAME` in the container; the plugin before this one must have made it.
fn container_link(handle: &Handle, ifname: &str) -> Result<Link> {
    handle.link_by_name(ifname).map_err(|e| {
        if e.is_not_found() {
            Error::plugin(
                code::KERNEL,
                format!("container interface {ifname:?} not found"),
                Some("tuning changes an interface an earlier plugin in the chain made".into()),
            )
        } else {
            kernel_error(e)
        }
    })
}

/// Saves the attributes about to change (registering their restore first thing), then
/// changes them in the reference's order: MAC, promiscuous, MTU, all-multicast, queue
/// length.
fn save_and_change_link(
    req: &Request<TuningConfig>,
    settings: &Settings,
    handle: Rc<Handle>,
    link: &Link,
    rollback: &mut Rollback,
) -> Result<()> {
    let path = saved::file_path(&settings.data_dir, &req.args.container_id, &link.name);
    let previous_file = saved::read(&path)?;
    let original = SavedLink::of(link, &settings.link);
    saved::write(&path, &original.to_bytes())?;
    let undo_handle = Rc::clone(&handle);
    let undo_link = link.clone();
    rollback.push("link attributes and their saved state", move || {
        original.restore(&undo_handle, &undo_link)?;
        match previous_file {
            Some(bytes) => saved::write(&path, &bytes),
            None => saved::remove(&path),
        }
    });
    fault_point("tuning-after-save")?;

    let s = &settings.link;
    let index = link.index;
    if let Some(mac) = s.mac {
        handle.set_mac(index, mac).map_err(kernel_error)?;
    }
    if s.promisc {
        handle.set_promiscuous(index, true).map_err(kernel_error)?;
    }
    if let Some(mtu) = s.mtu {
        handle.set_mtu(index, mtu).map_err(kernel_error)?;
    }
    if let Some(on) = s.allmulti {
        handle.set_allmulti(index, on).map_err(kernel_error)?;
    }
    if let Some(len) = s.txqlen {
        handle.set_txqueuelen(index, len).map_err(kernel_error)?;
    }
    fault_point("tuning-after-link")
}

/// CHECK of the link attributes, as the reference checks them: promiscuous mode must be
/// off unless configured on.
fn check_link(link: &Link, s: &LinkSettings) -> Result<()> {
    let name = &link.name;
    if let Some(mac) = s.mac {
        if link.mac != Some(mac) {
            let actual = link.mac.as_ref().map(format_mac).unwrap_or_default();
            return Err(check_failed(format!(
                "{name} has MAC {actual}, the config says {}",
                format_mac(&mac)
            )));
        }
    }
    if link.promiscuous != s.promisc {
        return Err(check_failed(format!(
            "{name} has promiscuous mode {}, the config says {}",
            on_off(link.promiscuous),
            on_off(s.promisc)
        )));
    }
    if let Some(mtu) = s.mtu.filter(|&mtu| mtu != link.mtu) {
        return Err(check_failed(format!(
            "{name} has MTU {}, the config says {mtu}",
            link.mtu
        )));
    }
    if let Some(on) = s.allmulti.filter(|&on| on != link.allmulti) {
        return Err(check_failed(format!(
            "{name} has all-multicast mode {}, the config says {}",
            on_off(link.allmulti),
            on_off(on)
        )));
    }
    if let Some(len) = s.txqlen.filter(|&len| len != link.txqueuelen) {
        return Err(check_failed(format!(
            "{name} has transmit queue length {}, the config says {len}",
            link.txqueuelen
        )));
    }
    Ok(())
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}
