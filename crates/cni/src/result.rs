//! ADD results in every spec version, held in one canonical (1.x) shape and converted on the
//! way in and out (SPEC.md "Success"; Go `pkg/types/{020,040,100}`; docs/spec.md#results).
//!
//! Results are always printed in the request's version. Printing follows the Go lib: 4-space
//! indented JSON without a trailing newline; 0.x keys in Go struct order with `dns` always
//! present; 1.x keys sorted and an empty `dns` dropped (lib >= 1.2, spec 1.1.0).

use crate::error::{Error, Result, code};
use crate::json::{self, SortedKeys, null_as_default};
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

/// The top-level keys of a 0.3.0 ... 1.1.0 result.
const CURRENT_KEYS: [&str; 5] = ["cniVersion", "interfaces", "ips", "routes", "dns"];

impl CniResult {
    /// Parses a result written in `version`'s shape (0.1.0 ... 1.1.0) into the canonical
    /// form, applying the spec's conversion rules. Code 6 on a shape that does not parse.
    ///
    /// Spec: SPEC.md "Success", docs/spec.md#results. Keys a shape does not know
    /// (other than `cniVersion`) are kept in [`CniResult::extra`]. The per-IP `version` of
    /// 0.3.x/0.4.0 is ignored (it is recomputed from the address when printing), and the
    /// 1.1.0-only interface fields are not read from a 0.x result, as the Go types do not
    /// have them.
    pub fn parse(value: &Value, version: Version) -> Result<CniResult> {
        let object = value.as_object().ok_or_else(|| Error::Decode {
            msg: format!("invalid {version} result: expected a JSON object"),
            details: Some(value.to_string()),
        })?;
        let known: &[&str] = match ResultShape::of(version) {
            ResultShape::Legacy => &["cniVersion", "ip4", "ip6", "dns"],
            ResultShape::PerIpVersion | ResultShape::Current => &CURRENT_KEYS,
        };
        let (known_keys, extra): (serde_json::Map<_, _>, serde_json::Map<_, _>) = object
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .partition(|(k, _)| known.contains(&k.as_str()));
        let known_keys = Value::Object(known_keys);
        let mut result: CniResult = match ResultShape::of(version) {
            ResultShape::Legacy => decode_result::<LegacyResult>(&known_keys, version)?.into(),
            ResultShape::PerIpVersion => {
                decode_result::<PerIpVersionResult>(&known_keys, version)?.into()
            }
            ResultShape::Current => decode_result::<CurrentResult>(&known_keys, version)?.into(),
        };
        result.extra = extra.into_iter().collect();
        Ok(result)
    }

    /// Parses a `prevResult` (or a delegate's result): its own `cniVersion` decides the
    /// shape; a missing one means `config_version` (as the Go lib does).
    ///
    /// An empty `cniVersion` also means `config_version` (Go checks for `""`); an unknown
    /// one is code 1 and a malformed one code 6 (see [`Version`]'s `FromStr`). Unlike the Go
    /// lib, a result of another family than the config's (a 0.4.0 `prevResult` in a 1.0.0
    /// config) is accepted and converted.
    pub fn from_prev_result(value: &Value, config_version: Version) -> Result<CniResult> {
        let version = match value.get("cniVersion") {
            None | Some(Value::Null) => config_version,
            Some(Value::String(s)) if s.is_empty() => config_version,
            Some(Value::String(s)) => s.parse()?,
            Some(other) => {
                return Err(Error::Decode {
                    msg: "invalid result: cniVersion: expected a string".into(),
                    details: Some(other.to_string()),
                });
            }
        };
        CniResult::parse(value, version)
    }

    /// The result in `version`'s shape, with `cniVersion` set. Fails (code
    /// [`crate::error::code::CONVERSION`], message `cannot convert: no valid IP addresses`)
    /// when a 0.1.0/0.2.0 result would hold no IP.
    ///
    /// Spec: docs/spec.md#conversion. Empty strings and zero MTUs are left out, as Go's `omitempty`
    /// does. [`CniResult::extra`] is printed back in 1.x only (the Go 0.x types have no
    /// place for it); a known key always wins over an `extra` entry of the same name.
    pub fn to_value(&self, version: Version) -> Result<Value> {
        let printable = self.to_printable(version)?;
        serde_json::to_value(&printable)
            .map_err(|e| Error::internal(format!("cannot encode the {version} result: {e}")))
    }

