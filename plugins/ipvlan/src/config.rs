//! The ipvlan plugin's own configuration keys (docs/reference.md#ipvlan), parsed and validated
//! before anything touches the kernel. Unknown keys are ignored, as the reference does;
//! `CNI_ARGS` are not read at all (ipvlan slaves share the master's MAC).

use cni::{CniResult, Error, Request, Result};
use cni_netlink::IpvlanMode;
use cni_plugin_support::sublink::{self, MasterConfig};
use serde::Deserialize;

/// Raw keys as they arrive on stdin (Go field names and defaults).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpvlanConfig {
    /// `master`: the parent link; default: the single interface of the prevResult when
    /// chained, else the interface of the default route.
    #[serde(default)]
    pub master: Option<String>,
    /// `mode`: `l2` (default), `l3` or `l3s`.
    #[serde(default)]
    pub mode: Option<String>,
    /// `mtu`: 0 = the master's.
    #[serde(default)]
    pub mtu: i64,
    /// `linkInContainer`: the master lives in the container netns.
    #[serde(default)]
    pub link_in_container: bool,
}

/// Where the container's addresses come from.
#[derive(Debug, Clone)]
pub enum Addressing {
    /// Delegate to this IPAM plugin.
    Ipam(String),
    /// Chained without IPAM: the prevResult's IPs and routes.
    Chained(Box<CniResult>),
}

/// The validated settings one ADD works from.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The master: its name configured, or the prevResult's single interface when chained
    /// (`None`: the default route's interface); `mtu` and `linkInContainer` as configured.
    pub master: MasterConfig,
    /// The ipvlan mode.
    pub mode: IpvlanMode,
    /// Where addresses come from.
    pub addressing: Addressing,
}

impl Settings {
    /// Validates an ADD's configuration (code 7 naming the problem), before any change:
    /// the reference creates the link first and only then finds it has no addresses.
    pub fn from_request(req: &Request<IpvlanConfig>) -> Result<Settings> {
        let c = &req.config;
        let mode = parse_mode(c.mode.as_deref())?;
        let prev = req
            .net
            .prev_result
            .as_ref()
            .map(|p| CniResult::from_prev_result(p, req.net.cni_version))
            .transpose()?;
        let mut master = c.master.clone().filter(|m| !m.is_empty());
        if master.is_none() {
            if let Some(prev) = &prev {
                master = Some(chained_master(prev)?);
            }
        }
        let addressing = match (req.net.ipam_type(), prev) {
            (Some(ipam), _) => Addressing::Ipam(ipam.to_owned()),
            (None, Some(prev)) if !prev.ips.is_empty() => Addressing::Chained(Box::new(prev)),
            (None, _) => {
                return Err(Error::invalid_config(
                    "ipvlan needs \"ipam\" or, when chained, a prevResult with IPs",
                ));
            }
        };
        Ok(Settings {
            master: MasterConfig {
                name: master,
                mtu: c.mtu,
                link_in_container: c.link_in_container,
            },
            mode,
            addressing,
        })
    }
}

/// Chained after a plugin that made the master (e.g. host-device), the master is that
/// plugin's one named interface.
fn chained_master(prev: &CniResult) -> Result<String> {
    let mut named = prev.interfaces.iter().filter(|i| !i.name.is_empty());
    match (named.next(), named.next()) {
        (Some(only), None) => Ok(only.name.clone()),
        _ => Err(Error::invalid_config(
            "chained master failure. PrevResult lacks a single named interface",
        )),
    }
}

/// The `mode` key: absent or empty means `l2`, as the reference's `modeFromString`.
pub fn parse_mode(mode: Option<&str>) -> Result<IpvlanMode> {
    sublink::parse_mode(mode, IpvlanMode::L2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words themselves are cni-netlink's (`mode_words_are_the_references`).
    #[test]
    fn mode_defaults_to_l2_and_a_macvlan_word_is_code_7() {
        let parsed = [None, Some(""), Some("l3s"), Some("bridge")]
            .map(|word| parse_mode(word).map_err(|e| (e.code(), e.msg())));
        let unknown = (7, r#"unknown ipvlan mode: "bridge""#.to_owned());
        let expected = [
            Ok(IpvlanMode::L2),
            Ok(IpvlanMode::L2),
            Ok(IpvlanMode::L3s),
            Err(unknown),
        ];
        assert_eq!(parsed, expected);
    }

    #[test]
    fn chained_master_is_the_single_named_interface() {
        let prev = |json: serde_json::Value| {
            CniResult::from_prev_result(&json, "1.0.0".parse().unwrap()).unwrap()
        };
        let one = prev(serde_json::json!({"interfaces": [{"name": "eth1"}], "ips": []}));
        assert_eq!(chained_master(&one).unwrap(), "eth1");
        for bad in [
            serde_json::json!({"interfaces": [], "ips": []}),
            serde_json::json!({"interfaces": [{"name": "a"}, {"name": "b"}], "ips": []}),
        ] {
            let err = chained_master(&prev(bad)).unwrap_err();
            assert_eq!(
                err.msg(),
                "chained master failure. PrevResult lacks a single named interface"
            );
        }
    }
}
