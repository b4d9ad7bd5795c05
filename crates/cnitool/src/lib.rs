//! The runtime side of CNI, as libcni implements it (CNI:libcni, docs/spec.md#runtime):
//!
//! - [`config`]: finding and parsing a network configuration list in a directory
//!   (`.conflist`, legacy `.conf`/`.json`, `<dir>/<name>/*.conf`), version selection;
//! - [`runtime`]: running a list — ADD in order with `prevResult` threading and
//!   `runtimeConfig` from capabilities, DEL in reverse and CHECK with the cached result,
//!   STATUS, GC — and the request config each plugin receives;
//! - [`cache`]: libcni's `cniCacheV1` result cache, byte for byte, so our tool and other
//!   libcni runtimes can share `/var/lib/cni/results`;
//! - [`tool`]: the `cnitool` command line (environment, container ID derivation).
//!
//! Plugins are executed through `cni::invoke::delegate` (the code our plugins use for
//! their IPAM delegate). Nothing here touches the network itself: all kernel work is the
//! plugins'.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod base64;
pub mod cache;
pub mod config;
pub mod error;
pub mod runtime;
pub mod tool;

pub use cache::{Cache, CachedInfo};
pub use config::{NetworkConfigList, PluginConfig, SpecVersion, load_network_conf};
pub use error::{Error, Result};
pub use runtime::{AddResult, CniConfig, GcAttachment, RuntimeConf};
