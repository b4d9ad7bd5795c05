//! The CNI `firewall` meta plugin (docs/reference.md#firewall): chained after a plugin that
//! gave the container addresses, it lets their traffic through the host's `FORWARD` chain
//! (iptables: `CNI-FORWARD` and the admin chain; or a firewalld zone), optionally isolates
//! bridges from each other (`ingressPolicy`), and passes the `prevResult` on.
//!
//! Where it does better than the reference, each pinned by a test in `tests/firewall.rs`:
//! * every key is checked before the first change (an unknown `ingressPolicy` or `backend`
//!   is code 7 with nothing installed; the reference installs the rules, then fails, or
//!   silently picks a backend);
//! * ADD is all or nothing: the rules of one address family go in as one atomic batch, and a
//!   failure in the second family takes the first family's container rules out again;
//! * CHECK creates nothing (the reference's CHECK creates missing chains) and names the
//!   missing rule with code 106.

mod config;

pub use config::{Backend, FirewallConfig, IngressPolicy, Settings};

use cni::error::code;
use cni::{CniResult, Error, Plugin, Request, Result, Version};
use cni_firewall::{ForwardPlan, Isolation};
use std::net::IpAddr;

/// The firewall plugin.
pub struct Firewall;

impl Plugin for Firewall {
    type Config = FirewallConfig;

    /// As the reference: below 0.4.0 a runtime's DEL carries no `prevResult`, and without
    /// one the iptables rules, which name only addresses, could never be found again.
    const OLDEST_VERSION: Version = Version::V0_4_0;

    fn add(&self, req: Request<FirewallConfig>) -> Result<CniResult> {
        let settings = settings(&req)?;
        let result = prev_result(&req)?;
        // Fail now, before any change, if the result cannot be expressed in the request's
        // version.
        result.to_value(req.net.cni_version)?;
        let ips = addresses(&result);
        let isolation = isolation(&settings, &result)?;
        match &settings.backend {
            Backend::Iptables { admin_chain } => cni_firewall::allow_forwarding(&ForwardPlan {
                admin_chain: Some(admin_chain),
                ips: &ips,
                isolation: isolation.as_ref(),
            })
            .map_err(firewall_error)?,
            Backend::Nftables => cni_firewall::nft_allow_forwarding(
                &ForwardPlan {
                    admin_chain: None,
                    ips: &ips,
                    isolation: isolation.as_ref(),
                },
                &attachment(&req),
            )
            .map_err(firewall_error)?,
            Backend::Firewalld { zone } => {
                cni_firewall::firewalld_add_sources(zone, &ips).map_err(firewall_error)?;
                // The reference isolates with iptables whatever the backend.
                if let Some(isolation) = &isolation {
                    let isolated = cni_firewall::allow_forwarding(&ForwardPlan {
                        admin_chain: None,
                        ips: &ips,
                        isolation: Some(isolation),
                    });
                    if let Err(e) = isolated {
                        if let Err(undo) = cni_firewall::firewalld_remove_sources(zone, &ips) {
                            log::warn!("firewall: undoing the firewalld sources failed: {undo}");
                        }
                        return Err(firewall_error(e));
                    }
                }
            }
        }
        Ok(result)
    }

    /// Removes the container's rules. iptables and firewalld find them by the addresses in
    /// `prevResult`; without one there is nothing to find them by (the rules name only
    /// addresses, as the reference's), so nothing is removed. nftables finds them by the
    /// attachment. The shared chains and the isolation rules stay: other containers use them.
    fn del(&self, req: Request<FirewallConfig>) -> Result<()> {
        let settings = settings(&req)?;
        let ips = match req.net.prev_result.as_ref() {
            Some(prev) => addresses(&CniResult::from_prev_result(prev, req.net.cni_version)?),
            None => Vec::new(),
        };
        match &settings.backend {
            Backend::Iptables { .. } => cni_firewall::revoke_forwarding(&ips),
            Backend::Nftables => cni_firewall::nft_revoke_forwarding(&attachment(&req)),
            Backend::Firewalld { zone } => cni_firewall::firewalld_remove_sources(zone, &ips),
        }
        .map_err(firewall_error)
    }

