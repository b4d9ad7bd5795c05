//! CHECK's comparisons of what a plugin made with what the kernel has now: the container
//! link, MACs, addresses and routes from `prevResult` (spec "CHECK": later chained plugins may add
//! routes, so only presence is checked).

use crate::{Namespaces, kernel_error};
use cni::error::code;
use cni::{CmdArgs, CniResult, Error, NetConf, Result};
use cni_netlink::{Handle, IpFamily, Link, format_mac};

/// The link's MAC equals `want` (any case), when `want` is given.
pub fn check_mac(want: Option<&str>, link: &Link, source: &str) -> Result<()> {
    let actual = link.mac.as_ref().map(format_mac);
    match want {
        Some(want) if Some(want.to_lowercase()) != actual => Err(check_failed(format!(
            "interface {} has MAC {}, {source} says {want}",
            link.name,
            actual.unwrap_or_default()
        ))),
        _ => Ok(()),
    }
}

/// Every prevResult IP of this interface is on it, and every prevResult route is in the
/// container's tables (matched by destination, and gateway when given; later chained
/// plugins may add more).
pub fn check_addresses_and_routes(container: &Handle, link: &Link, prev: &CniResult) -> Result<()> {
    let addrs = container
        .addresses(Some(link.index))
        .map_err(kernel_error)?;
    let ours = |index: usize| {
        prev.interfaces
            .get(index)
            .is_some_and(|i| i.name == link.name)
    };
    for ip in prev.ips.iter().filter(|ip| ip.interface.is_some_and(ours)) {
        if !addrs.iter().any(|a| a.network == ip.address.0) {
            return Err(check_failed(format!(
                "address {} not found on {}",
                ip.address, link.name
            )));
        }
    }
    let mut routes = container.routes(IpFamily::V4).map_err(kernel_error)?;
    routes.extend(container.routes(IpFamily::V6).map_err(kernel_error)?);
    for want in &prev.routes {
        let dst = want.dst.network().0;
        let found = routes.iter().any(|r| {
            r.dst == dst
                && want.gw.is_none_or(|gw| {
                    r.gateway == Some(gw) || r.nexthops.iter().any(|n| n.gateway == Some(gw))
                })
        });
        if !found {
            let via = want.gw.map(|g| format!(" via {g}")).unwrap_or_default();
            return Err(check_failed(format!(
                "route {dst}{via} not found in the container's routing table"
            )));
        }
    }
    Ok(())
}

/// CHECK's common part: the prevResult (required), its entry for `CNI_IFNAME` in this
/// sandbox, and the container link, which must be of `kind` and carry the entry's MAC.
/// Returns the parsed prevResult and the link for the plugin's own checks.
pub fn check_container_link(
    net: &NetConf,
    args: &CmdArgs,
    ns: &Namespaces,
    kind: &str,
) -> Result<(CniResult, Link)> {
    let prev = net
        .prev_result
        .as_ref()
        .ok_or_else(|| Error::invalid_config("required prevResult missing"))?;
    let prev = CniResult::from_prev_result(prev, net.cni_version)?;
    let ifname = args.ifname.as_str();
    let sandbox = ns.netns.path().display().to_string();
    let entry = prev
        .interfaces
        .iter()
        .find(|i| i.name == ifname && i.sandbox.as_deref() == Some(sandbox.as_str()))
        .ok_or_else(|| {
            check_failed(format!(
                "interface {ifname:?} in sandbox {sandbox} not found in prevResult"
            ))
        })?;
    let link = ns
        .container
        .link_by_name(ifname)
        .map_err(|e| check_failed(format!("container interface {ifname:?} not found: {e}")))?;
    if link.kind.as_deref() != Some(kind) {
        return Err(check_failed(format!(
            "container interface {ifname:?} is a {}, not a {kind}",
            link.kind.as_deref().unwrap_or("link of unknown kind")
        )));
    }
    check_mac(entry.mac.as_deref(), &link, "prevResult")?;
    Ok((prev, link))
}

/// A CHECK that found a difference: code [`code::CHECK_FAILED`].
pub fn check_failed(msg: String) -> Error {
    Error::plugin(code::CHECK_FAILED, msg, None)
}
