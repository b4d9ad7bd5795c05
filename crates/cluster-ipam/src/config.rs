//! The cluster-ipam configuration: host-local's `ipam` keys (read by [`cni_ipam::IpamConfig`])
//! plus `etcd`, `nodeName` and the block sizes.

use crate::error::{Error, Result};
use cni::{CniArgs, NetConf};
use cni_ipam::IpamConfig;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// Where keys live when `ipam.etcd.prefix` is not set.
pub const DEFAULT_PREFIX: &str = "/cni/cluster-ipam";
/// Default block prefix length for IPv4: 64 addresses.
pub const DEFAULT_BLOCK_V4: u8 = 26;
/// Default block prefix length for IPv6: 64 addresses.
pub const DEFAULT_BLOCK_V6: u8 = 122;
const DEFAULT_DIAL_MS: u64 = 2000;
const DEFAULT_REQUEST_MS: u64 = 5000;
/// The smallest prefix lengths accepted: a block holds at most 256 addresses, so reading
/// one block's reservations stays one or two small transactions.
const MIN_BLOCK_V4: u8 = 24;
const MIN_BLOCK_V6: u8 = 120;

/// cluster-ipam's own keys of the `ipam` object; host-local's are read by `cni_ipam`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterSpec {
    #[serde(default)]
    etcd: Option<EtcdSpec>,
    #[serde(default)]
    node_name: Option<String>,
    #[serde(default)]
    block_size_v4: Option<u8>,
    #[serde(default)]
    block_size_v6: Option<u8>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EtcdSpec {
    #[serde(default)]
    endpoints: Vec<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    ca: Option<String>,
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    dial_timeout_ms: Option<u64>,
    #[serde(default)]
    request_timeout_ms: Option<u64>,
}

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdConfig {
    /// `ipam.etcd.endpoints` (at least one).
    pub endpoints: Vec<String>,
    /// `ipam.etcd.prefix` without a trailing `/`.
    pub prefix: String,
    /// `ipam.etcd.ca`: a PEM file of the CA that signed the servers' certificates.
    pub ca: Option<String>,
    /// `ipam.etcd.cert` and `ipam.etcd.key`: the client's certificate and key (PEM).
    pub identity: Option<(String, String)>,
    /// `ipam.etcd.dialTimeoutMs`: how long the first request may spend connecting.
    pub dial_timeout: Duration,
    /// `ipam.etcd.requestTimeoutMs`: the limit of each request.
    pub request_timeout: Duration,
}

impl EtcdConfig {
    /// The endpoints as one string, for messages.
    pub fn endpoint_list(&self) -> String {
        self.endpoints.join(",")
    }
}

/// A validated cluster-ipam configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// Range sets, requested addresses, routes and resolv.conf, exactly as host-local reads them.
    pub ipam: IpamConfig,
    /// The etcd connection.
    pub etcd: EtcdConfig,
    /// `ipam.nodeName`, or the host name: whose blocks to allocate in first.
    pub node: String,
    /// `ipam.blockSizeV4`: prefix length of an IPv4 block.
    pub block_v4: u8,
    /// `ipam.blockSizeV6`: prefix length of an IPv6 block.
    pub block_v6: u8,
}

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::Config {
        field: field.into(),
        reason: reason.into(),
    }
}

impl ClusterConfig {
    /// Validates the configuration: `ipam` is the request's `ipam` value, `net` its
    /// well-known keys, `cni_args` the parsed `CNI_ARGS` (requested addresses).
    pub fn load(ipam: Option<&Value>, net: &NetConf, cni_args: &CniArgs) -> Result<ClusterConfig> {
        let ipam_config = IpamConfig::load(ipam, net, cni_args)?;
        let spec: ClusterSpec = match ipam {
            Some(value) => cni::config::decode(value, "ipam")
                .map_err(|e| Error::Ipam(cni_ipam::Error::Rejected(e)))?,
            None => ClusterSpec::default(),
        };
        let etcd = etcd_config(spec.etcd.unwrap_or_default())?;
        let node = match spec.node_name {
            Some(name) if name.is_empty() => return Err(invalid("ipam.nodeName", "is empty")),
            Some(name) => name,
            None => host_name()?,
        };
        let block_v4 = block_size(
            spec.block_size_v4,
            DEFAULT_BLOCK_V4,
            MIN_BLOCK_V4,
            32,
            "ipam.blockSizeV4",
        )?;
        let block_v6 = block_size(
            spec.block_size_v6,
            DEFAULT_BLOCK_V6,
            MIN_BLOCK_V6,
            128,
            "ipam.blockSizeV6",
        )?;
        Ok(ClusterConfig {
            ipam: ipam_config,
            etcd,
            node,
            block_v4,
            block_v6,
        })
    }
}

