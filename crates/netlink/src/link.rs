//! Links: what a link looks like ([`Link`]), creating veth, bridge, macvlan and ipvlan
//! links, and changing a link's state, name, MTU, MAC, master and netns.
//!
//! No policy here: names, MTUs and modes come from the caller.

use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, InfoVeth, IpVlanMode, LinkMessage, MacVlanMode,
};
use rtnetlink::{LinkBridge, LinkIpVlan, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVeth};

use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::netns::Netns;
use crate::socket::Reply;
use crate::wire;

/// A network interface as the kernel reports it (`RTM_NEWLINK`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Link {
    /// Interface index (`ifindex`), unique within its netns.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Link kind from `IFLA_INFO_KIND` (`"veth"`, `"bridge"`, `"macvlan"`, `"ipvlan"`…);
    /// `None` for devices without one (`lo`, physical NICs).
    pub kind: Option<String>,
    /// Hardware address, when it is a 6-byte Ethernet one.
    pub mac: Option<[u8; 6]>,
    /// MTU.
    pub mtu: u32,
    /// Index of the master (bridge) this link is enslaved to.
    pub master: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub admin_up: bool,
    /// RFC 2863 operational state (`IFLA_OPERSTATE`).
    pub oper_state: OperState,
    /// `IFLA_LINK`: the veth peer's index or the macvlan/ipvlan parent's index. When
    /// [`Link::link_netnsid`] is set, the index is in that other netns.
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the netns id (as seen from this netns) holding [`Link::link`].
    pub link_netnsid: Option<i32>,
    /// Promiscuous mode set by the user (`IFF_PROMISC` as `ip link set promisc` sets it).
    pub promiscuous: bool,
    /// All-multicast mode set by the user (`IFF_ALLMULTI`, `ip link set allmulticast`).
    pub allmulti: bool,
    /// The macvlan mode, when [`Link::kind`] is `macvlan`.
    pub macvlan_mode: Option<MacvlanMode>,
    /// The ipvlan mode, when [`Link::kind`] is `ipvlan`.
    pub ipvlan_mode: Option<IpvlanMode>,
    /// Transmit queue length (`qlen`).
    pub txqueuelen: u32,
}

/// RFC 2863 operational state of a link (`IF_OPER_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OperState {
    /// `IF_OPER_UNKNOWN`, e.g. `lo` and bridges without ports.
    Unknown,
    /// `IF_OPER_NOTPRESENT`.
    NotPresent,
    /// `IF_OPER_DOWN`.
    Down,
    /// `IF_OPER_LOWERLAYERDOWN`, e.g. a veth whose peer is down.
    LowerLayerDown,
    /// `IF_OPER_TESTING`.
    Testing,
    /// `IF_OPER_DORMANT`.
    Dormant,
    /// `IF_OPER_UP`.
    Up,
    /// A value this crate does not know.
    Other(u8),
}

/// macvlan mode (`IFLA_MACVLAN_MODE`); the names are the `ip link` / CNI config words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacvlanMode {
    /// `bridge`: sub-interfaces of one parent talk to each other directly.
    Bridge,
    /// `private`: no traffic between sub-interfaces.
    Private,
    /// `vepa`: traffic between sub-interfaces goes through the external switch.
    Vepa,
    /// `passthru`: one sub-interface takes over the parent.
    Passthru,
}

/// ipvlan mode (`IFLA_IPVLAN_MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpvlanMode {
    /// `l2`.
    L2,
    /// `l3`.
    L3,
    /// `l3s`: L3 with netfilter (iptables) on the slave.
    L3s,
}

impl MacvlanMode {
    /// The mode's word in `ip link` and in CNI configs.
    pub fn as_str(self) -> &'static str {
        match self {
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Private => "private",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Passthru => "passthru",
        }
    }
}

impl IpvlanMode {
    /// The mode's word in `ip link` and in CNI configs.
    pub fn as_str(self) -> &'static str {
        match self {
            IpvlanMode::L2 => "l2",
            IpvlanMode::L3 => "l3",
            IpvlanMode::L3s => "l3s",
        }
    }
}

/// A word that names no mode of its link kind (what `FromStr` of a mode refuses).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} mode: {word:?}")]
pub struct UnknownMode {
    /// The link kind: `macvlan` or `ipvlan`.
    pub kind: &'static str,
    /// The word as given.
    pub word: String,
}

