//! Configuring an interface inside a container from a CNI result: sysctls, addresses, link
//! up, routes — the reference's `ConfigureIface` (docs/reference.md#interface-configuration), plus
//! small link helpers the interface plugins share.

use crate::kernel_error;
use cni::{CniResult, Error, Result};
use cni_netlink::{AddressOptions, Handle, IpNetwork, Netns, RouteSpec, sysctl};
use std::io::Read;
use std::time::{Duration, Instant};

/// How long to wait for IPv6 duplicate address detection to settle, as the reference.
const DAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Configures `ifname` (already in the container netns `netns`, reached through
/// `container`) with the IPs and routes of `result` and sets it up.
///
/// `nodad` adds IPv6 addresses without duplicate address detection (the bridge plugin's
/// default, where DAD waits dominated pod start — plugins #680); otherwise, when an IPv6
/// gateway is used, waits up to 5 s for the addresses to leave the tentative state.
pub fn configure_iface(
    netns: &Netns,
    container: &Handle,
    ifname: &str,
    result: &CniResult,
    nodad: bool,
) -> Result<()> {
    let link = container.link_by_name(ifname).map_err(kernel_error)?;
    configure_iface_at(netns, container, ifname, link.index, result, nodad)
}

/// [`configure_iface`] for a caller that knows the interface's index already (it created
/// the link in this same call): one `RTM_GETLINK` round trip less.
pub fn configure_iface_at(
    netns: &Netns,
    container: &Handle,
    ifname: &str,
    index: u32,
    result: &CniResult,
    nodad: bool,
) -> Result<()> {
    for ip in &result.ips {
        if let Some(position) = ip.interface {
            let name = result.interfaces.get(position).map(|i| i.name.as_str());
            if name != Some(ifname) {
                return Err(Error::invalid_config(format!(
                    "invalid interface index {position} for {} (interface {ifname:?})",
                    ip.address
                )));
            }
        }
    }
    let ips: Vec<_> = result
        .ips
        .iter()
        .filter(|ip| ip.interface.is_some())
        .collect();
    let has_ipv6 = ips.iter().any(|ip| ip.address.ip().is_ipv6());
    if has_ipv6 {
        enable_ipv6(netns, ifname)?;
    }
    for ip in &ips {
        container
            .add_address(index, ip.address.0, AddressOptions { nodad })
            .map_err(kernel_error)?;
    }
    container.set_link_up(index).map_err(kernel_error)?;

    let gateway_of = |v6: bool| {
        ips.iter()
            .filter(|ip| ip.address.ip().is_ipv6() == v6)
            .find_map(|ip| ip.gateway)
    };
    let (gw4, gw6) = (gateway_of(false), gateway_of(true));
    if gw6.is_some() && !nodad {
        wait_for_dad(container, index)?;
    }
    for route in &result.routes {
        let dst = route.dst.network().0;
        let gateway = route.gw.or(if dst.is_ipv6() { gw6 } else { gw4 });
        let spec = RouteSpec {
            gateway,
            oif: Some(index),
            priority: route.priority,
            table: route.table,
            scope: route.scope.map(Into::into),
            ..RouteSpec::new(dst)
        };
        container.add_route(&spec).map_err(kernel_error)?;
    }
    Ok(())
}

/// IPv6 may be disabled in a fresh netns by the host's defaults: turn it on for `lo` and
/// the interface, and keep addresses when the link goes down (reference ≥ 1.7). A missing
/// sysctl (IPv6 compiled out) is left to fail at address time with a clear error.
fn enable_ipv6(netns: &Netns, ifname: &str) -> Result<()> {
    let ifname = ifname.to_owned();
    netns
        .run(move || -> cni_netlink::Result<()> {
            for dev in ["lo", ifname.as_str()] {
                if let Err(err) = sysctl::ensure(&format!("net/ipv6/conf/{dev}/disable_ipv6"), "0")
                {
                    log::warn!("cannot enable IPv6 on {dev}: {err}");
                }
            }
            sysctl::ensure(&format!("net/ipv6/conf/{ifname}/keep_addr_on_down"), "1").map(drop)
        })
        .and_then(|r| r)
        .map_err(kernel_error)
}

/// Waits until no IPv6 address of the link is tentative; a failed DAD is an error.
fn wait_for_dad(container: &Handle, index: u32) -> Result<()> {
    let deadline = Instant::now() + DAD_TIMEOUT;
    loop {
        let addrs = container.addresses(Some(index)).map_err(kernel_error)?;
        let v6 = addrs
            .iter()
            .filter(|a| matches!(a.network, IpNetwork::V6(_)));
        if let Some(failed) = v6.clone().find(|a| a.flags.dadfailed) {
            return Err(Error::plugin(
                cni::error::code::KERNEL,
                format!(
                    "IPv6 duplicate address detection failed for {}",
                    failed.network
                ),
                None,
            ));
        }
        if !v6.clone().any(|a| a.flags.tentative) || Instant::now() >= deadline {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A random link name `<prefix>` + 8 hex digits, as the reference names host veths
/// (`veth` + 4 random bytes).
pub fn random_link_name(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::Io {
            msg: "cannot read /dev/urandom".into(),
            details: Some(e.to_string()),
        })?;
    Ok(format!("{prefix}{:08x}", u32::from_ne_bytes(bytes)))
}
