//! Routes: add (ECMP-friendly, like the Go plugins), delete, list, and the default-route
//! interface.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE};
use netlink_packet_route::address::AddressScope;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol,
    RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::RouteMessageBuilder;

use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::link::Link;

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

impl From<RouteScope> for Scope {
    fn from(scope: RouteScope) -> Self {
        u8::from(scope).into()
    }
}

impl From<AddressScope> for Scope {
    fn from(scope: AddressScope) -> Self {
        u8::from(scope).into()
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

fn route_ip(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

impl Route {
    fn from_message(msg: RouteMessage) -> Option<Route> {
        let unspecified = match msg.header.address_family {
            AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => return None,
        };
        let mut dst = unspecified;
        let mut route = Route {
            dst: IpNetwork::new(unspecified, 0).ok()?,
            gateway: None,
            oif: None,
            priority: None,
            table: u32::from(msg.header.table),
            scope: msg.header.scope.into(),
            protocol: msg.header.protocol.into(),
            mtu: None,
            nexthops: Vec::new(),
        };
        for attr in msg.attributes {
            match attr {
                RouteAttribute::Destination(addr) => dst = route_ip(&addr)?,
                RouteAttribute::Gateway(addr) => route.gateway = route_ip(&addr),
                RouteAttribute::Oif(oif) => route.oif = Some(oif),
                RouteAttribute::Priority(priority) => route.priority = Some(priority),
                // RTA_TABLE carries ids above 255 that the header's u8 cannot.
                RouteAttribute::Table(table) => route.table = table,
                RouteAttribute::Metrics(metrics) => {
                    route.mtu = metrics.iter().find_map(|m| match m {
                        RouteMetric::Mtu(mtu) => Some(*mtu),
                        _ => None,
                    });
                }
                RouteAttribute::MultiPath(hops) => {
                    route.nexthops = hops
                        .iter()
                        .map(|hop| NextHop {
                            oif: hop.interface_index,
                            gateway: hop.attributes.iter().find_map(|attr| match attr {
                                RouteAttribute::Gateway(addr) => route_ip(addr),
                                _ => None,
                            }),
                        })
                        .collect();
                }
                _ => {}
            }
        }
        route.dst = IpNetwork::new(dst, msg.header.destination_prefix_length).ok()?;
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
            .into_iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewRoute(msg) => Route::from_message(msg),
                _ => None,
            })
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
