//! Kernel operations for the CNI plugins: network namespaces, links, addresses, routes,
//! bridge ports, traffic control (qdiscs, filters) and sysctls, behind a synchronous API.
//!
//! This crate has **no CNI policy**: it never picks names, MTUs or modes, and it does not
//! know the `cni` crate. It only does what it is told, in the caller's vocabulary:
//!
//! * [`Netns`] — an open netns, and [`Netns::run`] to execute code inside one (the
//!   calling thread goes back to its own netns however the code ends).
//! * [`Handle`] — one `NETLINK_ROUTE` socket bound to one netns ([`Handle::current`],
//!   [`Handle::for_netns`]); all link, address, route and bridge operations hang off it,
//!   named verb first: [`Handle::create_veth`], [`Handle::set_link_up`],
//!   [`Handle::add_address`], [`Handle::add_route`], [`Handle::set_bridge_port`]…
//! * [`sysctl`] — `/proc/sys` reads and writes in the calling thread's netns.
//! * [`conntrack`] — deleting connection-tracking entries (`NETLINK_NETFILTER`) in the
//!   calling thread's netns.
//! * [`nftables`] — reading one nf_tables chain's rule handles and comments, and applying
//!   an atomic batch of table, chain and rule changes (`NETLINK_NETFILTER`), in the
//!   calling thread's netns.
//! * [`Error`] — one error type with the operation, the object and the errno;
//!   [`Error::is_not_found`], [`Error::is_exists`], [`Error::is_unsupported`].
//!
//! `netlink-packet-route` types never appear in the public API, so its churn stays here.
//!
//! # Backend
//!
//! A blocking `netlink-sys` socket. Requests are `netlink-packet-route` 0.34 messages built
//! with rtnetlink 0.24's message builders (its async `Handle` and tokio are not linked);
//! replies are decoded by hand for the attributes we read (`wire.rs` says why). One
//! operation is one request and its replies; see `socket.rs` for the socket care (ACKs,
//! sequence numbers, extended ACK text, growing buffer, `NLM_F_DUMP_INTR` retries,
//! 10 s receive timeout).
//!
//! # Measurements
//!
//! Measured on the 2-core CI machine type (kernel 6.18, shared with other builds, release
//! profile; medians of 200 runs, p95 in brackets):
//!
//! | what | round trips | time |
//! |---|---|---|
//! | bridge-like ADD sequence: `create_veth` (peer into the container), `link_by_name`, `set_master`, `set_link_up`; in the container `link_by_name`, `add_address`, `set_link_up`, `add_route` | 8 | 1.2 ms (1.5 ms) |
//! | `Handle::for_netns` (thread spawn + `setns` + socket) | – | 0.15 ms |
//! | exec-to-exit of a 0.98 MB binary that opens a `Handle` and dumps links | 1 | 1.1 ms (1.4 ms) |
//!
//! Reproduce (root; everything runs in throwaway namespaces):
//! `cargo build --release -p cni-netlink --examples`, then
//! `target/release/examples/bridge_sequence 200` and
//! `target/release/examples/startup target/release/examples/dump_links`.
//! [`Handle::round_trips`] counts requests for such measurements.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod addr;
mod bridge;
pub mod conntrack;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod handle;
mod link;
mod netconf;
mod netns;
pub mod nftables;
mod route;
mod socket;
pub mod sysctl;
mod tc;
mod wire;

pub use addr::{Address, AddressFlags, AddressOptions};
pub use bridge::{BridgePortFlags, BridgeVlan};
pub use error::{Error, Result};
pub use handle::Handle;
pub use ipnetwork::IpNetwork;
pub use link::{
    BridgeSpec, IpvlanMode, IpvlanSpec, Link, MacvlanMode, MacvlanSpec, OperState, UnknownMode,
    VethSpec, format_mac,
};
pub use netns::Netns;
pub use route::{IpFamily, NextHop, Route, RouteSpec, Scope, TABLE_MAIN};
pub use tc::{Qdisc, Tbf, psched_ticks_per_usec};
