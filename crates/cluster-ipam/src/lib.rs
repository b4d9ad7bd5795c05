//! cluster-ipam: one address pool shared by many nodes, kept in etcd v3.
//!
//! The configuration is host-local's (range sets, requested addresses, routes, resolv.conf,
//! read by [`cni_ipam`]) plus the etcd connection, the node's name and the block sizes.
//! Allocation follows Calico's node-affine blocks: a node claims a free block of the pool
//! with one compare-and-create transaction and allocates inside its own blocks; when none
//! is left it allocates inside another node's block. Each reservation is a key created by a
//! transaction that fails if the key exists, so a duplicate address is impossible by
//! construction, with no cluster-wide lock. Key layout: [`keys`].
//!
//! ```no_run
//! # fn demo(net: &cni::NetConf, ipam: Option<&serde_json::Value>, args: &cni::CmdArgs) -> cni_cluster_ipam::Result<()> {
//! let config = cni_cluster_ipam::ClusterConfig::load(ipam, net, &args.args)?;
//! let etcd = cni_cluster_ipam::Etcd::connect(&config.etcd)?;
//! let attachment = args.attachment();
//! let ips = cni_cluster_ipam::Pool::new(&etcd, &config).allocate(&attachment)?;
//! # let _ = ips; Ok(()) }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod block;
pub mod config;
pub mod error;
pub mod etcd;
pub mod keys;
pub mod pool;

pub use config::{ClusterConfig, EtcdConfig};
pub use error::{Error, Result};
pub use etcd::Etcd;
pub use pool::Pool;
