//! IP addresses on links: add, delete, list.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags as NlAddressFlags, AddressHeaderFlags, AddressMessage,
};
use rtnetlink::AddressMessageBuilder;

use crate::error::Result;
use crate::handle::Handle;
use crate::route::Scope;

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

impl Address {
    fn from_message(msg: AddressMessage) -> Option<Address> {
        let mut local = None;
        let mut address = None;
        // IFA_FLAGS (32 bits) supersedes the 8-bit header field when present.
        let mut flags = NlAddressFlags::from_bits_truncate(u32::from(msg.header.flags.bits()));
        for attr in msg.attributes {
            match attr {
                AddressAttribute::Local(ip) => local = Some(ip),
                AddressAttribute::Address(ip) => address = Some(ip),
                AddressAttribute::Flags(f) => flags = f,
                _ => {}
            }
        }
        // For IPv4, IFA_LOCAL is the interface's own address and IFA_ADDRESS the peer on
        // point-to-point links; IPv6 sends only IFA_ADDRESS (iproute2 prefers LOCAL too).
        let ip: IpAddr = local.or(address)?;
        let network = IpNetwork::new(ip, msg.header.prefix_len).ok()?;
        Some(Address {
            index: msg.header.index,
            network,
            scope: msg.header.scope.into(),
            flags: AddressFlags {
                tentative: flags.contains(NlAddressFlags::Tentative),
                dadfailed: flags.contains(NlAddressFlags::Dadfailed),
                permanent: flags.contains(NlAddressFlags::Permanent),
                nodad: flags.contains(NlAddressFlags::Nodad),
                secondary: flags.contains(NlAddressFlags::Secondary),
                deprecated: flags.contains(NlAddressFlags::Deprecated),
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
            .into_iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewAddress(msg) => Address::from_message(msg),
                _ => None,
            })
            .filter(|addr| index.is_none_or(|i| addr.index == i))
            .collect())
    }
}