/// `FromStr` and `Display` of a mode enum through its `as_str` words.
macro_rules! mode_words {
    ($mode:ident, $kind:literal, [$($variant:ident),+]) => {
        impl std::str::FromStr for $mode {
            type Err = UnknownMode;

            fn from_str(word: &str) -> std::result::Result<Self, UnknownMode> {
                [$($mode::$variant),+]
                    .into_iter()
                    .find(|mode| mode.as_str() == word)
                    .ok_or_else(|| UnknownMode { kind: $kind, word: word.to_owned() })
            }
        }

        impl std::fmt::Display for $mode {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

mode_words!(MacvlanMode, "macvlan", [Bridge, Private, Vepa, Passthru]);
mode_words!(IpvlanMode, "ipvlan", [L2, L3, L3s]);

/// A veth pair to create with [`Handle::create_veth`].
///
/// `name` is created in the **handle's** netns; `peer_name` is created straight into
/// `peer_netns` (via `IFLA_NET_NS_FD` on the peer), or next to `name` when `None`. The
/// bridge plugin calls this on the host handle with `name` = the host end (`vethXXXXXXXX`)
/// and `peer_name` = `CNI_IFNAME` in the container netns, so the container end never
/// appears in the host netns and cannot clash with a host link of the same name.
#[derive(Clone, Copy, Debug, Default)]
pub struct VethSpec<'a> {
    /// This end's name, in the handle's netns.
    pub name: &'a str,
    /// The peer's name, in `peer_netns`.
    pub peer_name: &'a str,
    /// Where the peer goes; `None` keeps it in the handle's netns.
    pub peer_netns: Option<&'a Netns>,
    /// MTU of both ends; `None` keeps the kernel default (1500).
    pub mtu: Option<u32>,
    /// MAC of this end; `None` lets the kernel pick a random one.
    pub mac: Option<[u8; 6]>,
    /// MAC of the peer; `None` lets the kernel pick a random one.
    pub peer_mac: Option<[u8; 6]>,
    /// Enslaves this end to the master with this index in the creating request
    /// (`IFLA_MASTER`, as `ip link add … master X`), which saves an `RTM_SETLINK`.
    pub master: Option<u32>,
    /// Brings this end up in the creating request (the peer stays down), which saves an
    /// `RTM_SETLINK`.
    pub up: bool,
}

/// A bridge to create with [`Handle::create_bridge`].
#[derive(Clone, Copy, Debug, Default)]
pub struct BridgeSpec<'a> {
    /// The bridge's name.
    pub name: &'a str,
    /// MTU; `None` keeps the kernel default.
    pub mtu: Option<u32>,
    /// Turn on VLAN filtering (`IFLA_BR_VLAN_FILTERING`). Sent only when `true`: a kernel
    /// built without `CONFIG_BRIDGE_VLAN_FILTERING` refuses the attribute outright.
    pub vlan_filtering: bool,
}

/// A macvlan to create with [`Handle::create_macvlan`], on a parent in the handle's netns.
#[derive(Clone, Copy, Debug)]
pub struct MacvlanSpec<'a> {
    /// The new link's name (in `netns` when given).
    pub name: &'a str,
    /// Index of the parent link, in the handle's netns.
    pub master_index: u32,
    /// The macvlan mode.
    pub mode: MacvlanMode,
    /// MTU; `None` inherits the parent's.
    pub mtu: Option<u32>,
    /// MAC; `None` lets the kernel pick a random one.
    pub mac: Option<[u8; 6]>,
    /// Create the link straight into this netns (`IFLA_NET_NS_FD`).
    pub netns: Option<&'a Netns>,
    /// Broadcast queue length (`IFLA_MACVLAN_BC_QUEUE_LEN`, kernel ≥ 5.11).
    pub bcqueuelen: Option<u32>,
}

/// An ipvlan to create with [`Handle::create_ipvlan`], on a parent in the handle's netns.
#[derive(Clone, Copy, Debug)]
pub struct IpvlanSpec<'a> {
    /// The new link's name (in `netns` when given).
    pub name: &'a str,
    /// Index of the parent link, in the handle's netns.
    pub master_index: u32,
    /// The ipvlan mode.
    pub mode: IpvlanMode,
    /// MTU; `None` inherits the parent's.
    pub mtu: Option<u32>,
    /// Create the link straight into this netns (`IFLA_NET_NS_FD`).
    pub netns: Option<&'a Netns>,
}

