//! Bridge ports: port flags (hairpin, isolated) and the port's VLAN table.
//!
//! These are `AF_BRIDGE` link messages, which the kernel hands to the bridge driver
//! (`rtnl_bridge_setlink` → `br_setlink`, `rtnl_bridge_dellink` → `br_dellink`,
//! `rtnl_bridge_getlink` → `br_getlink`) rather than to the generic link code.

use netlink_packet_core::DefaultNla;
use netlink_packet_route::link::{
    BridgeVlanInfoFlags, LinkAttribute, LinkExtentMask, LinkMessage, LinkProtoInfoBridge,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{LinkBridgeVlan, LinkMessageBuilder, LinkUnspec};

use crate::error::Result;
use crate::handle::Handle;
use crate::link::{IFINFOMSG_LEN, RTM_NEWLINK, ifinfo_index};
use crate::wire;

/// `IFLA_BRPORT_MODE` (`linux/if_link.h`): hairpin mode, a u8.
const IFLA_BRPORT_MODE: u16 = 4;
/// `IFLA_BRPORT_ISOLATED` (kernel ≥ 4.18): port isolation, a u8.
const IFLA_BRPORT_ISOLATED: u16 = 33;

/// Bridge port flags for [`Handle::set_bridge_port`]; `None` leaves a flag as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BridgePortFlags {
    /// Hairpin mode: frames may go back out of the port they came in on (needed for a
    /// container to reach itself through a service IP).
    pub hairpin: Option<bool>,
    /// Isolated ports cannot talk to each other, only to non-isolated ports.
    pub isolated: Option<bool>,
}

/// One VLAN entry of a bridge port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeVlan {
    /// VLAN id, 1–4094.
    pub vid: u16,
    /// Untagged ingress frames are put in this VLAN (PVID).
    pub pvid: bool,
    /// Frames leave the port untagged.
    pub untagged: bool,
}

fn port_object(index: u32) -> String {
    format!("bridge port index {index}")
}

/// The `RTM_SETLINK` that `bridge link set dev X hairpin on isolated on` and Go's
/// `netlink.LinkSetHairpin` send: `ifi_family = AF_BRIDGE` and one nested
/// `IFLA_PROTINFO` holding `IFLA_BRPORT_*` u8 attributes.
pub(crate) fn port_flags_message(index: u32, flags: &BridgePortFlags) -> LinkMessage {
    let attrs: Vec<LinkProtoInfoBridge> = [
        (IFLA_BRPORT_MODE, flags.hairpin),
        (IFLA_BRPORT_ISOLATED, flags.isolated),
    ]
    .into_iter()
    .filter_map(|(kind, value)| {
        value.map(|on| LinkProtoInfoBridge::Other(DefaultNla::new(kind, vec![u8::from(on)])))
    })
    .collect();
    LinkUnspec::new_with_index(index)
        .interface_family(AddressFamily::Bridge)
        .append_extra_attribute(LinkAttribute::ProtoInfoBridge(attrs))
        .build()
}

/// The message `bridge vlan add|del dev X vid V [pvid] [untagged]` sends (iproute2
/// `bridge/vlan.c: vlan_modify`): `ifi_family = AF_BRIDGE`, `ifi_index = X` and
/// `IFLA_AF_SPEC { IFLA_BRIDGE_VLAN_INFO { flags, vid } }`, as `RTM_SETLINK` to add and
/// `RTM_DELLINK` to delete. No `IFLA_BRIDGE_FLAGS`: without it the kernel acts on the
/// port's entry (`BRIDGE_FLAGS_MASTER`), as iproute2 does unless `self` is given.
pub(crate) fn vlan_message(index: u32, vid: u16, pvid: bool, untagged: bool) -> LinkMessage {
    let mut flags = BridgeVlanInfoFlags::empty();
    flags.set(BridgeVlanInfoFlags::Pvid, pvid);
    flags.set(BridgeVlanInfoFlags::Untagged, untagged);
    LinkBridgeVlan::new(index).vlan(vid, flags).build()
}

// What an `AF_BRIDGE` link dump carries (`linux/if_link.h`, `linux/if_bridge.h`).
const IFLA_PROTINFO: u16 = 12;
const IFLA_AF_SPEC: u16 = 26;
const IFLA_BRIDGE_VLAN_INFO: u16 = 2;
/// `struct bridge_vlan_info { __u16 flags; __u16 vid; }`.
const BRIDGE_VLAN_INFO_PVID: u16 = 0x2;
const BRIDGE_VLAN_INFO_UNTAGGED: u16 = 0x4;

/// The attribute of type `kind` among `attributes`.
fn find_attr(attributes: &[u8], kind: u16) -> Option<&[u8]> {
    wire::attrs(attributes).find_map(|(k, value)| (k == kind).then_some(value))
}

