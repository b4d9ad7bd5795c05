//! IP addresses on links: add, delete, list.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressHeaderFlags, AddressMessage};
use rtnetlink::AddressMessageBuilder;

use crate::error::Result;
use crate::handle::Handle;
use crate::route::Scope;
use crate::wire;

/// Options for [`Handle::add_address`].
#[derive(Clone, Copy, Debug, Default)]
pub struct AddressOptions {
    /// Skip IPv6 duplicate address detection (`IFA_F_NODAD`), so the address is usable at
    /// once instead of TENTATIVE for about a second.
    pub nodad: bool,
}

/// Address flags as the kernel reports them (`IFA_F_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AddressFlags {
    /// IPv6 DAD still running; the address cannot be used as a source yet.
    pub tentative: bool,
    /// IPv6 DAD found a duplicate.
    pub dadfailed: bool,
    /// Configured (not autoconfigured with a lifetime).
    pub permanent: bool,
    /// Added with DAD turned off.
    pub nodad: bool,
    /// A secondary IPv4 address in an already covered subnet.
    pub secondary: bool,
    /// Preferred lifetime over.
    pub deprecated: bool,
}

/// An IP address on a link (`RTM_NEWADDR`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Address {
    /// Index of the link holding it.
    pub index: u32,
    /// Address and prefix length, host bits kept (`10.1.2.3/24`).
    pub network: IpNetwork,
    /// Scope (`host` for 127.0.0.1, `link` for fe80::/64…).
    pub scope: Scope,
    /// Flags.
    pub flags: AddressFlags,
}

fn address_message(index: u32, network: IpNetwork) -> AddressMessage {
    match network {
        IpNetwork::V4(net) => AddressMessageBuilder::<std::net::Ipv4Addr>::new()
            .index(index)
            .address(net.ip(), net.prefix())
            .build(),
        IpNetwork::V6(net) => AddressMessageBuilder::<std::net::Ipv6Addr>::new()
            .index(index)
            .address(net.ip(), net.prefix())
            .build(),
    }
}

fn address_object(index: u32, network: &IpNetwork) -> String {
    format!("address {network} on link index {index}")
}

/// `RTM_NEWADDR`, the kernel's reply to an address dump.
const RTM_NEWADDR: u16 = 20;
/// Size of `struct ifaddrmsg`.
const IFADDRMSG_LEN: usize = 8;
// Address attributes and flags we read (`linux/if_addr.h`).
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_F_SECONDARY: u32 = 0x01;
const IFA_F_NODAD: u32 = 0x02;
const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_DEPRECATED: u32 = 0x20;
const IFA_F_TENTATIVE: u32 = 0x40;
const IFA_F_PERMANENT: u32 = 0x80;

impl Address {
    /// Decodes an `RTM_NEWADDR` body; `None` when it is malformed or has no address.
    pub(crate) fn decode(body: &[u8]) -> Option<Address> {
        let (header, attributes) = wire::split_header::<IFADDRMSG_LEN>(body)?;
        let [_family, prefix_len, header_flags, scope, ..] = *header;
        let mut local = None;
        let mut address = None;
        // IFA_FLAGS (32 bits) supersedes the 8-bit header field when present.
        let mut flags = u32::from(header_flags);
        for (kind, value) in wire::attrs(attributes) {
            match kind {
                IFA_LOCAL => local = wire::ip_value(value),
                IFA_ADDRESS => address = wire::ip_value(value),
                IFA_FLAGS => flags = wire::u32_value(value).unwrap_or(flags),
                _ => {}
            }
        }
        // For IPv4, IFA_LOCAL is the interface's own address and IFA_ADDRESS the peer on
        // point-to-point links; IPv6 sends only IFA_ADDRESS (iproute2 prefers LOCAL too).
        let ip: IpAddr = local.or(address)?;
        let network = IpNetwork::new(ip, prefix_len).ok()?;
        let has = |flag: u32| flags & flag != 0;
        Some(Address {
            index: u32::from_ne_bytes([header[4], header[5], header[6], header[7]]),
            network,
            scope: scope.into(),
            flags: AddressFlags {
                tentative: has(IFA_F_TENTATIVE),
                dadfailed: has(IFA_F_DADFAILED),
                permanent: has(IFA_F_PERMANENT),
                nodad: has(IFA_F_NODAD),
                secondary: has(IFA_F_SECONDARY),
                deprecated: has(IFA_F_DEPRECATED),
            },
        })
    }
}