/// Formats a MAC address the way `ip link` and the CNI result do: `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// The extended-ACK text of `rtnl_newlink` when no driver serves the requested kind.
const UNKNOWN_DEVICE_TYPE: &str = "Unknown device type";

fn name_object(name: &str) -> String {
    format!("link \"{name}\"")
}

fn index_object(index: u32) -> String {
    format!("link index {index}")
}

impl From<MacvlanMode> for MacVlanMode {
    fn from(mode: MacvlanMode) -> Self {
        match mode {
            MacvlanMode::Bridge => MacVlanMode::Bridge,
            MacvlanMode::Private => MacVlanMode::Private,
            MacvlanMode::Vepa => MacVlanMode::Vepa,
            MacvlanMode::Passthru => MacVlanMode::Passthrough,
        }
    }
}

impl From<IpvlanMode> for IpVlanMode {
    fn from(mode: IpvlanMode) -> Self {
        match mode {
            IpvlanMode::L2 => IpVlanMode::L2,
            IpvlanMode::L3 => IpVlanMode::L3,
            IpvlanMode::L3s => IpVlanMode::L3S,
        }
    }
}

impl From<u8> for OperState {
    fn from(value: u8) -> Self {
        match value {
            0 => OperState::Unknown,
            1 => OperState::NotPresent,
            2 => OperState::Down,
            3 => OperState::LowerLayerDown,
            4 => OperState::Testing,
            5 => OperState::Dormant,
            6 => OperState::Up,
            other => OperState::Other(other),
        }
    }
}

/// `RTM_NEWLINK`, the kernel's reply to a link get or dump.
pub(crate) const RTM_NEWLINK: u16 = 16;
/// Size of `struct ifinfomsg`.
pub(crate) const IFINFOMSG_LEN: usize = 16;

// Link attributes and flags we read (`linux/if_link.h`, `linux/if.h`).
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_TXQLEN: u16 = 13;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_LINKINFO: u16 = 18;
const IFLA_LINK_NETNSID: u16 = 37;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
/// `IFLA_MACVLAN_MODE` (u32) and `IFLA_IPVLAN_MODE` (u16) are both attribute 1 of their
/// kind's info data.
const IFLA_MODE: u16 = 1;
const IFF_UP: u32 = 0x1;
const IFF_PROMISC: u32 = 0x100;
const IFF_ALLMULTI: u32 = 0x200;

/// The interface index of an `ifinfomsg` (bytes 4..8).
pub(crate) fn ifinfo_index(header: &[u8; IFINFOMSG_LEN]) -> u32 {
    u32::from_ne_bytes([header[4], header[5], header[6], header[7]])
}

impl Link {
    /// Decodes an `RTM_NEWLINK` body; `None` when it is malformed or has no name.
    pub(crate) fn decode(body: &[u8]) -> Option<Link> {
        let (header, attributes) = wire::split_header::<IFINFOMSG_LEN>(body)?;
        let flags = u32::from_ne_bytes([header[8], header[9], header[10], header[11]]);
        let mut link = Link {
            index: ifinfo_index(header),
            name: String::new(),
            kind: None,
            mac: None,
            mtu: 0,
            master: None,
            admin_up: flags & IFF_UP != 0,
            oper_state: OperState::Unknown,
            link: None,
            link_netnsid: None,
            promiscuous: flags & IFF_PROMISC != 0,
            allmulti: flags & IFF_ALLMULTI != 0,
            macvlan_mode: None,
            ipvlan_mode: None,
            txqueuelen: 0,
        };
        let nonzero = |value: &[u8]| wire::u32_value(value).filter(|&v| v != 0);
        for (kind, value) in wire::attrs(attributes) {
            match kind {
                IFLA_IFNAME => link.name = wire::string_value(value).unwrap_or_default(),
                IFLA_ADDRESS => link.mac = value.try_into().ok(),
                IFLA_MTU => link.mtu = wire::u32_value(value).unwrap_or_default(),
                IFLA_MASTER => link.master = nonzero(value),
                IFLA_OPERSTATE => {
                    link.oper_state =
                        wire::u8_value(value).map_or(OperState::Unknown, OperState::from)
                }
                IFLA_LINK => link.link = nonzero(value),
                IFLA_LINK_NETNSID => link.link_netnsid = wire::i32_value(value),
                IFLA_TXQLEN => link.txqueuelen = wire::u32_value(value).unwrap_or_default(),
                IFLA_LINKINFO => link.read_link_info(value),
                _ => {}
            }
        }
        (!link.name.is_empty()).then_some(link)
    }

