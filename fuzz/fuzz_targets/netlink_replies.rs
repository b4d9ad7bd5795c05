//! The hand-written rtnetlink reply decoders (`crates/netlink`): the kernel's bytes are
//! input too.
//!
//! Input: one selector byte (link, address, route, bridge port, extended ACK, conntrack
//! entry, nf_tables rule: byte % 7), then a message body as it follows the netlink header.
//! Property: whatever our decoder reads from the bytes, netlink-packet-route (an
//! independent encoder) writes back as a message that our decoder reads identically. So
//! every rtnetlink field we decode is read where and how the kernel's format puts it. The
//! netfilter replies have no independent encoder: a conntrack entry reads back identically
//! from the delete request that names it, an nf_tables rule from the dump written for it.
#![no_main]

use cni_netlink::fuzzing::{
    conntrack_entry_and_its_delete, decode_address, decode_bridge_port, decode_ext_ack,
    decode_link, decode_route, nft_rule_and_its_dump,
};
use cni_netlink::{
    Address, BridgePortFlags, BridgeVlan, IpvlanMode, Link, MacvlanMode, OperState, Route, Scope,
};
use libfuzzer_sys::fuzz_target;
use netlink_packet_core::{DefaultNla, Emitable};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    AfSpecBridge, BridgeVlanInfo, BridgeVlanInfoFlags, InfoData, InfoIpVlan, InfoKind, InfoMacVlan,
    IpVlanMode, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, LinkProtoInfoBridge, MacVlanMode,
    State,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteMetric, RouteNextHop, RouteProtocol,
    RouteScope,
};
use std::net::IpAddr;

/// Size of `struct ifinfomsg`, before an `AF_BRIDGE` link's attributes.
const IFINFOMSG_LEN: usize = 16;
/// `IFLA_BRPORT_MODE` and `IFLA_BRPORT_ISOLATED` (`linux/if_link.h`).
const IFLA_BRPORT_MODE: u16 = 4;
const IFLA_BRPORT_ISOLATED: u16 = 33;
/// `NLM_F_CAPPED | NLM_F_ACK_TLVS` and `NLMSGERR_ATTR_MSG` (`linux/netlink.h`).
const CAPPED_ACK_TLVS: u16 = 0x300;
const NLMSGERR_ATTR_MSG: u16 = 1;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 7 {
        0 => {
            if let Some(link) = decode_link(body) {
                assert_eq!(decode_link(&emitted(&link_message(&link))), Some(link));
            }
        }
        1 => {
            if let Some(address) = decode_address(body) {
                let again = decode_address(&emitted(&address_message(&address)));
                assert_eq!(again, Some(address));
            }
        }
        2 => {
            if let Some(route) = decode_route(body) {
                assert_eq!(decode_route(&emitted(&route_message(&route))), Some(route));
            }
        }
        3 => {
            let (flags, vlans) = decode_bridge_port(body);
            let bytes = emitted(&bridge_message(flags, &vlans));
            assert_eq!(decode_bridge_port(&bytes[IFINFOMSG_LEN..]), (flags, vlans));
        }
        5 => {
            if let Some((entry, again)) = conntrack_entry_and_its_delete(body) {
                assert_eq!(again, Some(entry));
            }
        }
        6 => {
            if let Some((rule, again)) =
                nft_rule_and_its_dump(body, "cni_plugins_masquerade", "masq_checks")
            {
                if rule.comment.as_ref().is_none_or(|c| c.len() < 255) {
                    assert_eq!(again, Some(rule));
                }
            }
        }
        _ => {
            let flags = u16::from_ne_bytes([selector, body.first().copied().unwrap_or(0)]);
            if let Some(text) = decode_ext_ack(body, flags) {
                let mut payload = vec![0; 16]; // the echoed request header (NLM_F_CAPPED)
                let mut value = text.clone().into_bytes();
                value.push(0);
                payload.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
                payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
                payload.extend_from_slice(&value);
                assert_eq!(decode_ext_ack(&payload, CAPPED_ACK_TLVS), Some(text));
            }
        }
    }
});

fn emitted(msg: &impl Emitable) -> Vec<u8> {
    let mut bytes = vec![0; msg.buffer_len()];
    msg.emit(&mut bytes);
    bytes
}

fn link_message(link: &Link) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = link.index;
    msg.header.flags.set(LinkFlags::Up, link.admin_up);
    msg.header.flags.set(LinkFlags::Promisc, link.promiscuous);
    msg.header.flags.set(LinkFlags::Allmulti, link.allmulti);
    let attrs = &mut msg.attributes;
    attrs.push(LinkAttribute::IfName(link.name.clone()));
    attrs.extend(link.mac.map(|mac| LinkAttribute::Address(mac.to_vec())));
    attrs.push(LinkAttribute::Mtu(link.mtu));
    attrs.extend(link.master.map(LinkAttribute::Controller));
    attrs.push(LinkAttribute::OperState(State::from(oper_state_byte(
        link.oper_state,
    ))));
    attrs.extend(link.link.map(LinkAttribute::Link));
    attrs.extend(link.link_netnsid.map(LinkAttribute::LinkNetNsId));
    attrs.push(LinkAttribute::TxQueueLen(link.txqueuelen));
    if let Some(kind) = &link.kind {
        let mut info = vec![LinkInfo::Kind(InfoKind::from(kind.as_str()))];
        if let Some(mode) = link.macvlan_mode {
            let mode = MacVlanMode::from(macvlan_mode_word(mode));
            info.push(LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                mode,
            )])));
        }
        if let Some(mode) = link.ipvlan_mode {
            let mode = IpVlanMode::from(ipvlan_mode_word(mode));
            info.push(LinkInfo::Data(InfoData::IpVlan(vec![InfoIpVlan::Mode(
                mode,
            )])));
        }
        attrs.push(LinkAttribute::LinkInfo(info));
    }
    msg
}

