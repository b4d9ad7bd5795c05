//! ipvlan CHECK (docs/reference.md#ipvlan-check): IPAM agrees, and the container interface is
//! still the ipvlan ADD made — kind, mode, MAC — with the prevResult's addresses and
//! routes. `master` is optional here: the reference fails CHECK without it
//! (`failed to lookup master ""`, defect 7), because its prevResult is this plugin's own
//! result and cannot name the master. When `master` is configured, it must exist and be
//! the link's parent.

use crate::config::{IpvlanConfig, parse_mode};
use cni::{Command, Request, Result};
use cni_plugin_support::Namespaces;
use cni_plugin_support::check::{check_addresses_and_routes, check_container_link, check_failed};
use cni_plugin_support::sublink;

pub(crate) fn check(req: &Request<IpvlanConfig>) -> Result<()> {
    let mode = parse_mode(req.config.mode.as_deref())?;
    let ns = Namespaces::open(&req.args)?;
    let master = match req.config.master.as_deref().filter(|m| !m.is_empty()) {
        Some(name) => Some(sublink::resolve_master(
            ns.master_side(req.config.link_in_container),
            Some(name),
        )?),
        None => None,
    };
    if let Some(ipam) = req.net.ipam_type() {
        cni::invoke::delegate(ipam, Command::Check, &req.args)?;
    }
    let (prev, link) = check_container_link(&req.net, &req.args, &ns, "ipvlan")?;
    if link.ipvlan_mode != Some(mode) {
        return Err(check_failed(format!(
            "{} has ipvlan mode {}, config says {}",
            link.name,
            link.ipvlan_mode
                .map_or_else(|| "unknown".to_owned(), |m| m.to_string()),
            mode
        )));
    }
    if let Some(master) = &master {
        sublink::check_parent(&link, master)?;
    }
    check_addresses_and_routes(&ns.container, &link, &prev)
}