    /// Reads `IFLA_LINKINFO`: the kind, and the macvlan or ipvlan mode from its data.
    fn read_link_info(&mut self, info: &[u8]) {
        // A repeated IFLA_LINKINFO replaces the earlier one whole, as any repeated attribute
        // does: a mode must never outlive the kind it belongs to.
        self.kind = None;
        self.macvlan_mode = None;
        self.ipvlan_mode = None;
        let mut data = None;
        for (kind, value) in wire::attrs(info) {
            match kind {
                IFLA_INFO_KIND => self.kind = wire::string_value(value),
                IFLA_INFO_DATA => data = Some(value),
                _ => {}
            }
        }
        let Some(mode) = data.and_then(|data| {
            wire::attrs(data).find_map(|(kind, value)| (kind == IFLA_MODE).then_some(value))
        }) else {
            return;
        };
        match self.kind.as_deref() {
            // MACVLAN_MODE_* are bits (`linux/if_link.h`); SOURCE has no config word.
            Some("macvlan") => {
                self.macvlan_mode = match wire::u32_value(mode) {
                    Some(1) => Some(MacvlanMode::Private),
                    Some(2) => Some(MacvlanMode::Vepa),
                    Some(4) => Some(MacvlanMode::Bridge),
                    Some(8) => Some(MacvlanMode::Passthru),
                    _ => None,
                }
            }
            Some("ipvlan") => {
                self.ipvlan_mode = match wire::u16_value(mode) {
                    Some(0) => Some(IpvlanMode::L2),
                    Some(1) => Some(IpvlanMode::L3),
                    Some(2) => Some(IpvlanMode::L3s),
                    _ => None,
                }
            }
            _ => {}
        }
    }
}

/// Adds the attributes every create shares: MTU, MAC and target netns.
fn with_common<T>(
    mut builder: LinkMessageBuilder<T>,
    mtu: Option<u32>,
    mac: Option<[u8; 6]>,
    netns: Option<&Netns>,
) -> LinkMessageBuilder<T> {
    if let Some(mtu) = mtu {
        builder = builder.mtu(mtu);
    }
    if let Some(mac) = mac {
        builder = builder.address(mac.to_vec());
    }
    if let Some(netns) = netns {
        builder = builder.setns_by_fd(netns.as_fd().as_raw_fd());
    }
    builder
}

pub(crate) fn veth_message(spec: &VethSpec<'_>) -> LinkMessage {
    // The peer is a full ifinfomsg nested in VETH_INFO_PEER; the kernel's veth_newlink
    // reads the peer's own IFLA_NET_NS_FD from it, exactly as
    // `ip link add A type veth peer name B netns X` sends it.
    let peer = with_common(
        LinkUnspec::new_with_name(spec.peer_name),
        spec.mtu,
        spec.peer_mac,
        spec.peer_netns,
    )
    .build();
    let mut builder = with_common(
        LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(spec.name.to_owned())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer))),
        spec.mtu,
        spec.mac,
        None,
    );
    if let Some(master) = spec.master {
        builder = builder.controller(master);
    }
    if spec.up {
        builder = builder.up();
    }
    builder.build()
}

impl Handle {
    /// The link named `name`. A missing link is [`Error::is_not_found`] (ENODEV).
    pub fn link_by_name(&self, name: &str) -> Result<Link> {
        let msg = LinkUnspec::new_with_name(name).build();
        self.get_link("get link", &name_object(name), msg)
    }

    /// The link with index `index`. A missing link is [`Error::is_not_found`] (ENODEV).
    pub fn link_by_index(&self, index: u32) -> Result<Link> {
        let msg = LinkUnspec::new_with_index(index).build();
        self.get_link("get link", &index_object(index), msg)
    }

