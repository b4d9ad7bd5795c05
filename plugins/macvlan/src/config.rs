//! The macvlan plugin's own configuration keys (docs/reference.md#macvlan), parsed and validated
//! before anything touches the kernel. Unknown keys are ignored, as the reference does.
//! What needs the kernel (the default master, the MTU bound) is checked in
//! [`MasterConfig::resolve`], which DEL never calls.

use cni::{Error, MacAddr, Request, Result};
use cni_netlink::MacvlanMode;
use cni_plugin_support::sublink::{self, MasterConfig};
use serde::Deserialize;

/// Raw keys as they arrive on stdin (Go field names and defaults).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MacvlanConfig {
    /// `master`: the parent link; default: the interface of the default route.
    #[serde(default)]
    pub master: Option<String>,
    /// `mode`: `bridge` (default), `private`, `vepa` or `passthru`.
    #[serde(default)]
    pub mode: Option<String>,
    /// `mtu`: 0 = the master's; at most the master's.
    #[serde(default)]
    pub mtu: i64,
    /// `mac`: a static MAC (lowest precedence, see [`Settings::mac`]).
    #[serde(default)]
    pub mac: Option<String>,
    /// `linkInContainer`: the master lives in the container netns.
    #[serde(default)]
    pub link_in_container: bool,
    /// `bcqueuelen`: broadcast queue length; 0 = kernel default.
    #[serde(default)]
    pub bcqueuelen: u32,
}

/// The validated settings one ADD or CHECK works from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `master`, `mtu` and `linkInContainer` as configured.
    pub master: MasterConfig,
    /// The macvlan mode.
    pub mode: MacvlanMode,
    /// MAC by precedence: `runtimeConfig.mac` > `CNI_ARGS MAC=` > `mac`.
    pub mac: Option<[u8; 6]>,
    /// Broadcast queue length, if set.
    pub bcqueuelen: Option<u32>,
    /// The IPAM plugin, if any (L3 mode); `None` = L2 mode.
    pub ipam_type: Option<String>,
}

impl Settings {
    /// Validates a request's configuration (code 7 naming the key; code 4 for an unknown
    /// `CNI_ARGS` key without `IgnoreUnknown`, as the reference's `LoadArgs`).
    pub fn from_request(req: &Request<MacvlanConfig>) -> Result<Settings> {
        let c = &req.config;
        req.args.args.check_known(&["MAC"])?;
        Ok(Settings {
            master: MasterConfig {
                name: c.master.clone().filter(|m| !m.is_empty()),
                mtu: c.mtu,
                link_in_container: c.link_in_container,
            },
            mode: parse_mode(c.mode.as_deref())?,
            mac: container_mac(req)?,
            bcqueuelen: (c.bcqueuelen != 0).then_some(c.bcqueuelen),
            ipam_type: req.net.ipam_type().map(str::to_owned),
        })
    }
}

/// The `mode` key: absent or empty means `bridge`, as the reference's `modeFromString`.
pub fn parse_mode(mode: Option<&str>) -> Result<MacvlanMode> {
    sublink::parse_mode(mode, MacvlanMode::Bridge)
}

/// The container MAC by the reference's precedence: `runtimeConfig.mac` (capability
/// `mac`) > `CNI_ARGS MAC=` > the `mac` key. (Unlike bridge, macvlan has no
/// `args.cni.mac`.)
fn container_mac(req: &Request<MacvlanConfig>) -> Result<Option<[u8; 6]>> {
    let (source, text) = if let Some(v) = req.net.runtime_config("mac") {
        let text = v.as_str().ok_or_else(|| {
            Error::invalid_config("runtimeConfig.mac must be a MAC address string")
        })?;
        ("runtimeConfig.mac", text)
    } else if let Some(text) = req.args.args.get("MAC") {
        ("CNI_ARGS MAC", text)
    } else if let Some(text) = req.config.mac.as_deref().filter(|m| !m.is_empty()) {
        ("mac", text)
    } else {
        return Ok(None);
    };
    text.parse::<MacAddr>()
        .map(|mac| Some(mac.0))
        .map_err(|_| Error::invalid_config(format!("invalid {source} {text:?}: not a MAC address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words are cni-netlink's (`mode_words_are_the_references`), an unknown one's
    /// code 7 is shared with ipvlan (its `mode_defaults_to_l2_and_a_macvlan_word_is_code_7`).
    #[test]
    fn mode_absent_or_empty_is_bridge() {
        let parsed = [None, Some("")].map(|word| parse_mode(word).unwrap());
        assert_eq!(parsed, [MacvlanMode::Bridge; 2]);
    }
}
