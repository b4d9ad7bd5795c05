//! Spec versions and version negotiation (SPEC.md "Version"; Go `pkg/version`).

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// A CNI spec version this suite knows. Ordered oldest to newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Version {
    /// 0.1.0 (a config without `cniVersion` means this).
    V0_1_0,
    /// 0.2.0: adds VERSION.
    V0_2_0,
    /// 0.3.0: interfaces/ips/routes results, chaining.
    V0_3_0,
    /// 0.3.1: typo fix.
    V0_3_1,
    /// 0.4.0: CHECK, prevResult on DEL.
    V0_4_0,
    /// 1.0.0: per-IP `version` dropped.
    V1_0_0,
    /// 1.1.0: STATUS, GC, `cniVersions`, new interface/route fields.
    V1_1_0,
}

impl Version {
    /// Every version, oldest first: what VERSION answers.
    pub const ALL: [Version; 7] = [
        Version::V0_1_0,
        Version::V0_2_0,
        Version::V0_3_0,
        Version::V0_3_1,
        Version::V0_4_0,
        Version::V1_0_0,
        Version::V1_1_0,
    ];

    /// The newest version this suite implements.
    pub const CURRENT: Version = Version::V1_1_0;

    /// The dotted string form.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_1_0 => "0.1.0",
            Version::V0_2_0 => "0.2.0",
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// Whether results of this version use the 0.1.0/0.2.0 `ip4`/`ip6` shape.
    pub fn is_legacy_result(self) -> bool {
        self <= Version::V0_2_0
    }

    /// Whether CHECK is allowed (>= 0.4.0).
    pub fn allows_check(self) -> bool {
        self >= Version::V0_4_0
    }

    /// Whether STATUS and GC are allowed (>= 1.1.0).
    pub fn allows_status_and_gc(self) -> bool {
        self >= Version::V1_1_0
    }
}

impl Default for Version {
    /// A configuration without `cniVersion` is 0.1.0 (spec).
    fn default() -> Self {
        Version::V0_1_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Version {
    type Err = Error;

    /// Exact string match, as the Go skel does: `1.0` or `v1.0.0` are not accepted.
    /// A syntactically valid but unknown version is code 1; garbage is code 6.
    fn from_str(s: &str) -> Result<Self> {
        if let Some(v) = Version::ALL.iter().find(|v| v.as_str() == s) {
            return Ok(*v);
        }
        let is_semver = s.split('.').count() == 3
            && s.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if is_semver {
            Err(Error::IncompatibleVersion {
                msg: "incompatible CNI versions".into(),
                details: Some(format!(
                    "config is {s:?}, plugin supports [{}]",
                    Version::ALL.map(|v| format!("{:?}", v.as_str())).join(" ")
                )),
            })
        } else {
            Err(Error::Decode {
                msg: format!("invalid cniVersion {s:?}"),
                details: Some("expected a version such as \"1.1.0\"".into()),
            })
        }
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: Error| serde::de::Error::custom(e.msg()))
    }
}
