//! The errors of host-local IPAM, and their one mapping to CNI error codes.
//!
//! Allocation messages keep the reference's text (`failed to allocate for range 0: no IP
//! addresses available in range set: ...`): operators and runbooks search for it.

use cni::error::code;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// A host-local IPAM failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The network configuration has no `ipam` object.
    #[error("IPAM config missing 'ipam' key")]
    MissingIpam,
    /// Neither `ranges`, the legacy `subnet`, nor `runtimeConfig.ipRanges` gave a range.
    #[error("no IP ranges specified")]
    NoRanges,
    /// One range or range set is invalid; `field` is its path in the configuration
    /// (e.g. `ipam.ranges[0][1].gateway`).
    #[error("invalid range set {set}: {field}: {reason}")]
    InvalidRange {
        /// Index of the range set in the final order (runtime ranges first).
        set: usize,
        /// Configuration path of the faulty value.
        field: String,
        /// What is wrong, in the reference's words.
        reason: String,
    },
    /// Two range sets share addresses.
    #[error("range set {first} overlaps with {second}")]
    RangeSetsOverlap {
        /// The earlier set.
        first: usize,
        /// The later set.
        second: usize,
    },
    /// Results before 0.3.0 hold one IPv4 and one IPv6 address at most.
    #[error("CNI version {version} does not support more than 1 address per family")]
    TooManyAddressesPerFamily {
        /// The request's version.
        version: cni::Version,
    },
    /// Another configuration value (a route, a requested IP, the `ipam` object's shape) is
    /// invalid; `field` is its path.
    #[error("{field}: {reason}")]
    InvalidField {
        /// Configuration path (`ipam.routes[1]`, `runtimeConfig.ips[0]`, `CNI_ARGS IP`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A CNI-level rejection (hostile names, unknown `CNI_ARGS`), passed through unchanged.
    #[error(transparent)]
    Rejected(cni::Error),
    /// `ipam.resolvConf` could not be read.
    #[error("failed to read resolvConf {path}: {source}")]
    ResolvConf {
        /// The configured path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Every address of a range set is taken.
    #[error("failed to allocate for range {set}: no IP addresses available in range set: {ranges}")]
    Exhausted {
        /// Index of the range set.
        set: usize,
        /// The set, printed as `start-end[,start-end]`.
        ranges: String,
    },
    /// The attachment already holds an address in this range set.
    #[error(
        "failed to allocate for range {set}: {ip} has been allocated to {container_id}, duplicate allocation is not allowed"
    )]
    DuplicateAllocation {
        /// Index of the range set.
        set: usize,
        /// The address already held.
        ip: IpAddr,
        /// The container.
        container_id: String,
    },
    /// A requested address is reserved already (by anyone).
    #[error(
        "failed to allocate for range {set}: requested IP address {ip} is not available in range set {ranges}"
    )]
    RequestedIpTaken {
        /// Index of the range set.
        set: usize,
        /// The requested address.
        ip: IpAddr,
        /// The set, printed as `start-end[,start-end]`.
        ranges: String,
    },
    /// A requested address is the gateway of its range.
    #[error("failed to allocate for range {set}: requested ip {ip} is subnet's gateway")]
    RequestedIpIsGateway {
        /// Index of the range set.
        set: usize,
        /// The requested address.
        ip: IpAddr,
    },
    /// Requested addresses that no range set could take (outside every set, or two in one set).
    #[error("failed to allocate all requested IPs:{}", ips.iter().map(|ip| format!(" {ip}")).collect::<String>())]
    RequestedIpsUnfulfilled {
        /// The addresses left over.
        ips: Vec<IpAddr>,
    },
    /// CHECK: the attachment holds no address.
    #[error("host-local: Failed to find address added by container {container_id}")]
    AttachmentNotFound {
        /// The container.
        container_id: String,
    },
    /// STATUS: a range set has no free address left.
    #[error("no IP addresses available in range set {set}: {ranges}")]
    NoFreeAddress {
        /// Index of the range set.
        set: usize,
        /// The set, printed as `start-end[,start-end]`.
        ranges: String,
    },
    /// A store operation failed.
    #[error("{op} {path}: {source}")]
    Store {
        /// What was being done (`create`, `link`, `read`...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The store directory is a symlink or not a directory: refused, never followed.
    #[error(
        "{path} is not a directory (symlinks are refused); refusing to use it as the IPAM store"
    )]
    NotADirectory {
        /// The path found.
        path: PathBuf,
    },
}

impl Error {
    /// A store error from a nix call.
    pub(crate) fn store(
        op: &'static str,
        path: impl Into<PathBuf>,
        errno: nix::errno::Errno,
    ) -> Self {
        Error::Store {
            op,
            path: path.into(),
            source: io::Error::from(errno),
        }
    }
}

impl From<Error> for cni::Error {
    /// The one place where IPAM failures get their CNI codes: configuration faults are 7,
    /// exhaustion and conflicts have plugin codes, STATUS's exhaustion is 50, store I/O is 5.
    fn from(error: Error) -> Self {
        let msg = error.to_string();
        match error {
            Error::Rejected(inner) => inner,
            Error::MissingIpam
            | Error::NoRanges
            | Error::InvalidRange { .. }
            | Error::RangeSetsOverlap { .. }
            | Error::TooManyAddressesPerFamily { .. }
            | Error::InvalidField { .. }
            | Error::RequestedIpIsGateway { .. }
            | Error::RequestedIpsUnfulfilled { .. } => cni::Error::invalid_config(msg),
            Error::Exhausted { .. } => cni::Error::plugin(code::IPAM_EXHAUSTED, msg, None),
            Error::DuplicateAllocation { .. } | Error::RequestedIpTaken { .. } => {
                cni::Error::plugin(code::IPAM_ALLOCATED, msg, None)
            }
            Error::AttachmentNotFound { .. } => cni::Error::plugin(code::CHECK_FAILED, msg, None),
            Error::NoFreeAddress { .. } => cni::Error::NotAvailable { msg },
            Error::ResolvConf { ref source, .. } | Error::Store { ref source, .. } => {
                cni::Error::Io {
                    msg,
                    details: Some(source.to_string()),
                }
            }
            Error::NotADirectory { .. } => cni::Error::Io { msg, details: None },
        }
    }
}
