//! ipvlan ADD, top to bottom (docs/reference.md#ipvlan-add): validate, resolve the master, create
//! the ipvlan as `CNI_IFNAME` straight into the container, addresses from IPAM or the
//! prevResult, result.
//!
//! The link is created before IPAM is asked: on a kernel without ipvlan (code 101,
//! `kernel lacks ipvlan support`) nothing has been reserved yet.

use crate::config::{Addressing, IpvlanConfig, Settings};
use cni::{CniResult, Request, Result};
use cni_netlink::IpvlanSpec;
use cni_plugin_support::ipam::{finish_ipam, result_dns, start_ipam};
use cni_plugin_support::sublink;
use cni_plugin_support::{Namespaces, Rollback, configure_iface, fault_point, finish_add};

pub(crate) fn add(req: &Request<IpvlanConfig>, s: &Settings) -> Result<CniResult> {
    let version = req.net.cni_version;
    let ns = Namespaces::open_for_add(&req.args)?;
    let ifname = req.args.ifname.as_str();
    let (master, mtu) = s.master.resolve(&ns)?;

    let mut rollback = Rollback::new();
    let addresses = match &s.addressing {
        Addressing::Ipam(ipam) => Addresses::Ipam(start_ipam(req, ipam, &mut rollback)?),
        Addressing::Chained(prev) => Addresses::Chained(prev),
    };
    let link = sublink::create_in_container(
        &ns,
        &req.args,
        "ipvlan",
        &s.master,
        &mut rollback,
        |side, name, netns| {
            side.create_ipvlan(&IpvlanSpec {
                name,
                master_index: master.index,
                mode: s.mode,
                mtu,
                netns,
            })
        },
    )?;

    let mut result = match addresses {
        Addresses::Ipam(pending) => finish_ipam(pending, version, "ipvlan")?,
        Addresses::Chained(prev) => prev.clone(),
    };
    // The result describes this plugin's interface only; the addresses move onto it.
    result.interfaces = vec![ns.container_interface(&link)];
    for ip in &mut result.ips {
        ip.interface = Some(0);
    }
    sublink::set_notify_sysctls(&ns.netns, ifname)?;
    configure_iface(&ns.netns, &ns.container, ifname, &result, false)?;
    fault_point("ipvlan-after-addresses")?;
    let from_ipam = std::mem::take(&mut result.dns);
    result.dns = result_dns(&req.net, from_ipam);
    finish_add(result, version, "ipvlan", rollback)
}

/// Where this ADD's addresses come from, once IPAM (if any) has been started.
enum Addresses<'a> {
    /// IPAM ADD, running since before the link was created.
    Ipam(cni::invoke::Pending),
    /// The prevResult of a chained call.
    Chained(&'a CniResult),
}
