//! Entry points for the fuzz targets in `fuzz/`: the reply decoders, private because their
//! input comes from the kernel, not from a caller. Not part of the API: no semver promise.

use crate::{Address, BridgePortFlags, BridgeVlan, Link, Route};

/// An `RTM_NEWLINK` body (after the netlink header) as [`crate::Handle::links`] reads it.
pub fn decode_link(body: &[u8]) -> Option<Link> {
    Link::decode(body)
}

/// An `RTM_NEWADDR` body as [`crate::Handle::addresses`] reads it.
pub fn decode_address(body: &[u8]) -> Option<Address> {
    Address::decode(body)
}

/// An `RTM_NEWROUTE` body as [`crate::Handle::routes`] reads it.
pub fn decode_route(body: &[u8]) -> Option<Route> {
    Route::decode(body)
}

/// The attributes of an `AF_BRIDGE` link (after the `ifinfomsg`): the port flags and VLAN
/// entries [`crate::Handle::bridge_port`] and [`crate::Handle::bridge_vlans`] read.
pub fn decode_bridge_port(attributes: &[u8]) -> (Option<BridgePortFlags>, Vec<BridgeVlan>) {
    (
        crate::bridge::decode_port_flags(attributes),
        crate::bridge::decode_vlans(attributes),
    )
}

/// The extended-ACK message of an `NLMSG_ERROR` payload (the bytes after the error code),
/// given the reply's netlink flags.
pub fn decode_ext_ack(payload: &[u8], flags: u16) -> Option<String> {
    crate::socket::parse_ext_ack(payload, flags)
}
