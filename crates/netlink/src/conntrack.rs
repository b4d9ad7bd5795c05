//! Deleting connection-tracking entries over `NETLINK_NETFILTER` (ctnetlink,
//! `linux/netfilter/nfnetlink_conntrack.h`), in the calling thread's netns.
//!
//! One dump of the family's table, then one delete per matching entry, each naming the
//! entry by its original tuple (copied from the dump), zone and ID; the filter runs here,
//! so it works on kernels whose ctnetlink cannot filter. Requests and replies are written
//! and read by hand like the rtnetlink replies (`wire.rs`): a few attributes, no library.

use netlink_sys::protocols::NETLINK_NETFILTER;

use crate::error::{Error, Result};
use crate::route::IpFamily;
use crate::socket::{Request, Socket};
use crate::wire;

/// `NFNL_SUBSYS_CTNETLINK`: the message type is `subsystem << 8 | message`.
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
/// `enum ctattr_type`.
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
/// `enum ctattr_tuple`.
const CTA_TUPLE_PROTO: u16 = 2;
/// `enum ctattr_l4proto`.
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const IPPROTO_UDP: u8 = 17;
const NLA_F_NESTED: u16 = 0x8000;
const ENOENT: i32 = 2;

/// One tracked flow, as much of it as selecting and deleting it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The transport protocol number of the original direction.
    pub(crate) protocol: u8,
    /// The original direction's destination port, if the protocol has ports.
    pub(crate) dst_port: Option<u16>,
    /// The `CTA_TUPLE_ORIG` value, sent back verbatim to name the entry.
    tuple: Vec<u8>,
    /// The `CTA_ZONE` and `CTA_ID` values, sent back with it when present.
    zone: Option<Vec<u8>>,
    id: Option<Vec<u8>>,
}

impl Entry {
    /// An `IPCTNL_MSG_CT_NEW` body from a dump (after the netlink header); `None` if it
    /// has no original tuple.
    pub(crate) fn decode(body: &[u8]) -> Option<Entry> {
        let (_, attributes) = wire::split_header::<{ wire::NFGENMSG_LEN }>(body)?;
        let mut tuple = None;
        let (mut zone, mut id) = (None, None);
        for (kind, value) in wire::attrs(attributes) {
            match kind {
                CTA_TUPLE_ORIG => tuple = Some(value),
                CTA_ZONE => zone = Some(value.to_vec()),
                CTA_ID => id = Some(value.to_vec()),
                _ => {}
            }
        }
        let tuple = tuple?;
        let proto = wire::attrs(tuple)
            .find(|&(kind, _)| kind == CTA_TUPLE_PROTO)?
            .1;
        let mut protocol = None;
        let mut dst_port = None;
        for (kind, value) in wire::attrs(proto) {
            match kind {
                CTA_PROTO_NUM => protocol = wire::u8_value(value),
                CTA_PROTO_DST_PORT => {
                    dst_port = value.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
                }
                _ => {}
            }
        }
        Some(Entry {
            protocol: protocol?,
            dst_port,
            tuple: tuple.to_vec(),
            zone,
            id,
        })
    }

    /// The `IPCTNL_MSG_CT_DELETE` body naming this entry.
    pub(crate) fn delete_body(&self, family: u8) -> Vec<u8> {
        let mut body = wire::nfgenmsg(family);
        wire::push_attr(&mut body, CTA_TUPLE_ORIG | NLA_F_NESTED, &self.tuple);
        for (kind, value) in [(CTA_ZONE, &self.zone), (CTA_ID, &self.id)] {
            if let Some(value) = value {
                wire::push_attr(&mut body, kind, value);
            }
        }
        body
    }
}

fn message_type(message: u16) -> u16 {
    NFNL_SUBSYS_CTNETLINK << 8 | message
}

fn af(family: IpFamily) -> u8 {
    match family {
        IpFamily::V4 => libc::AF_INET as u8,
        IpFamily::V6 => libc::AF_INET6 as u8,
    }
}