    /// [`CniResult::to_value`] printed as the Go lib prints it (4-space indent, no newline).
    ///
    /// 0.x keys come in Go struct order (`cniVersion, interfaces, ips, routes, dns`,
    /// `dns` always present); 1.x keys are sorted at every level and an empty `dns` is left
    /// out (Go lib >= 1.2 re-marshals 1.x results through a map; docs/spec.md#printing).
    pub fn to_json_string(&self, version: Version) -> Result<String> {
        json::to_go_pretty(&self.to_printable(version)?)
            .map_err(|e| Error::internal(format!("cannot encode the {version} result: {e}")))
    }

    /// The result in the wire types of `version`'s shape.
    fn to_printable(&self, version: Version) -> Result<Printable> {
        let cni_version = version.as_str().to_owned();
        Ok(match ResultShape::of(version) {
            ResultShape::Legacy => Printable::Legacy(Box::new(self.to_legacy(cni_version)?)),
            ResultShape::PerIpVersion => {
                Printable::PerIpVersion(Box::new(self.to_per_ip_version(cni_version)))
            }
            ResultShape::Current => Printable::Current(self.to_current_map(cni_version)?),
        })
    }

    /// 0.1.0/0.2.0: the first address of each family, routes sorted into the family of
    /// their destination (only for a family that has an address), only `dst` and `gw` kept
    /// (Go `types020.convertFrom04x`).
    fn to_legacy(&self, cni_version: String) -> Result<LegacyResult> {
        let first_of_family = |v4: bool| {
            self.ips
                .iter()
                .find(|ip| is_ipv4(ip.address.ip()) == v4)
                .map(|ip| LegacyIpConfig {
                    ip: ip.address,
                    gateway: ip.gateway,
                    routes: self
                        .routes
                        .iter()
                        .filter(|r| is_ipv4(r.dst.ip()) == v4)
                        .map(|r| Route::new(r.dst, r.gw))
                        .collect(),
                })
        };
        let (ip4, ip6) = (first_of_family(true), first_of_family(false));
        if ip4.is_none() && ip6.is_none() {
            return Err(Error::plugin(
                code::CONVERSION,
                "cannot convert: no valid IP addresses",
                Some(format!(
                    "a {cni_version} result needs at least one IP address"
                )),
            ));
        }
        Ok(LegacyResult {
            cni_version,
            ip4,
            ip6,
            dns: go_dns(&self.dns),
        })
    }

    /// 0.3.x/0.4.0: per-IP `version` from the address family; interfaces lose the 1.1.0
    /// fields; routes keep every attribute (they share Go's `types.Route`).
    fn to_per_ip_version(&self, cni_version: String) -> PerIpVersionResult {
        PerIpVersionResult {
            cni_version,
            interfaces: self
                .interfaces
                .iter()
                .map(|i| PerIpVersionInterface {
                    name: i.name.clone(),
                    mac: non_empty(&i.mac),
                    sandbox: non_empty(&i.sandbox),
                })
                .collect(),
            ips: self
                .ips
                .iter()
                .map(|ip| PerIpVersionIpConfig {
                    version: if is_ipv4(ip.address.ip()) { "4" } else { "6" }.to_owned(),
                    interface: ip.interface,
                    address: ip.address,
                    gateway: ip.gateway,
                })
                .collect(),
            routes: self.routes.iter().map(go_route).collect(),
            dns: go_dns(&self.dns),
        }
    }