fn etcd_config(spec: EtcdSpec) -> Result<EtcdConfig> {
    if spec.endpoints.is_empty() {
        return Err(invalid(
            "ipam.etcd.endpoints",
            "at least one etcd endpoint is required",
        ));
    }
    if let Some(i) = spec.endpoints.iter().position(|e| e.trim().is_empty()) {
        return Err(invalid(&format!("ipam.etcd.endpoints[{i}]"), "is empty"));
    }
    let prefix = spec.prefix.unwrap_or_else(|| DEFAULT_PREFIX.into());
    let prefix = prefix.trim_end_matches('/').to_owned();
    if !prefix.starts_with('/') {
        return Err(invalid(
            "ipam.etcd.prefix",
            format!("{prefix:?} must start with /"),
        ));
    }
    let identity = match (spec.cert, spec.key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            return Err(invalid(
                "ipam.etcd.cert",
                "cert and key must be given together",
            ));
        }
    };
    let millis = |value: Option<u64>, default: u64, field: &str| match value.unwrap_or(default) {
        0 => Err(invalid(field, "must be more than 0")),
        ms => Ok(Duration::from_millis(ms)),
    };
    Ok(EtcdConfig {
        endpoints: spec.endpoints,
        prefix,
        ca: spec.ca,
        identity,
        dial_timeout: millis(
            spec.dial_timeout_ms,
            DEFAULT_DIAL_MS,
            "ipam.etcd.dialTimeoutMs",
        )?,
        request_timeout: millis(
            spec.request_timeout_ms,
            DEFAULT_REQUEST_MS,
            "ipam.etcd.requestTimeoutMs",
        )?,
    })
}

fn block_size(value: Option<u8>, default: u8, min: u8, max: u8, field: &str) -> Result<u8> {
    let size = value.unwrap_or(default);
    if !(min..=max).contains(&size) {
        return Err(invalid(
            field,
            format!("{size} is not a prefix length in {min}..={max}"),
        ));
    }
    Ok(size)
}

/// The kernel's node name (`uname -n`), the default `nodeName`.
fn host_name() -> Result<String> {
    let name = nix::unistd::gethostname().map_err(|errno| {
        invalid(
            "ipam.nodeName",
            format!("not set and no host name: {errno}"),
        )
    })?;
    Ok(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(ipam: Value) -> Result<ClusterConfig> {
        let net: NetConf = serde_json::from_value(json!({
            "cniVersion": "1.0.0", "name": "pool", "type": "x", "ipam": ipam
        }))
        .unwrap();
        ClusterConfig::load(Some(&ipam), &net, &CniArgs::default())
    }

    #[test]
    fn defaults_and_fields() {
        let config = load(json!({"type": "cluster-ipam", "subnet": "10.97.8.0/22",
            "etcd": {"endpoints": ["http://127.0.0.1:2379"], "prefix": "/x/"}, "nodeName": "n1"}))
        .unwrap();
        assert_eq!(config.etcd.prefix, "/x");
        assert_eq!((config.block_v4, config.block_v6), (26, 122));
        assert_eq!(config.etcd.request_timeout, Duration::from_secs(5));
        assert_eq!(config.node, "n1");
        assert_eq!(config.ipam.range_sets.len(), 1);
    }

    #[test]
    fn faults_name_their_field() {
        for (ipam, field) in [
            (json!({"subnet": "10.0.0.0/24"}), "ipam.etcd.endpoints"),
            (
                json!({"subnet": "10.0.0.0/24", "etcd": {"endpoints": []}}),
                "ipam.etcd.endpoints",
            ),
            (
                json!({"subnet": "10.0.0.0/24", "etcd": {"endpoints": ["e"]}, "blockSizeV4": 8}),
                "ipam.blockSizeV4",
            ),
            (
                json!({"subnet": "10.0.0.0/24", "etcd": {"endpoints": ["e"], "key": "k"}}),
                "ipam.etcd.cert",
            ),
            (
                json!({"subnet": "10.0.0.0/24", "etcd": {"endpoints": ["e"], "requestTimeoutMs": 0}}),
                "ipam.etcd.requestTimeoutMs",
            ),
        ] {
            let err = cni::Error::from(load(ipam).unwrap_err());
            assert_eq!(err.code(), 7, "{err:?}");
            assert!(err.msg().contains(field), "{err:?}");
        }
    }
}
