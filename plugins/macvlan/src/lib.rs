//! The macvlan plugin: a macvlan sub-interface of a `master` link, handed to the container
//! as `CNI_IFNAME`, addresses from a delegated IPAM plugin or none (L2 mode)
//! (docs/reference.md#macvlan).
//!
//! Where it does better than the reference (docs/reference.md#defects), each pinned by a test in
//! `tests/macvlan.rs`:
//! * ADD is all-or-nothing: every step registers its undo, so a failure at any step leaves
//!   no link and no IPAM reservation (defect 6: the reference leaks the link on L3 errors);
//! * DEL needs neither the master nor a default route (Debian 1.1.1 fails with `Link not
//!   found` once the master is gone, and the IP leaks);
//! * the result carries IPAM's DNS when the config has no `dns` (defect 9);
//! * GC is forwarded to IPAM (defect 4).

#![forbid(unsafe_code)]

mod add;
mod check;
pub mod config;

use cni::{CniResult, Command, Plugin, Request, Result};
use cni_plugin_support::sublink;
use config::{MacvlanConfig, Settings};

/// The macvlan plugin.
pub struct Macvlan;

impl Plugin for Macvlan {
    type Config = MacvlanConfig;

    fn add(&self, req: Request<MacvlanConfig>) -> Result<CniResult> {
        let settings = Settings::from_request(&req)?;
        add::add(&req, &settings)
    }

    /// Deliberately validates nothing of the plugin's own keys: DEL must clean up even
    /// when the master or the default route is gone (see [`sublink::del`]).
    fn del(&self, req: Request<MacvlanConfig>) -> Result<()> {
        sublink::del(&req.net, &req.args, "macvlan")
    }

    fn check(&self, req: Request<MacvlanConfig>) -> Result<()> {
        let settings = Settings::from_request(&req)?;
        check::check(&req, &settings)
    }

    fn status(&self, req: Request<MacvlanConfig>) -> Result<()> {
        cni_plugin_support::ipam::forward_to_ipam(&req.net, &req.args, Command::Status)
    }

    fn gc(&self, req: Request<MacvlanConfig>) -> Result<()> {
        cni_plugin_support::ipam::forward_to_ipam(&req.net, &req.args, Command::Gc)
    }
}
