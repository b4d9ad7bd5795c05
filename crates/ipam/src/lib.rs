//! host-local IPAM: the configuration (range sets, requested addresses, routes, resolv.conf),
//! the round-robin allocator and the Go-compatible on-disk store. No netlink, no netns: the
//! only side effects are files under the data directory.
//!
//! Typical use, one locked store per CNI verb:
//!
//! ```no_run
//! # fn demo(net: &cni::NetConf, ipam: Option<&serde_json::Value>, args: &cni::CmdArgs) -> cni::Result<()> {
//! let config = cni_ipam::IpamConfig::load(ipam, net, &args.args)?;
//! let store = cni_ipam::Store::open(&config.data_dir, &config.network)?;
//! let attachment = args.attachment();
//! let ips = cni_ipam::allocate(&store.lock()?, &config, &attachment)?;
//! # let _ = ips; Ok(()) }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod allocator;
pub mod config;
pub mod dns;
pub mod error;
pub mod range;
pub mod store;

pub use allocator::{Candidates, allocate, check, gc, release, status};
pub use config::{DEFAULT_DATA_DIR, IpamConfig};
pub use error::{Error, Result};
pub use range::{Range, RangeSet, RangeSpec};
pub use store::{LockedStore, Owner, Prepared, Store};