    fn get_link(&self, op: &'static str, object: &str, msg: LinkMessage) -> Result<Link> {
        let reply = self
            .sock
            .get(op, object, RouteNetlinkMessage::GetLink(msg))?;
        let link = (reply.kind == RTM_NEWLINK)
            .then(|| Link::decode(&reply.body))
            .flatten();
        link.ok_or_else(|| Error::Protocol {
            op,
            object: object.to_owned(),
            detail: format!(
                "expected a named RTM_NEWLINK, got message type {}",
                reply.kind
            ),
        })
    }

    /// Every link in the handle's netns.
    pub fn links(&self) -> Result<Vec<Link>> {
        let replies = self.sock.dump(
            "dump links",
            "",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
        )?;
        Ok(replies
            .iter()
            .filter(|reply| reply.kind == RTM_NEWLINK)
            .filter_map(|reply| Link::decode(&reply.body))
            .collect())
    }

    /// Sends an `RTM_NEWLINK` with `NLM_F_CREATE | NLM_F_EXCL` (so an existing name is
    /// EEXIST, never a silent modification), mapping EOPNOTSUPP to
    /// [`Error::UnsupportedKind`]: naming `kind` when the kernel says "Unknown device type"
    /// (no driver), else `feature` when the request used an optional feature (the kernel
    /// answers a bare EOPNOTSUPP to `vlan_filtering 1` without
    /// `CONFIG_BRIDGE_VLAN_FILTERING`, verified with `ip link add … type bridge`).
    /// `flags` are added to the request's; returns what the kernel answered before its ACK.
    fn create_link(
        &self,
        (op, kind, feature): (&'static str, &'static str, Option<&'static str>),
        name: &str,
        msg: LinkMessage,
        detail: std::fmt::Arguments<'_>,
        flags: u16,
    ) -> Result<Vec<Reply>> {
        let object = name_object(name);
        let request = RouteNetlinkMessage::NewLink(msg);
        match self
            .sock
            .change_with_replies(op, &object, request, NLM_F_CREATE | NLM_F_EXCL | flags)
        {
            Err(Error::Kernel {
                errno: libc::EOPNOTSUPP,
                ext_ack,
                ..
            }) => Err(Error::UnsupportedKind {
                op,
                object,
                kind: match feature {
                    Some(feature) if ext_ack.as_deref() != Some(UNKNOWN_DEVICE_TYPE) => feature,
                    _ => kind,
                },
                errno: libc::EOPNOTSUPP,
            }),
            Err(err) => Err(err),
            Ok(replies) => {
                log::info!("created {kind} {name}{detail}");
                Ok(replies)
            }
        }
    }

    /// Creates a veth pair; see [`VethSpec`] for which end lands where. The peer starts
    /// down; this end too unless `spec.up`.
    ///
    /// Returns this end as the kernel announced it on creation (`NLM_F_ECHO`, honoured for
    /// new links since Linux 6.1), which spares a caller the lookup for its index and MAC;
    /// `None` from older kernels. It is read before `spec.master` applies: `master` is
    /// unset in it. (Only here: a link created straight into another netns would be echoed
    /// to whatever socket has our port ID there.)
    pub fn create_veth(&self, spec: &VethSpec<'_>) -> Result<Option<Link>> {
        let peer_place = spec
            .peer_netns
            .map_or_else(|| "this netns".into(), |ns| ns.path().display().to_string());
        let replies = self.create_link(
            ("create veth", "veth", None),
            spec.name,
            veth_message(spec),
            format_args!(" with peer {} in {peer_place}", spec.peer_name),
            NLM_F_ECHO,
        )?;
        Ok(replies
            .iter()
            .filter(|reply| reply.kind == RTM_NEWLINK)
            .filter_map(|reply| Link::decode(&reply.body))
            .find(|link| link.name == spec.name))
    }

    /// Creates a bridge, left down.
    pub fn create_bridge(&self, spec: &BridgeSpec<'_>) -> Result<()> {
        let mut builder = with_common(
            LinkMessageBuilder::<LinkBridge>::new(spec.name),
            spec.mtu,
            None,
            None,
        );
        if spec.vlan_filtering {
            builder = builder.vlan_filtering(true);
        }
        let feature = spec.vlan_filtering.then_some("bridge VLAN filtering");
        self.create_link(
            ("create bridge", "bridge", feature),
            spec.name,
            builder.build(),
            format_args!(""),
            0,
        )
        .map(drop)
    }

    /// Creates an `ifb` link, up, with `mtu` and a transmit queue length of 0 (as the
    /// reference's bandwidth plugin makes it). A kernel without `CONFIG_IFB` gives
    /// [`Error::UnsupportedKind`].
    pub fn create_ifb(&self, name: &str, mtu: u32) -> Result<()> {
        let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Ifb)
            .name(name.to_owned())
            .mtu(mtu)
            .txqueuelen(0)
            .up()
            .build();
        self.create_link(
            ("create ifb", "ifb", None),
            name,
            msg,
            format_args!(" with mtu {mtu}"),
            0,
        )
        .map(drop)
    }

