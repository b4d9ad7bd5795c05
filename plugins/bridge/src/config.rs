//! The bridge plugin's own configuration keys (docs/reference.md#bridge), parsed and validated
//! before anything touches the kernel. Unknown keys are ignored, as the reference does.

use cni::{Error, MacAddr, Request, Result};
use serde::Deserialize;

/// Raw keys as they arrive on stdin (Go field names and defaults).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeConfig {
    /// `bridge`: bridge name (default `cni0`).
    #[serde(default)]
    pub bridge: Option<String>,
    /// `isGateway`: put the gateway address on the bridge and enable forwarding.
    #[serde(default)]
    pub is_gateway: bool,
    /// `isDefaultGateway`: implies `isGateway`; add a default route via the gateway.
    #[serde(default)]
    pub is_default_gateway: bool,
    /// `forceAddress`: replace a conflicting bridge address instead of failing.
    #[serde(default)]
    pub force_address: bool,
    /// `ipMasqBackend`: `iptables` or `nftables`; absent = what is usable.
    #[serde(default)]
    pub ip_masq_backend: Option<String>,
    /// `mtu`: for a newly created bridge and the veth pair (0 = kernel default).
    #[serde(default)]
    pub mtu: u32,
    /// `hairpinMode` on the host veth port.
    #[serde(default)]
    pub hairpin_mode: bool,
    /// `promiscMode` on the bridge.
    #[serde(default)]
    pub promisc_mode: bool,
    /// `vlan`: 0..=4094; PVID and untagged on the port.
    #[serde(default)]
    pub vlan: i64,
    /// `vlanTrunk`: tagged VLANs on the port.
    #[serde(default)]
    pub vlan_trunk: Option<Vec<VlanTrunkEntry>>,
    /// `preserveDefaultVlan`: keep the port's pre-existing VLANs (default VID 1).
    #[serde(default)]
    pub preserve_default_vlan: bool,
    /// `macspoofchk`: drop frames whose source MAC is not the container's.
    #[serde(default)]
    pub macspoofchk: bool,
    /// `enabledad`: keep IPv6 DAD on the container interface.
    #[serde(default)]
    pub enabledad: bool,
    /// `disableContainerInterface`: leave the container end down (L2 only).
    #[serde(default)]
    pub disable_container_interface: bool,
    /// `portIsolation`: the bridge port's `isolated` flag.
    #[serde(default)]
    pub port_isolation: bool,
}

/// One `vlanTrunk` entry: `{"id": N}` or `{"minID": A, "maxID": B}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VlanTrunkEntry {
    /// A single VLAN ID.
    #[serde(default)]
    pub id: Option<i64>,
    /// Range start.
    #[serde(default, rename = "minID")]
    pub min_id: Option<i64>,
    /// Range end.
    #[serde(default, rename = "maxID")]
    pub max_id: Option<i64>,
}

/// The validated settings one ADD/DEL/CHECK works from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Bridge name.
    pub bridge: String,
    /// Gateway address(es) on the bridge, forwarding on.
    pub is_gateway: bool,
    /// Default route via the gateway when IPAM gave none.
    pub is_default_gateway: bool,
    /// Replace a conflicting bridge address.
    pub force_address: bool,
    /// Masquerade the container's addresses (only with IPAM).
    pub ip_masq: bool,
    /// Masquerade backend as configured.
    pub ip_masq_backend: Option<String>,
    /// MTU, if set.
    pub mtu: Option<u32>,
    /// Hairpin on the host port.
    pub hairpin: bool,
    /// Promiscuous bridge.
    pub promisc: bool,
    /// Access VLAN (PVID, untagged), if any.
    pub vlan: Option<u16>,
    /// Tagged VLANs, sorted and de-duplicated.
    pub vlan_trunk: Vec<u16>,
    /// Keep pre-existing port VLANs.
    pub preserve_default_vlan: bool,
    /// MAC spoof check.
    pub macspoofchk: bool,
    /// Keep IPv6 DAD.
    pub enabledad: bool,
    /// Leave the container interface down.
    pub disable_container_interface: bool,
    /// Isolated bridge port.
    pub port_isolation: bool,
    /// The IPAM plugin, if any (L3 mode); `None` = L2 mode.
    pub ipam_type: Option<String>,
    /// Container MAC: `runtimeConfig.mac` > `args.cni.mac` > `CNI_ARGS MAC=`.
    pub mac: Option<MacAddr>,
    /// The gateway interface `<bridge>.<vlan>` that carries the gateway addresses instead
    /// of the bridge: set in L3 mode with `isGateway` and an access VLAN (see
    /// docs/reference.md#vlan-gateway), its name already checked to fit the kernel's 15 bytes.
    pub vlan_gateway: Option<String>,
}

