//! Routes: add (ECMP-friendly, like the Go plugins), delete, list, and the default-route
//! interface.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE};
use netlink_packet_route::route::{
    RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::RouteMessageBuilder;

use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::link::Link;
use crate::wire;

/// The main routing table (`RT_TABLE_MAIN`).
pub const TABLE_MAIN: u32 = RouteHeader::RT_TABLE_MAIN as u32;

/// An IP family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// Scope of a route or address (`RT_SCOPE_*`; the kernel uses one numbering for both).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scope {
    /// `global`.
    #[default]
    Universe,
    /// `site`.
    Site,
    /// `link`.
    Link,
    /// `host`.
    Host,
    /// `nowhere`.
    Nowhere,
    /// Another value.
    Other(u8),
}

/// A route to add or delete with [`Handle::add_route`] / [`Handle::del_route`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination; `0.0.0.0/0` or `::/0` for a default route. Host bits are cleared
    /// before sending (the kernel refuses `10.0.0.1/24` as a route destination).
    pub dst: IpNetwork,
    /// Next hop; must be the same family as `dst`.
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// Metric (`RTA_PRIORITY`).
    pub priority: Option<u32>,
    /// Table; `None` is the main table.
    pub table: Option<u32>,
    /// Scope; `None` is `Universe`, as Go's `netlink.Route` leaves it (not `link` as
    /// `ip route add` picks for a route without gateway).
    pub scope: Option<Scope>,
    /// Path MTU (`RTAX_MTU`).
    pub mtu: Option<u32>,
    /// Advertised MSS (`RTAX_ADVMSS`).
    pub advmss: Option<u32>,
}

impl RouteSpec {
    /// A route to `dst` with nothing else set.
    pub fn new(dst: IpNetwork) -> Self {
        RouteSpec {
            dst,
            gateway: None,
            oif: None,
            priority: None,
            table: None,
            scope: None,
            mtu: None,
            advmss: None,
        }
    }
}

/// One next hop of a multipath (ECMP) route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NextHop {
    /// Gateway.
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: u32,
}

/// A route as the kernel reports it (`RTM_NEWROUTE`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Route {
    /// Destination (`0.0.0.0/0` for default).
    pub dst: IpNetwork,
    /// Gateway of a single-path route.
    pub gateway: Option<IpAddr>,
    /// Output interface of a single-path route.
    pub oif: Option<u32>,
    /// Metric.
    pub priority: Option<u32>,
    /// Table.
    pub table: u32,
    /// Scope.
    pub scope: Scope,
    /// `RTPROT_*` (2 kernel, 3 boot, 4 static…).
    pub protocol: u8,
    /// Path MTU, when set.
    pub mtu: Option<u32>,
    /// Next hops of a multipath route (IPv6 merges appended routes into one of these).
    pub nexthops: Vec<NextHop>,
}

impl From<Scope> for RouteScope {
    fn from(scope: Scope) -> Self {
        match scope {
            Scope::Universe => RouteScope::Universe,
            Scope::Site => RouteScope::Site,
            Scope::Link => RouteScope::Link,
            Scope::Host => RouteScope::Host,
            Scope::Nowhere => RouteScope::NoWhere,
            Scope::Other(value) => RouteScope::Other(value),
        }
    }
}

impl From<u8> for Scope {
    fn from(value: u8) -> Self {
        match value {
            0 => Scope::Universe,
            200 => Scope::Site,
            253 => Scope::Link,
            254 => Scope::Host,
            255 => Scope::Nowhere,
            other => Scope::Other(other),
        }
    }
}

impl From<IpFamily> for AddressFamily {
    fn from(family: IpFamily) -> Self {
        match family {
            IpFamily::V4 => AddressFamily::Inet,
            IpFamily::V6 => AddressFamily::Inet6,
        }
    }
}

fn route_object(spec: &RouteSpec) -> String {
    let mut text = format!("route {}", spec.dst);
    if let Some(gateway) = spec.gateway {
        text.push_str(&format!(" via {gateway}"));
    }
    if let Some(oif) = spec.oif {
        text.push_str(&format!(" dev index {oif}"));
    }
    text
}

fn invalid(op: &'static str, spec: &RouteSpec, detail: String) -> Error {
    Error::Protocol {
        op,
        object: route_object(spec),
        detail,
    }
}

