//! Entry points for the fuzz targets in `fuzz/`: the reply decoders, private because their
//! input comes from the kernel, not from a caller. Not part of the API: no semver promise.

use crate::nftables::Rule;
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

/// A ctnetlink dump entry (an `IPCTNL_MSG_CT_NEW` body) as portmap's UDP flush reads it, and
/// the entry read back from the `IPCTNL_MSG_CT_DELETE` body made to name it, both as `{:?}`
/// text; `None` when the dump entry is not read. They must be equal: a delete names exactly
/// the flow that was dumped.
pub fn conntrack_entry_and_its_delete(body: &[u8]) -> Option<(String, Option<String>)> {
    let entry = crate::conntrack::Entry::decode(body)?;
    let again = crate::conntrack::Entry::decode(&entry.delete_body(libc::AF_INET as u8));
    Some((format!("{entry:?}"), again.map(|e| format!("{e:?}"))))
}

/// An `NFT_MSG_NEWRULE` body as the masquerade chain listing reads it (for `table`/`chain`),
/// and the rule read back from the dump body written for it (`None` for a comment too long
/// for a user-data TLV). They must be equal.
pub fn nft_rule_and_its_dump(
    body: &[u8],
    table: &str,
    chain: &str,
) -> Option<(Rule, Option<Rule>)> {
    let rule = Rule::decode(body, table, chain)?;
    let again = rule
        .dumped_body(table, chain)
        .and_then(|bytes| Rule::decode(&bytes, table, chain));
    Some((rule, again))
}
