//! The CNI `bandwidth` meta plugin (docs/reference.md#bandwidth): chained after a plugin
//! that made a veth pair, it limits the container's traffic with token bucket (`tbf`)
//! qdiscs, as the reference does:
//! * ingress (into the container): a tbf as the root qdisc of the host end of the veth;
//! * egress (out of the container): the host end's incoming packets are redirected
//!   (`ingress` qdisc, match-all `u32` filter, `mirred`) to an `ifb` device named from
//!   the network and container ID, whose root qdisc is a tbf.
//!
//! The `prevResult` passes through, with the ifb added to its interfaces. DEL deletes
//! the ifb (the veth's qdiscs go with the veth). Where it does better than the
//! reference, each pinned by a test in `tests/bandwidth.rs`:
//! * ADD is all or nothing: a failure after the first change removes the qdiscs and the
//!   ifb it made (the reference leaves them, and the retried ADD then fails on them);
//! * a rate or burst below one byte is refused instead of becoming a zero-byte bucket;
//! * DEL needs no valid limits (a runtime can always clean up);
//! * CHECK finds a missing or changed tbf, not only a changed one.

mod config;

pub use config::BandwidthConfig;

use cni::{CniResult, Error, Interface, Plugin, Request, Result};
use cni_netlink::{Handle, Link, Netns, Qdisc, Tbf, format_mac, psched_ticks_per_usec};
use cni_plugin_support::check::check_failed;
use cni_plugin_support::{Rollback, fault_point, finish_add, kernel_error};
use config::{Limits, Rate, ifb_name};
use std::rc::Rc;

/// The bandwidth plugin.
pub struct Bandwidth;

impl Plugin for Bandwidth {
    type Config = BandwidthConfig;

    fn add(&self, req: Request<BandwidthConfig>) -> Result<CniResult> {
        let limits = Limits::from_request(&req)?;
        let mut result = prev_result(&req)?;
        if !limits.any() {
            return Ok(result);
        }
        let ticks = psched_ticks_per_usec().map_err(kernel_error)?;
        let host = Rc::new(Handle::current().map_err(kernel_error)?);
        let veth = host_veth(&req, &result, &host)?;
        let mut rollback = Rollback::new();

        if let Some(rate) = limits.ingress {
            host.add_tbf(veth.index, &rate.tbf(ticks))
                .map_err(kernel_error)?;
            let undo = Rc::clone(&host);
            let index = veth.index;
            rollback.push("the veth's tbf qdisc", move || {
                undo.delete_qdisc(index, Qdisc::ROOT).map_err(kernel_error)
            });
            fault_point("bandwidth-after-ingress")?;
        }
        if let Some(rate) = limits.egress {
            let ifb = shape_egress(&req, &host, &veth, rate.tbf(ticks), &mut rollback)?;
            result.interfaces.push(Interface {
                name: ifb.name,
                mac: ifb.mac.as_ref().map(format_mac),
                ..Interface::default()
            });
        }
        finish_add(result, req.net.cni_version, "bandwidth", rollback)
    }

    fn del(&self, req: Request<BandwidthConfig>) -> Result<()> {
        let name = ifb_name(&req.net.name, &req.args.container_id);
        let host = Handle::current().map_err(kernel_error)?;
        match host.link_by_name(&name) {
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(kernel_error(e)),
            Ok(ifb) => host.delete_link_if_present(ifb.index).map_err(kernel_error),
        }
    }

    fn check(&self, req: Request<BandwidthConfig>) -> Result<()> {
        let limits = Limits::from_request(&req)?;
        let result = prev_result(&req)?;
        if !limits.any() {
            return Ok(());
        }
        let ticks = psched_ticks_per_usec().map_err(kernel_error)?;
        let host = Handle::current().map_err(kernel_error)?;
        let veth = host_veth(&req, &result, &host)?;
        if let Some(rate) = limits.ingress {
            check_tbf(&host, &veth, rate, ticks)?;
        }
        if let Some(rate) = limits.egress {
            let name = ifb_name(&req.net.name, &req.args.container_id);
            let ifb = host.link_by_name(&name).map_err(|e| {
                missing_or_kernel(e, || check_failed(format!("ifb device {name} not found")))
            })?;
            check_tbf(&host, &ifb, rate, ticks)?;
        }
        Ok(())
    }

    // STATUS: always ready (the default). GC: the default, nothing: an ifb's name is a
    // one-way hash of the network and container ID, so an ifb cannot be traced back to
    // its attachment (docs/reference.md#bandwidth).
}

/// The `prevResult` in the request's version: a chained plugin needs one (code 7).
fn prev_result(req: &Request<BandwidthConfig>) -> Result<CniResult> {
    req.net
        .required_prev_result("must be called as chained plugin")
}

