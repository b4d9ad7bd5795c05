//! Bridge CHECK (docs/reference.md#bridge-check): the interfaces of `prevResult` still exist as ADD
//! made them (bridge, veth pair and its membership, the VLAN gateway interface, MACs), and
//! the container still has the addresses and routes. IPAM is checked only when there is
//! one: the reference delegates unconditionally, so its L2 CHECK always fails (defect
//! docs/reference.md#defect-1).

use crate::config::{BridgeConfig, Settings};
use cni::{CniResult, Command, Request, Result};
use cni_netlink::{Handle, Link};
use cni_plugin_support::Namespaces;
use cni_plugin_support::check::{
    check_addresses_and_routes, check_container_link, check_failed, check_mac,
};

pub(crate) fn check(req: &Request<BridgeConfig>, s: &Settings) -> Result<()> {
    let ns = Namespaces::open(&req.args)?;
    if let Some(ipam) = &s.ipam_type {
        cni::invoke::delegate(ipam, Command::Check, &req.args)?;
    }
    let (prev, veth) = check_container_link(&req.net, &req.args, &ns, "veth")?;

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
    let bridge = host_link_of_kind(&ns.host, &s.bridge, "bridge", "CNI created bridge")?;
    check_mac(bridge_entry.mac.as_deref(), &bridge, "prevResult")?;
    if bridge.promiscuous != s.promisc {
        return Err(check_failed(format!(
            "bridge {} promiscuous mode is {}, config says {}",
            s.bridge, bridge.promiscuous, s.promisc
        )));
    }
    check_host_veth(&ns.host, s, &prev, &veth, &bridge)?;

    // The VLAN gateway interface, when ADD reported one (the reference does not check it).
    if let Some(gateway_name) = &s.vlan_gateway {
        if let Some(entry) = prev.interfaces.iter().find(|i| &i.name == gateway_name) {
            let gateway =
                host_link_of_kind(&ns.host, gateway_name, "veth", "VLAN gateway interface")?;
            check_mac(entry.mac.as_deref(), &gateway, "prevResult")?;
        }
    }

    check_addresses_and_routes(&ns.container, &veth, &prev)
}

/// The host link `name`, which must be of `kind`; `what` names it in the CHECK failure.
fn host_link_of_kind(host: &Handle, name: &str, kind: &str, what: &str) -> Result<Link> {
    let link = host
        .link_by_name(name)
        .map_err(|e| check_failed(format!("{what} {name} was not found: {e}")))?;
    if link.kind.as_deref() != Some(kind) {
        return Err(check_failed(format!("{what} {name} is not a {kind}")));
    }
    Ok(link)
}

/// The host end: a prevResult interface whose link is the container end's peer, enslaved
/// to the bridge, with the MAC the prevResult gives.
fn check_host_veth(
    host: &Handle,
    s: &Settings,
    prev: &CniResult,
    veth: &Link,
    bridge: &Link,
) -> Result<()> {
    let (entry, host_veth) = prev
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
    if host_veth.master != Some(bridge.index) {
        return Err(check_failed(format!(
            "host veth {} is not attached to bridge {}",
            host_veth.name, s.bridge
        )));
    }
    check_mac(entry.mac.as_deref(), &host_veth, "prevResult")
}