/// Builds the request for an add (`delete == false`) or delete.
pub(crate) fn route_message(
    op: &'static str,
    spec: &RouteSpec,
    delete: bool,
) -> Result<RouteMessage> {
    let network = spec.dst.network();
    let mut builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(network, spec.dst.prefix())
        .map_err(|err| invalid(op, spec, err.to_string()))?;
    if let Some(gateway) = spec.gateway {
        builder = builder
            .gateway(gateway)
            .map_err(|err| invalid(op, spec, err.to_string()))?;
    }
    if let Some(oif) = spec.oif {
        builder = builder.output_interface(oif);
    }
    if let Some(priority) = spec.priority {
        builder = builder.priority(priority);
    }
    if let Some(table) = spec.table {
        builder = builder.table_id(table);
    }
    let mut msg = builder.build();
    if delete {
        // What `ip route del` sends: scope NOWHERE and protocol/type 0 act as wildcards in
        // fib_table_delete / ip6_route_del, so the route matches however it was added.
        msg.header.scope = RouteScope::NoWhere;
        msg.header.protocol = RouteProtocol::Unspec;
        msg.header.kind = RouteType::Unspec;
    } else {
        // RTPROT_BOOT, as `ip route add` and Go's netlink.RouteAdd send, so routes look
        // the same in `ip route` as the reference plugins' ("proto static" would not).
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = spec.scope.unwrap_or_default().into();
        let metrics: Vec<RouteMetric> = spec
            .mtu
            .map(RouteMetric::Mtu)
            .into_iter()
            .chain(spec.advmss.map(RouteMetric::Advmss))
            .collect();
        if !metrics.is_empty() {
            msg.attributes.push(RouteAttribute::Metrics(metrics));
        }
    }
    Ok(msg)
}

/// `RTM_NEWROUTE`, the kernel's reply to a route dump.
const RTM_NEWROUTE: u16 = 24;
/// Size of `struct rtmsg`.
const RTMSG_LEN: usize = 12;
/// Size of `struct rtnexthop`, which precedes each next hop's attributes in
/// `RTA_MULTIPATH`.
const RTNEXTHOP_LEN: usize = 8;
// Route attributes we read (`linux/rtnetlink.h`).
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_METRICS: u16 = 8;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RTAX_MTU: u16 = 2;
const AF_INET: u8 = libc::AF_INET as u8;
const AF_INET6: u8 = libc::AF_INET6 as u8;

/// The next hops of an `RTA_MULTIPATH` value: `rtnexthop` headers, each followed by its
/// own attributes, `rtnh_len` covering both.
fn decode_nexthops(mut bytes: &[u8]) -> Vec<NextHop> {
    let mut hops = Vec::new();
    while let Some((header, _)) = wire::split_header::<RTNEXTHOP_LEN>(bytes) {
        let len = usize::from(u16::from_ne_bytes([header[0], header[1]]));
        let Some(attributes) = bytes.get(RTNEXTHOP_LEN..len) else {
            break;
        };
        hops.push(NextHop {
            oif: u32::from_ne_bytes([header[4], header[5], header[6], header[7]]),
            gateway: wire::attrs(attributes)
                .find(|&(kind, _)| kind == RTA_GATEWAY)
                .and_then(|(_, value)| wire::ip_value(value)),
        });
        bytes = bytes.get(wire::align4(len)..).unwrap_or_default();
    }
    hops
}

impl Route {
    /// Decodes an `RTM_NEWROUTE` body; `None` for other families, malformed messages and
    /// destinations that are not IP addresses.
    pub(crate) fn decode(body: &[u8]) -> Option<Route> {
        let (header, attributes) = wire::split_header::<RTMSG_LEN>(body)?;
        let [family, dst_len, _src_len, _tos, table, protocol, scope, ..] = *header;
        let unspecified = match family {
            AF_INET => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            AF_INET6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => return None,
        };
        let mut dst = unspecified;
        let mut route = Route {
            dst: IpNetwork::new(unspecified, 0).ok()?,
            gateway: None,
            oif: None,
            priority: None,
            table: u32::from(table),
            scope: scope.into(),
            protocol,
            mtu: None,
            nexthops: Vec::new(),
        };
        for (kind, value) in wire::attrs(attributes) {
            match kind {
                RTA_DST => dst = wire::ip_value(value)?,
                RTA_GATEWAY => route.gateway = wire::ip_value(value),
                RTA_OIF => route.oif = wire::u32_value(value),
                RTA_PRIORITY => route.priority = wire::u32_value(value),
                // RTA_TABLE carries ids above 255 that the header's u8 cannot.
                RTA_TABLE => route.table = wire::u32_value(value).unwrap_or(route.table),
                RTA_METRICS => {
                    route.mtu = wire::attrs(value)
                        .find(|&(kind, _)| kind == RTAX_MTU)
                        .and_then(|(_, value)| wire::u32_value(value));
                }
                RTA_MULTIPATH => route.nexthops = decode_nexthops(value),
                _ => {}
            }
        }
        route.dst = IpNetwork::new(dst, dst_len).ok()?;
        Some(route)
    }

    /// Whether this is a default route (`/0`).
    pub fn is_default(&self) -> bool {
        self.dst.prefix() == 0
    }
}

impl Handle {
    /// Adds a route with `NLM_F_CREATE | NLM_F_APPEND`, as Go's `netlink.RouteAppend`
    /// (used by the reference plugins' `RouteAddEcmp`): a second route to the same
    /// destination with another next hop is added rather than refused, so IPv6 merges
    /// them into one multipath route and IPv4 keeps both. An identical route is still
    /// EEXIST ([`crate::Error::is_exists`]).
    pub fn add_route(&self, spec: &RouteSpec) -> Result<()> {
        let op = "add route";
        let object = route_object(spec);
        let msg = route_message(op, spec, false)?;
        self.sock.change(
            op,
            &object,
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_APPEND,
        )?;
        log::info!("added {object}");
        Ok(())
    }

