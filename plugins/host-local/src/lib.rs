//! The host-local IPAM plugin: hands out addresses from configured ranges, remembered in
//! files under a data directory (PL:plugins/ipam/host-local; docs/reference.md#host-local). The policy and
//! the store live in [`cni_ipam`]; this crate maps the CNI verbs onto them.
//!
//! Beyond the reference: STATUS reports an exhausted range set (code 50) and GC releases
//! every lease not in `cni.dev/valid-attachments` (spec 1.1.0; plugins #1047).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use cni::{CniResult, Plugin, Request};
use cni_ipam::{IpamConfig, Store};
use serde::Deserialize;
use serde_json::Value;

/// The plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostLocal;

/// host-local's own configuration: the `ipam` object, kept as JSON so every fault in it is
/// reported by [`IpamConfig::load`] with its field path (code 7) instead of as a decode error.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HostLocalConfig {
    /// The `ipam` object.
    #[serde(default)]
    pub ipam: Option<Value>,
}

/// Validates the whole configuration, `CNI_ARGS` included, and opens the network's store.
fn open(req: &Request<HostLocalConfig>) -> cni::Result<(IpamConfig, Store)> {
    let config = IpamConfig::load(req.config.ipam.as_ref(), &req.net, &req.args.args)?;
    let store = Store::open(&config.data_dir, &config.network)?;
    Ok((config, store))
}

impl Plugin for HostLocal {
    type Config = HostLocalConfig;

    /// One address per range set; the result is the abbreviated IPAM result (no interfaces).
    fn add(&self, req: Request<HostLocalConfig>) -> cni::Result<CniResult> {
        let (config, store) = open(&req)?;
        // resolv.conf is read before anything is reserved, so a bad path leaks nothing.
        let dns = config.dns()?;
        let attachment = req.args.attachment();
        // The new files are made before the lock, so concurrent ADDs make them in parallel.
        let prepared = store.prepare_add(&attachment, config.range_sets.len());
        let ips = cni_ipam::allocate(&store.lock_prepared(prepared)?, &config, &attachment)?;
        let mut result = CniResult::default();
        result.ips = ips;
        result.routes = config.routes;
        result.dns = dns;
        Ok(result)
    }

    /// Releases every address of the attachment; nothing to release is success.
    fn del(&self, req: Request<HostLocalConfig>) -> cni::Result<()> {
        let (_, store) = open(&req)?;
        cni_ipam::release(&store.lock()?, &req.args.attachment())?;
        Ok(())
    }

    /// Succeeds when the attachment holds any address, as the reference does.
    fn check(&self, req: Request<HostLocalConfig>) -> cni::Result<()> {
        let (_, store) = open(&req)?;
        cni_ipam::check(&store.lock()?, &req.args.attachment())?;
        Ok(())
    }

    /// Code 50 when some range set has no free address left.
    fn status(&self, req: Request<HostLocalConfig>) -> cni::Result<()> {
        let (config, store) = open(&req)?;
        cni_ipam::status(&store.lock()?, &config)?;
        Ok(())
    }

    /// Releases every lease whose attachment is not in `cni.dev/valid-attachments`.
    fn gc(&self, req: Request<HostLocalConfig>) -> cni::Result<()> {
        // libcni sends no list when its caller gave none (upstream `cnitool gc`): then
        // nothing can be judged stale, and "keep nothing" would wipe every lease of the
        // network. Collect nothing, successfully, so such callers keep working.
        let Some(valid) = req.net.valid_attachments.as_deref() else {
            log::warn!("GC without cni.dev/valid-attachments: nothing collected");
            return Ok(());
        };
        let (_, store) = open(&req)?;
        let released = cni_ipam::gc(&store.lock()?, valid)?;
        log::info!(
            "GC released {} lease(s) in {}",
            released.len(),
            store.path().display()
        );
        Ok(())
    }
}
