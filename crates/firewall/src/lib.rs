//! Netfilter state for the CNI plugins: IP masquerade (bridge `ipMasq`), the MAC spoof check
//! (bridge `macspoofchk`), the firewall plugin's forwarding rules ([`allow_forwarding`],
//! docs/reference.md#firewall) and host port forwarding (`portmap`, [`forward_ports`]),
//! rule-for-rule compatible with the reference Go plugins
//! (containernetworking/plugins `pkg/ip/ipmasq_*.go`, `pkg/link/spoofcheck.go`; summarised in
//! docs/reference.md#masquerade), so that a node running both sees one consistent ruleset.
//!
//! What this crate owns: naming ([`format_chain_name`], [`masquerade_comment`], ...), rendering
//! rules for nftables and iptables, and running `nft`, `iptables(-restore)`, `firewall-cmd` and
//! `ip6tables(-restore)`. What it must not do: enter any network namespace or know about the CNI
//! protocol. Every command runs in the **calling thread's** network namespace (a child process
//! inherits its thread's netns), so plugins call it from a thread in the host netns. Errors are
//! this crate's own [`Error`]; plugins map them to CNI codes.
//!
//! Where the reference is defective we do better (docs/reference.md#defects):
//! - masquerade state is keyed by attachment (network, container ID **and** ifname) in both
//!   backends, so DEL of one interface of a multi-interface container leaves the others alone
//!   (item 3);
//! - teardown needs neither the IPs nor the container netns, so DEL with an empty or vanished
//!   `CNI_NETNS` cleans up (item 2, issue #810);
//! - GC works for both backends and for the spoof check (item 4).
//!
//! Each operation costs few processes: one `nft -f -` transaction, or one `iptables-restore
//! --noflush` batch per address family, plus one listing; counts are on each function.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod exec;
mod forward;
mod masq;
mod naming;
mod nft;
mod portmap;
mod probe;
mod spoofcheck;

#[cfg(test)]
mod tests;

pub use error::{Error, Result};
pub use forward::{
    Attachment, DEFAULT_ADMIN_CHAIN, FORWARD_CHAIN, ForwardPlan, Isolation, allow_forwarding,
    check_chain_name, firewalld_add_sources, firewalld_missing_sources, firewalld_remove_sources,
    firewalld_running, missing_forwarding, nft_allow_forwarding, nft_collect_stale_forwarding,
    nft_missing_forwarding, nft_revoke_forwarding, revoke_forwarding,
};
pub use masq::{MasqBackend, choose_backend, gc_masquerade, setup_masquerade, teardown_masquerade};
pub use naming::{
    format_chain_name, format_chain_name_with_prefix, masquerade_chain_name, masquerade_comment,
    spoofcheck_comment, spoofcheck_iface_chain, spoofcheck_mac_chain,
};
pub use portmap::{
    MarkChain, PortMapBackend, PortMapSpec, PortMapping, Protocol, check_ports, forward_ports,
    gc_ports, unforward_ports,
};
pub use probe::{iptables_usable, nftables_usable};
pub use spoofcheck::{gc_spoofcheck, setup_spoofcheck, teardown_spoofcheck};

/// Re-exported so callers can build [`setup_masquerade`]'s address list without naming the
/// `ipnetwork` version themselves.
pub use ipnetwork::IpNetwork;
