//! The macvlan plugin's own configuration keys (docs/reference.md#macvlan), parsed and validated
//! before anything touches the kernel. Unknown keys are ignored, as the reference does.
//! What needs the kernel (the default master, the MTU bound) is checked in
//! [`Settings::resolve_master`], which DEL never calls.

use cni::{Error, MacAddr, Request, Result};
use cni_netlink::{Link, MacvlanMode};
use cni_plugin_support::Namespaces;
use cni_plugin_support::sublink::{resolve_master, validate_mtu};
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
    /// `master` as configured (`None`: the default route's interface).
    pub master: Option<String>,
    /// The macvlan mode.
    pub mode: MacvlanMode,
    /// `mtu` as configured (checked against the master in `resolve_master`).
    pub mtu: i64,
    /// MAC by precedence: `runtimeConfig.mac` > `CNI_ARGS MAC=` > `mac`.
    pub mac: Option<[u8; 6]>,
    /// The master is in the container netns.
    pub link_in_container: bool,
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
            master: c.master.clone().filter(|m| !m.is_empty()),
            mode: parse_mode(c.mode.as_deref().unwrap_or(""))?,
            mtu: c.mtu,
            mac: container_mac(req)?,
            link_in_container: c.link_in_container,
            bcqueuelen: (c.bcqueuelen != 0).then_some(c.bcqueuelen),
            ipam_type: req.net.ipam_type().map(str::to_owned),
        })
    }

    /// The master link (configured or the default route's, in the host or with
    /// `linkInContainer` the container netns) and the MTU to set, checked against it.
    pub(crate) fn resolve_master(&self, ns: &Namespaces) -> Result<(Link, Option<u32>)> {
        let master = resolve_master(
            ns.master_side(self.link_in_container),
            self.master.as_deref(),
        )?;
        let mtu = validate_mtu(self.mtu, &master)?;
        Ok((master, mtu))
    }
}

/// The reference's `modeFromString`: empty means `bridge`.
pub fn parse_mode(mode: &str) -> Result<MacvlanMode> {
    match mode {
        "" | "bridge" => Ok(MacvlanMode::Bridge),
        "private" => Ok(MacvlanMode::Private),
        "vepa" => Ok(MacvlanMode::Vepa),
        "passthru" => Ok(MacvlanMode::Passthru),
        other => Err(Error::invalid_config(format!(
            "unknown macvlan mode: {other:?}"
        ))),
    }
}

/// The config word for a mode (for CHECK messages).
pub fn mode_name(mode: MacvlanMode) -> &'static str {
    match mode {
        MacvlanMode::Bridge => "bridge",
        MacvlanMode::Private => "private",
        MacvlanMode::Vepa => "vepa",
        MacvlanMode::Passthru => "passthru",
    }
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

    #[test]
    fn modes_parse_like_the_reference() {
        for (word, mode) in [
            ("", MacvlanMode::Bridge),
            ("bridge", MacvlanMode::Bridge),
            ("private", MacvlanMode::Private),
            ("vepa", MacvlanMode::Vepa),
            ("passthru", MacvlanMode::Passthru),
        ] {
            assert_eq!(parse_mode(word).unwrap(), mode);
            if !word.is_empty() {
                assert_eq!(mode_name(mode), word);
            }
        }
        let err = parse_mode("source").unwrap_err();
        assert_eq!(
            (err.code(), err.msg()),
            (7, r#"unknown macvlan mode: "source""#.to_owned())
        );
    }
}
