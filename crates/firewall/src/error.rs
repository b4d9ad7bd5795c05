//! The crate's error type. Plugins map it into CNI codes themselves (this crate does not depend
//! on the `cni` protocol crate); [`Error::is_config_error`] tells them which errors are the
//! caller's input (code 7) rather than a host failure.

use std::process::ExitStatus;

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while programming netfilter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `ipMasqBackend` names neither `iptables` nor `nftables`. The message is the reference's,
    /// `unknown ipmasq backend "X"` (Go `%q`).
    #[error("unknown ipmasq backend {0:?}")]
    UnknownBackend(String),

    /// An argument cannot be rendered safely or is malformed (a MAC address, an interface name).
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// The backend's program is not installed (or, for an automatic choice, neither backend is
    /// usable).
    #[error("{backend} is not available on this host")]
    NotAvailable {
        /// `iptables`, `nftables`, or `iptables or nftables`.
        backend: &'static str,
    },

    /// The program could not be started at all (other than "not installed").
    #[error("failed to run {program}: {source}")]
    Spawn {
        /// Program name, e.g. `nft`.
        program: &'static str,
        /// The OS error.
        source: std::io::Error,
    },

    /// The program ran and failed. The stdin script, if any, is not repeated here; it is logged
    /// at debug level.
    #[error("{program} {args} failed ({status}): {}", stderr.trim_end())]
    CommandFailed {
        /// Program name, e.g. `iptables-restore`.
        program: &'static str,
        /// Its arguments, space-separated.
        args: String,
        /// Exit status.
        status: ExitStatus,
        /// Everything it wrote on stderr.
        stderr: String,
    },

    /// The program succeeded but printed something we cannot read (e.g. `nft -j` JSON).
    #[error("unexpected output from {program}: {reason}")]
    UnexpectedOutput {
        /// Program name.
        program: &'static str,
        /// What was wrong.
        reason: String,
    },

    /// Reading netfilter state over netlink failed.
    #[error("{what}: {source}")]
    Netlink {
        /// What was being read, e.g. `list inet cni_plugins_masquerade masq_checks`.
        what: &'static str,
        /// The netlink error.
        source: cni_netlink::Error,
    },

    /// State that CHECK expected is not there.
    #[error("{what} not found")]
    Missing {
        /// What is missing, e.g. `chain CNI-DN-... in table nat`.
        what: String,
    },

    /// Several independent steps failed (teardown and GC try every backend and report all).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<Error>),
}

impl Error {
    /// True for errors caused by the caller's configuration or arguments (CNI code 7, "invalid
    /// network config"), false for failures of the host's tools.
    pub fn is_config_error(&self) -> bool {
        match self {
            Error::UnknownBackend(_) | Error::InvalidArgument { .. } => true,
            Error::Several(errors) => errors.iter().all(Error::is_config_error),
            _ => false,
        }
    }

    /// True when the backend's program is missing on this host.
    pub fn is_not_available(&self) -> bool {
        match self {
            Error::NotAvailable { .. } => true,
            Error::Several(errors) => errors.iter().all(Error::is_not_available),
            _ => false,
        }
    }

    /// True when `nft` reported that a table or chain does not exist: `nft` prints the errno
    /// text "No such file or directory" for ENOENT (knftables' `IsNotFound` checks the same).
    pub(crate) fn is_nft_not_found(&self) -> bool {
        matches!(self, Error::CommandFailed { program: "nft", stderr, .. }
            if stderr.contains("No such file or directory"))
    }

    /// Folds a list of independent failures into one error, or `Ok` if there were none.
    pub(crate) fn collect(mut errors: Vec<Error>) -> Result<()> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Several(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_are_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }

    #[test]
    fn unknown_backend_message_matches_reference() {
        assert_eq!(
            Error::UnknownBackend("ebtables".into()).to_string(),
            r#"unknown ipmasq backend "ebtables""#
        );
    }
}
