//! The bridge plugin: a veth pair from the container to a host bridge, addresses from a
//! delegated IPAM plugin, optional gateway, masquerade and MAC spoof check
//! (docs/reference.md#bridge; reference defects fixed: docs/reference.md#defects 1–4 and 6).
//!
//! Every ADD step registers its undo; if a later step fails, the undo list runs in reverse,
//! so a failed ADD leaves no veth, reservation or rule behind (a bridge it created stays, as
//! does a `<bridge>.<vlan>` VLAN gateway interface: they are shared). DEL needs nothing but the attachment's identity, so it also cleans up after
//! an ADD that was killed half-way.

#![forbid(unsafe_code)]

mod add;
mod check;
pub mod config;
mod del;

use cni::{CniResult, Plugin, Request, Result};
use config::{BridgeConfig, Settings};

/// The bridge plugin.
pub struct Bridge;

impl Plugin for Bridge {
    type Config = BridgeConfig;

    fn add(&self, req: Request<BridgeConfig>) -> Result<CniResult> {
        let settings = Settings::from_request(&req)?;
        add::add(&req, &settings)
    }

    fn del(&self, req: Request<BridgeConfig>) -> Result<()> {
        let settings = Settings::from_request(&req)?;
        del::del(&req, &settings)
    }

    fn check(&self, req: Request<BridgeConfig>) -> Result<()> {
        let settings = Settings::from_request(&req)?;
        check::check(&req, &settings)
    }

    fn status(&self, req: Request<BridgeConfig>) -> Result<()> {
        cni_plugin_support::ipam::forward_to_ipam(&req.net, &req.args, cni::Command::Status)
    }

    fn gc(&self, req: Request<BridgeConfig>) -> Result<()> {
        let settings = Settings::from_request(&req)?;
        del::gc(&req, &settings)
    }
}

/// The one place a firewall error becomes a CNI error: a bad `ipMasqBackend` is invalid
/// config (7), anything else [`cni::error::code::FIREWALL`].
fn firewall_error(err: cni_firewall::Error) -> cni::Error {
    if err.is_config_error() {
        cni::Error::invalid_config(err.to_string())
    } else {
        cni::Error::plugin(cni::error::code::FIREWALL, err.to_string(), None)
    }
}