    /// Deletes the route matching `spec` (dst, gateway, oif, priority and table where
    /// given). A missing route is [`crate::Error::is_not_found`] (the kernel answers
    /// ESRCH for both families).
    pub fn del_route(&self, spec: &RouteSpec) -> Result<()> {
        let op = "delete route";
        let object = route_object(spec);
        let msg = route_message(op, spec, true)?;
        self.sock
            .change(op, &object, RouteNetlinkMessage::DelRoute(msg), 0)?;
        log::info!("deleted {object}");
        Ok(())
    }

    /// Every route of `family` in every table, as `ip route show table all` lists them
    /// (including the kernel's local and IPv6 multicast routes).
    pub fn routes(&self, family: IpFamily) -> Result<Vec<Route>> {
        let mut request = RouteMessage::default();
        request.header.address_family = family.into();
        let replies = self
            .sock
            .dump("dump routes", "", RouteNetlinkMessage::GetRoute(request))?;
        Ok(replies
            .iter()
            .filter(|reply| reply.kind == RTM_NEWROUTE)
            .filter_map(|reply| Route::decode(&reply.body))
            .collect())
    }

    /// The link of the first default route of `family` in the main table (the first
    /// next hop's for a multipath route): what the macvlan and ipvlan plugins use as
    /// their parent when `master` is not configured.
    pub fn default_route_interface(&self, family: IpFamily) -> Result<Option<Link>> {
        let oif = self
            .routes(family)?
            .into_iter()
            .filter(|route| route.is_default() && route.table == TABLE_MAIN)
            .find_map(|route| {
                route
                    .oif
                    .or_else(|| route.nexthops.first().map(|hop| hop.oif))
            });
        oif.map(|index| self.link_by_index(index)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::tests::emitted;
    use netlink_packet_route::route::{RouteAddress, RouteNextHop};

    fn spec(dst: &str) -> RouteSpec {
        RouteSpec::new(dst.parse().unwrap())
    }

    #[test]
    fn decodes_a_route_with_table_and_mtu() {
        let route_spec = RouteSpec {
            gateway: Some("10.0.0.1".parse().unwrap()),
            oif: Some(4),
            priority: Some(100),
            table: Some(1000),
            mtu: Some(1400),
            ..spec("10.2.0.0/16")
        };
        let msg = route_message("test", &route_spec, false).unwrap();
        let route = Route::decode(&emitted(&msg)).expect("a route");
        assert_eq!(route.dst, "10.2.0.0/16".parse::<IpNetwork>().unwrap());
        assert_eq!(route.gateway, route_spec.gateway);
        assert_eq!(route.oif, Some(4));
        assert_eq!(route.priority, Some(100));
        assert_eq!(route.table, 1000, "RTA_TABLE beats the header's u8");
        assert_eq!(route.mtu, Some(1400));
        assert_eq!(route.protocol, 3, "RTPROT_BOOT");
        assert_eq!(route.scope, Scope::Universe);
        assert!(!route.is_default());
    }

    #[test]
    fn decodes_an_ipv6_multipath_default_route() {
        let mut msg = route_message("test", &spec("::/0"), false).unwrap();
        msg.attributes.push(RouteAttribute::MultiPath(
            [(7, "fe80::1"), (8, "fe80::2")]
                .into_iter()
                .map(|(oif, gw)| {
                    let mut hop = RouteNextHop::default();
                    hop.interface_index = oif;
                    hop.attributes = vec![RouteAttribute::Gateway(RouteAddress::Inet6(
                        gw.parse().unwrap(),
                    ))];
                    hop
                })
                .collect(),
        ));
        let route = Route::decode(&emitted(&msg)).expect("a route");
        assert!(route.is_default());
        assert_eq!(route.table, TABLE_MAIN);
        assert_eq!(
            route.nexthops,
            vec![
                NextHop {
                    oif: 7,
                    gateway: Some("fe80::1".parse().unwrap())
                },
                NextHop {
                    oif: 8,
                    gateway: Some("fe80::2".parse().unwrap())
                },
            ]
        );
    }

    #[test]
    fn other_families_and_garbage_are_none() {
        let mut msg = route_message("test", &spec("10.0.0.0/8"), false).unwrap();
        msg.header.address_family = AddressFamily::Mpls;
        assert_eq!(Route::decode(&emitted(&msg)), None);
        let good = emitted(&route_message("test", &spec("10.0.0.0/8"), false).unwrap());
        for cut in 0..good.len() {
            let _ = Route::decode(&good[..cut]);
        }
        assert_eq!(decode_nexthops(&[8, 0, 0, 0]), vec![]);
    }
}
