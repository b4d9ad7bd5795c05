//! The tuning plugin's keys (docs/reference.md#tuning), merged by the reference's precedence
//! and validated before anything touches the kernel. Unknown keys are ignored.

use cni::{Error, Request, Result};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

/// Where the reference keeps the saved link attributes when `dataDir` is not set.
pub const DEFAULT_DATA_DIR: &str = "/run/cni/tuning";

/// Raw keys as they arrive on stdin (the reference's names; `null` reads as absent). The
/// same keys in `args.cni` override these per container (see [`Settings::from_request`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TuningConfig {
    /// `dataDir`: where the original link attributes are saved (ignored in `args.cni`).
    #[serde(default)]
    pub data_dir: Option<String>,
    /// `sysctl`: name → value, written inside the container.
    #[serde(default)]
    pub sysctl: Option<BTreeMap<String, String>>,
    /// `mac`: the MAC to give the interface.
    #[serde(default)]
    pub mac: Option<String>,
    /// `promisc`: turn promiscuous mode on (`false` changes nothing).
    #[serde(default)]
    pub promisc: Option<bool>,
    /// `mtu`: 0 changes nothing.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// `allmulti`: all-multicast mode on or off.
    #[serde(default)]
    pub allmulti: Option<bool>,
    /// `txQLen`: the transmit queue length.
    #[serde(default, rename = "txQLen")]
    pub tx_q_len: Option<u32>,
}

/// `args.cni`, decoded as the same keys (code 7 naming the key's path).
fn args_cni(req: &Request<TuningConfig>) -> Result<TuningConfig> {
    let Some(cni) = req.net.args.as_ref().and_then(|args| args.cni.as_ref()) else {
        return Ok(TuningConfig::default());
    };
    let value = serde_json::Value::Object(cni.clone().into_iter().collect());
    cni::config::decode(&value, "args.cni")
}

/// The link attributes one ADD sets (and CHECK compares); `None` leaves one alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkSettings {
    /// The MAC.
    pub mac: Option<[u8; 6]>,
    /// Promiscuous mode on (the reference only ever turns it on).
    pub promisc: bool,
    /// The MTU.
    pub mtu: Option<u32>,
    /// All-multicast mode.
    pub allmulti: Option<bool>,
    /// The transmit queue length.
    pub txqlen: Option<u32>,
}

impl LinkSettings {
    /// Whether any link attribute is to be changed (and so saved first).
    pub fn any(&self) -> bool {
        self.mac.is_some()
            || self.promisc
            || self.mtu.is_some()
            || self.allmulti.is_some()
            || self.txqlen.is_some()
    }
}

/// One `sysctl` entry, its name resolved for the attachment's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    /// The key as configured (for messages).
    pub key: String,
    /// Its path below `/proc/sys`, `/`-separated, always starting with `net/`.
    pub name: String,
    /// The value to write.
    pub value: String,
}

/// The validated settings of one ADD or CHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The sysctls, in key order.
    pub sysctls: Vec<Sysctl>,
    /// The link attributes.
    pub link: LinkSettings,
    /// Where the original attributes are saved.
    pub data_dir: PathBuf,
}

impl Settings {
    /// Merges and validates a request: code 7 for a bad key or value, code 4 for an
    /// unknown `CNI_ARGS` key (only `MAC` is known, as in the reference).
    pub fn from_request(req: &Request<TuningConfig>) -> Result<Settings> {
        req.args.args.check_known(&["MAC"])?;
        refuse_duplicate_sysctls(&req.args.stdin)?;
        let c = &req.config;
        // Each key present in `args.cni` replaces the configured one (an empty `mac`
        // means "no MAC change"); its `sysctl` entries are added.
        let overrides = args_cni(req)?;
        let mut sysctl = c.sysctl.clone().unwrap_or_default();
        sysctl.extend(overrides.sysctl.unwrap_or_default());
        let sysctls = sysctl
            .into_iter()
            .map(|(key, value)| {
                let name = sysctl_name(&key, &req.args.ifname)?;
                Ok(Sysctl { key, name, value })
            })
            .collect::<Result<_>>()?;
        let link = LinkSettings {
            mac: mac_by_precedence(req, overrides.mac)?,
            promisc: overrides.promisc.or(c.promisc).unwrap_or(false),
            mtu: overrides.mtu.or(c.mtu).filter(|&mtu| mtu != 0),
            allmulti: overrides.allmulti.or(c.allmulti),
            txqlen: overrides.tx_q_len.or(c.tx_q_len),
        };
        Ok(Settings {
            sysctls,
            link,
            data_dir: data_dir(&req.config),
        })
    }
}

