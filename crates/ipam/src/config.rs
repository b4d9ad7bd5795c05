//! The host-local configuration: the `ipam` object, `runtimeConfig.ipRanges` and the three
//! sources of requested addresses, validated into an [`IpamConfig`]
//! (PL:backend/allocator/config.go `LoadIPAMConfig`; docs/reference.md#host-local-configuration).
//!
//! Every fault names the configuration path of the value at fault.

use crate::dns::read_resolv_conf;
use crate::error::{Error, Result};
use crate::range::{Range, RangeSet, RangeSpec, parse_ip};
use cni::{CniArgs, Dns, NetConf, Route, Version};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::net::IpAddr;
use std::path::PathBuf;

/// Where leases live when `ipam.dataDir` is not set (the reference's default).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// The `ipam` object as written. Unknown keys are ignored, as the reference does.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IpamSpec {
    /// The legacy single range (`subnet`, `rangeStart`, `rangeEnd`, `gateway` directly here).
    #[serde(flatten)]
    legacy_range: RangeSpec,
    #[serde(default)]
    ranges: Option<Vec<Vec<RangeSpec>>>,
    #[serde(default)]
    routes: Option<Vec<Value>>,
    #[serde(default)]
    data_dir: Option<String>,
    #[serde(default)]
    resolv_conf: Option<String>,
}

/// A validated host-local configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IpamConfig {
    /// The network name (top-level `name`): the store directory's name.
    pub network: String,
    /// The request's version.
    pub cni_version: Version,
    /// The range sets, one address each, in order: `runtimeConfig.ipRanges`, then the legacy
    /// single range, then `ipam.ranges`.
    pub range_sets: Vec<RangeSet>,
    /// Requested addresses (prefixes dropped, duplicates removed, first mention first).
    pub requested_ips: Vec<IpAddr>,
    /// `ipam.routes`, returned verbatim in the result.
    pub routes: Vec<Route>,
    /// `ipam.dataDir`, or [`DEFAULT_DATA_DIR`].
    pub data_dir: PathBuf,
    /// `ipam.resolvConf`, read on ADD into the result's `dns`.
    pub resolv_conf: Option<PathBuf>,
}

/// Known `CNI_ARGS` keys: `IP` (requested address) and the Go lib's `IgnoreUnknown`.
pub const KNOWN_CNI_ARGS: &[&str] = &["IP", "IgnoreUnknown"];

impl IpamConfig {
    /// Validates the configuration: `ipam` is the request's `ipam` value, `net` its
    /// well-known keys (name, version, runtimeConfig, args), `cni_args` the parsed `CNI_ARGS`.
    ///
    /// Requested addresses come from `args.cni.ips`, `runtimeConfig.ips` and `CNI_ARGS`
    /// `IP=`; the latter is ignored when `args.cni.ips` is present (CONVENTIONS.md: a plugin
    /// that understands `args` ignores the deprecated CNI_ARGS field), where the reference
    /// combines all three.
    pub fn load(ipam: Option<&Value>, net: &NetConf, cni_args: &CniArgs) -> Result<IpamConfig> {
        let spec: IpamSpec = match ipam {
            None | Some(Value::Null) => return Err(Error::MissingIpam),
            Some(value) => parse_field(value, "ipam")?,
        };
        cni_args
            .check_known(KNOWN_CNI_ARGS)
            .map_err(Error::Rejected)?;
        let requested_ips = requested_ips(net, cni_args)?;
        let range_sets = range_sets(&spec, net)?;

        let (v4, v6): (Vec<_>, Vec<_>) = range_sets.iter().partition(|set| set.is_ipv4());
        if (v4.len() > 1 || v6.len() > 1) && net.cni_version < Version::V0_3_0 {
            return Err(Error::TooManyAddressesPerFamily {
                version: net.cni_version,
            });
        }
        for (first, a) in range_sets.iter().enumerate() {
            if let Some(offset) = range_sets[first + 1..].iter().position(|b| a.overlaps(b)) {
                return Err(Error::RangeSetsOverlap {
                    first,
                    second: first + 1 + offset,
                });
            }
        }

        let routes = spec
            .routes
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, route)| parse_field(route, &format!("ipam.routes[{i}]")))
            .collect::<Result<Vec<Route>>>()?;
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty()).map(PathBuf::from);
        Ok(IpamConfig {
            network: net.name.clone(),
            cni_version: net.cni_version,
            range_sets,
            requested_ips,
            routes,
            data_dir: non_empty(spec.data_dir).unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            resolv_conf: non_empty(spec.resolv_conf),
        })
    }

    /// The result's `dns`: `ipam.resolvConf` parsed, or empty when not configured.
    pub fn dns(&self) -> Result<Dns> {
        let Some(path) = &self.resolv_conf else {
            return Ok(Dns::default());
        };
        read_resolv_conf(path).map_err(|source| Error::ResolvConf {
            path: path.clone(),
            source,
        })
    }
}

