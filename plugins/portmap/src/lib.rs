//! The CNI `portmap` meta plugin (docs/reference.md#portmap): chained after the plugin that
//! gave the container its addresses, it forwards `runtimeConfig.portMappings` host ports to
//! the container's first IPv4 and IPv6 address and passes the `prevResult` on. The rules are
//! the reference's, by name, in either backend (`cni_firewall::forward_ports`).
//!
//! Where it does better than the reference, each pinned by a test in `tests/portmap.rs`:
//! * ADD is all or nothing: a failure after the first family's rules removes them;
//! * each family's rules go in as one atomic batch, not one `iptables` run per rule;
//! * ports above 65535 and unknown protocols are refused (code 7) before any change;
//! * GC removes the rules of containers not in `cni.dev/valid-attachments` (the reference has
//!   no GC).

mod config;

pub use config::PortMapConfig;

use cni::{CniResult, Error, Plugin, Request, Result};
use cni_firewall::{IpNetwork, PortMapSpec};
use cni_netlink::{Handle, IpFamily, TABLE_MAIN};
use cni_plugin_support::{Rollback, fault_point, finish_add, kernel_error};
use config::{Settings, container_addresses};

/// The portmap plugin.
pub struct PortMap;

impl Plugin for PortMap {
    type Config = PortMapConfig;

    fn add(&self, req: Request<PortMapConfig>) -> Result<CniResult> {
        let settings = Settings::from_request(&req)?;
        let result = prev_result(&req)?;
        if settings.mappings.is_empty() {
            return Ok(result);
        }
        let mut rollback = Rollback::new();
        let (network, id) = (req.net.name.clone(), req.args.container_id.clone());
        let backend = settings.backend;
        rollback.push("port mappings", move || {
            cni_firewall::unforward_ports(backend, &network, &id).map_err(firewall_error)
        });
        for container in container_addresses(&result, &req.args.ifname) {
            let spec = spec(&req, &settings, container);
            cni_firewall::forward_ports(backend, &spec).map_err(firewall_error)?;
            fault_point("portmap-after-forward")?;
            // After the rules, so new packets take them (as the reference).
            flush_udp_conntrack(&settings.udp_ports(), container);
            if settings.snat && container.is_ipv4() {
                enable_route_localnet(container)?;
            }
        }
        finish_add(result, req.net.cni_version, "portmap", rollback)
    }

    fn del(&self, req: Request<PortMapConfig>) -> Result<()> {
        let settings = Settings::from_request(&req)?;
        // As the reference: a container without mappings has nothing to remove, which spares
        // every other DEL the listing.
        if settings.mappings.is_empty() {
            return Ok(());
        }
        cni_firewall::unforward_ports(settings.backend, &req.net.name, &req.args.container_id)
            .map_err(firewall_error)
    }

    fn check(&self, req: Request<PortMapConfig>) -> Result<()> {
        let settings = Settings::from_request(&req)?;
        let result = prev_result(&req)?;
        for container in container_addresses(&result, &req.args.ifname) {
            if settings.mappings.is_empty() {
                break;
            }
            let spec = spec(&req, &settings, container);
            cni_firewall::check_ports(settings.backend, &spec)
                .map_err(|e| cni_plugin_support::check::check_failed(format!("portmap: {e}")))?;
        }
        Ok(())
    }

    fn gc(&self, req: Request<PortMapConfig>) -> Result<()> {
        // No list: nothing can be judged stale.
        let Some(valid) = &req.net.valid_attachments else {
            return Ok(());
        };
        let settings = Settings::from_request(&req)?;
        let ids: Vec<&str> = valid.iter().map(|a| a.container_id.as_str()).collect();
        cni_firewall::gc_ports(settings.backend, &req.net.name, &ids).map_err(firewall_error)
    }
}

/// The `prevResult` in the request's version: portmap must be chained (code 7).
fn prev_result(req: &Request<PortMapConfig>) -> Result<CniResult> {
    req.net
        .required_prev_result("must be called as chained plugin")
}

fn spec(req: &Request<PortMapConfig>, s: &Settings, container: IpNetwork) -> PortMapSpec {
    PortMapSpec {
        network: req.net.name.clone(),
        container_id: req.args.container_id.clone(),
        container,
        mappings: s.mappings.clone(),
        snat: s.snat,
        masq_all: s.masq_all,
        mark: s.mark.clone(),
        conditions: if container.is_ipv4() {
            s.conditions_v4.clone()
        } else {
            s.conditions_v6.clone()
        },
    }
}

/// Deletes the host's conntrack entries of UDP flows to the mapped `ports` in `container`'s
/// family, so that a flow tracked before the mapping existed is not kept away from the
/// container (as the reference, over netlink; failures are only logged, as there).
fn flush_udp_conntrack(ports: &[u16], container: IpNetwork) {
    let family = if container.is_ipv4() {
        IpFamily::V4
    } else {
        IpFamily::V6
    };
    match cni_netlink::conntrack::delete_udp_entries(family, ports) {
        Ok(0) => {}
        Ok(n) => log::debug!("deleted {n} stale UDP conntrack entries of ports {ports:?}"),
        Err(e) => log::warn!(
            "failed to delete stale UDP conntrack entries for {}: {e}",
            container.ip()
        ),
    }
}

/// Sets `route_localnet` on the host interface that routes to the container, so that
/// DNATed traffic from 127.0.0.1 may leave through it (the reference does the same; it is
/// shared by the interface's containers, so never undone).
fn enable_route_localnet(container: IpNetwork) -> Result<()> {
    let host = Handle::current().map_err(kernel_error)?;
    let routes = host.routes(IpFamily::V4).map_err(kernel_error)?;
    let best = routes
        .iter()
        .filter(|r| r.table == TABLE_MAIN && r.dst.contains(container.ip()))
        .filter_map(|r| r.oif.map(|oif| (r.dst.prefix(), oif)))
        .max_by_key(|(prefix, _)| *prefix);
    let Some((_, oif)) = best else {
        return Ok(());
    };
    let link = host.link_by_index(oif).map_err(kernel_error)?;
    let name = format!("net/ipv4/conf/{}/route_localnet", link.name);
    cni_netlink::sysctl::write(&name, "1").map_err(kernel_error)
}

/// The firewall crate's errors as CNI errors: the caller's input is code 7, the rest 105.
pub(crate) fn firewall_error(err: cni_firewall::Error) -> Error {
    if err.is_config_error() {
        Error::invalid_config(err.to_string())
    } else {
        Error::plugin(cni::error::code::FIREWALL, err.to_string(), None)
    }
}