/// A port's flags from its `AF_BRIDGE` attributes; `None` when it is not a port (only
/// ports carry `IFLA_PROTINFO` in that view).
pub(crate) fn decode_port_flags(attributes: &[u8]) -> Option<BridgePortFlags> {
    let port = find_attr(attributes, IFLA_PROTINFO)?;
    let flag = |kind| {
        find_attr(port, kind)
            .and_then(wire::u8_value)
            .map(|v| v != 0)
    };
    Some(BridgePortFlags {
        hairpin: flag(IFLA_BRPORT_MODE),
        isolated: flag(IFLA_BRPORT_ISOLATED),
    })
}

/// A port's VLAN entries from its `AF_BRIDGE` attributes (`IFLA_AF_SPEC`).
pub(crate) fn decode_vlans(attributes: &[u8]) -> Vec<BridgeVlan> {
    let Some(spec) = find_attr(attributes, IFLA_AF_SPEC) else {
        return Vec::new();
    };
    wire::attrs(spec)
        .filter(|&(kind, _)| kind == IFLA_BRIDGE_VLAN_INFO)
        .filter_map(|(_, info)| {
            let flags = wire::u16_value(info)?;
            Some(BridgeVlan {
                vid: wire::u16_value(info.get(2..)?)?,
                pvid: flags & BRIDGE_VLAN_INFO_PVID != 0,
                untagged: flags & BRIDGE_VLAN_INFO_UNTAGGED != 0,
            })
        })
        .collect()
}

impl Handle {
    /// Sets bridge port flags on an enslaved link.
    pub fn set_bridge_port(&self, index: u32, flags: BridgePortFlags) -> Result<()> {
        let object = port_object(index);
        self.sock.change(
            "set bridge port",
            &object,
            RouteNetlinkMessage::SetLink(port_flags_message(index, &flags)),
            0,
        )?;
        log::info!("set {object}: {flags:?}");
        Ok(())
    }

    /// Reads a bridge port's flags back; `None` when `index` is not a bridge port.
    pub fn bridge_port(&self, index: u32) -> Result<Option<BridgePortFlags>> {
        let Some(attributes) = self.bridge_dump("dump bridge port", index, false)? else {
            return Ok(None);
        };
        Ok(decode_port_flags(&attributes))
    }

    /// Adds VLAN `vid` to a bridge port. Needs a bridge with VLAN filtering, which needs a
    /// kernel with `CONFIG_BRIDGE_VLAN_FILTERING`.
    pub fn add_bridge_vlan(&self, index: u32, vid: u16, pvid: bool, untagged: bool) -> Result<()> {
        let object = port_object(index);
        self.sock.change(
            "add bridge vlan",
            &object,
            RouteNetlinkMessage::SetLink(vlan_message(index, vid, pvid, untagged)),
            0,
        )?;
        log::info!("added vlan {vid} (pvid {pvid}, untagged {untagged}) to {object}");
        Ok(())
    }

    /// Removes VLAN `vid` from a bridge port.
    pub fn del_bridge_vlan(&self, index: u32, vid: u16) -> Result<()> {
        let object = port_object(index);
        self.sock.change(
            "delete bridge vlan",
            &object,
            RouteNetlinkMessage::DelLink(vlan_message(index, vid, false, false)),
            0,
        )?;
        log::info!("deleted vlan {vid} from {object}");
        Ok(())
    }

    /// The VLAN entries of a bridge port (empty when it has none or is not a port).
    pub fn bridge_vlans(&self, index: u32) -> Result<Vec<BridgeVlan>> {
        let Some(attributes) = self.bridge_dump("dump bridge vlans", index, true)? else {
            return Ok(Vec::new());
        };
        Ok(decode_vlans(&attributes))
    }

