//! Per-netns IP settings over rtnetlink (`RTM_GETNETCONF`, `linux/netconf.h`).
//!
//! Why not `/proc/sys`: a sysctl open from an old netns (the host's, on a node) walks a
//! dcache chain with an entry per netns made since (see `sysctl.rs`); this is one request.

use crate::error::Result;
use crate::handle::Handle;
use crate::socket::Request;
use crate::wire;

const RTM_GETNETCONF: u16 = 82;
/// `enum netconfa_*`.
const NETCONFA_IFINDEX: u16 = 1;
const NETCONFA_FORWARDING: u16 = 2;
/// `NETCONFA_IFINDEX_ALL`: the `all` settings, which `net.ipv4.ip_forward` reads and writes.
const IFINDEX_ALL: i32 = -1;
/// `struct netconfmsg` (one family byte), padded to 4 bytes.
const NETCONFMSG_LEN: usize = 4;

/// `NETCONFA_FORWARDING` of a `RTM_NEWNETCONF` body, if present.
fn forwarding(body: &[u8]) -> Option<bool> {
    let (_, attributes) = wire::split_header::<NETCONFMSG_LEN>(body)?;
    wire::attrs(attributes)
        .find(|&(kind, _)| kind == NETCONFA_FORWARDING)
        .and_then(|(_, value)| wire::i32_value(value))
        .map(|on| on != 0)
}

impl Handle {
    /// Whether IPv4 forwarding is on in the handle's netns (`net.ipv4.ip_forward`).
    pub fn ipv4_forwarding(&self) -> Result<bool> {
        let mut body = vec![libc::AF_INET as u8, 0, 0, 0];
        wire::push_attr(&mut body, NETCONFA_IFINDEX, &IFINDEX_ALL.to_ne_bytes());
        let request = Request::Raw {
            kind: RTM_GETNETCONF,
            body,
        };
        let reply = self.sock.get("get netconf", "ipv4 all", request)?;
        Ok(forwarding(&reply.body).unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::tlv;

    #[test]
    fn reads_forwarding() {
        let body = |on: i32| {
            [
                vec![2, 0, 0, 0],
                tlv(NETCONFA_IFINDEX, &IFINDEX_ALL.to_ne_bytes()),
                tlv(NETCONFA_FORWARDING, &on.to_ne_bytes()),
            ]
            .concat()
        };
        assert_eq!(forwarding(&body(1)), Some(true));
        assert_eq!(forwarding(&body(0)), Some(false));
        assert_eq!(forwarding(&[2, 0, 0, 0]), None);
        assert_eq!(forwarding(&[2]), None);
    }
}