    /// Creates a macvlan on a parent link, optionally straight into another netns.
    pub fn create_macvlan(&self, spec: &MacvlanSpec<'_>) -> Result<()> {
        let mut builder = with_common(
            LinkMacVlan::new(spec.name, spec.master_index, spec.mode.into()),
            spec.mtu,
            spec.mac,
            spec.netns,
        );
        if let Some(len) = spec.bcqueuelen {
            builder = builder.append_info_data(InfoMacVlan::BcQueueLen(len));
        }
        self.create_link(
            ("create macvlan", "macvlan", None),
            spec.name,
            builder.build(),
            format_args!(" on link index {}", spec.master_index),
            0,
        )
        .map(drop)
    }

    /// Creates an ipvlan on a parent link, optionally straight into another netns. A
    /// kernel without `CONFIG_IPVLAN` gives [`Error::UnsupportedKind`]
    /// (`kernel lacks ipvlan support`).
    pub fn create_ipvlan(&self, spec: &IpvlanSpec<'_>) -> Result<()> {
        let builder = with_common(
            LinkIpVlan::new(spec.name, spec.master_index, spec.mode.into()),
            spec.mtu,
            None,
            spec.netns,
        );
        self.create_link(
            ("create ipvlan", "ipvlan", None),
            spec.name,
            builder.build(),
            format_args!(" on link index {}", spec.master_index),
            0,
        )
        .map(drop)
    }

    /// Deletes a link. Deleting one end of a veth deletes both.
    pub fn delete_link(&self, index: u32) -> Result<()> {
        let object = index_object(index);
        let msg = LinkUnspec::new_with_index(index).build();
        self.sock
            .change("delete link", &object, RouteNetlinkMessage::DelLink(msg), 0)?;
        log::info!("deleted {object}");
        Ok(())
    }

