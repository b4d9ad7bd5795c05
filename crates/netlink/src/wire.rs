//! Reading netlink replies: the fixed header of each message kind and a walker over its
//! attributes (`struct nlattr` TLVs, `linux/netlink.h`); and writing attributes, for the
//! requests built by hand.
//!
//! Replies are decoded here by hand instead of with `netlink-packet-route`'s parsers:
//! those parse every attribute of every message kind the kernel can send (traffic
//! control, every link type's info data…), about 400 KB of machine code in each plugin,
//! for the dozen attributes we read. Requests are still built with its types.
//! Everything here reads from untrusted bytes and never panics: a short or malformed
//! value reads as absent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Attribute type bits; the top two are `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER`.
const NLA_TYPE_MASK: u16 = 0x3fff;
/// Size of `struct nlattr`.
const NLA_HDRLEN: usize = 4;

/// Netlink lengths are padded to 4 bytes (`NLMSG_ALIGN`, `NLA_ALIGN`).
pub(crate) fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// The attributes of `bytes`, as (type without flag bits, value). Stops at the first
/// malformed one.
pub(crate) fn attrs(bytes: &[u8]) -> Attrs<'_> {
    Attrs {
        rest: bytes,
        type_mask: NLA_TYPE_MASK,
    }
}

/// [`attrs`] with each type's flag bits kept (`NLA_F_NESTED` tells a nested value).
pub(crate) fn attrs_with_flags(bytes: &[u8]) -> Attrs<'_> {
    Attrs {
        rest: bytes,
        type_mask: u16::MAX,
    }
}

/// Iterator over netlink attributes; see [`attrs`].
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
    type_mask: u16,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let len = usize::from(u16_value(self.rest)?);
        let kind = u16_value(self.rest.get(2..)?)? & self.type_mask;
        let Some(value) = self.rest.get(NLA_HDRLEN..len) else {
            self.rest = &[];
            return None;
        };
        self.rest = self.rest.get(align4(len)..).unwrap_or_default();
        Some((kind, value))
    }
}

/// Appends one attribute, padded to 4 bytes. `kind` may carry `NLA_F_NESTED`.
pub(crate) fn push_attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = u16::try_from(NLA_HDRLEN + value.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(align4(out.len()), 0);
}

/// Splits a message body into its fixed header of `N` bytes and its attributes.
/// `struct nfgenmsg`, the header of every `NETLINK_NETFILTER` message: family, version
/// (`NFNETLINK_V0`), resource ID (big endian, 0).
pub(crate) const NFGENMSG_LEN: usize = 4;

/// An `nfgenmsg` for `family`, the start of a netfilter request body.
pub(crate) fn nfgenmsg(family: u8) -> Vec<u8> {
    vec![family, 0, 0, 0]
}

pub(crate) fn split_header<const N: usize>(body: &[u8]) -> Option<(&[u8; N], &[u8])> {
    let header = body.get(..N)?.try_into().ok()?;
    Some((header, body.get(align4(N)..).unwrap_or_default()))
}

/// The first byte of a value.
pub(crate) fn u8_value(value: &[u8]) -> Option<u8> {
    value.first().copied()
}

/// A native-endian u16 at the start of a value.
pub(crate) fn u16_value(value: &[u8]) -> Option<u16> {
    Some(u16::from_ne_bytes(value.get(..2)?.try_into().ok()?))
}

/// A native-endian u32 at the start of a value.
pub(crate) fn u32_value(value: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(value.get(..4)?.try_into().ok()?))
}

/// A native-endian i32 at the start of a value.
pub(crate) fn i32_value(value: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(value.get(..4)?.try_into().ok()?))
}

/// A NUL-terminated string value (interface names, link kinds).
pub(crate) fn string_value(value: &[u8]) -> Option<String> {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    std::str::from_utf8(&value[..end]).ok().map(str::to_owned)
}

/// An address value: 4 bytes are IPv4, 16 are IPv6, anything else is not an IP.
pub(crate) fn ip_value(value: &[u8]) -> Option<IpAddr> {
    if let Ok(octets) = <[u8; 4]>::try_from(value) {
        Some(IpAddr::V4(Ipv4Addr::from(octets)))
    } else {
        <[u8; 16]>::try_from(value)
            .ok()
            .map(|octets| IpAddr::V6(Ipv6Addr::from(octets)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One attribute as the kernel lays it out, padding included.
    pub(crate) fn tlv(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_attr(&mut out, kind, value);
        out
    }

    #[test]
    fn walks_padded_and_nested_flagged_attributes() {
        let mut bytes = tlv(3, b"eth0\0");
        bytes.extend(tlv(0x8000 | 18, &tlv(1, b"veth\0")));
        bytes.extend(tlv(4, &1500u32.to_ne_bytes()));
        let got: Vec<_> = attrs(&bytes).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (3, &b"eth0\0"[..]));
        assert_eq!(got[1].0, 18, "NLA_F_NESTED is masked off");
        assert_eq!(
            string_value(attrs(got[1].1).next().unwrap().1).unwrap(),
            "veth"
        );
        assert_eq!(u32_value(got[2].1), Some(1500));
    }

    #[test]
    fn the_last_attribute_may_lack_its_padding() {
        let mut bytes = tlv(16, &[6]);
        bytes.truncate(5);
        assert_eq!(attrs(&bytes).collect::<Vec<_>>(), vec![(16, &[6u8][..])]);
    }

    #[test]
    fn garbage_stops_the_walk_without_panicking() {
        let good = tlv(1, &[1, 2, 3, 4]);
        for cut in 0..good.len() - 1 {
            // A length that runs past the end, or is shorter than a header.
            let _ = attrs(&good[..cut]).count();
        }
        let mut bad_len = good.clone();
        bad_len[0] = 2;
        assert_eq!(attrs(&bad_len).count(), 0);
        bad_len[0] = 200;
        assert_eq!(attrs(&bad_len).count(), 0);
        assert_eq!(attrs(&[]).count(), 0);
        assert_eq!(u32_value(&[1, 2]), None);
        assert_eq!(ip_value(&[1, 2, 3]), None);
        assert_eq!(split_header::<16>(&[0; 8]), None);
    }

    #[test]
    fn values() {
        assert_eq!(string_value(b"br0\0\0\0"), Some("br0".into()));
        assert_eq!(string_value(b"br0"), Some("br0".into()));
        assert_eq!(ip_value(&[10, 0, 0, 1]), Some("10.0.0.1".parse().unwrap()));
        let v6: Ipv6Addr = "fd00::1".parse().unwrap();
        assert_eq!(ip_value(&v6.octets()), Some(IpAddr::V6(v6)));
        assert_eq!(i32_value(&(-3i32).to_ne_bytes()), Some(-3));
        let (header, rest) = split_header::<8>(&[1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
        assert_eq!(header, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(rest, &[9]);
    }
}
