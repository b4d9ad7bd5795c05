//! CNI errors: one enum whose variants follow the spec's well-known codes, printed as the
//! spec's error object. Every library error maps into this type in exactly one `From` impl.
//!
//! Spec: SPEC.md "Error" (codes 0-99 reserved, 100+ plugin specific); Go lib additions:
//! 999 = internal (untyped) error.

use serde::Serialize;

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Plugin-specific error codes (100 and above), shared by every plugin of this suite.
pub mod code {
    /// A kernel (netlink, sysctl, namespace) operation failed.
    pub const KERNEL: u32 = 100;
    /// The kernel lacks a feature the configuration needs (a link type, bridge VLAN filtering).
    pub const KERNEL_FEATURE: u32 = 101;
    /// No free address is left in a range set.
    pub const IPAM_EXHAUSTED: u32 = 102;
    /// The requested address or attachment is already allocated.
    pub const IPAM_ALLOCATED: u32 = 103;
    /// A delegated plugin could not be found or run.
    pub const DELEGATE: u32 = 104;
    /// A firewall (nftables / iptables) operation failed.
    pub const FIREWALL: u32 = 105;
    /// CHECK found the container's state differs from what ADD made.
    pub const CHECK_FAILED: u32 = 106;
    /// The result cannot be expressed in the requested version (e.g. no IP for 0.2.0).
    pub const CONVERSION: u32 = 107;
    /// The Go lib's code for an untyped error (`ErrInternal`); also used for caught panics.
    pub const INTERNAL: u32 = 999;
}

/// A CNI error, as returned by a plugin or a delegated plugin.
///
/// `msg` is a short sentence a person understands; `details` carries the cause chain
/// (errno text, the offending value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Code 1: incompatible CNI version.
    #[error("{msg}")]
    IncompatibleVersion {
        /// Short message.
        msg: String,
        /// e.g. `config is "9.9.9", plugin supports [...]`.
        details: Option<String>,
    },
    /// Code 2: unsupported field in the network configuration; names key and value.
    #[error("unsupported field {key:?} with value {value:?}")]
    UnsupportedField {
        /// The configuration key (a path such as `ipam.ranges[0][0].foo`).
        key: String,
        /// The value as written.
        value: String,
    },
    /// Code 3: the container is unknown or does not exist.
    #[error("{msg}")]
    UnknownContainer {
        /// Short message.
        msg: String,
    },
    /// Code 4: invalid or missing `CNI_*` environment variables; the message names them.
    #[error("{msg}")]
    InvalidEnvironment {
        /// Short message naming the variables.
        msg: String,
        /// The offending value, if any.
        details: Option<String>,
    },
    /// Code 5: I/O failure (reading stdin, the IPAM store, ...).
    #[error("{msg}")]
    Io {
        /// What was being done.
        msg: String,
        /// The OS error text.
        details: Option<String>,
    },
    /// Code 6: content could not be decoded (bad JSON, bad version string).
    #[error("{msg}")]
    Decode {
        /// What was being decoded.
        msg: String,
        /// The decoder's message.
        details: Option<String>,
    },
    /// Code 7: invalid network configuration (names the field).
    #[error("{msg}")]
    InvalidConfig {
        /// Short message naming the field.
        msg: String,
        /// More context.
        details: Option<String>,
    },
    /// Code 11: transient failure; try again later.
    #[error("{msg}")]
    TryAgainLater {
        /// Short message.
        msg: String,
    },
    /// Code 50 (STATUS): the plugin cannot service ADD.
    #[error("{msg}")]
    NotAvailable {
        /// Short message.
        msg: String,
    },
    /// Code 51 (STATUS): not available, and existing containers may have limited connectivity.
    #[error("{msg}")]
    LimitedConnectivity {
        /// Short message.
        msg: String,
    },
    /// A plugin-specific (>= 100, see [`code`]) error, or one passed through from a delegate
    /// with whatever code it carried.
    #[error("{msg}")]
    Plugin {
        /// The code.
        code: u32,
        /// Short message.
        msg: String,
        /// The cause chain.
        details: Option<String>,
    },
}

impl Error {
    /// The spec code of this error.
    pub fn code(&self) -> u32 {
        match self {
            Error::IncompatibleVersion { .. } => 1,
            Error::UnsupportedField { .. } => 2,
            Error::UnknownContainer { .. } => 3,
            Error::InvalidEnvironment { .. } => 4,
            Error::Io { .. } => 5,
            Error::Decode { .. } => 6,
            Error::InvalidConfig { .. } => 7,
            Error::TryAgainLater { .. } => 11,
            Error::NotAvailable { .. } => 50,
            Error::LimitedConnectivity { .. } => 51,
            Error::Plugin { code, .. } => *code,
        }
    }

    /// The short message.
    pub fn msg(&self) -> String {
        self.to_string()
    }

    /// The details (cause chain), if any.
    pub fn details(&self) -> Option<&str> {
        match self {
            Error::IncompatibleVersion { details, .. }
            | Error::InvalidEnvironment { details, .. }
            | Error::Io { details, .. }
            | Error::Decode { details, .. }
            | Error::InvalidConfig { details, .. }
            | Error::Plugin { details, .. } => details.as_deref(),
            _ => None,
        }
    }

    /// Code 7 with a message naming the field.
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Error::InvalidConfig {
            msg: msg.into(),
            details: None,
        }
    }

    /// Code 4 with a message naming the variable(s).
    pub fn invalid_env(msg: impl Into<String>) -> Self {
        Error::InvalidEnvironment {
            msg: msg.into(),
            details: None,
        }
    }

    /// A plugin-specific error with code >= 100 (see [`code`]).
    pub fn plugin(code: u32, msg: impl Into<String>, details: Option<String>) -> Self {
        Error::Plugin {
            code,
            msg: msg.into(),
            details,
        }
    }

    /// Code 999: an internal error (also what a caught panic becomes).
    pub fn internal(msg: impl Into<String>) -> Self {
        Error::Plugin {
            code: code::INTERNAL,
            msg: msg.into(),
            details: None,
        }
    }

    /// The spec's error object, `{"cniVersion"?, "code", "msg", "details"?}`.
    pub fn to_wire(&self, cni_version: Option<&str>) -> ErrorResult {
        ErrorResult {
            cni_version: cni_version.map(str::to_owned),
            code: self.code(),
            msg: self.msg(),
            details: self.details().map(str::to_owned),
        }
    }
}

/// The error object as printed on stdout (spec "Error"); also parsed from a delegate's stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ErrorResult {
    /// The request's version; omitted when unknown.
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cni_version: Option<String>,
    /// The code.
    pub code: u32,
    /// Short message.
    #[serde(default)]
    pub msg: String,
    /// Details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl From<ErrorResult> for Error {
    /// Rebuilds the typed error from a delegate's error object, keeping its code.
    fn from(wire: ErrorResult) -> Self {
        let ErrorResult {
            code, msg, details, ..
        } = wire;
        match code {
            1 => Error::IncompatibleVersion { msg, details },
            3 => Error::UnknownContainer { msg },
            4 => Error::InvalidEnvironment { msg, details },
            5 => Error::Io { msg, details },
            6 => Error::Decode { msg, details },
            7 => Error::InvalidConfig { msg, details },
            11 => Error::TryAgainLater { msg },
            50 => Error::NotAvailable { msg },
            51 => Error::LimitedConnectivity { msg },
            code => Error::Plugin { code, msg, details },
        }
    }
}
