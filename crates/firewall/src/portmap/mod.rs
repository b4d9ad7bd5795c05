//! Host port forwarding for the `portmap` plugin (docs/reference.md#portmap), with the
//! reference's chain, table and comment names (upstream `plugins/meta/portmap`) so that a node
//! can switch between the Go plugin and ours in either direction.
//!
//! This module owns the *spec* (what one container's mappings need); the backends render it.
//! Like the rest of the crate it runs in the calling thread's netns and knows no CNI.

mod iptables;
mod nftables;

use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::{Error, Result, iptables_usable, nftables_usable};

/// Which tool programs the port mappings (`backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortMapBackend {
    /// `CNI-HOSTPORT-*` and `CNI-DN-<hash>` chains in the `nat` table.
    Iptables,
    /// `table ip cni_hostport` and `table ip6 cni_hostport`.
    Nftables,
}

impl PortMapBackend {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PortMapBackend::Iptables => "iptables",
            PortMapBackend::Nftables => "nftables",
        }
    }

    /// The reference's choice for an absent `backend`: iptables, unless iptables is unusable
    /// and nftables usable.
    pub fn default_for_host() -> Result<PortMapBackend> {
        if !iptables_usable()? && nftables_usable()? {
            Ok(PortMapBackend::Nftables)
        } else {
            Ok(PortMapBackend::Iptables)
        }
    }
}

impl fmt::Display for PortMapBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transport protocol a mapping may name. Ordered by name, the order in which the
/// reference writes its per-protocol jumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    /// `sctp`.
    Sctp,
    /// `tcp`.
    Tcp,
    /// `udp`.
    Udp,
}

impl Protocol {
    /// The lower-case name both tools use.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One `runtimeConfig.portMappings` entry, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// The port on the host.
    pub host_port: u16,
    /// The port in the container.
    pub container_port: u16,
    /// The protocol.
    pub protocol: Protocol,
    /// Only traffic to this host address, if set.
    pub host_ip: Option<IpAddr>,
}

impl PortMapping {
    /// Whether the mapping applies to a container address of `container`'s family: a
    /// `hostIP` of the other family is skipped, as in the reference.
    fn applies_to(&self, container: IpAddr) -> bool {
        self.host_ip
            .is_none_or(|ip| ip.is_ipv4() == container.is_ipv4())
    }

    /// The destination to match, if any (an unspecified `hostIP` matches every address).
    fn host_destination(&self) -> Option<IpAddr> {
        self.host_ip.filter(|ip| !ip.is_unspecified())
    }
}

/// Where hairpin and localhost traffic is marked for masquerading (iptables only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkChain {
    /// Our `CNI-HOSTPORT-SETMARK` chain, setting this bit (`markMasqBit`, 0..=31).
    Bit(u8),
    /// A chain someone else manages (`externalSetMarkChain`).
    External(String),
}

/// Everything one container's port forwarding needs, for one container address.
#[derive(Debug, Clone)]
pub struct PortMapSpec {
    /// The network name.
    pub network: String,
    /// The container ID.
    pub container_id: String,
    /// The container address with its prefix (the hairpin source).
    pub container: IpNetwork,
    /// The mappings, in configuration order.
    pub mappings: Vec<PortMapping>,
    /// Masquerade hairpin and localhost traffic (`snat`).
    pub snat: bool,
    /// Masquerade every source, not just the container and localhost (`masqAll`).
    pub masq_all: bool,
    /// The mark chain (iptables).
    pub mark: MarkChain,
    /// Extra match words for the container's family (`conditionsV4`/`conditionsV6`), in the
    /// backend's own syntax.
    pub conditions: Vec<String>,
}

impl PortMapSpec {
    /// The mappings that apply to this container address.
    fn mappings(&self) -> impl Iterator<Item = &PortMapping> {
        self.mappings
            .iter()
            .filter(|m| m.applies_to(self.container.ip()))
    }

    fn is_v6(&self) -> bool {
        self.container.is_ipv6()
    }
}

/// Installs the forwarding of one container address (one `iptables-restore` batch, or one
/// `nft -f` transaction, each atomic). Re-running it replaces the container's previous rules
/// of that family.
pub fn forward_ports(backend: PortMapBackend, spec: &PortMapSpec) -> Result<()> {
    log::info!(
        "portmap ({backend}): {} mapping(s) to {}",
        spec.mappings().count(),
        spec.container.ip()
    );
    match backend {
        PortMapBackend::Iptables => iptables::forward(spec),
        PortMapBackend::Nftables => nftables::forward(spec),
    }
}

/// CHECK of one container address: the reference's test of each backend (every rule present
/// for iptables; enough rules with the container's comment for nftables).
pub fn check_ports(backend: PortMapBackend, spec: &PortMapSpec) -> Result<()> {
    match backend {
        PortMapBackend::Iptables => iptables::check(spec),
        PortMapBackend::Nftables => nftables::check(spec),
    }
}

/// Removes every forwarding rule of the container in `backend`, both families, found by the
/// network and container ID alone (no addresses, no netns). Nothing there is success.
pub fn unforward_ports(backend: PortMapBackend, network: &str, container_id: &str) -> Result<()> {
    match backend {
        PortMapBackend::Iptables => iptables::unforward(network, container_id),
        PortMapBackend::Nftables => nftables::unforward(container_id),
    }
}

/// Removes the forwarding in `backend` of `network`'s containers whose ID is not in `valid`
/// (iptables: the comments name the network; nftables: the network's record of its containers).
pub fn gc_ports(backend: PortMapBackend, network: &str, valid: &[&str]) -> Result<()> {
    match backend {
        PortMapBackend::Iptables => iptables::gc(network, valid),
        PortMapBackend::Nftables => nftables::gc(network, valid),
    }
}

/// Runs `f` for IPv4 and IPv6, ignoring a missing `ip6tables`/IPv6 tool, and collects errors.
fn both_families(mut f: impl FnMut(bool) -> Result<()>) -> Result<()> {
    let mut errors = Vec::new();
    for v6 in [false, true] {
        match f(v6) {
            Ok(()) => {}
            Err(Error::NotAvailable { .. }) if v6 => {
                log::debug!("no IPv6 tool; no IPv6 port mappings to remove")
            }
            Err(e) => errors.push(e),
        }
    }
    Error::collect(errors)
}

/// `ip:port` as both tools write a DNAT destination (`[v6]:port`).
fn ip_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(ip) => format!("{ip}:{port}"),
        IpAddr::V6(ip) => format!("[{ip}]:{port}"),
    }
}
