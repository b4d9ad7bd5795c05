//! Validation of the names that reach file paths and the kernel: container IDs, interface
//! names and network names. Shared by the dispatcher and by stores that build paths from
//! them, so hostile input cannot escape a data directory.

use crate::error::{Error, Result};

/// `CNI_CONTAINERID`: non-empty, `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$` (spec; upper case allowed).
/// Also bounded in length (we refuse over 1024 bytes) so it stays usable in a file name.
pub fn validate_container_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid_env(
            "required env variables [CNI_CONTAINERID] missing",
        ));
    }
    if id.len() > MAX_CONTAINER_ID || !is_safe_name(id) {
        return Err(Error::InvalidEnvironment {
            msg: "invalid characters in containerID".into(),
            details: Some(id.into()),
        });
    }
    Ok(())
}

/// Longest container ID we accept: long enough for any runtime's IDs (64 hex for
/// containerd/CRI-O), short enough to stay a valid file name with a suffix.
const MAX_CONTAINER_ID: usize = 1024;

/// Longest network name: it becomes a directory name (NAME_MAX is 255).
const MAX_NETWORK_NAME: usize = 255;

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`: cannot hold `/`, NUL, or start with `.`.
fn is_safe_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `CNI_IFNAME`: the kernel's `dev_valid_name` rules: 1..=15 bytes, not `.` or `..`,
/// no `/`, `:` or whitespace. Errors are code 4 naming `CNI_IFNAME`.
pub fn validate_ifname(ifname: &str) -> Result<()> {
    let fault = if ifname.is_empty() {
        return Err(Error::invalid_env(
            "required env variables [CNI_IFNAME] missing",
        ));
    } else if ifname.len() > 15 {
        "interface name is too long"
    } else if ifname == "." || ifname == ".." {
        "interface name is . or .."
    } else if ifname
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
    {
        "interface name contains / or : or whitespace characters"
    } else {
        return Ok(());
    };
    Err(Error::InvalidEnvironment {
        msg: format!("invalid CNI_IFNAME: {fault}"),
        details: Some(ifname.into()),
    })
}

/// Network `name`: non-empty, `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, at most 255 bytes; code 7.
pub fn validate_network_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid_config("missing network name"));
    }
    if name.len() > MAX_NETWORK_NAME || !is_safe_name(name) {
        return Err(Error::InvalidConfig {
            msg: "invalid network name: must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$ and be at most 255 bytes".into(),
            details: Some(name.into()),
        });
    }
    Ok(())
}