impl Handle {
    /// Adds an address to a link (`NLM_F_CREATE | NLM_F_EXCL`, like `ip addr add`: an
    /// address already there is [`crate::Error::is_exists`]). IPv4 gets the broadcast
    /// address `ip addr add … brd +` would compute.
    pub fn add_address(
        &self,
        index: u32,
        network: IpNetwork,
        options: AddressOptions,
    ) -> Result<()> {
        let object = address_object(index, &network);
        let mut msg = address_message(index, network);
        if options.nodad {
            msg.header.flags |= AddressHeaderFlags::Nodad;
        }
        self.sock.change(
            "add address",
            &object,
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        log::info!("added {object}");
        Ok(())
    }

    /// Removes an address from a link. A missing one is [`crate::Error::is_not_found`]
    /// (EADDRNOTAVAIL).
    pub fn del_address(&self, index: u32, network: IpNetwork) -> Result<()> {
        let object = address_object(index, &network);
        let msg = address_message(index, network);
        self.sock.change(
            "delete address",
            &object,
            RouteNetlinkMessage::DelAddress(msg),
            0,
        )?;
        log::info!("deleted {object}");
        Ok(())
    }

    /// The addresses of one link (`Some(index)`) or of every link, IPv4 and IPv6.
    pub fn addresses(&self, index: Option<u32>) -> Result<Vec<Address>> {
        let mut request = AddressMessage::default();
        // With NETLINK_GET_STRICT_CHK the kernel filters on ifa_index; older kernels
        // ignore it, so we filter again below.
        request.header.index = index.unwrap_or(0);
        let object = index
            .map(|i| format!("on link index {i}"))
            .unwrap_or_default();
        let replies = self.sock.dump(
            "dump addresses",
            &object,
            RouteNetlinkMessage::GetAddress(request),
        )?;
        Ok(replies
            .iter()
            .filter(|reply| reply.kind == RTM_NEWADDR)
            .filter_map(|reply| Address::decode(&reply.body))
            .filter(|addr| index.is_none_or(|i| addr.index == i))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::tests::emitted;
    use netlink_packet_route::address::{AddressAttribute, AddressFlags as NlFlags, AddressScope};

    #[test]
    fn decodes_ipv4_local_before_peer_address() {
        let mut msg = address_message(3, "10.1.2.3/24".parse().unwrap());
        msg.attributes
            .retain(|attr| !matches!(attr, AddressAttribute::Address(_)));
        msg.attributes
            .push(AddressAttribute::Address("10.9.9.9".parse().unwrap()));
        msg.header.flags = AddressHeaderFlags::Permanent;
        let addr = Address::decode(&emitted(&msg)).expect("an address");
        assert_eq!(addr.index, 3);
        assert_eq!(addr.network, "10.1.2.3/24".parse::<IpNetwork>().unwrap());
        assert_eq!(addr.scope, Scope::Universe);
        assert!(addr.flags.permanent && !addr.flags.tentative);
    }

    #[test]
    fn ifa_flags_supersede_the_header_byte() {
        let mut msg = address_message(9, "fe80::1/64".parse().unwrap());
        msg.header.scope = AddressScope::Link;
        msg.header.flags = AddressHeaderFlags::Permanent;
        msg.attributes
            .push(AddressAttribute::Flags(NlFlags::Tentative | NlFlags::Nodad));
        let addr = Address::decode(&emitted(&msg)).expect("an address");
        assert_eq!(addr.network, "fe80::1/64".parse::<IpNetwork>().unwrap());
        assert_eq!(addr.scope, Scope::Link);
        assert_eq!(
            addr.flags,
            AddressFlags {
                tentative: true,
                nodad: true,
                ..Default::default()
            }
        );
    }

    #[test]
    fn an_address_message_without_an_address_is_none() {
        let msg = AddressMessage::default();
        assert_eq!(Address::decode(&emitted(&msg)), None);
        assert_eq!(Address::decode(&[1, 2, 3]), None);
    }
}
