//! The runtime's errors, worded as libcni words them (docs/spec.md#runtime), so that a person or a
//! script that knows libcni's messages recognises ours.

use std::fmt;
use std::path::PathBuf;

/// Everything loading a network configuration or running a chain can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No configuration file in `dir` has the network `name` (libcni `NotFoundError`).
    #[error("no net configuration with name \"{name}\" in {}", dir.display())]
    NotFound {
        /// The configuration directory.
        dir: PathBuf,
        /// The network name asked for.
        name: String,
    },
    /// `dir` holds no `.conflist`, `.conf` or `.json` file (libcni `NoConfigsFoundError`).
    #[error("no net configurations found in {}", dir.display())]
    NoConfigsFound {
        /// The configuration directory.
        dir: PathBuf,
    },
    /// A configuration file or directory could not be read.
    #[error("error reading {}: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A configuration that libcni would refuse; the message is libcni's
    /// (e.g. `error parsing configuration list: no name`).
    #[error("{0}")]
    InvalidConfig(String),
    /// A spec version string that does not parse (libcni `version.ParseVersion`).
    #[error("{0}")]
    InvalidVersion(String),
    /// A plugin of the chain failed, or could not be run: `plugin type="bridge" failed (add):
    /// <its msg>; <its details>`.
    #[error("plugin {plugin} failed ({op}): {}", GoError(source))]
    Plugin {
        /// `type="X"`, plus ` name="Y"` when the plugin object has its own name.
        plugin: String,
        /// The verb in libcni's words: `add`, `check`, `delete`, `status`, `gc`.
        op: &'static str,
        /// The plugin's error object, with its code.
        source: cni::Error,
    },
    /// CHECK on a configuration older than 0.4.0.
    #[error("configuration version \"{version}\" does not support the CHECK command")]
    CheckNotSupported {
        /// The list's version.
        version: String,
    },
    /// The cache file could not be written after a successful ADD (the ADD then fails, as in
    /// libcni, because DEL and CHECK need it).
    #[error("failed to set network \"{network}\" cached result: {source}")]
    CacheWrite {
        /// The network name.
        network: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The cached result exists but cannot be used (CHECK; DEL tolerates this).
    #[error("failed to get network \"{network}\" cached result: {reason}")]
    CachedResult {
        /// The network name.
        network: String,
        /// Why it is unusable.
        reason: String,
    },
    /// GC's synthesized DEL of one cached attachment failed.
    #[error("failed to delete stale attachment {container_id} {ifname}: {source}")]
    StaleAttachment {
        /// The attachment's container ID.
        container_id: String,
        /// The attachment's interface name.
        ifname: String,
        /// What the DEL failed with.
        source: Box<Error>,
    },
    /// GC collects every failure and reports them together, one per line (Go `errors.Join`).
    #[error("{}", join_lines(.0))]
    Many(Vec<Error>),
    /// A runtime argument (`CNI_ARGS`, `CAP_ARGS`, the netns path) is malformed.
    #[error("{0}")]
    InvalidArgument(String),
}

impl Error {
    /// The CNI error code when a plugin reported one (or the runtime checks that share
    /// plugin codes: 4 for a bad container ID or ifname, 7 for a bad network name).
    pub fn code(&self) -> Option<u32> {
        match self {
            Error::Plugin { source, .. } => Some(source.code()),
            Error::StaleAttachment { source, .. } => source.code(),
            _ => None,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// A CNI error printed as Go's `types.Error.Error()`: `msg`, then `; details` if any.
struct GoError<'a>(&'a cni::Error);

impl fmt::Display for GoError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.msg())?;
        match self.0.details() {
            Some(details) if !details.is_empty() => write!(f, "; {details}"),
            _ => Ok(()),
        }
    }
}

fn join_lines(errors: &[Error]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