/// `dataDir`, or the reference's default (DEL needs nothing else).
pub fn data_dir(config: &TuningConfig) -> PathBuf {
    PathBuf::from(
        config
            .data_dir
            .as_deref()
            .filter(|d| !d.is_empty())
            .unwrap_or(DEFAULT_DATA_DIR),
    )
}

/// The MAC by the reference's precedence, lowest first: `mac`, `CNI_ARGS` `MAC=`,
/// `runtimeConfig.mac` (each only when non-empty), then `args.cni.mac` whenever present.
fn mac_by_precedence(
    req: &Request<TuningConfig>,
    args_mac: Option<String>,
) -> Result<Option<[u8; 6]>> {
    let runtime = match req.net.runtime_config("mac") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(mac)) => Some(mac.as_str()),
        Some(other) => {
            return Err(Error::invalid_config(format!(
                "runtimeConfig.mac must be a MAC address string, not {other}"
            )));
        }
    };
    fn non_empty(m: Option<&str>) -> Option<&str> {
        m.filter(|m| !m.is_empty())
    }
    let chosen = match args_mac.as_deref() {
        Some(mac) => Some(("args.cni.mac", mac)),
        None => non_empty(runtime)
            .map(|m| ("runtimeConfig.mac", m))
            .or_else(|| non_empty(req.args.args.get("MAC")).map(|m| ("CNI_ARGS MAC", m)))
            .or_else(|| non_empty(req.config.mac.as_deref()).map(|m| ("mac", m))),
    };
    match chosen {
        Some((_, "")) | None => Ok(None),
        Some((source, text)) => parse_mac(text).map(Some).ok_or_else(|| {
            Error::invalid_config(format!("invalid {source} {text:?}: not a MAC address"))
        }),
    }
}

/// A 6-byte MAC in any form Go's `net.ParseMAC` reads for Ethernet:
/// `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` or `aabb.ccdd.eeff` (any case).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let hex: String = if text.len() == 14 {
        let groups: Vec<&str> = text.split('.').collect();
        if groups.len() != 3 || groups.iter().any(|g| g.len() != 4) {
            return None;
        }
        groups.concat()
    } else {
        let separator = text.chars().nth(2).filter(|c| *c == ':' || *c == '-')?;
        let groups: Vec<&str> = text.split(separator).collect();
        if groups.len() != 6 || groups.iter().any(|g| g.len() != 2) {
            return None;
        }
        groups.concat()
    };
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, byte) in mac.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(mac)
}

/// Resolves a `sysctl` key as the reference does: every `.` becomes `/`, then the first
/// `IFNAME` becomes the attachment's interface name (so a dotted VLAN name survives), and
/// the path must lie under `/proc/sys/net/`: keys of other subsystems are not the
/// container's to change. Returns the path below `/proc/sys`.
pub fn sysctl_name(key: &str, ifname: &str) -> Result<String> {
    let substituted = key.replace('.', "/").replacen("IFNAME", ifname, 1);
    // Every dot is a slash by now and an interface name is never `.` or `..`, so
    // cleaning the path (Go's `filepath.Join`) only drops empty components.
    let parts: Vec<&str> = substituted.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        ["net", _, ..] => Ok(parts.join("/")),
        _ => Err(Error::invalid_config(format!(
            "invalid net sysctl key: {substituted:?}"
        ))),
    }
}