    /// [`Handle::delete_link`] for cleanup: a link already gone (another DEL, or the peer
    /// of a veth end deleted before) is the goal state, not an error.
    pub fn delete_link_if_present(&self, index: u32) -> Result<()> {
        match self.delete_link(index) {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// Sends an `RTM_SETLINK` for `index` with what `edit` adds. No `NLM_F_CREATE` or
    /// `NLM_F_EXCL`: those mean nothing on a modification (netavark's `set_up` lapse).
    fn modify_link(
        &self,
        op: &'static str,
        index: u32,
        what: std::fmt::Arguments<'_>,
        edit: impl FnOnce(LinkMessageBuilder<LinkUnspec>) -> LinkMessageBuilder<LinkUnspec>,
    ) -> Result<()> {
        let object = index_object(index);
        let msg = edit(LinkUnspec::new_with_index(index)).build();
        self.sock
            .change(op, &object, RouteNetlinkMessage::SetLink(msg), 0)?;
        log::info!("{op} {object}: {what}");
        Ok(())
    }

    /// Sets a link administratively up (`ip link set X up`).
    pub fn set_link_up(&self, index: u32) -> Result<()> {
        self.modify_link("set link up", index, format_args!("up"), |b| b.up())
    }

    /// Sets a link administratively down.
    pub fn set_link_down(&self, index: u32) -> Result<()> {
        self.modify_link("set link down", index, format_args!("down"), |b| b.down())
    }

    /// Enslaves a link to a master (a bridge), `ip link set X master Y`.
    pub fn set_master(&self, index: u32, master_index: u32) -> Result<()> {
        self.modify_link(
            "set master",
            index,
            format_args!("master {master_index}"),
            |b| b.controller(master_index),
        )
    }

    /// Releases a link from its master (`IFLA_MASTER` = 0, `ip link set X nomaster`).
    pub fn set_nomaster(&self, index: u32) -> Result<()> {
        self.modify_link("set nomaster", index, format_args!("nomaster"), |b| {
            b.nocontroller()
        })
    }

    /// Sets a link's MTU.
    pub fn set_mtu(&self, index: u32, mtu: u32) -> Result<()> {
        self.modify_link("set mtu", index, format_args!("mtu {mtu}"), |b| b.mtu(mtu))
    }

    /// Sets a link's MAC address.
    pub fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<()> {
        self.modify_link(
            "set mac",
            index,
            format_args!("mac {}", format_mac(&mac)),
            |b| b.address(mac.to_vec()),
        )
    }

    /// Renames a link. The kernel refuses (EBUSY) while the link is up.
    pub fn rename_link(&self, index: u32, new_name: &str) -> Result<()> {
        self.modify_link("rename link", index, format_args!("name {new_name}"), |b| {
            b.name(new_name.to_owned())
        })
    }

    /// Moves a link into another netns (`ip link set X netns Y`). Its index may change
    /// there; look it up by name through a handle on `netns`.
    pub fn move_link_to_netns(&self, index: u32, netns: &Netns) -> Result<()> {
        self.modify_link(
            "move link to netns",
            index,
            format_args!("netns {}", netns.path().display()),
            |b| b.setns_by_fd(netns.as_fd().as_raw_fd()),
        )
    }

    /// Turns promiscuous mode on or off.
    pub fn set_promiscuous(&self, index: u32, on: bool) -> Result<()> {
        self.modify_link(
            "set promiscuous",
            index,
            format_args!("promisc {on}"),
            |b| b.promiscuous(on),
        )
    }

    /// Turns all-multicast mode on or off (`ip link set X allmulticast on|off`).
    pub fn set_allmulti(&self, index: u32, on: bool) -> Result<()> {
        self.modify_link(
            "set allmulticast",
            index,
            format_args!("allmulticast {on}"),
            |b| b.allmulticast(on),
        )
    }

    /// Sets a link's transmit queue length (`ip link set X txqueuelen N`).
    pub fn set_txqueuelen(&self, index: u32, len: u32) -> Result<()> {
        self.modify_link(
            "set txqueuelen",
            index,
            format_args!("txqueuelen {len}"),
            |b| b.txqueuelen(len),
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use netlink_packet_core::Emitable;
    use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, State};

    /// The bytes the kernel would send for `msg`, produced by netlink-packet-route as an
    /// independent encoder.
    pub(crate) fn emitted(msg: &impl Emitable) -> Vec<u8> {
        let mut bytes = vec![0; msg.buffer_len()];
        msg.emit(&mut bytes);
        bytes
    }

    /// Each word parses to its mode and the mode prints as the word.
    fn assert_words<M>(table: &[(&str, M)])
    where
        M: std::str::FromStr<Err = UnknownMode>
            + std::fmt::Display
            + PartialEq
            + std::fmt::Debug
            + Copy,
    {
        for &(word, mode) in table {
            assert_eq!(
                (word.parse(), mode.to_string()),
                (Ok(mode), word.to_owned())
            );
        }
    }

    /// The reference's `modeFromString` words, both ways.
    #[test]
    fn mode_words_are_the_references() {
        use MacvlanMode::{Bridge, Passthru, Private, Vepa};
        assert_words(&[
            ("bridge", Bridge),
            ("private", Private),
            ("vepa", Vepa),
            ("passthru", Passthru),
        ]);
        assert_words(&[
            ("l2", IpvlanMode::L2),
            ("l3", IpvlanMode::L3),
            ("l3s", IpvlanMode::L3s),
        ]);
        let err = "L2".parse::<IpvlanMode>().unwrap_err();
        assert_eq!(err.to_string(), r#"unknown ipvlan mode: "L2""#);
    }

    #[test]
    fn decodes_a_macvlan_link() {
        let mut msg = LinkMacVlan::new("mv0", 3, MacVlanMode::Vepa)
            .mtu(1400)
            .address(vec![2, 0, 0, 0, 0, 9])
            .build();
        msg.header.index = 42;
        msg.header.flags = LinkFlags::Up | LinkFlags::Promisc | LinkFlags::Allmulti;
        msg.attributes.extend([
            LinkAttribute::OperState(State::LowerLayerDown),
            LinkAttribute::Controller(7),
            LinkAttribute::LinkNetNsId(2),
            LinkAttribute::TxQueueLen(1000),
        ]);
        let link = Link::decode(&emitted(&msg)).expect("a link");
        assert_eq!(
            link,
            Link {
                index: 42,
                name: "mv0".into(),
                kind: Some("macvlan".into()),
                mac: Some([2, 0, 0, 0, 0, 9]),
                mtu: 1400,
                master: Some(7),
                admin_up: true,
                oper_state: OperState::LowerLayerDown,
                link: Some(3),
                link_netnsid: Some(2),
                promiscuous: true,
                allmulti: true,
                macvlan_mode: Some(MacvlanMode::Vepa),
                ipvlan_mode: None,
                txqueuelen: 1000,
            }
        );
    }

    #[test]
    fn decodes_ipvlan_modes_and_zero_indexes() {
        for (mode, want) in [
            (IpVlanMode::L2, IpvlanMode::L2),
            (IpVlanMode::L3, IpvlanMode::L3),
            (IpVlanMode::L3S, IpvlanMode::L3s),
        ] {
            let mut msg = LinkIpVlan::new("ipv0", 5, mode).build();
            msg.attributes.push(LinkAttribute::Controller(0));
            let link = Link::decode(&emitted(&msg)).expect("a link");
            assert_eq!(link.ipvlan_mode, Some(want));
            assert_eq!(link.macvlan_mode, None);
            assert_eq!(link.master, None, "IFLA_MASTER 0 means no master");
            assert!(!link.admin_up);
        }
    }

    /// Found by fuzzing (fuzz target `netlink_replies`): a second IFLA_LINKINFO of another
    /// kind left the first one's macvlan mode on a link that is no longer a macvlan.
    #[test]
    fn a_repeated_link_info_replaces_the_earlier_one() {
        let mut msg = LinkMacVlan::new("mv0", 3, MacVlanMode::Vepa).build();
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                netlink_packet_route::link::InfoKind::Veth,
            )]));
        let link = Link::decode(&emitted(&msg)).expect("a link");
        assert_eq!(link.kind.as_deref(), Some("veth"));
        assert_eq!(link.macvlan_mode, None);
    }