fn address_message(address: &Address) -> AddressMessage {
    let mut msg = AddressMessage::default();
    let ip = address.network.ip();
    msg.header.family = family(ip);
    msg.header.prefix_len = address.network.prefix();
    msg.header.flags = AddressHeaderFlags::empty();
    msg.header.scope = AddressScope::from(scope_byte(address.scope));
    msg.header.index = address.index;
    let f = address.flags;
    let mut flags = AddressFlags::empty();
    flags.set(AddressFlags::Tentative, f.tentative);
    flags.set(AddressFlags::Dadfailed, f.dadfailed);
    flags.set(AddressFlags::Permanent, f.permanent);
    flags.set(AddressFlags::Nodad, f.nodad);
    flags.set(AddressFlags::Secondary, f.secondary);
    flags.set(AddressFlags::Deprecated, f.deprecated);
    msg.attributes = vec![AddressAttribute::Local(ip), AddressAttribute::Flags(flags)];
    msg
}

fn route_message(route: &Route) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family(route.dst.ip());
    msg.header.destination_prefix_length = route.dst.prefix();
    msg.header.table = u8::try_from(route.table).unwrap_or(0);
    msg.header.protocol = RouteProtocol::from(route.protocol);
    msg.header.scope = RouteScope::from(scope_byte(route.scope));
    let attrs = &mut msg.attributes;
    attrs.push(RouteAttribute::Destination(route_address(route.dst.ip())));
    attrs.push(RouteAttribute::Table(route.table));
    attrs.extend(
        route
            .gateway
            .map(|gw| RouteAttribute::Gateway(route_address(gw))),
    );
    attrs.extend(route.oif.map(RouteAttribute::Oif));
    attrs.extend(route.priority.map(RouteAttribute::Priority));
    attrs.extend(
        route
            .mtu
            .map(|mtu| RouteAttribute::Metrics(vec![RouteMetric::Mtu(mtu)])),
    );
    if !route.nexthops.is_empty() {
        let hops = route.nexthops.iter().map(|hop| {
            let mut next = RouteNextHop::default();
            next.interface_index = hop.oif;
            next.attributes = hop
                .gateway
                .map(|gw| RouteAttribute::Gateway(route_address(gw)))
                .into_iter()
                .collect();
            next
        });
        attrs.push(RouteAttribute::MultiPath(hops.collect()));
    }
    msg
}

fn bridge_message(flags: Option<BridgePortFlags>, vlans: &[BridgeVlan]) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.interface_family = AddressFamily::Bridge;
    if let Some(flags) = flags {
        let port = [
            (IFLA_BRPORT_MODE, flags.hairpin),
            (IFLA_BRPORT_ISOLATED, flags.isolated),
        ]
        .into_iter()
        .filter_map(|(kind, value)| {
            value.map(|on| LinkProtoInfoBridge::Other(DefaultNla::new(kind, vec![u8::from(on)])))
        });
        msg.attributes
            .push(LinkAttribute::ProtoInfoBridge(port.collect()));
    }
    if !vlans.is_empty() {
        let infos = vlans.iter().map(|vlan| {
            let mut flags = BridgeVlanInfoFlags::empty();
            flags.set(BridgeVlanInfoFlags::Pvid, vlan.pvid);
            flags.set(BridgeVlanInfoFlags::Untagged, vlan.untagged);
            AfSpecBridge::VlanInfo(BridgeVlanInfo {
                flags,
                vid: vlan.vid,
            })
        });
        msg.attributes
            .push(LinkAttribute::AfSpecBridge(infos.collect()));
    }
    msg
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(v4) => RouteAddress::Inet(v4),
        IpAddr::V6(v6) => RouteAddress::Inet6(v6),
    }
}

/// `IF_OPER_*` (`linux/if.h`).
fn oper_state_byte(state: OperState) -> u8 {
    match state {
        OperState::Unknown => 0,
        OperState::NotPresent => 1,
        OperState::Down => 2,
        OperState::LowerLayerDown => 3,
        OperState::Testing => 4,
        OperState::Dormant => 5,
        OperState::Up => 6,
        OperState::Other(value) => value,
        other => panic!("new OperState {other:?}: teach the fuzz target its value"),
    }
}

/// `RT_SCOPE_*` (`linux/rtnetlink.h`).
fn scope_byte(scope: Scope) -> u8 {
    match scope {
        Scope::Universe => 0,
        Scope::Site => 200,
        Scope::Link => 253,
        Scope::Host => 254,
        Scope::Nowhere => 255,
        Scope::Other(value) => value,
    }
}

/// `MACVLAN_MODE_*` (`linux/if_link.h`).
fn macvlan_mode_word(mode: MacvlanMode) -> u32 {
    match mode {
        MacvlanMode::Private => 1,
        MacvlanMode::Vepa => 2,
        MacvlanMode::Bridge => 4,
        MacvlanMode::Passthru => 8,
    }
}

/// `IPVLAN_MODE_*` (`linux/if_link.h`).
fn ipvlan_mode_word(mode: IpvlanMode) -> u16 {
    match mode {
        IpvlanMode::L2 => 0,
        IpvlanMode::L3 => 1,
        IpvlanMode::L3s => 2,
    }
}
