//! The CNI `loopback` plugin (docs/reference.md#loopback): brings `lo` up in the container's netns on
//! ADD, checks it is up on CHECK, takes it down on DEL. `CNI_IFNAME` is ignored: the
//! interface is always `lo`. No addresses, routes, sysctls or firewall rules are touched;
//! the kernel adds 127.0.0.1/8 and ::1/128 itself when `lo` comes up.
//!
//! One documented improvement over the reference: a fresh ADD result is built as a result
//! and printed in the request's version by [`cni::CniResult::to_json_string`], so 0.3.x and
//! 0.4.0 get the per-IP `version` and 0.1.0/0.2.0 get `ip4`/`ip6`; the Go plugin prints a
//! 1.x-shaped object under an old `cniVersion`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::net::IpAddr;

use cni::error::code;
use cni::{Cidr, CniResult, Error, Interface, IpConfig, Plugin, Request, Result};
use cni_netlink::{Handle, Link, Netns, format_mac};
use cni_plugin_support::kernel_error;
use serde::Deserialize;

/// The loopback device's name, whatever `CNI_IFNAME` says.
const LO: &str = "lo";

/// The plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Loopback;

/// The loopback plugin has no keys of its own (`name` and `cniVersion` are [`cni::NetConf`]'s).
#[derive(Debug, Default, Deserialize)]
pub struct LoopbackConfig {}

/// The container netns of an ADD or CHECK (`CNI_NETNS`, required by the spec for both).
fn required_netns<C>(req: &Request<C>) -> Result<(Netns, String)> {
    let path = req.args.required_netns()?;
    let netns = Netns::from_path(path).map_err(kernel_error)?;
    Ok((netns, path.display().to_string()))
}

fn find_lo(handle: &Handle) -> Result<Link> {
    handle.link_by_name(LO).map_err(kernel_error)
}

impl Plugin for Loopback {
    type Config = LoopbackConfig;

    fn add(&self, req: Request<LoopbackConfig>) -> Result<CniResult> {
        // prevResult is parsed before anything changes, so a bad one leaves the netns alone.
        let prev = req
            .net
            .prev_result
            .as_ref()
            .map(|value| CniResult::from_prev_result(value, req.net.cni_version))
            .transpose()?;
        let (netns, sandbox) = required_netns(&req)?;
        let handle = Handle::for_netns(&netns).map_err(kernel_error)?;
        let lo = find_lo(&handle)?;
        handle.set_link_up(lo.index).map_err(kernel_error)?;

        let addresses = handle.addresses(Some(lo.index)).map_err(kernel_error)?;
        if let Some(other) = addresses.iter().find(|a| !a.network.ip().is_loopback()) {
            // Go's plugin returns an untyped error here, which its skel reports as 999.
            return Err(Error::plugin(
                code::INTERNAL,
                "loopback interface found with non-loopback address",
                Some(other.network.to_string()),
            ));
        }
        if let Some(prev) = prev {
            return Ok(prev);
        }

        // The first address of each family, as the reference reports them.
        let first = |v6: bool| {
            addresses
                .iter()
                .find(|a| matches!(a.network.ip(), IpAddr::V6(_)) == v6)
                .map(|a| IpConfig {
                    interface: Some(0),
                    address: Cidr(a.network),
                    gateway: None,
                })
        };
        let mut result = CniResult::default();
        result.interfaces.push(Interface {
            name: LO.to_owned(),
            mac: Some(format_mac(&lo.mac.unwrap_or_default())),
            sandbox: Some(sandbox),
            ..Interface::default()
        });
        result.ips.extend(first(false));
        result.ips.extend(first(true));
        Ok(result)
    }

    fn del(&self, req: Request<LoopbackConfig>) -> Result<()> {
        // DEL must succeed when there is nothing left to undo: no netns given (plugins #210)
        // or a netns already gone.
        let Some(path) = req
            .args
            .netns
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        else {
            return Ok(());
        };
        let netns = match Netns::from_path(path) {
            Err(cni_netlink::Error::NetnsNotFound { .. }) => return Ok(()),
            other => other.map_err(kernel_error)?,
        };
        let handle = Handle::for_netns(&netns).map_err(kernel_error)?;
        let lo = find_lo(&handle)?;
        handle.set_link_down(lo.index).map_err(kernel_error)
    }

    fn check(&self, req: Request<LoopbackConfig>) -> Result<()> {
        let (netns, _) = required_netns(&req)?;
        let handle = Handle::for_netns(&netns).map_err(kernel_error)?;
        let lo = find_lo(&handle)?;
        if !lo.admin_up {
            return Err(Error::plugin(
                code::CHECK_FAILED,
                "loopback interface is down",
                None,
            ));
        }
        Ok(())
    }
}