/// The reference refuses a `sysctl` object naming one key twice; a JSON value keeps only
/// the last, so the raw stdin is read again for this.
fn refuse_duplicate_sysctls(stdin: &[u8]) -> Result<()> {
    #[derive(Deserialize)]
    struct SysctlOnly {
        #[serde(default)]
        #[allow(dead_code)] // Read only to run the duplicate check.
        sysctl: Option<UniqueKeys>,
    }
    serde_json::from_slice::<SysctlOnly>(stdin)
        .map(drop)
        .map_err(|e| Error::invalid_config(format!("invalid sysctl: {e}")))
}

/// A JSON object's keys, refusing a repeated one.
struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of sysctl names and values")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<UniqueKeys, A::Error> {
                let mut seen = BTreeSet::new();
                while let Some((key, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                    if !seen.insert(key) {
                        return Err(serde::de::Error::custom(
                            "duplicated sysctl keys are not allowed",
                        ));
                    }
                }
                Ok(UniqueKeys)
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_keys_resolve_like_the_reference() {
        let ok = [
            (
                "net.ipv4.conf.IFNAME.arp_notify",
                "eth0",
                "net/ipv4/conf/eth0/arp_notify",
            ),
            (
                "net/ipv4/conf/IFNAME/arp_notify",
                "eth0.100",
                "net/ipv4/conf/eth0.100/arp_notify",
            ),
            (
                "net.ipv4.conf.IFNAME.arp_notify",
                "eth0.100",
                "net/ipv4/conf/eth0.100/arp_notify",
            ),
            ("net.core.somaxconn", "eth0", "net/core/somaxconn"),
            ("/net//ipv4/ip_forward/", "eth0", "net/ipv4/ip_forward"),
            ("net.ipv4.IFNAME.IFNAME", "eth0", "net/ipv4/eth0/IFNAME"),
        ];
        for (key, ifname, want) in ok {
            assert_eq!(sysctl_name(key, ifname).unwrap(), want, "{key}");
        }
        for key in [
            "kernel.hostname",
            "net",
            "netfoo.x",
            "../../proc/sys/net/ipv4/ip_forward",
            "",
        ] {
            let err = sysctl_name(key, "eth0").unwrap_err();
            assert_eq!(err.code(), 7, "{key}");
            assert!(
                err.msg().starts_with("invalid net sysctl key"),
                "{}",
                err.msg()
            );
        }
    }

    #[test]
    fn macs_parse_in_go_forms() {
        let want = Some([0xc2, 0x11, 0x22, 0x33, 0x44, 0x5f]);
        for text in ["c2:11:22:33:44:5f", "C2-11-22-33-44-5F", "c211.2233.445f"] {
            assert_eq!(parse_mac(text), want, "{text}");
        }
        for text in [
            "",
            "c2:11:22:33:44",
            "c2:11:22-33:44:5f",
            "c2:11:22:33:44:5g",
            "c2:11:22:33:44:55:66",
            "c211.2233.445",
            "+2:11:22:33:44:55",
            "c2:11:22:33:44:5ä",
        ] {
            assert_eq!(parse_mac(text), None, "{text}");
        }
    }

    #[test]
    fn duplicate_sysctl_keys_are_refused() {
        let dup = br#"{"sysctl": {"net.a": "1", "net.a": "2"}}"#;
        let err = refuse_duplicate_sysctls(dup).unwrap_err();
        assert_eq!(err.code(), 7);
        assert!(
            err.msg().contains("duplicated sysctl keys are not allowed"),
            "{}",
            err.msg()
        );
        refuse_duplicate_sysctls(
            br#"{"sysctl": {"net.a": "1", "net.b": "2"}, "x": {"y": 1, "y": 2}}"#,
        )
        .unwrap();
        refuse_duplicate_sysctls(br#"{"name": "n"}"#).unwrap();
    }
}