/// Deserializes one configuration value as every configuration is read
/// ([`cni::config::decode`]: objects only); a shape error names its path.
fn parse_field<T: DeserializeOwned>(value: &Value, field: &str) -> Result<T> {
    cni::config::decode(value, field).map_err(Error::Rejected)
}

/// `ip` or `ip/prefix` (Go's `ip.IP` text form); the prefix is dropped.
fn parse_requested_ip(text: &str, field: &str) -> Result<IpAddr> {
    let address = text.split_once('/').map_or(text, |(address, _)| address);
    let prefix_ok = text.split_once('/').is_none_or(|(_, prefix)| {
        !prefix.is_empty() && prefix.len() <= 3 && prefix.bytes().all(|b| b.is_ascii_digit())
    });
    parse_ip(address)
        .filter(|_| prefix_ok)
        .ok_or_else(|| Error::InvalidField {
            field: field.to_owned(),
            reason: format!("cannot understand ip: {text:?}"),
        })
}

/// A list of `ip[/prefix]` strings at `field`.
fn parse_requested_list(value: &Value, field: &str) -> Result<Vec<IpAddr>> {
    let texts: Vec<String> = parse_field(value, field)?;
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| parse_requested_ip(text, &format!("{field}[{i}]")))
        .collect()
}

fn requested_ips(net: &NetConf, cni_args: &CniArgs) -> Result<Vec<IpAddr>> {
    let from_args = match net.cni_arg("ips") {
        Some(value) if !value.is_null() => parse_requested_list(value, "args.cni.ips")?,
        _ => Vec::new(),
    };
    let from_env = match cni_args.get("IP") {
        Some(text) if from_args.is_empty() && !text.is_empty() => {
            vec![parse_requested_ip(text, "CNI_ARGS IP")?]
        }
        _ => Vec::new(),
    };
    let from_runtime = match net.runtime_config("ips") {
        Some(value) if !value.is_null() => parse_requested_list(value, "runtimeConfig.ips")?,
        _ => Vec::new(),
    };
    let mut unique = Vec::new();
    for ip in from_env.into_iter().chain(from_args).chain(from_runtime) {
        if !unique.contains(&ip) {
            unique.push(ip);
        }
    }
    Ok(unique)
}

/// Builds every range set in the reference's order, naming each fault's path.
fn range_sets(spec: &IpamSpec, net: &NetConf) -> Result<Vec<RangeSet>> {
    let runtime: Vec<Vec<RangeSpec>> = match net.runtime_config("ipRanges") {
        Some(value) if !value.is_null() => parse_field(value, "runtimeConfig.ipRanges")?,
        _ => Vec::new(),
    };
    let mut sources: Vec<(&[RangeSpec], RangeSetPath)> = Vec::new();
    for (i, set) in runtime.iter().enumerate() {
        sources.push((
            set,
            RangeSetPath::List(format!("runtimeConfig.ipRanges[{i}]")),
        ));
    }
    if spec.legacy_range.subnet.is_some() {
        sources.push((
            std::slice::from_ref(&spec.legacy_range),
            RangeSetPath::Legacy,
        ));
    }
    for (i, set) in spec.ranges.iter().flatten().enumerate() {
        sources.push((set, RangeSetPath::List(format!("ipam.ranges[{i}]"))));
    }
    if sources.is_empty() {
        return Err(Error::NoRanges);
    }
    sources
        .iter()
        .enumerate()
        .map(|(set, (entries, set_path))| {
            let fault = |path: String, field: &str, reason: String| Error::InvalidRange {
                set,
                field: if field.is_empty() {
                    path
                } else {
                    format!("{path}.{field}")
                },
                reason,
            };
            let ranges = entries
                .iter()
                .enumerate()
                .map(|(j, entry)| {
                    Range::from_spec(entry).map_err(|f| fault(set_path.range(j), f.field, f.reason))
                })
                .collect::<Result<Vec<Range>>>()?;
            RangeSet::new(ranges).map_err(|(index, f)| {
                let path = index.map_or_else(|| set_path.set(), |j| set_path.range(j));
                fault(path, f.field, f.reason)
            })
        })
        .collect()
}

