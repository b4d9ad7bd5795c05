//! The network configuration a plugin receives on stdin: the spec's well-known keys
//! (SPEC.md "Network configuration"; docs/spec.md#configuration and #request). Plugin-specific keys live in each
//! plugin's own struct, which embeds [`NetConf`] with `#[serde(flatten)]`.
//!
//! Unknown keys are ignored, as the reference plugins do: runtimes add keys of their own.

use crate::document::Document;
use crate::error::{Error, Result};
use crate::json;
use crate::version::Version;
use serde::de::DeserializeOwned;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// The well-known keys of a plugin's request configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct NetConf {
    /// `cniVersion`: the version the runtime selected; absent means 0.1.0. The dispatcher
    /// validates it (code 1 or 6) before the plugin runs.
    #[serde(default)]
    pub cni_version: Version,
    /// `cniVersions` (1.1.0, conflist level; passed through if present).
    #[serde(default)]
    pub cni_versions: Option<Vec<String>>,
    /// `name`: the network name (`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`).
    #[serde(default)]
    pub name: String,
    /// `type`: the plugin's binary name.
    #[serde(default, rename = "type")]
    pub plugin_type: String,
    /// `ipam`: the IPAM section; `type` empty or missing = no IPAM (L2 mode).
    #[serde(default)]
    pub ipam: Option<IpamSection>,
    /// `dns`.
    #[serde(default)]
    pub dns: Option<crate::result::Dns>,
    /// `ipMasq`.
    #[serde(default)]
    pub ip_masq: bool,
    /// `runtimeConfig`: capability arguments (`mac`, `ips`, `ipRanges`, `portMappings`...).
    /// The reference also accepts `RuntimeConfig` (Go decodes keys case-insensitively).
    #[serde(default, alias = "RuntimeConfig")]
    pub runtime_config: Option<BTreeMap<String, Value>>,
    /// `capabilities` (libcni does not strip it).
    #[serde(default)]
    pub capabilities: Option<BTreeMap<String, bool>>,
    /// `args` (e.g. `args.cni.ips`, `args.cni.mac`).
    #[serde(default)]
    pub args: Option<Args>,
    /// `prevResult`, kept as JSON until a plugin needs it typed
    /// (see [`crate::result::CniResult::from_prev_result`]).
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// `cni.dev/valid-attachments` (GC, 1.1.0).
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// The `ipam` object: only `type` is shared; the rest belongs to the IPAM plugin.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct IpamSection {
    /// The IPAM plugin's binary name; empty means "no IPAM".
    #[serde(default, rename = "type")]
    pub plugin_type: String,
}

/// The `args` object (CONVENTIONS.md "Args in network config"): `args.cni` is for the
/// plugins; any other key belongs to the runtime and is kept as written.
///
/// `Deserialize` is written by hand: serde's derive for a `flatten` field first copies every
/// other key into a buffer of its own, then builds the `Value`s from that copy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Args {
    /// `args.cni`: an object, as the reference plugins require (`"cni": true` is refused,
    /// not ignored).
    #[serde(default)]
    pub cni: Option<BTreeMap<String, Value>>,
    /// Every other key.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Args, D::Error> {
        deserializer.deserialize_map(ArgsVisitor)
    }
}

/// Reads `args` as serde's derive with `flatten` would, moving each value in.
struct ArgsVisitor;

impl<'de> Visitor<'de> for ArgsVisitor {
    type Value = Args;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct Args")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Args, A::Error> {
        let mut args = Args::default();
        while let Some(key) = map.next_key::<String>()? {
            if key == "cni" {
                args.cni = map.next_value()?;
            } else {
                let value = map.next_value()?;
                args.other.insert(key, value);
            }
        }
        Ok(args)
    }
}

/// One entry of `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
pub struct Attachment {
    /// Container ID.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Interface name.
    pub ifname: String,
}

impl NetConf {
    /// The IPAM plugin type, if IPAM is configured (non-empty `ipam.type`).
    pub fn ipam_type(&self) -> Option<&str> {
        self.ipam
            .as_ref()
            .map(|i| i.plugin_type.as_str())
            .filter(|t| !t.is_empty())
    }

    /// `runtimeConfig.<key>`, if present.
    pub fn runtime_config(&self, key: &str) -> Option<&Value> {
        self.runtime_config.as_ref()?.get(key)
    }

    /// `args.cni.<key>`, if present.
    pub fn cni_arg(&self, key: &str) -> Option<&Value> {
        self.args.as_ref()?.cni.as_ref()?.get(key)
    }

    /// `prevResult` in the request's version, for a chained plugin that needs one: code 7
    /// with `missing` (the plugin's own wording) when there is none.
    pub fn required_prev_result(&self, missing: &str) -> Result<crate::CniResult> {
        let prev = self
            .prev_result
            .as_ref()
            .ok_or_else(|| Error::invalid_config(missing))?;
        crate::CniResult::from_prev_result(prev, self.cni_version)
    }
}

/// Decodes `value`, found at `path` in the request config (`""` for the whole document),
/// into `T`, as every configuration is read: structs and maps only from JSON objects (an
/// array in place of one is code 2 naming its key and value, as is an unknown key in a
/// section a plugin declared strict with `deny_unknown_fields`); any other wrong shape is
/// code 7 naming the field's path and what was expected.
pub fn decode<T: DeserializeOwned>(value: &Value, path: &str) -> Result<T> {
    json::decode(value).map_err(|err| decode_error(err, path))
}

/// [`decode`] of the whole request config, from the document read from stdin.
pub(crate) fn decode_document<T: DeserializeOwned>(doc: &Document<'_>) -> Result<T> {
    json::decode_document(doc).map_err(|err| decode_error(err, ""))
}

/// The CNI error of a decode failure at `path` ([`decode`]).
fn decode_error(err: json::FieldError, path: &str) -> Error {
    let at = match (path, err.path.as_str()) {
        (outer, ".") => outer.to_owned(),
        ("", inner) => inner.to_owned(),
        (outer, inner) if inner.starts_with('[') => format!("{outer}{inner}"),
        (outer, inner) => format!("{outer}.{inner}"),
    };
    match err.unknown_field {
        Some((_, value)) => Error::UnsupportedField { key: at, value },
        None if at.is_empty() => {
            Error::invalid_config(format!("invalid network config: {}", err.message))
        }
        None => Error::invalid_config(format!("invalid network config: {at}: {}", err.message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn args_keeps_the_runtime_keys_beside_cni() {
        let config = json!({"args": {"cni": {"ips": ["10.0.0.9"]}, "k8s": {"pod": "p"}}});
        let net: NetConf = decode(&config, "").unwrap();
        assert_eq!(net.cni_arg("ips"), Some(&json!(["10.0.0.9"])));
        let other = net.args.unwrap().other;
        assert_eq!(other, BTreeMap::from([("k8s".into(), json!({"pod": "p"}))]));
        let err = decode::<NetConf>(&json!({"args": 5}), "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid network config: args: invalid type: integer `5`, expected struct Args"
        );
    }
}
