//! The portmap plugin's keys (docs/reference.md#portmap) and `runtimeConfig.portMappings`,
//! validated before anything touches the firewall. Unknown keys are ignored.

use cni::{CniResult, Error, Request, Result};
use cni_firewall::{IpNetwork, MarkChain, PortMapBackend, PortMapping, Protocol};
use serde::Deserialize;
use std::net::IpAddr;

/// The reference's default mark bit (Kubernetes uses 14 and 15, Calico 20 to 31).
const DEFAULT_MARK_BIT: i64 = 13;

/// Raw keys as they arrive on stdin (the reference's names).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapConfig {
    /// `backend`: `iptables` or `nftables`; absent picks as the reference does.
    #[serde(default)]
    pub backend: Option<String>,
    /// `snat`: masquerade hairpin and localhost traffic (default true).
    #[serde(default)]
    pub snat: Option<bool>,
    /// `conditionsV4`: extra match words for IPv4 traffic.
    #[serde(default, rename = "conditionsV4")]
    pub conditions_v4: Option<Vec<String>>,
    /// `conditionsV6`: extra match words for IPv6 traffic.
    #[serde(default, rename = "conditionsV6")]
    pub conditions_v6: Option<Vec<String>>,
    /// `masqAll`: masquerade every source of mapped traffic, not just hairpin and localhost.
    #[serde(default)]
    pub masq_all: bool,
    /// `markMasqBit`: the mark bit, 0 to 31 (default 13).
    #[serde(default)]
    pub mark_masq_bit: Option<i64>,
    /// `externalSetMarkChain`: a chain of someone else's that sets the mark (iptables).
    #[serde(default)]
    pub external_set_mark_chain: Option<String>,
}

/// One `portMappings` entry as written; checked in [`mapping`]. containerd (through
/// go-cni, whose PortMapping has no JSON tags) sends Go's field names, `HostPort` and so
/// on, which the reference reads because Go matches JSON keys without regard to case:
/// the aliases take those too.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMapping {
    #[serde(default, alias = "HostPort")]
    host_port: i64,
    #[serde(default, alias = "ContainerPort")]
    container_port: i64,
    #[serde(default, alias = "Protocol")]
    protocol: String,
    #[serde(default, rename = "hostIP", alias = "HostIP")]
    host_ip: Option<String>,
}

/// The validated settings of one call.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The backend.
    pub backend: PortMapBackend,
    /// The mappings (empty: nothing to do).
    pub mappings: Vec<PortMapping>,
    /// `snat`.
    pub snat: bool,
    /// `masqAll`.
    pub masq_all: bool,
    /// The mark chain.
    pub mark: MarkChain,
    /// `conditionsV4`.
    pub conditions_v4: Vec<String>,
    /// `conditionsV6`.
    pub conditions_v6: Vec<String>,
}

impl Settings {
    /// Checks the keys and mappings (code 7 naming the key), then picks the backend.
    pub fn from_request(req: &Request<PortMapConfig>) -> Result<Settings> {
        let c = &req.config;
        let mark = match (c.mark_masq_bit, &c.external_set_mark_chain) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid_config(
                    "Cannot specify externalSetMarkChain and markMasqBit",
                ));
            }
            (_, Some(chain)) => MarkChain::External(chain.clone()),
            (bit, None) => {
                let bit = bit.unwrap_or(DEFAULT_MARK_BIT);
                let bit = u8::try_from(bit)
                    .ok()
                    .filter(|b| *b <= 31)
                    .ok_or_else(|| Error::invalid_config("MasqMarkBit must be between 0 and 31"))?;
                MarkChain::Bit(bit)
            }
        };
        let mappings = match req.net.runtime_config("portMappings") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(value) => {
                let raw: Vec<RawMapping> =
                    cni::config::decode(value, "runtimeConfig.portMappings")?;
                raw.iter().map(mapping).collect::<Result<_>>()?
            }
        };
        let backend = backend(c)?;
        Ok(Settings {
            backend,
            mappings,
            snat: c.snat.unwrap_or(true),
            masq_all: c.masq_all,
            mark,
            conditions_v4: c.conditions_v4.clone().unwrap_or_default(),
            conditions_v6: c.conditions_v6.clone().unwrap_or_default(),
        })
    }

    /// The UDP host ports (their stale conntrack entries are flushed on ADD).
    pub fn udp_ports(&self) -> Vec<u16> {
        self.mappings
            .iter()
            .filter(|m| m.protocol == Protocol::Udp)
            .map(|m| m.host_port)
            .collect()
    }
}

fn port(value: i64, what: &str) -> Result<u16> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| {
            Error::invalid_config(format!(
                "Invalid {what} port number: {value} (must be 1 to 65535)"
            ))
        })
}

fn mapping(raw: &RawMapping) -> Result<PortMapping> {
    let protocol = match raw.protocol.to_ascii_lowercase().as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        _ => {
            return Err(Error::invalid_config(format!(
                "Invalid protocol {:?} in runtimeConfig.portMappings: must be tcp, udp or sctp",
                raw.protocol
            )));
        }
    };
    let host_ip = match raw.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
        None => None,
        Some(text) => Some(text.parse::<IpAddr>().map_err(|_| {
            Error::invalid_config(format!("Invalid hostIP {text:?}: not an IP address"))
        })?),
    };
    Ok(PortMapping {
        host_port: port(raw.host_port, "host")?,
        container_port: port(raw.container_port, "container")?,
        protocol,
        host_ip,
    })
}