/// Where a range set was written, to name faulty values by their configuration path.
enum RangeSetPath {
    /// An entry of a list of sets (`ipam.ranges[i]`, `runtimeConfig.ipRanges[i]`).
    List(String),
    /// The legacy single range: its keys sit directly under `ipam`.
    Legacy,
}

impl RangeSetPath {
    fn set(&self) -> String {
        match self {
            RangeSetPath::List(path) => path.clone(),
            RangeSetPath::Legacy => "ipam".into(),
        }
    }

    fn range(&self, index: usize) -> String {
        match self {
            RangeSetPath::List(path) => format!("{path}[{index}]"),
            RangeSetPath::Legacy => "ipam".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Loads a whole request config the way a plugin sees it.
    fn load_with(config: Value, cni_args: &str) -> Result<IpamConfig> {
        let net: NetConf = serde_json::from_value(config.clone()).unwrap();
        let pairs = cni_args
            .split(';')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect();
        IpamConfig::load(
            config.get("ipam"),
            &net,
            &CniArgs {
                pairs,
                ..CniArgs::default()
            },
        )
    }

    fn load(config: Value) -> Result<IpamConfig> {
        load_with(config, "")
    }

    fn sets(config: &IpamConfig) -> Vec<String> {
        config.range_sets.iter().map(ToString::to_string).collect()
    }

    fn ips(texts: &[&str]) -> Vec<IpAddr> {
        texts.iter().map(|t| t.parse().unwrap()).collect()
    }

    fn reason(config: Value) -> String {
        load(config).unwrap_err().to_string()
    }

    #[test]
    fn old_style_single_range() {
        let config = load(json!({
            "cniVersion": "0.3.1", "name": "mynet", "type": "ipvlan", "master": "foo0",
            "ipam": {"type": "host-local", "subnet": "10.1.2.0/24", "rangeStart": "10.1.2.9",
                     "rangeEnd": "10.1.2.20", "gateway": "10.1.2.30"}
        }))
        .unwrap();
        assert_eq!(config.network, "mynet");
        assert_eq!(sets(&config), ["10.1.2.9-10.1.2.20"]);
        assert_eq!(
            config.range_sets[0].ranges()[0].gateway.to_string(),
            "10.1.2.30"
        );
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(config.requested_ips.is_empty() && config.routes.is_empty());
    }

    #[test]
    fn new_style_ranges_routes_and_options() {
        let config = load(json!({
            "cniVersion": "1.1.0", "name": "mynet",
            "ipam": {"type": "host-local", "dataDir": "/tmp/x", "resolvConf": "/etc/r.conf",
                     "ranges": [
                        [{"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.9", "rangeEnd": "10.1.2.20", "gateway": "10.1.2.30"},
                         {"subnet": "10.1.4.0/24"}],
                        [{"subnet": "11.1.2.0/24", "rangeStart": "11.1.2.9", "rangeEnd": "11.1.2.20", "gateway": "11.1.2.30"}]],
                     "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.1.2.1", "mtu": 1400, "table": 100}]}
        }))
        .unwrap();
        assert_eq!(
            sets(&config),
            [
                "10.1.2.9-10.1.2.20,10.1.4.1-10.1.4.254",
                "11.1.2.9-11.1.2.20"
            ]
        );
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.resolv_conf, Some(PathBuf::from("/etc/r.conf")));
        assert_eq!(config.routes.len(), 2);
        assert_eq!(config.routes[1].mtu, Some(1400));
        assert_eq!(config.routes[1].table, Some(100));
    }

    #[test]
    fn runtime_ip_ranges_come_first_then_legacy_then_ranges() {
        let config = load(json!({
            "cniVersion": "0.3.1", "name": "mynet",
            "runtimeConfig": {"ipRanges": [[{"subnet": "12.1.3.0/24"}], [{"subnet": "2001:db8:1::/64"}]]},
            "ipam": {"type": "host-local", "subnet": "10.1.2.0/24",
                     "ranges": [[{"subnet": "11.1.2.0/24"}]]}
        }))
        .unwrap();
        assert_eq!(
            sets(&config),
            [
                "12.1.3.1-12.1.3.254",
                "2001:db8:1::1-2001:db8:1:0:ffff:ffff:ffff:ffff",
                "10.1.2.1-10.1.2.254",
                "11.1.2.1-11.1.2.254"
            ]
        );
    }

    #[test]
    fn cni_args_ip_with_and_without_prefix() {
        let base = json!({"cniVersion": "0.3.1", "name": "mynet",
                          "ipam": {"type": "host-local", "subnet": "10.1.2.0/24"}});
        for arg in [
            "IP=10.1.2.80",
            "IP=10.1.2.80/24",
            "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.1.2.80",
        ] {
            let config = load_with(base.clone(), arg).unwrap();
            assert_eq!(config.requested_ips, ips(&["10.1.2.80"]), "{arg}");
        }
    }

    #[test]
    fn args_cni_ips_with_and_without_prefix() {
        let config = load(json!({
            "cniVersion": "0.3.1", "name": "mynet",
            "args": {"cni": {"ips": ["10.1.2.11", "11.1.2.11/24", "2001:db8:1::11"]}},
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "11.1.2.0/24"}], [{"subnet": "2001:db8:1::/64"}]]}
        }))
        .unwrap();
        assert_eq!(
            config.requested_ips,
            ips(&["10.1.2.11", "11.1.2.11", "2001:db8:1::11"])
        );
    }

    #[test]
    fn runtime_config_ips_are_requested() {
        let config = load(json!({
            "cniVersion": "0.3.1", "name": "mynet",
            "runtimeConfig": {"ips": ["10.1.2.11/24", "2001:db8:1::11/64"]},
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8:1::/64"}]]}
        }))
        .unwrap();
        assert_eq!(config.requested_ips, ips(&["10.1.2.11", "2001:db8:1::11"]));
    }

    /// CONVENTIONS.md: a plugin that reads `args` ignores the same data in `CNI_ARGS`.
    #[test]
    fn cni_args_ip_is_ignored_when_args_cni_ips_is_present() {
        let config = load_with(
            json!({"cniVersion": "1.0.0", "name": "mynet",
                   "args": {"cni": {"ips": ["10.1.2.11"]}},
                   "ipam": {"type": "host-local", "subnet": "10.1.2.0/24"}}),
            "IP=10.1.2.80",
        )
        .unwrap();
        assert_eq!(config.requested_ips, ips(&["10.1.2.11"]));
    }

    #[test]
    fn unknown_cni_args_are_refused_unless_ignore_unknown() {
        let base = json!({"cniVersion": "1.0.0", "name": "mynet",
                          "ipam": {"type": "host-local", "subnet": "10.1.2.0/24"}});
        assert!(matches!(
            load_with(base.clone(), "K8S_POD_NAME=x"),
            Err(Error::Rejected(_))
        ));
        assert!(load_with(base, "IgnoreUnknown=true;K8S_POD_NAME=x").is_ok());
    }

    #[test]
    fn bad_requested_ips_name_their_source() {
        let err = load(json!({"cniVersion": "1.0.0", "name": "n",
                              "runtimeConfig": {"ips": ["10.1.2.3", "nope"]},
                              "ipam": {"type": "host-local", "subnet": "10.1.2.0/24"}}))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "runtimeConfig.ips[1]: cannot understand ip: \"nope\""
        );
        let err = load_with(
            json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "host-local", "subnet": "10.1.2.0/24"}}),
            "IP=10.1.2.3/x",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("CNI_ARGS IP: "), "{err}");
    }

    #[test]
    fn missing_ipam_and_missing_ranges() {
        assert_eq!(
            reason(json!({"cniVersion": "1.0.0", "name": "n"})),
            "IPAM config missing 'ipam' key"
        );
        assert_eq!(
            reason(json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "host-local"}})),
            "no IP ranges specified"
        );
    }

    #[test]
    fn faults_name_the_field_path() {
        let err = reason(
            json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "host-local",
            "ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.3.0/24"}, {"subnet": "10.1.4.0/24", "gateway": "2001:db8::1"}]]}}),
        );
        assert_eq!(
            err,
            "invalid range set 1: ipam.ranges[1][1].gateway: IP 2001:db8::1 is not the same protocol as subnet 10.1.4.0/24"
        );
        let err = reason(json!({"cniVersion": "1.0.0", "name": "n",
            "runtimeConfig": {"ipRanges": [[{"subnet": "10.1.2.0/31"}]]},
            "ipam": {"type": "host-local", "subnet": "10.1.3.0/24"}}));
        assert_eq!(
            err,
            "invalid range set 0: runtimeConfig.ipRanges[0][0].subnet: Network 10.1.2.0/31 too small to allocate from"
        );
        let err = reason(json!({"cniVersion": "1.0.0", "name": "n",
            "ipam": {"type": "host-local", "subnet": "10.1.3.0/24", "rangeStart": "10.1.4.1"}}));
        assert_eq!(
            err,
            "invalid range set 0: ipam.rangeStart: 10.1.4.1 not in network 10.1.3.0/24"
        );
        let err = reason(json!({"cniVersion": "1.0.0", "name": "n",
            "ipam": {"type": "host-local", "ranges": [[]]}}));
        assert_eq!(err, "invalid range set 0: ipam.ranges[0]: empty range set");
        let err = reason(json!({"cniVersion": "1.0.0", "name": "n",
            "ipam": {"type": "host-local", "subnet": "10.1.3.0/24", "routes": [{"dst": "10.0.0.0"}]}}));
        assert!(
            err.starts_with("invalid network config: ipam.routes[0].dst: "),
            "{err}"
        );
        let err = reason(
            json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "host-local", "ranges": "x"}}),
        );
        assert!(
            err.starts_with("invalid network config: ipam.ranges: "),
            "{err}"
        );
    }

    /// The reference requires objects: a range or route written as an array is code 2
    /// naming its key, never read positionally.
    #[test]
    fn arrays_in_place_of_objects_are_unsupported_fields() {
        let cases = [
            (
                json!({"ranges": [[["10.79.0.0/24", "10.79.0.50"]]]}),
                "ipam.ranges[0][0]",
            ),
            (
                json!({"subnet": "10.1.3.0/24", "routes": [["0.0.0.0/0", "10.1.3.1"]]}),
                "ipam.routes[0]",
            ),
        ];
        for (mut ipam, key) in cases {
            ipam["type"] = json!("host-local");
            let err = load(json!({"cniVersion": "1.0.0", "name": "n", "ipam": ipam})).unwrap_err();
            let err = cni::Error::from(err);
            assert_eq!(err.code(), 2, "{err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("unsupported field {key:?} with value \"[")),
                "{err}"
            );
        }
    }

    #[test]
    fn overlap_within_and_between_range_sets() {
        let err = reason(
            json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "host-local",
            "ranges": [[{"subnet": "10.1.2.0/24"}, {"subnet": "10.1.2.0/25"}]]}}),
        );
        assert_eq!(
            err,
            "invalid range set 0: ipam.ranges[0][1].subnet: subnets 10.1.2.1-10.1.2.254 and 10.1.2.1-10.1.2.126 overlap"
        );
        let err = reason(
            json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "host-local",
            "ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.3.0/24"}], [{"subnet": "10.1.2.0/26"}]]}}),
        );
        assert_eq!(err, "range set 0 overlaps with 2");
    }

    #[test]
    fn mixed_families_in_one_set() {
        let err = reason(
            json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "host-local",
            "ranges": [[{"subnet": "10.1.2.0/24"}, {"subnet": "2001:db8::/64"}]]}}),
        );
        assert_eq!(
            err,
            "invalid range set 0: ipam.ranges[0][1].subnet: mixed address families"
        );
    }

    #[test]
    fn versions_before_0_3_0_allow_one_address_per_family() {
        let two_v4 = |version: &str| {
            json!({"cniVersion": version, "name": "n", "ipam": {"type": "host-local",
                "ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.3.0/24"}]]}})
        };
        assert_eq!(
            reason(two_v4("0.2.0")),
            "CNI version 0.2.0 does not support more than 1 address per family"
        );
        assert!(load(two_v4("0.3.0")).is_ok());
        let v4_and_v6 = json!({"cniVersion": "0.2.0", "name": "n", "ipam": {"type": "host-local",
            "ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8::/64"}]]}});
        assert!(load(v4_and_v6).is_ok());
    }

    #[test]
    fn dns_comes_from_resolv_conf() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 192.0.2.53\nsearch example.com\n").unwrap();
        let config = load(
            json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "host-local",
            "subnet": "10.1.2.0/24", "resolvConf": path}}),
        )
        .unwrap();
        assert_eq!(config.dns().unwrap().nameservers, ["192.0.2.53"]);
        let missing = IpamConfig {
            resolv_conf: Some(dir.path().join("absent")),
            ..config
        };
        assert!(matches!(missing.dns(), Err(Error::ResolvConf { .. })));
    }
}
