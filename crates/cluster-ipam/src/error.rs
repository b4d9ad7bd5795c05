//! The errors of cluster-ipam, and their one mapping to CNI error codes.
//!
//! Allocation faults (exhausted range set, taken requested address, bad range) are
//! `cni_ipam`'s own errors, so their codes and messages are host-local's.

use cni::error::code;

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// A cluster-ipam failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A range, requested-address or allocation fault, with host-local's code and text.
    #[error(transparent)]
    Ipam(#[from] cni_ipam::Error),
    /// A cluster-ipam setting is missing or invalid; `field` is its configuration path.
    #[error("{field}: {reason}")]
    Config {
        /// Configuration path (`ipam.etcd.endpoints`, `ipam.blockSizeV4`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A TLS file named in `ipam.etcd` could not be read.
    #[error("failed to read {field} {path}: {source}")]
    TlsFile {
        /// Configuration path of the setting.
        field: &'static str,
        /// The configured path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// etcd did not answer in time, refused the connection or failed the request.
    #[error("etcd at {endpoints} unavailable while {during}: {reason}")]
    Unavailable {
        /// The configured endpoints, comma-separated.
        endpoints: String,
        /// What was being done (`reading the blocks of mynet`).
        during: String,
        /// The client's error, or the timeout.
        reason: String,
    },
    /// The TLS handshake with etcd failed: etcd refused the client (no certificate, or one
    /// it does not trust) or the client refused etcd's certificate. Retrying with the same
    /// files cannot succeed, so this is the configuration, not "try again".
    #[error("TLS with etcd at {endpoints} failed while {during}: {reason}; {hint}")]
    TlsRefused {
        /// The configured endpoints, comma-separated.
        endpoints: String,
        /// What was being done.
        during: String,
        /// The TLS library's error (`invalid peer certificate: UnknownIssuer`).
        reason: String,
        /// Which settings to check.
        hint: &'static str,
    },
    /// Other plugins won every compare of this many attempts in a row.
    #[error("gave up after {attempts} attempts lost to concurrent allocations")]
    Contended {
        /// How many transactions were tried.
        attempts: usize,
    },
    /// A value under the prefix is not what cluster-ipam writes.
    #[error("unexpected value at {key}: {reason}")]
    Corrupt {
        /// The etcd key.
        key: String,
        /// Why it cannot be read.
        reason: String,
    },
    /// CHECK: the attachment holds nothing.
    #[error("cluster-ipam: no addresses reserved for container {container_id} interface {ifname}")]
    AttachmentNotFound {
        /// The container.
        container_id: String,
        /// The interface.
        ifname: String,
    },
    /// CHECK: the attachment's record exists but one of its reservations does not.
    #[error(
        "{container_id}/{ifname}: reservation of {ip} is missing or held by another attachment"
    )]
    ReservationMissing {
        /// The container.
        container_id: String,
        /// The interface.
        ifname: String,
        /// The address whose key is gone or foreign.
        ip: std::net::IpAddr,
    },
    /// STATUS: etcd is unreachable, so no ADD can succeed.
    #[error("{0}")]
    StatusUnavailable(Box<Error>),
}

impl Error {
    /// STATUS reports an unreachable etcd as "cannot service ADD" (code 50) rather than
    /// "try again" (code 11), naming the endpoints all the same.
    pub fn for_status(self) -> Error {
        match self {
            unavailable @ (Error::Unavailable { .. } | Error::Contended { .. }) => {
                Error::StatusUnavailable(Box::new(unavailable))
            }
            other => other,
        }
    }
}

impl From<Error> for cni::Error {
    /// The one place where cluster-ipam failures get their CNI codes: configuration faults
    /// and refused TLS handshakes 7, etcd unavailable or contended 11 (50 under STATUS), unreadable files and values 5,
    /// a broken attachment under CHECK 106; allocation faults keep host-local's codes.
    fn from(error: Error) -> Self {
        let msg = error.to_string();
        match error {
            Error::Ipam(inner) => inner.into(),
            Error::Config { .. } | Error::TlsRefused { .. } => cni::Error::invalid_config(msg),
            Error::TlsFile { source, .. } => cni::Error::Io {
                msg,
                details: Some(source.to_string()),
            },
            Error::Unavailable { .. } | Error::Contended { .. } => {
                cni::Error::TryAgainLater { msg }
            }
            Error::Corrupt { .. } => cni::Error::Io { msg, details: None },
            Error::AttachmentNotFound { .. } | Error::ReservationMissing { .. } => {
                cni::Error::plugin(code::CHECK_FAILED, msg, None)
            }
            Error::StatusUnavailable(_) => cni::Error::NotAvailable { msg },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_once() {
        let unavailable = || Error::Unavailable {
            endpoints: "http://127.0.0.1:1".into(),
            during: "reading".into(),
            reason: "timed out".into(),
        };
        assert_eq!(cni::Error::from(unavailable()).code(), 11);
        let status = cni::Error::from(unavailable().for_status());
        assert_eq!(status.code(), 50);
        assert!(status.msg().contains("http://127.0.0.1:1"), "{status:?}");
        let config = Error::Config {
            field: "ipam.etcd.endpoints".into(),
            reason: "required".into(),
        };
        assert_eq!(cni::Error::from(config).code(), 7);
        assert_eq!(
            cni::Error::from(Error::Contended { attempts: 3 }).code(),
            11
        );
        let refused = Error::TlsRefused {
            endpoints: "https://127.0.0.1:1".into(),
            during: "reading".into(),
            reason: "invalid peer certificate: UnknownIssuer".into(),
            hint: "check ipam.etcd.ca",
        };
        assert_eq!(cni::Error::from(refused.for_status()).code(), 7);
    }
}
