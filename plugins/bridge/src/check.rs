//! Bridge CHECK (docs/reference.md#bridge-check): the interfaces of `prevResult` still exist as ADD
//! made them (bridge, veth pair and its membership, the VLAN gateway interface, MACs), and
//! the container still has the addresses and routes. IPAM is checked only when there is
//! one: the reference delegates unconditionally, so its L2 CHECK always fails (defect
//! docs/reference.md#defect-1).

use crate::config::{BridgeConfig, Settings};
use cni::{CniResult, Command, Error, Request, Result};
use cni_netlink::{Handle, Netns};
use cni_plugin_support::check::{check_addresses_and_routes, check_failed, check_mac};
use cni_plugin_support::kernel_error;

pub(crate) fn check(req: &Request<BridgeConfig>, s: &Settings) -> Result<()> {
    let netns_path = req.args.required_netns()?;
    let netns = Netns::from_path(netns_path).map_err(kernel_error)?;
    if let Some(ipam) = &s.ipam_type {
        cni::invoke::delegate(ipam, Command::Check, &req.args)?;
    }
    let prev = req
        .net
        .prev_result
        .as_ref()
        .ok_or_else(|| Error::invalid_config("required prevResult missing"))?;
    let prev = CniResult::from_prev_result(prev, req.net.cni_version)?;
    let host = Handle::current().map_err(kernel_error)?;
    let container = Handle::for_netns(&netns).map_err(kernel_error)?;
    let sandbox = netns_path.display().to_string();

    let bridge_entry = prev
        .interfaces
        .iter()
        .find(|i| i.name == s.bridge)
        .ok_or_else(|| {
            check_failed(format!(
                "CNI created bridge {} was not found in prevResult",
                s.bridge
            ))
        })?;
    let bridge = host.link_by_name(&s.bridge).map_err(|e| {
        check_failed(format!(
            "CNI created bridge {} was not found: {e}",
            s.bridge
        ))
    })?;
    if bridge.kind.as_deref() != Some("bridge") {
        return Err(check_failed(format!("{} is not a bridge", s.bridge)));
    }
    check_mac(bridge_entry.mac.as_deref(), &bridge, "prevResult")?;
    if bridge.promiscuous != s.promisc {
        return Err(check_failed(format!(
            "bridge {} promiscuous mode is {}, config says {}",
            s.bridge, bridge.promiscuous, s.promisc
        )));
    }

    let ifname = req.args.ifname.as_str();
    let container_entry = prev
        .interfaces
        .iter()
        .find(|i| i.name == ifname && i.sandbox.as_deref() == Some(sandbox.as_str()))
        .ok_or_else(|| {
            check_failed(format!(
                "CNI created interface in container {ifname} not found in prevResult"
            ))
        })?;
    let veth = container.link_by_name(ifname).map_err(|e| {
        check_failed(format!(
            "CNI created interface in container {ifname} not found: {e}"
        ))
    })?;
    if veth.kind.as_deref() != Some("veth") {
        return Err(check_failed(format!(
            "container interface {ifname} is not a veth"
        )));
    }
    check_mac(container_entry.mac.as_deref(), &veth, "prevResult")?;

    // The host end: a prevResult interface whose link is the container end's peer and
    // which is enslaved to the bridge.
    let host_veth = prev
        .interfaces
        .iter()
        .filter(|i| i.sandbox.as_deref().is_none_or(str::is_empty) && i.name != s.bridge)
        .find_map(|i| {
            host.link_by_name(&i.name)
                .ok()
                .filter(|l| Some(l.index) == veth.link)
                .map(|l| (i, l))
        })
        .ok_or_else(|| {
            check_failed(format!(
                "CNI veth created for bridge {} was not found",
                s.bridge
            ))
        })?;
    if host_veth.1.master != Some(bridge.index) {
        return Err(check_failed(format!(
            "host veth {} is not attached to bridge {}",
            host_veth.1.name, s.bridge
        )));
    }
    check_mac(host_veth.0.mac.as_deref(), &host_veth.1, "prevResult")?;

    // The VLAN gateway interface, when ADD reported one (the reference does not check it).
    if let Some(gateway_name) = &s.vlan_gateway {
        if let Some(entry) = prev.interfaces.iter().find(|i| &i.name == gateway_name) {
            let gateway = host.link_by_name(gateway_name).map_err(|e| {
                check_failed(format!(
                    "VLAN gateway interface {gateway_name} was not found: {e}"
                ))
            })?;
            if gateway.kind.as_deref() != Some("veth") {
                return Err(check_failed(format!(
                    "VLAN gateway interface {gateway_name} is not a veth"
                )));
            }
            check_mac(entry.mac.as_deref(), &gateway, "prevResult")?;
        }
    }

    check_addresses_and_routes(&container, &veth, &prev)
}
