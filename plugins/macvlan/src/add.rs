//! macvlan ADD, top to bottom (docs/reference.md#macvlan-add): validate, resolve the master, create
//! the macvlan as `CNI_IFNAME` straight into the container, IPAM, addresses and routes (or
//! just link up in L2 mode), result.

use crate::config::{MacvlanConfig, Settings};
use cni::{CniResult, Request, Result};
use cni_netlink::MacvlanSpec;
use cni_plugin_support::ipam::{finish_ipam, result_dns, start_configured_ipam};
use cni_plugin_support::sublink;
use cni_plugin_support::{
    Namespaces, Rollback, configure_iface, fault_point, finish_add, kernel_error,
};

pub(crate) fn add(req: &Request<MacvlanConfig>, s: &Settings) -> Result<CniResult> {
    let version = req.net.cni_version;
    let ns = Namespaces::open_for_add(&req.args)?;
    let ifname = req.args.ifname.as_str();
    let (master, mtu) = s.master.resolve(&ns)?;

    let mut rollback = Rollback::new();
    let mut ipam = start_configured_ipam(req, &mut rollback)?;
    let link = sublink::create_in_container(
        &ns,
        &req.args,
        "macvlan",
        &s.master,
        &mut rollback,
        |side, name, netns| {
            side.create_macvlan(&MacvlanSpec {
                name,
                master_index: master.index,
                mode: s.mode,
                mtu,
                mac: s.mac,
                bcqueuelen: s.bcqueuelen,
                netns,
            })
        },
    )?;

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
    finish_add(result, version, "macvlan", rollback)
}
