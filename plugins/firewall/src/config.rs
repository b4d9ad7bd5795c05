//! The firewall plugin's keys (docs/reference.md#firewall), the reference's names, checked
//! before anything is changed. Unknown keys are ignored.

use cni::{Error, Result};
use serde::Deserialize;

/// The zone the reference puts container addresses in when `firewalldZone` is not set.
pub const DEFAULT_ZONE: &str = "trusted";

/// Raw keys as they arrive on stdin (`null` reads as absent).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirewallConfig {
    /// `backend`: `iptables`, `firewalld` or `nftables` (ours); absent or empty: firewalld when it is running,
    /// else iptables.
    #[serde(default)]
    pub backend: Option<String>,
    /// `iptablesAdminChainName`: the admin chain (default `CNI-ADMIN`).
    #[serde(default)]
    pub iptables_admin_chain_name: Option<String>,
    /// `firewalldZone`: the zone for the container's addresses (default `trusted`).
    #[serde(default)]
    pub firewalld_zone: Option<String>,
    /// `ingressPolicy`: `open` (default), `same-bridge` or `isolated`.
    #[serde(default)]
    pub ingress_policy: Option<String>,
}

/// Which tool keeps the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `CNI-FORWARD` and the admin chain, with iptables and ip6tables.
    Iptables {
        /// The admin chain's name.
        admin_chain: String,
    },
    /// Our own `table inet cni_plugins_firewall` (not in the reference).
    Nftables,
    /// The addresses as sources of a firewalld zone.
    Firewalld {
        /// The zone.
        zone: String,
    },
}

/// `ingressPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngressPolicy {
    /// Every inbound connection is accepted (nothing is installed).
    Open,
    /// Only connections from the same bridge are accepted.
    SameBridge,
    /// Not even those (upstream's addition after Debian's 1.1.1).
    Isolated,
}

/// The checked settings of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The backend, resolved (the default probes for firewalld).
    pub backend: Backend,
    /// The ingress policy.
    pub ingress: IngressPolicy,
}

impl Settings {
    /// Checks the keys: code 7 naming the key for a bad value. `firewalld_running` is asked
    /// only when `backend` is absent.
    pub fn from_config(
        config: &FirewallConfig,
        firewalld_running: impl FnOnce() -> bool,
    ) -> Result<Settings> {
        let ingress = match config.ingress_policy.as_deref().unwrap_or("") {
            "" | "open" => IngressPolicy::Open,
            "same-bridge" => IngressPolicy::SameBridge,
            "isolated" => IngressPolicy::Isolated,
            other => {
                return Err(Error::invalid_config(format!(
                    "unknown ingress policy: {other:?} (ingressPolicy is open, same-bridge or isolated)"
                )));
            }
        };
        let iptables = || -> Result<Backend> {
            let admin_chain = non_empty(&config.iptables_admin_chain_name)
                .unwrap_or(cni_firewall::DEFAULT_ADMIN_CHAIN);
            cni_firewall::check_chain_name(admin_chain)
                .map_err(|e| Error::invalid_config(e.to_string()))?;
            Ok(Backend::Iptables {
                admin_chain: admin_chain.to_owned(),
            })
        };
        let firewalld = || Backend::Firewalld {
            zone: non_empty(&config.firewalld_zone)
                .unwrap_or(DEFAULT_ZONE)
                .to_owned(),
        };
        let backend = match non_empty(&config.backend) {
            Some("iptables") => iptables()?,
            Some("firewalld") => firewalld(),
            Some("nftables") => Backend::Nftables,
            Some(other) => {
                return Err(Error::invalid_config(format!(
                    "unknown firewall backend {other:?} (backend is iptables, nftables or firewalld)"
                )));
            }
            None if firewalld_running() => firewalld(),
            None => iptables()?,
        };
        Ok(Settings { backend, ingress })
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> FirewallConfig {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults_are_the_references() {
        let s = Settings::from_config(&config(serde_json::json!({})), || false).unwrap();
        assert_eq!(
            s,
            Settings {
                backend: Backend::Iptables {
                    admin_chain: "CNI-ADMIN".into()
                },
                ingress: IngressPolicy::Open,
            }
        );
        let s =
            Settings::from_config(&config(serde_json::json!({"backend": ""})), || true).unwrap();
        assert_eq!(
            s.backend,
            Backend::Firewalld {
                zone: "trusted".into()
            }
        );
    }

    #[test]
    fn bad_values_are_code_7_naming_the_key() {
        for (json, word) in [
            (serde_json::json!({"backend": "ebtables"}), "backend"),
            (
                serde_json::json!({"ingressPolicy": "closed"}),
                "ingressPolicy",
            ),
            (
                serde_json::json!({"backend": "iptables", "iptablesAdminChainName": "a b"}),
                "iptablesAdminChainName",
            ),
        ] {
            let err = Settings::from_config(&config(json), || false).unwrap_err();
            assert_eq!(err.code(), 7);
            assert!(err.msg().contains(word), "{}", err.msg());
        }
    }
}
