//! macvlan ADD, top to bottom (docs/reference.md#macvlan-add): validate, resolve the master, create
//! the macvlan into the container under a temporary name and rename it, IPAM, addresses
//! and routes (or just link up in L2 mode), result.

use crate::config::{MacvlanConfig, Settings};
use cni::{CniResult, Request, Result};
use cni_netlink::MacvlanSpec;
use cni_plugin_support::ipam::{finish_ipam, result_dns, start_configured_ipam};
use cni_plugin_support::sublink;
use cni_plugin_support::{Namespaces, Rollback, configure_iface, fault_point, kernel_error};

pub(crate) fn add(req: &Request<MacvlanConfig>, s: &Settings) -> Result<CniResult> {
    let version = req.net.cni_version;
    let ns = Namespaces::open_for_add(&req.args)?;
    let ifname = req.args.ifname.as_str();
    let (master, mtu) = s.master.resolve(&ns)?;

    let mut rollback = Rollback::new();
    let mut ipam = start_configured_ipam(req, &mut rollback)?;
    let link = sublink::create_in_container(&ns, ifname, "macvlan", &mut rollback, |name| {
        let spec = MacvlanSpec {
            name,
            master_index: master.index,
            mode: s.mode,
            mtu,
            mac: s.mac,
            bcqueuelen: s.bcqueuelen,
            // With linkInContainer the create runs on the container's socket: the link
            // is born there, next to its master.
            netns: (!s.master.link_in_container).then_some(&ns.netns),
        };
        s.master.side(&ns).create_macvlan(&spec)
    })?;

    let mut result = CniResult::default();
    result.interfaces = vec![ns.container_interface(&link)];
    sublink::set_notify_sysctls(&ns.netns, ifname)?;
    let mut ipam_dns = Default::default();
    if let Some(pending) = ipam.take() {
        let ipam_result = finish_ipam(pending, version, "macvlan")?;
        result.ips = ipam_result.ips;
        result.routes = ipam_result.routes;
        ipam_dns = ipam_result.dns;
        for ip in &mut result.ips {
            ip.interface = Some(0);
        }
        configure_iface(&ns.netns, &ns.container, ifname, &result, false)?;
        fault_point("macvlan-after-addresses")?;
    } else {
        ns.container.set_link_up(link.index).map_err(kernel_error)?;
    }
    result.dns = result_dns(&req.net, ipam_dns);
    // Fail now, not after printing, if the result cannot be expressed in the request's
    // version (L2 with 0.1.0/0.2.0): the rollback still removes everything.
    result.to_value(version)?;
    fault_point("macvlan-before-result")?;
    rollback.commit();
    Ok(result)
}
