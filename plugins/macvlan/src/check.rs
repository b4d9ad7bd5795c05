//! macvlan CHECK (docs/reference.md#macvlan-check): the master exists (and the MTU still fits it),
//! IPAM agrees, and the container interface is still the macvlan ADD made — kind, mode,
//! MAC, parent — with the prevResult's addresses and routes.

use crate::config::{MacvlanConfig, Settings};
use cni::{Command, Request, Result};
use cni_netlink::format_mac;
use cni_plugin_support::Namespaces;
use cni_plugin_support::check::{
    check_addresses_and_routes, check_container_link, check_failed, check_mac,
};
use cni_plugin_support::sublink;

pub(crate) fn check(req: &Request<MacvlanConfig>, s: &Settings) -> Result<()> {
    let ns = Namespaces::open(&req.args)?;
    let (master, _) = s.master.resolve(&ns)?;
    if let Some(ipam) = &s.ipam_type {
        cni::invoke::delegate(ipam, Command::Check, &req.args)?;
    }
    let (prev, link) = check_container_link(&req.net, &req.args, &ns, "macvlan")?;
    if link.macvlan_mode != Some(s.mode) {
        return Err(check_failed(format!(
            "{} has macvlan mode {}, config says {}",
            link.name,
            link.macvlan_mode
                .map_or_else(|| "unknown".to_owned(), |m| m.to_string()),
            s.mode
        )));
    }
    check_mac(
        s.mac.as_ref().map(format_mac).as_deref(),
        &link,
        "the config",
    )?;
    sublink::check_parent(&link, &master)?;
    check_addresses_and_routes(&ns.container, &link, &prev)
}