    /// 1.0.0/1.1.0 as a JSON map (printed with sorted keys), `extra` merged in under the
    /// known keys.
    fn to_current_map(&self, cni_version: String) -> Result<Value> {
        let current = CurrentResult {
            cni_version,
            interfaces: self
                .interfaces
                .iter()
                .map(|i| Interface {
                    name: i.name.clone(),
                    mac: non_empty(&i.mac),
                    mtu: i.mtu.filter(|&mtu| mtu != 0),
                    sandbox: non_empty(&i.sandbox),
                    socket_path: non_empty(&i.socket_path),
                    pci_id: non_empty(&i.pci_id),
                })
                .collect(),
            ips: self.ips.clone(),
            routes: self.routes.iter().map(go_route).collect(),
            dns: go_dns(&self.dns),
        };
        let known = serde_json::to_value(&current)
            .map_err(|e| Error::internal(format!("cannot encode the result: {e}")))?;
        // A known key owns its name even when it is left out (empty): an `extra` entry of
        // that name (read from a 0.1.0/0.2.0 shape) would print as if it were the field.
        let mut map: serde_json::Map<String, Value> = self
            .extra
            .iter()
            .filter(|(key, _)| !CURRENT_KEYS.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        if let Value::Object(mut known) = known {
            // 1.x drops an empty `dns` (Go lib >= 1.2).
            if current.dns.is_empty() {
                known.remove("dns");
            }
            map.extend(known);
        }
        Ok(Value::Object(map))
    }
}

impl Route {
    /// A route to `dst` via `gw` (none = on-link or the IP's gateway), without the 1.1.0
    /// attributes.
    pub fn new(dst: Cidr, gw: Option<IpAddr>) -> Route {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// Whether `ip` is IPv4 the way Go's `To4() != nil` decides: an IPv4-mapped IPv6 address
/// (`::ffff:a.b.c.d`) counts as IPv4, since Go stores both alike.
fn is_ipv4(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
    }
}

/// Go's `omitempty` on a string: `""` is not printed.
fn non_empty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|s| !s.is_empty())
}

/// A route as Go prints it: `mtu`, `advmss` and `priority` are plain ints with
/// `omitempty`, so 0 is not printed; `table` and `scope` are pointers and kept.
fn go_route(route: &Route) -> Route {
    Route {
        mtu: route.mtu.filter(|&v| v != 0),
        advmss: route.advmss.filter(|&v| v != 0),
        priority: route.priority.filter(|&v| v != 0),
        ..route.clone()
    }
}

/// DNS as Go prints it: an empty `domain` is not printed.
fn go_dns(dns: &Dns) -> Dns {
    Dns {
        domain: non_empty(&dns.domain),
        ..dns.clone()
    }
}

/// Decodes one result shape, code 6 naming the field.
fn decode_result<T: serde::de::DeserializeOwned>(value: &Value, version: Version) -> Result<T> {
    json::decode(value).map_err(|e| Error::Decode {
        msg: format!("invalid {version} result: {e}"),
        details: Some(value.to_string()),
    })
}

/// The three JSON shapes results have had (docs/spec.md#results).
#[derive(Debug, Clone, Copy)]
enum ResultShape {
    /// 0.1.0, 0.2.0: `ip4`/`ip6`.
    Legacy,
    /// 0.3.0, 0.3.1, 0.4.0: `interfaces`/`ips`/`routes`, per-IP `version`.
    PerIpVersion,
    /// 1.0.0, 1.1.0.
    Current,
}

impl ResultShape {
    fn of(version: Version) -> ResultShape {
        if version.is_legacy_result() {
            ResultShape::Legacy
        } else if version < Version::V1_0_0 {
            ResultShape::PerIpVersion
        } else {
            ResultShape::Current
        }
    }
}

