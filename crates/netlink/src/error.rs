//! The crate's one error type.
//!
//! Every error keeps the operation (`op`, a fixed verb phrase such as `"create veth"`), the
//! object it touched (a link name or index, an address, a path) and, when the kernel answered
//! with one, the errno. Callers match kinds through [`Error::is_not_found`],
//! [`Error::is_exists`] and [`Error::is_unsupported`] rather than through errno values.

use std::io;
use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// An error from a kernel operation. `Send + Sync + 'static`, so it can cross threads.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kernel refused a netlink request (an `NLMSG_ERROR` with a negative errno).
    #[error("{op} {object}: {}{}", errno_text(*errno), ext_ack_suffix(ext_ack))]
    Kernel {
        /// What we asked for, e.g. `"create bridge"`.
        op: &'static str,
        /// The object, e.g. `link "br0"` or `link index 7`.
        object: String,
        /// Positive errno from the kernel.
        errno: i32,
        /// The kernel's extended-ACK text (`NLMSGERR_ATTR_MSG`), when it gave one.
        ext_ack: Option<String>,
    },
    /// The kernel has no driver for a link kind (`rtnl_newlink` answers EOPNOTSUPP with
    /// "Unknown device type" when `request_module("rtnl-link-<kind>")` finds nothing), or
    /// was built without an optional feature a create asked for.
    #[error("{op} {object}: kernel lacks {kind} support ({})", errno_text(*errno))]
    UnsupportedKind {
        /// What we asked for.
        op: &'static str,
        /// The object.
        object: String,
        /// The link kind (`"ipvlan"`) or optional feature (`"bridge VLAN filtering"`).
        kind: &'static str,
        /// The errno the kernel gave (EOPNOTSUPP).
        errno: i32,
    },
    /// A system call or socket I/O failed (including the receive timeout).
    #[error("{op} {object}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The object.
        object: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A network-namespace path does not exist. CNI DEL tolerates this (spec: "DEL must
    /// succeed when resources are already gone"; Go's `NSPathNotExistErr`).
    #[error("failed to open netns {}: no such file or directory", path.display())]
    NetnsNotFound {
        /// The path that was asked for.
        path: PathBuf,
    },
    /// A path exists but is not a network namespace: `statfs` magic is neither NSFS nor
    /// PROC. The text is Go's (`pkg/ns/ns_linux.go`), which DEL does *not* tolerate.
    #[error("unknown FS magic on \"{}\": {magic:x}", path.display())]
    NotNetns {
        /// The path that was asked for.
        path: PathBuf,
        /// The filesystem magic `statfs` reported.
        magic: i64,
    },
    /// A sysctl key does not exist, e.g. `net.ipv6.*` when IPv6 is disabled, or a
    /// per-interface key for a link that is not in the calling thread's netns.
    #[error("sysctl {name} does not exist ({})", path.display())]
    SysctlNotFound {
        /// The name as given.
        name: String,
        /// The `/proc/sys/...` path it mapped to.
        path: PathBuf,
    },
    /// A request that cannot be encoded (a value too long for its field); nothing was sent.
    #[error("{op} {object}: {detail}")]
    InvalidRequest {
        /// What we were encoding.
        op: &'static str,
        /// The object.
        object: String,
        /// What was wrong.
        detail: String,
    },
    /// The kernel's reply could not be understood, or did not contain what it must.
    #[error("{op} {object}: unexpected netlink reply: {detail}")]
    Protocol {
        /// What we asked for.
        op: &'static str,
        /// The object.
        object: String,
        /// What was wrong.
        detail: String,
    },
}

fn errno_text(errno: i32) -> String {
    io::Error::from_raw_os_error(errno).to_string()
}

fn ext_ack_suffix(ext_ack: &Option<String>) -> String {
    ext_ack
        .as_deref()
        .map(|msg| format!(" ({msg})"))
        .unwrap_or_default()
}

impl Error {
    /// The errno behind this error, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } | Error::UnsupportedKind { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error(),
            Error::NetnsNotFound { .. } | Error::SysctlNotFound { .. } => Some(libc::ENOENT),
            Error::NotNetns { .. } | Error::Protocol { .. } | Error::InvalidRequest { .. } => None,
        }
    }

    /// The operation that failed, e.g. `"create veth"`; `None` for path errors.
    pub fn op(&self) -> Option<&'static str> {
        match self {
            Error::Kernel { op, .. }
            | Error::UnsupportedKind { op, .. }
            | Error::Io { op, .. }
            | Error::InvalidRequest { op, .. }
            | Error::Protocol { op, .. } => Some(op),
            _ => None,
        }
    }

    /// The thing is not there: a link (ENODEV), an address (EADDRNOTAVAIL), a route
    /// (ESRCH), anything else the kernel calls ENOENT, a netns path, or a sysctl key.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NetnsNotFound { .. } | Error::SysctlNotFound { .. } => true,
            Error::Kernel { errno, .. } => {
                matches!(
                    *errno,
                    libc::ENODEV | libc::ENOENT | libc::EADDRNOTAVAIL | libc::ESRCH
                )
            }
            Error::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }

    /// The thing already exists (EEXIST): a link name, an address, a route.
    pub fn is_exists(&self) -> bool {
        matches!(
            self,
            Error::Kernel {
                errno: libc::EEXIST,
                ..
            }
        )
    }

    /// The kernel lacks the feature: a link kind it has no driver for, or any other
    /// EOPNOTSUPP answer.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            Error::UnsupportedKind { .. }
                | Error::Kernel {
                    errno: libc::EOPNOTSUPP,
                    ..
                }
        )
    }

    pub(crate) fn io(op: &'static str, object: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            op,
            object: object.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_static() {
        fn assert_bounds<T: Send + Sync + 'static>() {}
        assert_bounds::<Error>();
    }

    #[test]
    fn kinds_and_text() {
        let exists = Error::Kernel {
            op: "create bridge",
            object: "link \"br0\"".into(),
            errno: libc::EEXIST,
            ext_ack: None,
        };
        assert!(exists.is_exists() && !exists.is_not_found());
        assert_eq!(exists.errno(), Some(libc::EEXIST));
        assert!(
            exists
                .to_string()
                .starts_with("create bridge link \"br0\": File exists")
        );

        let gone = Error::Kernel {
            op: "get link",
            object: "link \"nope\"".into(),
            errno: libc::ENODEV,
            ext_ack: Some("no such device".into()),
        };
        assert!(gone.is_not_found());
        assert!(gone.to_string().ends_with("(no such device)"));

        let unsupported = Error::UnsupportedKind {
            op: "create ipvlan",
            object: "link \"ipv0\"".into(),
            kind: "ipvlan",
            errno: libc::EOPNOTSUPP,
        };
        assert!(unsupported.is_unsupported());
        assert!(
            unsupported
                .to_string()
                .contains("kernel lacks ipvlan support")
        );

        let not_netns = Error::NotNetns {
            path: "/tmp/x".into(),
            magic: 0xef53,
        };
        assert_eq!(
            not_netns.to_string(),
            "unknown FS magic on \"/tmp/x\": ef53"
        );
    }
}
