//! The original link attributes, saved before ADD changes them and put back by DEL, in the
//! reference's file (docs/reference.md#tuning-saved-state): `<dataDir>/<container id>_<ifname>.json`,
//! mode 0600, Go's `json.MarshalIndent(v, "", " ")` of the keys `mac`, `promisc`, `mtu`,
//! `allmulti`, `txQLen`, each present only when ADD changes that attribute. Either plugin
//! can restore what the other saved.

use crate::config::{LinkSettings, parse_mac};
use cni::{Error, Result};
use cni_netlink::{Handle, Link, format_mac};
use cni_plugin_support::{combine_errors, kernel_error};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What the file holds: the values before ADD, of the attributes ADD changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedLink {
    /// The MAC, `aa:bb:cc:dd:ee:ff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Promiscuous mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promisc: Option<bool>,
    /// The MTU; 0 (absent) means "not changed".
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtu: u32,
    /// All-multicast mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allmulti: Option<bool>,
    /// The transmit queue length.
    #[serde(default, rename = "txQLen", skip_serializing_if = "Option::is_none")]
    pub tx_q_len: Option<u32>,
}

fn is_zero(mtu: &u32) -> bool {
    *mtu == 0
}

impl SavedLink {
    /// The current values of the attributes `settings` changes.
    pub fn of(link: &Link, settings: &LinkSettings) -> SavedLink {
        SavedLink {
            mac: settings.mac.and(link.mac.as_ref()).map(format_mac),
            promisc: settings.promisc.then_some(link.promiscuous),
            mtu: if settings.mtu.is_some() { link.mtu } else { 0 },
            allmulti: settings.allmulti.map(|_| link.allmulti),
            tx_q_len: settings.txqlen.map(|_| link.txqueuelen),
        }
    }

    /// The file's bytes, as Go's `MarshalIndent` with a one-space indent writes them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
        // A struct of strings, numbers and booleans always serialises.
        let _ = self.serialize(&mut serializer);
        out
    }

    /// Puts every saved attribute back on `link`, in the reference's order (MTU, MAC,
    /// promiscuous, all-multicast, queue length), carrying on after a failure; all
    /// failures are returned together.
    pub fn restore(&self, handle: &Handle, link: &Link) -> Result<()> {
        let index = link.index;
        let mut errors = Vec::new();
        let mut attempt = |what: &str, outcome: cni_netlink::Result<()>| {
            if let Err(err) = outcome {
                let err = kernel_error(err);
                errors.push(Error::plugin(
                    err.code(),
                    format!("failed to restore {what} of {}: {}", link.name, err.msg()),
                    err.details().map(str::to_owned),
                ));
            }
        };
        if self.mtu != 0 {
            attempt("the MTU", handle.set_mtu(index, self.mtu));
        }
        if let Some(text) = &self.mac {
            // A MAC that does not parse is skipped: nothing could ever restore it.
            match parse_mac(text) {
                Some(mac) => attempt("the MAC address", handle.set_mac(index, mac)),
                None => log::warn!("saved MAC address {text:?} is not a MAC address"),
            }
        }
        if let Some(on) = self.promisc {
            attempt("promiscuous mode", handle.set_promiscuous(index, on));
        }
        if let Some(on) = self.allmulti {
            attempt("all-multicast mode", handle.set_allmulti(index, on));
        }
        if let Some(len) = self.tx_q_len {
            attempt(
                "the transmit queue length",
                handle.set_txqueuelen(index, len),
            );
        }
        combine_errors(errors)
    }
}

/// The saved-state file of one attachment.
pub fn file_path(data_dir: &Path, container_id: &str, ifname: &str) -> PathBuf {
    data_dir.join(format!("{container_id}_{ifname}.json"))
}

/// Writes `bytes` to `path` (mode 0600, the directory made 0700 if missing), replacing
/// what was there, as the reference does. Code 5 on failure.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let io_error = |e: io::Error| Error::Io {
        msg: format!("failed to save the link attributes to {}", path.display()),
        details: Some(e.to_string()),
    };
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error)?;
    }
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(bytes))
        .map_err(io_error)
}

/// The file's bytes, `None` when there is none. Code 5 when it cannot be read.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            msg: format!(
                "failed to read the saved link attributes {}",
                path.display()
            ),
            details: Some(e.to_string()),
        }),
    }
}

/// Removes the file; a missing one is fine. Code 5 otherwise.
pub fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Io {
            msg: format!("failed to remove {}", path.display()),
            details: Some(e.to_string()),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_go_marshal_indent_with_one_space() {
        let saved = SavedLink {
            mac: Some("0a:58:0a:f4:00:05".into()),
            promisc: Some(false),
            mtu: 1500,
            allmulti: Some(true),
            tx_q_len: Some(1000),
        };
        let text = String::from_utf8(saved.to_bytes()).unwrap();
        assert_eq!(
            text,
            "{\n \"mac\": \"0a:58:0a:f4:00:05\",\n \"promisc\": false,\n \"mtu\": 1500,\n \"allmulti\": true,\n \"txQLen\": 1000\n}"
        );
        assert_eq!(
            String::from_utf8(SavedLink::default().to_bytes()).unwrap(),
            "{}"
        );
        let back: SavedLink = serde_json::from_str(&text).unwrap();
        assert_eq!(back, saved);
    }

    #[test]
    fn file_is_named_by_container_and_interface() {
        assert_eq!(
            file_path(Path::new("/run/cni/tuning"), "abc", "eth0"),
            PathBuf::from("/run/cni/tuning/abc_eth0.json")
        );
    }
}