/// What gets printed: 0.x as structs (Go struct field order), 1.x as a map (sorted keys).
#[derive(Serialize)]
#[serde(untagged)]
enum Printable {
    Legacy(Box<LegacyResult>),
    PerIpVersion(Box<PerIpVersionResult>),
    Current(#[serde(serialize_with = "serialize_sorted")] Value),
}

fn serialize_sorted<S: serde::Serializer>(
    value: &Value,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    SortedKeys(value).serialize(serializer)
}

/// 0.1.0/0.2.0 wire shape (Go `types020.Result`); fields in Go's order.
#[derive(Debug, Serialize, Deserialize)]
struct LegacyResult {
    #[serde(rename = "cniVersion", default, skip_deserializing)]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip4: Option<LegacyIpConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip6: Option<LegacyIpConfig>,
    #[serde(default, deserialize_with = "null_as_default")]
    dns: Dns,
}

/// 0.1.0/0.2.0 `ip4`/`ip6` (Go `types020.IPConfig`).
#[derive(Debug, Serialize, Deserialize)]
struct LegacyIpConfig {
    ip: Cidr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    routes: Vec<Route>,
}

impl From<LegacyResult> for CniResult {
    /// Go `types020.convertTo04x`: ip4 then ip6, their routes concatenated.
    fn from(legacy: LegacyResult) -> CniResult {
        let (ips, routes) = [legacy.ip4, legacy.ip6]
            .into_iter()
            .flatten()
            .map(|family| {
                let ip = IpConfig {
                    interface: None,
                    address: family.ip,
                    gateway: family.gateway,
                };
                (ip, family.routes)
            })
            .unzip::<_, _, Vec<_>, Vec<_>>();
        CniResult {
            ips,
            routes: routes.into_iter().flatten().collect(),
            dns: legacy.dns,
            ..CniResult::default()
        }
    }
}

/// The wire shape from 0.3.0 on (Go `types040.Result`, `types100.Result`), fields in Go's
/// order; the interface and IP entries differ by version. 0.x prints `dns` even when empty;
/// 1.x drops an empty one (`to_current_map`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(deserialize = "I: Deserialize<'de>, P: Deserialize<'de>"))]
struct ListResult<I, P> {
    #[serde(rename = "cniVersion", default, skip_deserializing)]
    cni_version: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    interfaces: Vec<I>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    ips: Vec<P>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    routes: Vec<Route>,
    #[serde(default, deserialize_with = "null_as_default")]
    dns: Dns,
}

/// 0.3.x/0.4.0 wire shape (Go `types040.Result`).
type PerIpVersionResult = ListResult<PerIpVersionInterface, PerIpVersionIpConfig>;

/// 1.0.0/1.1.0 wire shape (Go `types100.Result`); printed through a sorted map.
type CurrentResult = ListResult<Interface, IpConfig>;

/// 0.3.x/0.4.0 interface (Go `types040.Interface`).
#[derive(Debug, Serialize, Deserialize)]
struct PerIpVersionInterface {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sandbox: Option<String>,
}

impl From<PerIpVersionInterface> for Interface {
    fn from(i: PerIpVersionInterface) -> Interface {
        Interface {
            name: i.name,
            mac: i.mac,
            sandbox: i.sandbox,
            ..Interface::default()
        }
    }
}

/// 0.3.x/0.4.0 IP (Go `types040.IPConfig`); `version` is read but not trusted.
#[derive(Debug, Serialize, Deserialize)]
struct PerIpVersionIpConfig {
    #[serde(default)]
    version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
    address: Cidr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
}

impl From<PerIpVersionIpConfig> for IpConfig {
    fn from(ip: PerIpVersionIpConfig) -> IpConfig {
        IpConfig {
            interface: ip.interface,
            address: ip.address,
            gateway: ip.gateway,
        }
    }
}

impl<I: Into<Interface>, P: Into<IpConfig>> From<ListResult<I, P>> for CniResult {
    fn from(result: ListResult<I, P>) -> CniResult {
        CniResult {
            interfaces: result.interfaces.into_iter().map(Into::into).collect(),
            ips: result.ips.into_iter().map(Into::into).collect(),
            routes: result.routes,
            dns: result.dns,
            extra: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ip_config(interface: Option<usize>, address: &str, gateway: Option<&str>) -> IpConfig {
        IpConfig {
            interface,
            address: cidr(address),
            gateway: gateway.map(ip),
        }
    }

    fn dns() -> Dns {
        Dns {
            nameservers: vec!["10.1.2.1".into()],
            domain: Some("example.org".into()),
            search: vec!["example.org".into()],
            options: vec!["ndots:2".into()],
        }
    }

    /// Every field of every version in use: two interfaces (one with the 1.1.0 fields),
    /// two IPv4 and one IPv6 address, routes of both families (one with 1.1.0 attributes).
    fn rich() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "cni0".into(),
                    mac: Some("0a:58:0a:01:02:01".into()),
                    mtu: Some(1500),
                    ..Interface::default()
                },
                Interface {
                    name: "eth0".into(),
                    mac: Some("0a:58:0a:01:02:03".into()),
                    sandbox: Some("/run/netns/x".into()),
                    socket_path: Some("/s".into()),
                    pci_id: Some("0000:00:01.0".into()),
                    ..Interface::default()
                },
            ],
            ips: vec![
                ip_config(Some(1), "10.1.2.3/24", Some("10.1.2.1")),
                ip_config(Some(1), "10.1.3.4/24", None),
                ip_config(Some(1), "2001:db8::5/64", Some("2001:db8::1")),
            ],
            routes: vec![
                Route {
                    mtu: Some(1400),
                    advmss: Some(1360),
                    priority: Some(10),
                    table: Some(100),
                    scope: Some(0),
                    ..Route::new(cidr("0.0.0.0/0"), Some(ip("10.1.2.1")))
                },
                Route::new(cidr("2001:db8:1::/48"), None),
                Route::new(cidr("192.168.0.0/16"), Some(ip("10.1.2.254"))),
            ],
            dns: dns(),
            extra: BTreeMap::new(),
        }
    }

    /// What survives a trip through a 0.3.x/0.4.0 result: interfaces lose the 1.1.0 fields.
    fn rich_per_ip_version() -> CniResult {
        let mut result = rich();
        for interface in &mut result.interfaces {
            interface.mtu = None;
            interface.socket_path = None;
            interface.pci_id = None;
        }
        result
    }

    /// What survives a trip through a 0.1.0/0.2.0 result: the first address of each family,
    /// no interface index, routes by family with only dst/gw, no interfaces.
    fn rich_legacy() -> CniResult {
        CniResult {
            ips: vec![
                ip_config(None, "10.1.2.3/24", Some("10.1.2.1")),
                ip_config(None, "2001:db8::5/64", Some("2001:db8::1")),
            ],
            routes: vec![
                Route::new(cidr("0.0.0.0/0"), Some(ip("10.1.2.1"))),
                Route::new(cidr("192.168.0.0/16"), Some(ip("10.1.2.254"))),
                Route::new(cidr("2001:db8:1::/48"), None),
            ],
            dns: dns(),
            ..CniResult::default()
        }
    }

    fn surviving(from: Version) -> CniResult {
        match ResultShape::of(from) {
            ResultShape::Legacy => rich_legacy(),
            ResultShape::PerIpVersion => rich_per_ip_version(),
            ResultShape::Current => rich(),
        }
    }

    #[test]
    fn every_version_pair_converts_by_the_spec_rules() {
        for from in Version::ALL {
            let written = rich().to_value(from).unwrap();
            assert_eq!(written["cniVersion"], from.as_str());
            let parsed = CniResult::parse(&written, from).unwrap();
            assert_eq!(parsed, surviving(from), "parse {from}");
            for to in Version::ALL {
                let converted = parsed.to_value(to).unwrap();
                assert_eq!(
                    converted,
                    surviving(from).to_value(to).unwrap(),
                    "{from} -> {to}"
                );
                assert_eq!(converted["cniVersion"], to.as_str(), "{from} -> {to}");
                // Printing and to_value agree.
                let printed: Value =
                    serde_json::from_str(&parsed.to_json_string(to).unwrap()).unwrap();
                assert_eq!(printed, converted, "{from} -> {to} printed");
            }
        }
    }

    #[test]
    fn prints_1_1_0_with_sorted_keys_and_new_fields() {
        let want = r#"{
    "cniVersion": "1.1.0",
    "dns": {
        "domain": "example.org",
        "nameservers": [
            "10.1.2.1"
        ],
        "options": [
            "ndots:2"
        ],
        "search": [
            "example.org"
        ]
    },
    "interfaces": [
        {
            "mac": "0a:58:0a:01:02:01",
            "mtu": 1500,
            "name": "cni0"
        },
        {
            "mac": "0a:58:0a:01:02:03",
            "name": "eth0",
            "pciID": "0000:00:01.0",
            "sandbox": "/run/netns/x",
            "socketPath": "/s"
        }
    ],
    "ips": [
        {
            "address": "10.1.2.3/24",
            "gateway": "10.1.2.1",
            "interface": 1
        },
        {
            "address": "10.1.3.4/24",
            "interface": 1
        },
        {
            "address": "2001:db8::5/64",
            "gateway": "2001:db8::1",
            "interface": 1
        }
    ],
    "routes": [
        {
            "advmss": 1360,
            "dst": "0.0.0.0/0",
            "gw": "10.1.2.1",
            "mtu": 1400,
            "priority": 10,
            "scope": 0,
            "table": 100
        },
        {
            "dst": "2001:db8:1::/48"
        },
        {
            "dst": "192.168.0.0/16",
            "gw": "10.1.2.254"
        }
    ]
}"#;
        assert_eq!(rich().to_json_string(Version::V1_1_0).unwrap(), want);
        // 1.0.0 has the same shape; only the version string differs.
        assert_eq!(
            rich().to_json_string(Version::V1_0_0).unwrap(),
            want.replace("\"1.1.0\"", "\"1.0.0\"")
        );
    }

    #[test]
    fn prints_0_4_0_in_go_struct_order_with_per_ip_version() {
        let want = r#"{
    "cniVersion": "0.4.0",
    "interfaces": [
        {
            "name": "cni0",
            "mac": "0a:58:0a:01:02:01"
        },
        {
            "name": "eth0",
            "mac": "0a:58:0a:01:02:03",
            "sandbox": "/run/netns/x"
        }
    ],
    "ips": [
        {
            "version": "4",
            "interface": 1,
            "address": "10.1.2.3/24",
            "gateway": "10.1.2.1"
        },
        {
            "version": "4",
            "interface": 1,
            "address": "10.1.3.4/24"
        },
        {
            "version": "6",
            "interface": 1,
            "address": "2001:db8::5/64",
            "gateway": "2001:db8::1"
        }
    ],
    "routes": [
        {
            "dst": "0.0.0.0/0",
            "gw": "10.1.2.1",
            "mtu": 1400,
            "advmss": 1360,
            "priority": 10,
            "table": 100,
            "scope": 0
        },
        {
            "dst": "2001:db8:1::/48"
        },
        {
            "dst": "192.168.0.0/16",
            "gw": "10.1.2.254"
        }
    ],
    "dns": {
        "nameservers": [
            "10.1.2.1"
        ],
        "domain": "example.org",
        "search": [
            "example.org"
        ],
        "options": [
            "ndots:2"
        ]
    }
}"#;
        for version in [Version::V0_3_0, Version::V0_3_1, Version::V0_4_0] {
            assert_eq!(
                rich().to_json_string(version).unwrap(),
                want.replace("\"0.4.0\"", &format!("{:?}", version.as_str()))
            );
        }
    }

    #[test]
    fn prints_0_2_0_with_first_ip_per_family_and_routes_by_family() {
        let want = r#"{
    "cniVersion": "0.2.0",
    "ip4": {
        "ip": "10.1.2.3/24",
        "gateway": "10.1.2.1",
        "routes": [
            {
                "dst": "0.0.0.0/0",
                "gw": "10.1.2.1"
            },
            {
                "dst": "192.168.0.0/16",
                "gw": "10.1.2.254"
            }
        ]
    },
    "ip6": {
        "ip": "2001:db8::5/64",
        "gateway": "2001:db8::1",
        "routes": [
            {
                "dst": "2001:db8:1::/48"
            }
        ]
    },
    "dns": {
        "nameservers": [
            "10.1.2.1"
        ],
        "domain": "example.org",
        "search": [
            "example.org"
        ],
        "options": [
            "ndots:2"
        ]
    }
}"#;
        assert_eq!(rich().to_json_string(Version::V0_2_0).unwrap(), want);
        assert_eq!(
            rich().to_json_string(Version::V0_1_0).unwrap(),
            want.replace("\"0.2.0\"", "\"0.1.0\"")
        );
    }

    #[test]
    fn legacy_drops_routes_of_a_family_without_an_address() {
        let result = CniResult {
            ips: vec![
                ip_config(None, "10.0.0.2/24", None),
                ip_config(None, "10.0.0.3/24", None),
            ],
            routes: vec![
                Route::new(cidr("::/0"), None),
                Route::new(cidr("0.0.0.0/0"), None),
            ],
            ..CniResult::default()
        };
        assert_eq!(
            result.to_value(Version::V0_2_0).unwrap(),
            json!({
                "cniVersion": "0.2.0",
                "ip4": {"ip": "10.0.0.2/24", "routes": [{"dst": "0.0.0.0/0"}]},
                "dns": {}
            })
        );
    }

    #[test]
    fn layer_2_result_cannot_be_legacy() {
        let l2 = CniResult {
            interfaces: vec![Interface {
                name: "eth0".into(),
                ..Interface::default()
            }],
            ..CniResult::default()
        };
        for version in [Version::V0_1_0, Version::V0_2_0] {
            let err = l2.to_json_string(version).unwrap_err();
            assert_eq!(err.code(), code::CONVERSION);
            assert_eq!(err.msg(), "cannot convert: no valid IP addresses");
        }
        assert_eq!(
            l2.to_json_string(Version::V0_4_0).unwrap(),
            "{\n    \"cniVersion\": \"0.4.0\",\n    \"interfaces\": [\n        {\n            \"name\": \"eth0\"\n        }\n    ],\n    \"dns\": {}\n}"
        );
    }

    #[test]
    fn empty_dns_is_dropped_in_1_x_and_printed_in_0_x() {
        let empty = CniResult::default();
        assert_eq!(
            empty.to_json_string(Version::V1_0_0).unwrap(),
            "{\n    \"cniVersion\": \"1.0.0\"\n}"
        );
        assert_eq!(
            empty.to_json_string(Version::V0_3_1).unwrap(),
            "{\n    \"cniVersion\": \"0.3.1\",\n    \"dns\": {}\n}"
        );
    }

    #[test]
    fn go_omitempty_values_are_not_printed() {
        let result = CniResult {
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: Some(String::new()),
                mtu: Some(0),
                sandbox: Some(String::new()),
                ..Interface::default()
            }],
            routes: vec![Route {
                mtu: Some(0),
                priority: Some(0),
                table: Some(0),
                ..Route::new(cidr("0.0.0.0/0"), None)
            }],
            dns: Dns {
                domain: Some(String::new()),
                ..Dns::default()
            },
            ..CniResult::default()
        };
        assert_eq!(
            result.to_value(Version::V1_1_0).unwrap(),
            json!({
                "cniVersion": "1.1.0",
                "interfaces": [{"name": "eth0"}],
                "routes": [{"dst": "0.0.0.0/0", "table": 0}]
            })
        );
    }

    #[test]
    fn parse_legacy_concatenates_families() {
        let value = json!({
            "cniVersion": "0.2.0",
            "ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1",
                    "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]},
            "ip6": {"ip": "fd00::2/64", "routes": null},
            "dns": null
        });
        let parsed = CniResult::parse(&value, Version::V0_2_0).unwrap();
        assert_eq!(
            parsed,
            CniResult {
                ips: vec![
                    ip_config(None, "10.0.0.2/24", Some("10.0.0.1")),
                    ip_config(None, "fd00::2/64", None),
                ],
                routes: vec![Route::new(cidr("0.0.0.0/0"), Some(ip("10.0.0.1")))],
                ..CniResult::default()
            }
        );
        assert_eq!(
            parsed.to_value(Version::V0_4_0).unwrap(),
            json!({
                "cniVersion": "0.4.0",
                "ips": [
                    {"version": "4", "address": "10.0.0.2/24", "gateway": "10.0.0.1"},
                    {"version": "6", "address": "fd00::2/64"}
                ],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
                "dns": {}
            })
        );
    }

    #[test]
    fn per_ip_version_is_recomputed_from_the_address() {
        // A wrong `version` on input is not trusted; an IPv4-mapped address is IPv4 (Go To4).
        let value = json!({
            "ips": [{"version": "6", "address": "10.0.0.2/24"},
                    {"address": "::ffff:10.0.0.3/120"}]
        });
        let parsed = CniResult::parse(&value, Version::V0_3_1).unwrap();
        let printed = parsed.to_value(Version::V0_3_1).unwrap();
        assert_eq!(printed["ips"][0]["version"], "4");
        assert_eq!(printed["ips"][1]["version"], "4");
    }

    #[test]
    fn unknown_top_level_keys_round_trip_in_1_x() {
        let value = json!({
            "cniVersion": "1.0.0",
            "ips": [{"address": "10.0.0.2/24"}],
            "zeta": {"b": 1, "a": [true]},
            "alpha": "x"
        });
        let parsed = CniResult::parse(&value, Version::V1_0_0).unwrap();
        assert_eq!(
            parsed.extra,
            BTreeMap::from([
                ("alpha".to_owned(), json!("x")),
                ("zeta".to_owned(), json!({"b": 1, "a": [true]})),
            ])
        );
        assert_eq!(
            parsed.to_json_string(Version::V1_1_0).unwrap(),
            r#"{
    "alpha": "x",
    "cniVersion": "1.1.0",
    "ips": [
        {
            "address": "10.0.0.2/24"
        }
    ],
    "zeta": {
        "a": [
            true
        ],
        "b": 1
    }
}"#
        );
        // The Go 0.x types have no place for them.
        let legacy = parsed.to_value(Version::V0_4_0).unwrap();
        assert!(legacy.get("zeta").is_none());
    }

    #[test]
    fn known_keys_win_over_extra() {
        let mut result = CniResult::default();
        result.extra.insert("cniVersion".into(), json!("9.9.9"));
        assert_eq!(
            result.to_value(Version::V1_1_0).unwrap(),
            json!({"cniVersion": "1.1.0"})
        );
    }

    /// Found by fuzzing (fuzz target `result_versions`): a 0.4.0-shaped result read as
    /// 0.1.0 keeps `ips` as an unknown key, which was printed in 1.x as if it were the
    /// (empty) field, per-IP `version` included, so reading that back changed it.
    #[test]
    fn extra_never_stands_in_for_a_known_key() {
        let value = json!({"ips": [{"version": "4", "address": "10.0.0.2/24"}], "x": 1});
        let parsed = CniResult::parse(&value, Version::V0_1_0).unwrap();
        assert!(parsed.ips.is_empty() && parsed.extra.contains_key("ips"));
        let printed = parsed.to_value(Version::V1_0_0).unwrap();
        assert_eq!(printed, json!({"cniVersion": "1.0.0", "x": 1}));
        let reread = CniResult::parse(&printed, Version::V1_0_0).unwrap();
        assert_eq!(reread.to_value(Version::V1_0_0).unwrap(), printed);
    }

    #[test]
    fn bad_shapes_are_code_6_naming_the_field() {
        let cases = [
            (
                json!([]),
                Version::V1_0_0,
                "invalid 1.0.0 result: expected a JSON object",
            ),
            (
                json!({"ips": [{"address": "10.0.0.2"}]}),
                Version::V1_0_0,
                "invalid 1.0.0 result: ips[0].address: invalid CIDR address: 10.0.0.2",
            ),
            (
                json!({"ips": [{"version": "4"}]}),
                Version::V0_4_0,
                "invalid 0.4.0 result: ips[0]: missing field `address`",
            ),
            (
                json!({"ip4": {"ip": "10.0.0.2/24", "gateway": "nope"}}),
                Version::V0_2_0,
                "invalid 0.2.0 result: ip4.gateway: invalid IP address syntax",
            ),
            (
                json!({"interfaces": {}}),
                Version::V1_1_0,
                "invalid 1.1.0 result: interfaces: invalid type: map, expected a sequence",
            ),
        ];
        for (value, version, msg) in cases {
            let err = CniResult::parse(&value, version).unwrap_err();
            assert_eq!((err.code(), err.msg().as_str()), (6, msg), "{value}");
        }
    }

    #[test]
    fn prev_result_version_decides_the_shape() {
        let legacy = json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24"}});
        let parsed = CniResult::from_prev_result(&legacy, Version::V1_0_0).unwrap();
        assert_eq!(parsed.ips, [ip_config(None, "10.0.0.2/24", None)]);

        // No (or an empty) version: the config's.
        for value in [
            json!({"ip4": {"ip": "10.0.0.2/24"}}),
            json!({"cniVersion": "", "ip4": {"ip": "10.0.0.2/24"}}),
        ] {
            let parsed = CniResult::from_prev_result(&value, Version::V0_1_0).unwrap();
            assert_eq!(parsed.ips.len(), 1, "{value}");
            // Read as 1.x, `ip4` is just an unknown key.
            let parsed = CniResult::from_prev_result(&value, Version::V1_0_0).unwrap();
            assert!(parsed.ips.is_empty() && parsed.extra.contains_key("ip4"));
        }

        let codes = [
            (json!({"cniVersion": "9.9.9"}), 1),
            (json!({"cniVersion": "one"}), 6),
            (json!({"cniVersion": 1}), 6),
        ];
        for (value, code) in codes {
            let err = CniResult::from_prev_result(&value, Version::V1_0_0).unwrap_err();
            assert_eq!(err.code(), code, "{value}");
        }
    }
}
