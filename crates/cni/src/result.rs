//! ADD results in every spec version, held in one canonical (1.x) shape and converted on the
//! way in and out (SPEC.md "Success"; Go `pkg/types/{020,040,100}`; cni-notes §1.6).
//!
//! Results are always printed in the request's version. Printing follows the Go lib: 4-space
//! indented JSON without a trailing newline; 0.x keys in Go struct order with `dns` always
//! present; 1.x keys sorted and an empty `dns` dropped (lib >= 1.2, spec 1.1.0).

use crate::error::Result;
use crate::version::Version;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address with prefix length, host bits kept (`10.1.2.3/24`), as Go's `types.IPNet`.
/// Parsing is strict like Go's `ParseCIDR`: the `/len` is required and must be a number in
/// range (ipnetwork alone accepts a bare address or a dotted mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(pub ipnetwork::IpNetwork);

impl Cidr {
    /// The address part.
    pub fn ip(&self) -> IpAddr {
        self.0.ip()
    }
    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.0.prefix()
    }
    /// The network (host bits cleared) with the same prefix.
    pub fn network(&self) -> Cidr {
        // UNWRAP: the prefix comes from a valid network of the same family.
        #[allow(clippy::unwrap_used)]
        Cidr(ipnetwork::IpNetwork::new(self.0.network(), self.0.prefix()).unwrap())
    }
}

impl FromStr for Cidr {
    type Err = crate::error::Error;
    /// Code 6 (decode) on bad syntax, naming the text.
    fn from_str(s: &str) -> Result<Cidr> {
        let bad = || crate::error::Error::Decode {
            msg: format!("invalid CIDR address: {s}"),
            details: Some("expected an address with a prefix length, e.g. 10.1.2.0/24".into()),
        };
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        // Go's ParseCIDR takes only decimal digits after the slash (no dotted mask, no sign).
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let ip: IpAddr = addr.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        ipnetwork::IpNetwork::new(ip, len)
            .map(Cidr)
            .map_err(|_| bad())
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.ip(), self.0.prefix())
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: crate::error::Error| serde::de::Error::custom(e.msg()))
    }
}

/// The canonical (1.x) ADD result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CniResult {
    /// Interfaces created or used (`sandbox` set for in-container ones).
    pub interfaces: Vec<Interface>,
    /// IP configurations (`interface` indexes `interfaces`; omitted by IPAM plugins).
    pub ips: Vec<IpConfig>,
    /// Routes.
    pub routes: Vec<Route>,
    /// DNS.
    pub dns: Dns,
    /// Unknown top-level keys of a parsed result, kept so chained plugins pass them through.
    pub extra: BTreeMap<String, Value>,
}

/// An interface entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// Name.
    pub name: String,
    /// MAC address (`aa:bb:...`), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The netns path for in-container interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Socket path (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
    /// PCI ID (1.1.0).
    #[serde(default, rename = "pciID", skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

/// An IP configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Index into the result's `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// Address with prefix (host bits kept).
    pub address: Cidr,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// A route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination.
    pub dst: Cidr,
    /// Next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Advertised MSS (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    /// Priority / metric (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Routing table (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Scope: 0 global, 253 link, 254 host (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

/// DNS settings (result `dns` and the config's `dns`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolv.conf options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

impl CniResult {
    /// Parses a result written in `version`'s shape (0.1.0 ... 1.1.0) into the canonical
    /// form, applying the spec's conversion rules. Code 6 on a shape that does not parse.
    pub fn parse(value: &Value, version: Version) -> Result<CniResult> {
        todo!("{value} {version}")
    }

    /// Parses a `prevResult` (or a delegate's result): its own `cniVersion` decides the
    /// shape; a missing one means `config_version` (as the Go lib does).
    pub fn from_prev_result(value: &Value, config_version: Version) -> Result<CniResult> {
        todo!("{value} {config_version}")
    }

    /// The result in `version`'s shape, with `cniVersion` set. Fails (code
    /// [`crate::error::code::CONVERSION`], message `cannot convert: no valid IP addresses`)
    /// when a 0.1.0/0.2.0 result would hold no IP.
    pub fn to_value(&self, version: Version) -> Result<Value> {
        todo!("{version}")
    }

    /// [`CniResult::to_value`] printed as the Go lib prints it (4-space indent, no newline).
    pub fn to_json_string(&self, version: Version) -> Result<String> {
        todo!("{version}")
    }
}
