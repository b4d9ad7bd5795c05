//! The cluster-ipam IPAM plugin: one address pool for many nodes, kept in etcd v3
//! (README.md, "cluster-ipam"). The policy and the store live in [`cni_cluster_ipam`];
//! this crate maps the CNI verbs and the admin command onto them.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use cni::{CniResult, NetConf, Plugin, Request};
use cni_cluster_ipam::{ClusterConfig, Etcd, Pool};
use serde::Deserialize;
use serde_json::Value;

/// The plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterIpam;

/// The plugin's configuration: the `ipam` object, kept as JSON so every fault in it is
/// reported with its field path (code 7) by [`ClusterConfig::load`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClusterIpamConfig {
    /// The `ipam` object.
    #[serde(default)]
    pub ipam: Option<Value>,
}

/// Validates the whole configuration, `CNI_ARGS` included, and sets up the etcd client.
fn open(req: &Request<ClusterIpamConfig>) -> cni_cluster_ipam::Result<(ClusterConfig, Etcd)> {
    let config = ClusterConfig::load(req.config.ipam.as_ref(), &req.net, &req.args.args)?;
    let etcd = Etcd::connect(&config.etcd)?;
    Ok((config, etcd))
}

/// Ends a verb's use of the client without tearing it down. The binary leaves with `_exit`
/// right after the verb (`cni::plugin_main!`), and the kernel then closes the connection
/// just as dropping the client would; shutting the runtime and the connection's tasks down
/// first only costs time (measured: ADD 0.12-0.18 ms, DEL 0.16-0.19 ms faster without it).
/// A verb that fails drops its client on the way out as before.
fn done_with(etcd: Etcd) {
    std::mem::forget(etcd);
}

impl Plugin for ClusterIpam {
    type Config = ClusterIpamConfig;

    /// One address per range set; the result is the abbreviated IPAM result (no interfaces).
    fn add(&self, req: Request<ClusterIpamConfig>) -> cni::Result<CniResult> {
        let (config, etcd) = open(&req)?;
        // resolv.conf is read before anything is reserved, so a bad path leaks nothing.
        let dns = config.ipam.dns()?;
        let ips = Pool::new(&etcd, &config).allocate(&req.args.attachment())?;
        done_with(etcd);
        let mut result = CniResult::default();
        result.ips = ips;
        result.routes = config.ipam.routes;
        result.dns = dns;
        Ok(result)
    }

    /// Releases every address of the attachment; nothing to release is success.
    fn del(&self, req: Request<ClusterIpamConfig>) -> cni::Result<()> {
        let (config, etcd) = open(&req)?;
        Pool::new(&etcd, &config).release(&req.args.attachment())?;
        done_with(etcd);
        Ok(())
    }

    /// Succeeds when the attachment's reservations are all in etcd.
    fn check(&self, req: Request<ClusterIpamConfig>) -> cni::Result<()> {
        let (config, etcd) = open(&req)?;
        Pool::new(&etcd, &config).check(&req.args.attachment())?;
        done_with(etcd);
        Ok(())
    }

    /// Code 50 when some range set has no free address left, or etcd cannot be reached.
    fn status(&self, req: Request<ClusterIpamConfig>) -> cni::Result<()> {
        let status = || -> cni_cluster_ipam::Result<()> {
            let (config, etcd) = open(&req)?;
            Pool::new(&etcd, &config).status()?;
            done_with(etcd);
            Ok(())
        };
        status().map_err(cni_cluster_ipam::Error::for_status)?;
        Ok(())
    }

    /// Releases this node's attachments on this network that are not in
    /// `cni.dev/valid-attachments`; no list collects nothing, as host-local.
    fn gc(&self, req: Request<ClusterIpamConfig>) -> cni::Result<()> {
        let Some(valid) = req.net.valid_attachments.as_deref() else {
            log::warn!("GC without cni.dev/valid-attachments: nothing collected");
            return Ok(());
        };
        let (config, etcd) = open(&req)?;
        let released = Pool::new(&etcd, &config).gc(valid)?;
        done_with(etcd);
        log::info!(
            "GC released {released} attachment(s) of node {} on {}",
            config.node,
            config.ipam.network
        );
        Ok(())
    }
}

/// The admin command `cluster-ipam release-node <node>`: the network configuration on
/// `stdin`; releases every reservation and block of `node` on that network. Returns the
/// line to print on success.
pub fn release_node(node: &str, stdin: &[u8]) -> cni::Result<String> {
    let config: Value = serde_json::from_slice(stdin).map_err(|e| cni::Error::Decode {
        msg: "network configuration on stdin is not JSON".into(),
        details: Some(e.to_string()),
    })?;
    let net: NetConf = cni::config::decode(&config, "")?;
    // The name is a path segment of every key, as the skel checks it for the verbs.
    cni::names::validate_network_name(&net.name)?;
    let ipam = config.get("ipam");
    let run = || -> cni_cluster_ipam::Result<(usize, usize)> {
        let config = ClusterConfig::load(ipam, &net, &cni::CniArgs::default())?;
        let etcd = Etcd::connect(&config.etcd)?;
        Pool::new(&etcd, &config).release_node(node)
    };
    let (attachments, blocks) = run()?;
    Ok(format!(
        "released {attachments} attachment(s) and {blocks} block(s) of node {node} on network {}",
        net.name
    ))
}
