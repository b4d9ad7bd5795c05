//! The CNI protocol, without syscalls: the `CNI_*` environment, the network configuration,
//! results in every spec version (0.1.0 ... 1.1.0) and their conversions, the spec's error
//! codes, delegation to IPAM plugins, and the dispatcher ([`skel`]) every plugin's `main`
//! calls. Spec: CNI SPEC.md 1.1.0.
#![warn(missing_docs)]

pub mod args;
pub mod config;
pub mod error;
pub mod invoke;
mod json;
pub mod log;
pub mod names;
pub mod result;
pub mod skel;
pub mod version;

pub use args::{CmdArgs, CniArgs, Command};
pub use config::{Attachment, NetConf};
pub use error::{Error, ErrorResult, Result};
pub use result::{Cidr, CniResult, Dns, Interface, IpConfig, Route};
pub use skel::{About, Plugin, Request};
pub use version::Version;