    #[test]
    fn a_nameless_or_short_link_message_is_none() {
        let msg = LinkUnspec::new_with_index(4).build();
        assert_eq!(Link::decode(&emitted(&msg)), None);
        let named = emitted(&LinkUnspec::new_with_name("lo").build());
        for cut in 0..named.len() {
            // Never panics on a truncated reply; a name cut short is still a name.
            let _ = Link::decode(&named[..cut]);
        }
        assert_eq!(Link::decode(&named).map(|l| l.name), Some("lo".into()));
        let bridge = LinkMessageBuilder::<LinkBridge>::new("br0").build();
        let link = Link::decode(&emitted(&bridge)).expect("a link");
        assert_eq!(link.kind.as_deref(), Some("bridge"));
        assert_eq!(link.oper_state, OperState::Unknown);
    }

    #[test]
    fn mac_text() {
        assert_eq!(
            format_mac(&[0x0a, 0, 0xff, 0x12, 0x3b, 1]),
            "0a:00:ff:12:3b:01"
        );
    }

    #[test]
    fn veth_message_puts_mtu_and_mac_on_each_end() {
        let spec = VethSpec {
            name: "veth0",
            peer_name: "eth0",
            mtu: Some(1400),
            mac: Some([2, 0, 0, 0, 0, 1]),
            peer_mac: Some([2, 0, 0, 0, 0, 2]),
            ..Default::default()
        };
        let msg = veth_message(&spec);
        assert!(
            msg.attributes
                .contains(&LinkAttribute::IfName("veth0".into()))
        );
        assert!(
            msg.attributes
                .contains(&LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]))
        );
        let peer = msg
            .attributes
            .iter()
            .find_map(|attr| match attr {
                LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|info| match info {
                    LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) => Some(peer),
                    _ => None,
                }),
                _ => None,
            })
            .expect("peer message");
        assert!(
            peer.attributes
                .contains(&LinkAttribute::IfName("eth0".into()))
        );
        assert!(peer.attributes.contains(&LinkAttribute::Mtu(1400)));
        assert!(
            peer.attributes
                .contains(&LinkAttribute::Address(vec![2, 0, 0, 0, 0, 2]))
        );
    }
}
