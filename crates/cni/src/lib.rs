//! The CNI protocol, without syscalls: the `CNI_*` environment, the network configuration,
//! results in every spec version (0.1.0 ... 1.1.0) and their conversions, the spec's error
//! codes, delegation to IPAM plugins, and the dispatcher ([`skel`]) every plugin's `main`
//! calls. Spec: CNI SPEC.md 1.1.0; the anchors below are sections of docs/spec.md.
//!
//! | module | owns | spec |
//! |---|---|---|
//! | [`args`] | `CNI_*` variables, `CNI_ARGS` | #environment |
//! | [`config`] | well-known config keys ([`NetConf`]) | #configuration, #request |
//! | [`result`] | ADD results, every version, conversions, Go-identical printing | #results |
//! | [`error`] | codes and the error object | #errors |
//! | [`skel`] | dispatch order, version gates, exit codes, panics → code 999 | #verbs, #dispatch |
//! | [`invoke`] | running a delegate (IPAM) from `CNI_PATH` | #delegation |
//! | [`built_in`] | delegates run in process when `CNI_PATH` holds our own build of them | #delegation |
//! | [`log`] | stderr logger (`CNI_LOG_LEVEL`) | – |
//! | [`names`], [`version`] | name validation, version negotiation | #environment, #versions |
//!
//! The only system calls are reading the environment and stdin and spawning delegates (and
//! reading a delegate's first page, to know whether it is our own build); no
//! test needs root. A plugin's `main` is one line:
//!
//! ```no_run
//! use cni::{About, CniResult, Plugin, Request, Result};
//!
//! struct Noop;
//!
//! impl Plugin for Noop {
//!     type Config = serde_json::Value; // the plugin's own keys, usually a struct
//!     fn add(&self, _req: Request<Self::Config>) -> Result<CniResult> {
//!         Ok(CniResult::default())
//!     }
//!     fn del(&self, _req: Request<Self::Config>) -> Result<()> {
//!         Ok(())
//!     }
//!     fn check(&self, _req: Request<Self::Config>) -> Result<()> {
//!         Ok(())
//!     }
//! }
//!
//! fn main() {
//!     cni::skel::run(Noop, About { name: "noop", version: env!("CARGO_PKG_VERSION") })
//! }
//! ```
#![warn(missing_docs)]

pub mod args;
pub mod built_in;
pub mod config;
mod document;
pub mod error;
pub mod invoke;
pub mod json;
pub mod log;
pub mod mac;
pub mod names;
mod objects_only;
pub mod result;
pub mod skel;
pub mod version;

pub use args::{CmdArgs, CniArgs, Command};
pub use built_in::BuiltIn;
pub use config::{Attachment, NetConf};
pub use error::{Error, ErrorResult, Result};
pub use mac::MacAddr;
pub use result::{Cidr, CniResult, Dns, Interface, IpConfig, Route};
pub use skel::{About, Plugin, Request};
pub use version::Version;