impl Settings {
    /// Whether the bridge needs VLAN filtering (any VLAN configured).
    pub fn vlan_filtering(&self) -> bool {
        self.vlan.is_some() || !self.vlan_trunk.is_empty()
    }

    /// Validates a request's configuration (code 7 naming the key on any fault).
    pub fn from_request(req: &Request<BridgeConfig>) -> Result<Settings> {
        let c = &req.config;
        let bridge = c
            .bridge
            .clone()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "cni0".into());
        cni::names::validate_ifname(&bridge).map_err(|e| {
            Error::invalid_config(format!("invalid bridge name {bridge:?}: {}", e.msg()))
        })?;
        if !(0..=4094).contains(&c.vlan) {
            return Err(Error::invalid_config(format!(
                "invalid VLAN ID {} (must be between 0 and 4094)",
                c.vlan
            )));
        }
        if c.hairpin_mode && c.promisc_mode {
            return Err(Error::invalid_config(
                "cannot set hairpin mode and promiscuous mode at the same time",
            ));
        }
        let ipam_type = req.net.ipam_type().map(str::to_owned);
        if ipam_type.is_some() && c.disable_container_interface {
            return Err(Error::invalid_config(
                "cannot use IPAM when DisableContainerInterface flag is set",
            ));
        }
        req.args.args.check_known(&["MAC"])?;
        // UNWRAP-free: 1..=4094 fits u16 (checked above).
        let vlan = u16::try_from(c.vlan).ok().filter(|v| *v != 0);
        let is_gateway = c.is_gateway || c.is_default_gateway;
        let vlan_gateway = match vlan {
            Some(vlan) if is_gateway && ipam_type.is_some() => {
                Some(vlan_gateway_name(&bridge, vlan)?)
            }
            _ => None,
        };
        Ok(Settings {
            bridge,
            is_gateway,
            is_default_gateway: c.is_default_gateway,
            force_address: c.force_address,
            ip_masq: req.net.ip_masq,
            ip_masq_backend: c.ip_masq_backend.clone(),
            mtu: (c.mtu != 0).then_some(c.mtu),
            hairpin: c.hairpin_mode,
            promisc: c.promisc_mode,
            vlan,
            vlan_trunk: collect_vlan_trunk(c.vlan_trunk.as_deref().unwrap_or_default())?,
            preserve_default_vlan: c.preserve_default_vlan,
            macspoofchk: c.macspoofchk,
            enabledad: c.enabledad,
            disable_container_interface: c.disable_container_interface,
            port_isolation: c.port_isolation,
            ipam_type,
            mac: container_mac(req)?,
            vlan_gateway,
        })
    }
}

/// `<bridge>.<vlan>`, the VLAN gateway interface's name. The bridge name is already a valid
/// interface name and the suffix is a dot and digits, so only the length can be wrong: a
/// 12-byte bridge name plus `.4094` does not fit the kernel's 15 bytes (IFNAMSIZ - 1). The
/// reference only finds out when the kernel refuses the veth; we refuse before any change.
fn vlan_gateway_name(bridge: &str, vlan: u16) -> Result<String> {
    let name = format!("{bridge}.{vlan}");
    if name.len() > MAX_IFNAME {
        return Err(Error::invalid_config(format!(
            "VLAN gateway interface name {name:?} (<bridge>.<vlan>) is {} bytes, longer than \
             the kernel's {MAX_IFNAME}: use a shorter bridge name",
            name.len()
        )));
    }
    Ok(name)
}

/// The kernel's longest interface name in bytes (IFNAMSIZ 16, minus the NUL).
const MAX_IFNAME: usize = 15;