    fn check(&self, req: Request<FirewallConfig>) -> Result<()> {
        let settings = settings(&req)?;
        let ips = addresses(&prev_result(&req)?);
        let missing = match &settings.backend {
            Backend::Iptables { admin_chain } => {
                cni_firewall::missing_forwarding(admin_chain, &ips)
            }
            Backend::Nftables => cni_firewall::nft_missing_forwarding(&ips, &attachment(&req)),
            Backend::Firewalld { zone } => cni_firewall::firewalld_missing_sources(zone, &ips),
        }
        .map_err(firewall_error)?;
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::plugin(
            code::CHECK_FAILED,
            format!("firewall: missing {}", missing.join("; ")),
            None,
        ))
    }

    /// Ready when the configured backend's tool can be used.
    fn status(&self, req: Request<FirewallConfig>) -> Result<()> {
        let settings = settings(&req)?;
        let usable = match &settings.backend {
            Backend::Iptables { .. } => cni_firewall::iptables_usable(),
            Backend::Nftables => cni_firewall::nftables_usable(),
            Backend::Firewalld { .. } => cni_firewall::firewalld_running(),
        }
        .map_err(firewall_error)?;
        if usable {
            return Ok(());
        }
        Err(Error::NotAvailable {
            msg: match settings.backend {
                Backend::Iptables { .. } => "iptables is not usable on this host".into(),
                Backend::Nftables => "nftables is not usable on this host".into(),
                Backend::Firewalld { .. } => "firewalld is not running".into(),
            },
        })
    }

    /// Removes the nftables rules of attachments not in `cni.dev/valid-attachments`. The
    /// iptables and firewalld state stays: it names only container addresses, and GC is
    /// given attachments, not addresses, so it cannot be traced (docs/reference.md#firewall).
    fn gc(&self, req: Request<FirewallConfig>) -> Result<()> {
        let Some(valid) = req.net.valid_attachments.as_deref() else {
            log::warn!("GC without cni.dev/valid-attachments: nothing collected");
            return Ok(());
        };
        let valid: Vec<(&str, &str)> = valid
            .iter()
            .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
            .collect();
        cni_firewall::nft_collect_stale_forwarding(&req.net.name, &valid).map_err(firewall_error)
    }
}

/// The attachment the nftables rules are keyed by.
fn attachment(req: &Request<FirewallConfig>) -> cni_firewall::Attachment<'_> {
    cni_firewall::Attachment {
        network: &req.net.name,
        container_id: &req.args.container_id,
        ifname: &req.args.ifname,
    }
}

fn settings(req: &Request<FirewallConfig>) -> Result<Settings> {
    Settings::from_config(&req.config, || {
        cni_firewall::firewalld_running().unwrap_or_else(|e| {
            log::warn!("firewall: cannot tell whether firewalld runs, assuming not: {e}");
            false
        })
    })
}

/// The `prevResult` in the request's version: ADD and CHECK need one (code 7).
fn prev_result(req: &Request<FirewallConfig>) -> Result<CniResult> {
    req.net
        .required_prev_result("missing prevResult from earlier plugin")
}

fn addresses(result: &CniResult) -> Vec<IpAddr> {
    result.ips.iter().map(|ip| ip.address.ip()).collect()
}

/// The bridge to isolate: the first interface of `prevResult`, as the reference takes it
/// (the bridge plugin reports its bridge first).
fn isolation(settings: &Settings, result: &CniResult) -> Result<Option<Isolation>> {
    let same_bridge_too = match settings.ingress {
        IngressPolicy::Open => return Ok(None),
        IngressPolicy::SameBridge => false,
        IngressPolicy::Isolated => true,
    };
    let Some(bridge) = result.interfaces.first().filter(|i| !i.name.is_empty()) else {
        return Err(Error::invalid_config(
            "the ingress policy needs the bridge as the first interface of prevResult: \
             chain the firewall plugin after the bridge plugin",
        ));
    };
    Ok(Some(Isolation {
        bridge: bridge.name.clone(),
        same_bridge_too,
    }))
}

/// The one place a `cni_firewall::Error` becomes a CNI error: 7 for a bad value, else 105.
fn firewall_error(err: cni_firewall::Error) -> Error {
    if err.is_config_error() {
        Error::invalid_config(err.to_string())
    } else if err.is_not_available() {
        Error::plugin(
            code::FIREWALL,
            err.to_string(),
            Some("install and start it, or choose another backend".into()),
        )
    } else {
        Error::plugin(code::FIREWALL, err.to_string(), None)
    }
}
