//! The ipvlan plugin: an ipvlan sub-interface of a `master` link, handed to the container
//! as `CNI_IFNAME`; addresses from a delegated IPAM plugin, or — chained without IPAM —
//! from the `prevResult` (docs/reference.md#ipvlan).
//!
//! Where it does better than the reference (docs/reference.md#defects), each pinned by a test in
//! `tests/ipvlan.rs`:
//! * ADD is all-or-nothing (defect 6: the reference never removes the link it made, and
//!   keeps the IPAM reservation when addressing fails);
//! * DEL needs neither `master` nor a default route, and CHECK works without `master`
//!   (defect 7);
//! * the result carries IPAM's DNS when the config has no `dns` (defect 9);
//! * GC is forwarded to IPAM (defect 4).
//!
//! The steps shared with the macvlan plugin are in `cni_plugin_support::sublink`.

#![forbid(unsafe_code)]

mod add;
mod check;
pub mod config;

use cni::{CniResult, Command, Plugin, Request, Result};
use cni_plugin_support::sublink;
use config::{IpvlanConfig, Settings};

/// The ipvlan plugin.
pub struct Ipvlan;

impl Plugin for Ipvlan {
    type Config = IpvlanConfig;

    fn add(&self, req: Request<IpvlanConfig>) -> Result<CniResult> {
        let settings = Settings::from_request(&req)?;
        add::add(&req, &settings)
    }

    /// Deliberately validates nothing of the plugin's own keys and never resolves the
    /// master: the reference's DEL fails on a host without a default route (defect 7).
    fn del(&self, req: Request<IpvlanConfig>) -> Result<()> {
        sublink::del(&req.net, &req.args, "ipvlan")
    }

    fn check(&self, req: Request<IpvlanConfig>) -> Result<()> {
        check::check(&req)
    }

    fn status(&self, req: Request<IpvlanConfig>) -> Result<()> {
        cni_plugin_support::ipam::forward_to_ipam(&req.net, &req.args, Command::Status)
    }

    fn gc(&self, req: Request<IpvlanConfig>) -> Result<()> {
        cni_plugin_support::ipam::forward_to_ipam(&req.net, &req.args, Command::Gc)
    }
}