/// Deletes the calling thread's netns's `family` conntrack entries of UDP flows whose
/// original destination port is one of `ports`, and returns how many it deleted. An entry
/// that expires between the dump and its delete is not an error.
pub fn delete_udp_entries(family: IpFamily, ports: &[u16]) -> Result<usize> {
    let object = format!("UDP to ports {ports:?}");
    if ports.is_empty() {
        return Ok(0);
    }
    let sock = Socket::open(NETLINK_NETFILTER)
        .map_err(|source| Error::io("open netfilter netlink socket", "", source))?;
    let family = af(family);
    let dump = Request::Raw {
        kind: message_type(IPCTNL_MSG_CT_GET),
        body: wire::nfgenmsg(family),
    };
    let mut deleted = 0;
    for reply in sock.dump("list conntrack entries", &object, dump)? {
        let Some(entry) = Entry::decode(&reply.body) else {
            continue;
        };
        let matches = entry.protocol == IPPROTO_UDP
            && entry.dst_port.is_some_and(|port| ports.contains(&port));
        if !matches {
            continue;
        }
        let delete = Request::Raw {
            kind: message_type(IPCTNL_MSG_CT_DELETE),
            body: entry.delete_body(family),
        };
        match sock.change("delete conntrack entry", &object, delete, 0) {
            Ok(()) => deleted += 1,
            Err(Error::Kernel { errno: ENOENT, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::tlv;

    /// A dumped UDP entry 10.0.0.1:1234 -> 10.0.0.2:53 as the kernel lays it out.
    fn dumped() -> Vec<u8> {
        let ip = [
            tlv(1, &[10, 0, 0, 1]), // CTA_IP_V4_SRC
            tlv(2, &[10, 0, 0, 2]), // CTA_IP_V4_DST
        ]
        .concat();
        let proto = [
            tlv(CTA_PROTO_NUM, &[IPPROTO_UDP]),
            tlv(2, &1234u16.to_be_bytes()),
            tlv(CTA_PROTO_DST_PORT, &53u16.to_be_bytes()),
        ]
        .concat();
        let tuple = [
            tlv(1 | NLA_F_NESTED, &ip),
            tlv(CTA_TUPLE_PROTO | NLA_F_NESTED, &proto),
        ]
        .concat();
        [
            wire::nfgenmsg(libc::AF_INET as u8),
            tlv(CTA_TUPLE_ORIG | NLA_F_NESTED, &tuple),
            tlv(2 | NLA_F_NESTED, &tuple), // CTA_TUPLE_REPLY
            tlv(CTA_ID, &7u32.to_be_bytes()),
        ]
        .concat()
    }

    #[test]
    fn decodes_a_dumped_entry_and_names_it_back() {
        let body = dumped();
        let entry = Entry::decode(&body).unwrap();
        assert_eq!((entry.protocol, entry.dst_port), (IPPROTO_UDP, Some(53)));
        // The delete repeats the original tuple and the ID, not the reply tuple.
        let orig = tlv(CTA_TUPLE_ORIG | NLA_F_NESTED, &entry.tuple);
        let expected = [
            wire::nfgenmsg(2),
            orig.clone(),
            tlv(CTA_ID, &7u32.to_be_bytes()),
        ]
        .concat();
        assert_eq!(entry.delete_body(2), expected);
        assert_eq!(
            &body[wire::NFGENMSG_LEN..wire::NFGENMSG_LEN + orig.len()],
            &orig[..]
        );
        assert_eq!(message_type(IPCTNL_MSG_CT_DELETE), 0x102);
    }

    #[test]
    fn truncated_entries_decode_as_absent_or_partial_without_panicking() {
        let body = dumped();
        for cut in 0..body.len() {
            let _ = Entry::decode(&body[..cut]);
        }
        assert_eq!(Entry::decode(&body[..wire::NFGENMSG_LEN]), None);
    }
}