    /// The attributes of one port's `AF_BRIDGE` view, as `bridge link` / `bridge vlan
    /// show` get it: a dump (a plain `RTM_GETLINK` for one index ignores `AF_BRIDGE` and
    /// answers with the generic view), with `RTEXT_FILTER_BRVLAN` when the VLAN table is
    /// wanted.
    fn bridge_dump(&self, op: &'static str, index: u32, vlans: bool) -> Result<Option<Vec<u8>>> {
        let mut builder =
            LinkMessageBuilder::<LinkUnspec>::default().interface_family(AddressFamily::Bridge);
        if vlans {
            builder = builder
                .append_extra_attribute(LinkAttribute::ExtMask(vec![LinkExtentMask::Brvlan]));
        }
        let replies = self.sock.dump(
            op,
            &port_object(index),
            RouteNetlinkMessage::GetLink(builder.build()),
        )?;
        Ok(replies
            .into_iter()
            .filter(|reply| reply.kind == RTM_NEWLINK)
            .find_map(|reply| {
                let (header, attributes) = wire::split_header::<IFINFOMSG_LEN>(&reply.body)?;
                (ifinfo_index(header) == index).then(|| attributes.to_vec())
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::encode;

    const RTM_DELLINK: u16 = 17;
    const RTM_SETLINK: u16 = 19;
    const AF_BRIDGE: u8 = 7;
    const NLA_TYPE_MASK: u16 = 0x3fff;

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_ne_bytes([bytes[at], bytes[at + 1]])
    }

    /// Splits a serialised request into (type, ifi_family, ifi_index, attributes bytes).
    fn split(bytes: &[u8]) -> (u16, u8, i32, &[u8]) {
        let len = u32::from_ne_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len());
        let ifinfo = &bytes[16..32];
        let index = i32::from_ne_bytes(ifinfo[4..8].try_into().unwrap());
        (u16_at(bytes, 4), ifinfo[0], index, &bytes[32..])
    }

    /// One attribute: (type without flags, payload).
    fn only_attr(bytes: &[u8]) -> (u16, &[u8]) {
        let len = usize::from(u16_at(bytes, 0));
        assert_eq!((len + 3) & !3, bytes.len(), "exactly one attribute");
        (u16_at(bytes, 2) & NLA_TYPE_MASK, &bytes[4..len])
    }

    #[test]
    fn vlan_add_matches_iproute2() {
        // bridge vlan add dev <7> vid 100 pvid untagged
        let bytes = encode(
            RouteNetlinkMessage::SetLink(vlan_message(7, 100, true, true)),
            0,
            1,
        );
        let (kind, family, index, attrs) = split(&bytes);
        assert_eq!((kind, family, index), (RTM_SETLINK, AF_BRIDGE, 7));
        let (kind, spec) = only_attr(attrs);
        assert_eq!(kind, IFLA_AF_SPEC);
        let (kind, info) = only_attr(spec);
        assert_eq!(kind, IFLA_BRIDGE_VLAN_INFO);
        // struct bridge_vlan_info { __u16 flags; __u16 vid; }: PVID 0x2 | UNTAGGED 0x4.
        assert_eq!(info, [6u16.to_ne_bytes(), 100u16.to_ne_bytes()].concat());
    }

    #[test]
    fn vlan_del_is_dellink_with_plain_flags() {
        let bytes = encode(
            RouteNetlinkMessage::DelLink(vlan_message(3, 4094, false, false)),
            0,
            1,
        );
        let (kind, family, index, attrs) = split(&bytes);
        assert_eq!((kind, family, index), (RTM_DELLINK, AF_BRIDGE, 3));
        let (_, spec) = only_attr(attrs);
        let (_, info) = only_attr(spec);
        assert_eq!(info, [0u16.to_ne_bytes(), 4094u16.to_ne_bytes()].concat());
    }

    #[test]
    fn port_flags_match_go_netlink() {
        let flags = BridgePortFlags {
            hairpin: Some(true),
            isolated: None,
        };
        let bytes = encode(
            RouteNetlinkMessage::SetLink(port_flags_message(5, &flags)),
            0,
            1,
        );
        let (kind, family, index, attrs) = split(&bytes);
        assert_eq!((kind, family, index), (RTM_SETLINK, AF_BRIDGE, 5));
        let (kind, nested) = only_attr(attrs);
        assert_eq!(kind, IFLA_PROTINFO);
        assert_ne!(
            u16_at(attrs, 2) & 0x8000,
            0,
            "IFLA_PROTINFO carries NLA_F_NESTED"
        );
        let (kind, value) = only_attr(nested);
        assert_eq!((kind, value), (IFLA_BRPORT_MODE, &[1u8][..]));
    }

    /// The attributes part of an emitted message (after the 16-byte ifinfomsg).
    fn attributes_of(msg: &LinkMessage) -> Vec<u8> {
        crate::link::tests::emitted(msg)[IFINFOMSG_LEN..].to_vec()
    }

    #[test]
    fn decodes_port_flags_and_vlans() {
        let flags = BridgePortFlags {
            hairpin: Some(true),
            isolated: Some(false),
        };
        let attributes = attributes_of(&port_flags_message(5, &flags));
        assert_eq!(decode_port_flags(&attributes), Some(flags));
        assert_eq!(decode_vlans(&attributes), vec![]);

        let attributes = attributes_of(&vlan_message(5, 100, true, false));
        assert_eq!(decode_port_flags(&attributes), None, "not a port view");
        assert_eq!(
            decode_vlans(&attributes),
            vec![BridgeVlan {
                vid: 100,
                pvid: true,
                untagged: false
            }]
        );
    }
}