/// The reference's backend choice, refusing options of the other backend.
fn backend(c: &PortMapConfig) -> Result<PortMapBackend> {
    let mut iptables_only = Vec::new();
    let mut nftables_only = Vec::new();
    if c.external_set_mark_chain.is_some() {
        iptables_only.push("externalSetMarkChain");
    }
    for (key, conditions) in [
        ("conditionsV4", &c.conditions_v4),
        ("conditionsV6", &c.conditions_v6),
    ] {
        // An iptables condition starts with `-` or `!`; no nftables one does.
        match conditions
            .as_deref()
            .and_then(|c| c.first())
            .map(String::as_str)
        {
            None | Some("") => {}
            Some(first) if first.starts_with(['-', '!']) => iptables_only.push(key),
            Some(_) => nftables_only.push(key),
        }
    }
    let backend = match c.backend.as_deref() {
        Some("iptables") => PortMapBackend::Iptables,
        Some("nftables") => PortMapBackend::Nftables,
        Some(other) => {
            return Err(Error::invalid_config(format!(
                "unrecognized backend {other:?}"
            )));
        }
        None => PortMapBackend::default_for_host().map_err(crate::firewall_error)?,
    };
    let (wrong, keys) = match backend {
        PortMapBackend::Iptables => ("nftables", nftables_only),
        PortMapBackend::Nftables => ("iptables", iptables_only),
    };
    if !keys.is_empty() {
        return Err(Error::invalid_config(format!(
            "{backend} backend was requested but configuration contains {wrong}-specific options {keys:?}"
        )));
    }
    Ok(backend)
}

/// The container's first IPv4 and first IPv6 address in the previous result, skipping
/// addresses of interfaces that are not `ifname` in a sandbox (the reference's choice).
pub fn container_addresses(result: &CniResult, ifname: &str) -> Vec<IpNetwork> {
    let mut v4 = None;
    let mut v6 = None;
    for ip in &result.ips {
        let foreign = ip
            .interface
            .and_then(|i| result.interfaces.get(i))
            .is_some_and(|iface| {
                iface.name != ifname || iface.sandbox.as_deref().unwrap_or("").is_empty()
            });
        if foreign {
            continue;
        }
        let slot = if ip.address.0.is_ipv4() {
            &mut v4
        } else {
            &mut v6
        };
        slot.get_or_insert(ip.address.0);
    }
    v4.into_iter().chain(v6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(value: serde_json::Value) -> RawMapping {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn mappings_are_checked() {
        let m = mapping(&raw(
            json!({"hostPort": 8080, "containerPort": 80, "protocol": "UDP", "hostIP": "10.0.0.1"}),
        ))
        .unwrap();
        assert_eq!(m.protocol, Protocol::Udp);
        assert_eq!(m.host_ip, Some("10.0.0.1".parse().unwrap()));
        // containerd 1.6's spelling (go-cni's Go field names).
        let m = mapping(&raw(
            json!({"HostPort": 28087, "ContainerPort": 8080, "Protocol": "tcp", "HostIP": ""}),
        ))
        .unwrap();
        assert_eq!((m.host_port, m.container_port), (28087, 8080));
        assert_eq!((m.protocol, m.host_ip), (Protocol::Tcp, None));
        for (bad, words) in [
            (
                json!({"hostPort": 0, "containerPort": 80, "protocol": "tcp"}),
                "Invalid host port number: 0",
            ),
            (
                json!({"hostPort": 65536, "containerPort": 80, "protocol": "tcp"}),
                "Invalid host port number: 65536",
            ),
            (
                json!({"hostPort": 1, "containerPort": 0, "protocol": "tcp"}),
                "Invalid container port number: 0",
            ),
            (
                json!({"hostPort": 1, "containerPort": 1, "protocol": "icmp"}),
                "Invalid protocol \"icmp\"",
            ),
            (
                json!({"hostPort": 1, "containerPort": 1, "protocol": "tcp", "hostIP": "nope"}),
                "Invalid hostIP",
            ),
        ] {
            let err = mapping(&raw(bad)).unwrap_err();
            assert_eq!(err.code(), 7);
            assert!(err.msg().contains(words), "{}", err.msg());
        }
    }

    #[test]
    fn backend_options_of_the_other_backend_are_refused() {
        let conf = |v: serde_json::Value| -> PortMapConfig { serde_json::from_value(v).unwrap() };
        let ok = backend(&conf(
            json!({"backend": "nftables", "conditionsV4": ["ip saddr 1.2.3.4"]}),
        ));
        assert_eq!(ok.unwrap(), PortMapBackend::Nftables);
        let err = backend(&conf(
            json!({"backend": "nftables", "externalSetMarkChain": "X"}),
        ))
        .unwrap_err();
        assert!(
            err.msg()
                .contains(r#"iptables-specific options ["externalSetMarkChain"]"#),
            "{}",
            err.msg()
        );
        let err = backend(&conf(
            json!({"backend": "iptables", "conditionsV6": ["ip6 saddr ::1"]}),
        ))
        .unwrap_err();
        assert!(
            err.msg().contains("nftables-specific options"),
            "{}",
            err.msg()
        );
        let err = backend(&conf(json!({"backend": "ebtables"}))).unwrap_err();
        assert_eq!(err.msg(), r#"unrecognized backend "ebtables""#);
    }

    #[test]
    fn container_addresses_are_the_first_of_each_family_on_ifname() {
        let prev = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "br0"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
            "ips": [
                {"interface": 0, "address": "10.0.0.1/24"},
                {"interface": 1, "address": "10.0.0.2/24"},
                {"interface": 1, "address": "10.0.0.3/24"},
                {"address": "fd00::2/64"},
            ],
        });
        let result = CniResult::from_prev_result(&prev, cni::Version::V1_0_0).unwrap();
        let found: Vec<String> = container_addresses(&result, "eth0")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(found, ["10.0.0.2/24", "fd00::2/64"]);
    }
}