/// The host end of the container's veth, as the reference finds it: the peer of
/// `CNI_IFNAME`, which must also be a host interface (no `sandbox`) of the `prevResult`
/// when it lists interfaces.
fn host_veth(req: &Request<BandwidthConfig>, result: &CniResult, host: &Handle) -> Result<Link> {
    let ifname = &req.args.ifname;
    let netns = Netns::from_path(req.args.required_netns()?).map_err(kernel_error)?;
    let container = Handle::for_netns(&netns).map_err(kernel_error)?;
    let link = container.link_by_name(ifname).map_err(|e| {
        missing_or_kernel(e, || {
            Error::invalid_config(format!("container interface {ifname} not found"))
        })
    })?;
    let peer = match (link.kind.as_deref(), link.link) {
        (Some("veth"), Some(peer)) => peer,
        _ => {
            return Err(Error::invalid_config(format!(
                "container interface {ifname} has no veth peer"
            )));
        }
    };
    let veth = host.link_by_index(peer).map_err(|e| {
        missing_or_kernel(e, || {
            Error::invalid_config(format!("veth peer with index {peer} is not in host ns"))
        })
    })?;
    // A 0.1.0 or 0.2.0 prevResult has no interfaces to look in (the reference refuses
    // those versions): the peer alone decides.
    let listed = result.interfaces.is_empty()
        || result.interfaces.iter().any(|iface| {
            iface.sandbox.as_deref().unwrap_or("").is_empty() && iface.name == veth.name
        });
    if !listed {
        return Err(Error::invalid_config(
            "no veth peer of container interface found in host ns",
        ));
    }
    Ok(veth)
}

/// `missing()` when `err` says the link does not exist, else the kernel error.
fn missing_or_kernel(err: cni_netlink::Error, missing: impl FnOnce() -> Error) -> Error {
    if err.is_not_found() {
        missing()
    } else {
        kernel_error(err)
    }
}

/// Creates the ifb (registering its removal, which takes its tbf along), redirects the
/// veth's incoming packets to it and puts `tbf` on it, in the reference's order. Returns
/// the ifb.
fn shape_egress(
    req: &Request<BandwidthConfig>,
    host: &Rc<Handle>,
    veth: &Link,
    tbf: Tbf,
    rollback: &mut Rollback,
) -> Result<Link> {
    let name = ifb_name(&req.net.name, &req.args.container_id);
    host.create_ifb(&name, veth.mtu).map_err(kernel_error)?;
    let ifb = host.link_by_name(&name).map_err(kernel_error)?;
    let undo = Rc::clone(host);
    let ifb_index = ifb.index;
    rollback.push("the ifb", move || {
        undo.delete_link_if_present(ifb_index).map_err(kernel_error)
    });
    fault_point("bandwidth-after-ifb")?;

    host.add_ingress_qdisc(veth.index).map_err(kernel_error)?;
    let undo = Rc::clone(host);
    let veth_index = veth.index;
    rollback.push("the veth's ingress qdisc", move || {
        undo.delete_qdisc(veth_index, Qdisc::INGRESS)
            .map_err(kernel_error)
    });
    host.add_redirect_filter(veth.index, ifb.index)
        .map_err(kernel_error)?;
    fault_point("bandwidth-after-redirect")?;
    host.add_tbf(ifb.index, &tbf).map_err(kernel_error)?;
    Ok(ifb)
}

/// CHECK of one direction: `link`'s root qdisc is the tbf the limits make.
fn check_tbf(host: &Handle, link: &Link, rate: Rate, ticks: f64) -> Result<()> {
    let want = rate.tbf(ticks);
    let qdiscs = host.qdiscs(link.index).map_err(kernel_error)?;
    let Some(have) = qdiscs
        .iter()
        .find(|q| q.parent == Qdisc::ROOT)
        .and_then(|q| q.tbf)
    else {
        return Err(check_failed(format!("{} has no tbf qdisc", link.name)));
    };
    let differs = |what: &str, have: u64, want: u64| {
        check_failed(format!(
            "the tbf qdisc of {} has {what} {have}, the config makes {want}",
            link.name
        ))
    };
    if have.rate != want.rate {
        return Err(differs("rate (bytes/s)", have.rate, want.rate));
    }
    if have.limit != want.limit {
        return Err(differs(
            "limit (bytes)",
            have.limit.into(),
            want.limit.into(),
        ));
    }
    if have.buffer != want.buffer {
        return Err(differs(
            "buffer (ticks)",
            have.buffer.into(),
            want.buffer.into(),
        ));
    }
    Ok(())
}