/// Merges `vlanTrunk` entries into sorted unique VIDs, with the reference's messages.
fn collect_vlan_trunk(entries: &[VlanTrunkEntry]) -> Result<Vec<u16>> {
    let valid = |v: i64| u16::try_from(v).ok().filter(|v| (1..=4094).contains(v));
    let mut vids = Vec::new();
    for entry in entries {
        match (entry.min_id, entry.max_id) {
            (Some(min), Some(max)) => {
                let min = valid(min)
                    .ok_or_else(|| Error::invalid_config("incorrect trunk minID parameter"))?;
                let max = valid(max)
                    .ok_or_else(|| Error::invalid_config("incorrect trunk maxID parameter"))?;
                if max < min {
                    return Err(Error::invalid_config(
                        "minID is greater than maxID in trunk parameter",
                    ));
                }
                vids.extend(min..=max);
            }
            (None, Some(_)) => {
                return Err(Error::invalid_config(
                    "minID and maxID should be configured simultaneously, minID is missing",
                ));
            }
            (Some(_), None) => {
                return Err(Error::invalid_config(
                    "minID and maxID should be configured simultaneously, maxID is missing",
                ));
            }
            (None, None) => {}
        }
        if let Some(id) = entry.id {
            vids.push(
                valid(id).ok_or_else(|| Error::invalid_config("incorrect trunk id parameter"))?,
            );
        }
    }
    vids.sort_unstable();
    vids.dedup();
    Ok(vids)
}

/// The container MAC by precedence: `runtimeConfig.mac` > `args.cni.mac` > `CNI_ARGS MAC=`.
fn container_mac(req: &Request<BridgeConfig>) -> Result<Option<MacAddr>> {
    let from_json = |source: &str, v: &serde_json::Value| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::invalid_config(format!("{source} must be a MAC address string")))
    };
    let mac = if let Some(v) = req.net.runtime_config("mac") {
        Some(from_json("runtimeConfig.mac", v)?)
    } else if let Some(v) = req.net.cni_arg("mac") {
        Some(from_json("args.cni.mac", v)?)
    } else {
        req.args.args.get("MAC").map(str::to_owned)
    };
    mac.map(|m| m.parse()).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(json: &str) -> Result<Vec<u16>> {
        let entries: Vec<VlanTrunkEntry> = serde_json::from_str(json).unwrap();
        collect_vlan_trunk(&entries)
    }

    #[test]
    fn vlan_gateway_name_fits_the_kernel_or_is_invalid_config() {
        assert_eq!(vlan_gateway_name("cni0", 100).unwrap(), "cni0.100");
        assert_eq!(
            vlan_gateway_name("abcdefghij", 4094).unwrap(),
            "abcdefghij.4094"
        );
        let err = vlan_gateway_name("abcdefghijk", 4094).unwrap_err();
        assert_eq!(err.code(), 7);
        assert!(err.msg().contains("\"abcdefghijk.4094\""), "{}", err.msg());
        assert!(err.msg().contains("16 bytes"), "{}", err.msg());
    }

    #[test]
    fn vlan_trunk_entries_merge_sorted_and_unique() {
        assert_eq!(
            trunk(r#"[{"id":300},{"minID":101,"maxID":103},{"id":102}]"#).unwrap(),
            vec![101, 102, 103, 300]
        );
    }

    #[test]
    fn vlan_trunk_errors_use_the_reference_messages() {
        let cases = [
            (
                r#"[{"maxID":5}]"#,
                "minID and maxID should be configured simultaneously, minID is missing",
            ),
            (
                r#"[{"minID":5}]"#,
                "minID and maxID should be configured simultaneously, maxID is missing",
            ),
            (
                r#"[{"minID":0,"maxID":5}]"#,
                "incorrect trunk minID parameter",
            ),
            (
                r#"[{"minID":1,"maxID":4095}]"#,
                "incorrect trunk maxID parameter",
            ),
            (
                r#"[{"minID":9,"maxID":5}]"#,
                "minID is greater than maxID in trunk parameter",
            ),
            (r#"[{"id":-1}]"#, "incorrect trunk id parameter"),
            (r#"[{"id":5000}]"#, "incorrect trunk id parameter"),
        ];
        for (json, msg) in cases {
            let err = trunk(json).unwrap_err();
            assert_eq!((err.code(), err.msg()), (7, msg.to_owned()), "{json}");
        }
    }
}
