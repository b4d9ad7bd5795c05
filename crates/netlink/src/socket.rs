//! A synchronous netlink socket (`NETLINK_ROUTE`, or `NETLINK_NETFILTER` for conntrack and
//! nf_tables): one request (an nf_tables batch is one datagram of messages), then its replies,
//! on the calling thread.
//!
//! This is the only place that reads or writes netlink bytes. It owns the socket care listed
//! in docs/design.md#netlink-socket: `NLM_F_ACK` on every change, sequence numbers checked, the errno and
//! the kernel's extended-ACK text kept, a receive buffer that starts at 32 KiB and grows to
//! the size of the next datagram (peeked with `MSG_PEEK | MSG_TRUNC`), multipart dumps
//! retried on `NLM_F_DUMP_INTR`, and `SO_RCVTIMEO` so no read blocks forever.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::SocketAddr;
use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
use nix::sys::time::TimeVal;

use crate::error::{Error, Result};
use crate::wire;

/// Start size of the receive buffer. The kernel sizes dump datagrams to
/// `max(32 KiB, the reader's buffer)`-ish (`netlink_dump` uses `min_dump_alloc` and
/// `NLMSG_GOODSIZE`), so 32 KiB takes a whole dump datagram in one read in practice.
const RECV_BUF_START: usize = 32 * 1024;

/// How long one read waits for the kernel before giving up.
const RECV_TIMEOUT_SECS: i64 = 10;

/// Go's `pkg/netlinksafe` retries an interrupted dump this many times; so do we.
const DUMP_ATTEMPTS: usize = 5;

/// In an `NLMSG_ERROR`: only the request's header is echoed (we ask for this with
/// `NETLINK_CAP_ACK`) — `NLM_F_CAPPED` in `linux/netlink.h`.
const NLM_F_CAPPED: u16 = 0x100;
/// In an `NLMSG_ERROR`: extended-ACK TLVs follow the echoed request.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSGERR_ATTR_MSG`: the human-readable extended-ACK string.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Size of `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;
/// Control message types (`linux/netlink.h`); everything else is a reply payload.
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;

/// A request: an rtnetlink message built with `netlink-packet-route`, or a message type and
/// its hand-built body (everything after the netlink header).
pub(crate) enum Request {
    Route(RouteNetlinkMessage),
    Raw { kind: u16, body: Vec<u8> },
}

impl Request {
    /// The request's bytes with `NLM_F_REQUEST | flags`; the sequence number is set per send.
    fn encode(self, flags: u16) -> Vec<u8> {
        match self {
            Request::Route(msg) => encode(msg, flags, 0),
            Request::Raw { kind, body } => encode_raw(kind, &body, flags, 0),
        }
    }
}

/// One reply message: its type (`RTM_NEWLINK`…) and the bytes after its netlink header,
/// decoded by the caller (see `wire.rs` for why by hand).
pub(crate) struct Reply {
    pub(crate) kind: u16,
    pub(crate) body: Vec<u8>,
}

/// What a request waits for after sending.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// A change: the kernel's ACK (an `NLMSG_ERROR` with code 0).
    Ack,
    /// A single-object get: one reply message.
    One,
    /// A dump: multipart messages up to `NLMSG_DONE`.
    Dump,
}

struct Inner {
    sock: netlink_sys::Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// One netlink socket, bound to the netns of the thread that opened it.
pub(crate) struct Socket {
    inner: Mutex<Inner>,
    round_trips: AtomicU64,
}

impl Socket {
    /// Opens a socket of `protocol` (`netlink_sys::protocols::NETLINK_*`) in the calling
    /// thread's netns.
    pub(crate) fn open(protocol: isize) -> io::Result<Self> {
        let mut sock = netlink_sys::Socket::new(protocol)?;
        sock.bind_auto()?;
        // Connected to the kernel (port 0), so nothing but kernel replies reaches us.
        sock.connect(&SocketAddr::new(0, 0))?;
        // Best effort: kernels before 4.12 (ext ack) / 4.20 (strict check) refuse these,
        // and everything below works without them (we filter dumps ourselves too).
        for (name, result) in [
            ("NETLINK_EXT_ACK", sock.set_ext_ack(true)),
            ("NETLINK_CAP_ACK", sock.set_cap_ack(true)),
            (
                "NETLINK_GET_STRICT_CHK",
                sock.set_netlink_get_strict_chk(true),
            ),
        ] {
            if let Err(err) = result {
                log::debug!("netlink socket option {name} unavailable: {err}");
            }
        }
        setsockopt(&sock, ReceiveTimeout, &TimeVal::new(RECV_TIMEOUT_SECS, 0))?;
        Ok(Socket {
            inner: Mutex::new(Inner {
                sock,
                seq: 0,
                buf: Vec::with_capacity(RECV_BUF_START),
            }),
            round_trips: AtomicU64::new(0),
        })
    }

    /// Requests sent so far (each is one send and its replies).
    pub(crate) fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Sends a change with `NLM_F_ACK | flags` and waits for the ACK.
    pub(crate) fn change(
        &self,
        op: &'static str,
        object: &str,
        msg: impl Into<Request>,
        flags: u16,
    ) -> Result<()> {
        self.change_with_replies(op, object, msg, flags).map(drop)
    }

    /// [`Socket::change`], also returning the messages answered before the ACK: with
    /// `NLM_F_ECHO` in `flags`, the changed object where the kernel honours that flag.
    pub(crate) fn change_with_replies(
        &self,
        op: &'static str,
        object: &str,
        msg: impl Into<Request>,
        flags: u16,
    ) -> Result<Vec<Reply>> {
        let mut request = msg.into().encode(NLM_F_ACK | flags);
        self.exchange(op, object, &mut request, Expect::Ack)
            .map(|(replies, _)| replies)
    }

    /// Sends already-encoded messages in one datagram (an nf_tables batch) and waits for the
    /// ACK of the one that carries `NLM_F_ACK`, which must be the last one acknowledged: the
    /// kernel answers in message order, so any error of an earlier message arrives first.
    pub(crate) fn change_batch(
        &self,
        op: &'static str,
        object: &str,
        mut messages: Vec<u8>,
    ) -> Result<()> {
        self.exchange(op, object, &mut messages, Expect::Ack)
            .map(drop)
    }

    /// Sends a single-object get and returns the reply.
    pub(crate) fn get(
        &self,
        op: &'static str,
        object: &str,
        msg: impl Into<Request>,
    ) -> Result<Reply> {
        let mut request = msg.into().encode(0);
        let (mut replies, _) = self.exchange(op, object, &mut request, Expect::One)?;
        replies.pop().ok_or_else(|| Error::Protocol {
            op,
            object: object.to_owned(),
            detail: "no reply message".into(),
        })
    }

    /// Dumps, retrying when a concurrent change interrupted the dump (`NLM_F_DUMP_INTR`:
    /// the kernel's generation counter moved, so the result may be inconsistent).
    pub(crate) fn dump(
        &self,
        op: &'static str,
        object: &str,
        msg: impl Into<Request>,
    ) -> Result<Vec<Reply>> {
        let mut request = msg.into().encode(NLM_F_DUMP);
        for attempt in 1..=DUMP_ATTEMPTS {
            let (replies, interrupted) = self.exchange(op, object, &mut request, Expect::Dump)?;
            if !interrupted {
                return Ok(replies);
            }
            log::debug!("{op} {object}: dump interrupted (attempt {attempt}), retrying");
        }
        Err(Error::io(
            op,
            object,
            io::Error::new(
                io::ErrorKind::Interrupted,
                format!("dump interrupted {DUMP_ATTEMPTS} times by concurrent changes"),
            ),
        ))
    }

    fn exchange(
        &self,
        op: &'static str,
        object: &str,
        request: &mut [u8],
        expect: Expect,
    ) -> Result<(Vec<Reply>, bool)> {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner { sock, seq, buf } = &mut *guard;
        *seq = seq.wrapping_add(1);
        let seq = *seq;
        let io_err = |source: io::Error| Error::io(op, object, source);
        let protocol_err = |detail: String| Error::Protocol {
            op,
            object: object.to_owned(),
            detail,
        };

        // Each send gets a new sequence number (`nlmsghdr.nlmsg_seq`), in every message of
        // it: a batch's errors come back under the number of the message that failed.
        let mut offset = 0;
        while let Some(header) = request.get_mut(offset..offset + NLMSG_HDRLEN) {
            header[8..12].copy_from_slice(&seq.to_ne_bytes());
            let len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
            offset += wire::align4(len.max(NLMSG_HDRLEN));
        }
        log::trace!(
            "netlink > seq {seq} type {} flags {:#x} len {}",
            wire::u16_value(request.get(4..).unwrap_or_default()).unwrap_or_default(),
            wire::u16_value(request.get(6..).unwrap_or_default()).unwrap_or_default(),
            request.len()
        );
        sock.send(request, 0).map_err(io_err)?;
        self.round_trips.fetch_add(1, Ordering::Relaxed);

        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            let len = recv_datagram(sock, buf).map_err(io_err)?;
            let mut offset = 0;
            while offset < len {
                let bytes = &buf[offset..len];
                let (header, _) = wire::split_header::<NLMSG_HDRLEN>(bytes)
                    .ok_or_else(|| protocol_err("truncated message header".into()))?;
                let msg_len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]);
                let msg_len = msg_len as usize;
                let kind = u16::from_ne_bytes([header[4], header[5]]);
                let reply_flags = u16::from_ne_bytes([header[6], header[7]]);
                let reply_seq = u32::from_ne_bytes([header[8], header[9], header[10], header[11]]);
                let body = bytes.get(NLMSG_HDRLEN..msg_len).ok_or_else(|| {
                    protocol_err(format!(
                        "message length {msg_len} does not fit the {} bytes received",
                        bytes.len()
                    ))
                })?;
                offset += wire::align4(msg_len);
                if reply_seq != seq {
                    // A late answer to an earlier request that timed out: not ours.
                    log::trace!("netlink < stale seq {reply_seq}");
                    continue;
                }
                match kind {
                    NLMSG_NOOP => {}
                    NLMSG_ERROR => {
                        let code = wire::i32_value(body)
                            .ok_or_else(|| protocol_err("truncated NLMSG_ERROR".into()))?;
                        log::trace!("netlink < seq {seq} error {code}");
                        if code == 0 {
                            return Ok((replies, interrupted));
                        }
                        return Err(Error::Kernel {
                            op,
                            object: object.to_owned(),
                            errno: code.saturating_abs(),
                            ext_ack: parse_ext_ack(&body[4..], reply_flags),
                        });
                    }
                    NLMSG_DONE => {
                        // The error code is absent in dumps from kernels before 2.6.
                        let code = wire::i32_value(body).unwrap_or(0);
                        log::trace!("netlink < seq {seq} done {code}");
                        if code < 0 {
                            return Err(Error::Kernel {
                                op,
                                object: object.to_owned(),
                                errno: code.saturating_abs(),
                                ext_ack: None,
                            });
                        }
                        return Ok((replies, interrupted));
                    }
                    NLMSG_OVERRUN => return Err(protocol_err("receive overrun".into())),
                    _ => {
                        log::trace!("netlink < seq {seq} type {kind} len {msg_len}");
                        interrupted |= reply_flags & NLM_F_DUMP_INTR != 0;
                        replies.push(Reply {
                            kind,
                            body: body.to_vec(),
                        });
                        if expect == Expect::One {
                            return Ok((replies, interrupted));
                        }
                    }
                }
            }
        }
    }
}

/// Serialises `msg` as a request with `NLM_F_REQUEST | flags` and sequence number `seq`.
pub(crate) fn encode(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    packet.finalize();
    let mut bytes = vec![0; packet.buffer_len()];
    packet.serialize(&mut bytes);
    bytes
}

/// A hand-built request: the netlink header (`struct nlmsghdr`), then `body`.
pub(crate) fn encode_raw(kind: u16, body: &[u8], flags: u16, seq: u32) -> Vec<u8> {
    let len = u32::try_from(NLMSG_HDRLEN + body.len()).unwrap_or(u32::MAX);
    let mut bytes = Vec::with_capacity(NLMSG_HDRLEN + body.len());
    bytes.extend_from_slice(&len.to_ne_bytes());
    bytes.extend_from_slice(&kind.to_ne_bytes());
    bytes.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    bytes.extend_from_slice(&seq.to_ne_bytes());
    // Port 0: the kernel fills in ours.
    bytes.extend_from_slice(&0u32.to_ne_bytes());
    bytes.extend_from_slice(body);
    bytes
}

impl From<RouteNetlinkMessage> for Request {
    fn from(msg: RouteNetlinkMessage) -> Self {
        Request::Route(msg)
    }
}

/// Reads one datagram into `buf`, growing it first if the datagram is larger.
fn recv_datagram(sock: &netlink_sys::Socket, buf: &mut Vec<u8>) -> io::Result<usize> {
    loop {
        buf.clear();
        // MSG_TRUNC makes recv return the datagram's real length even when it is larger
        // than the buffer; MSG_PEEK leaves it queued for the real read.
        let peeked = match sock.recv(buf, libc::MSG_PEEK | libc::MSG_TRUNC) {
            Ok(len) => len,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no netlink reply within {RECV_TIMEOUT_SECS} s"),
                ));
            }
            Err(err) => return Err(err),
        };
        if peeked > buf.capacity() {
            buf.reserve(peeked);
        }
        buf.clear();
        match sock.recv(buf, 0) {
            Ok(len) => return Ok(len.min(buf.len())),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
}

/// Extracts `NLMSGERR_ATTR_MSG` from an `NLMSG_ERROR` payload (the bytes after the error
/// code): the echoed request (header only when `NLM_F_CAPPED`), then TLVs when
/// `NLM_F_ACK_TLVS` (`linux/netlink.h`, `netlink_ack`).
pub(crate) fn parse_ext_ack(payload: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        wire::u32_value(payload)? as usize
    };
    let tlvs = payload.get(wire::align4(echoed)..)?;
    wire::attrs(tlvs)
        .find(|&(kind, _)| kind == NLMSGERR_ATTR_MSG)
        .and_then(|(_, text)| wire::string_value(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::tlv;

    #[test]
    fn ext_ack_capped() {
        let mut payload = vec![0u8; NLMSG_HDRLEN];
        payload.extend(tlv(4, &7u32.to_ne_bytes())); // NLMSGERR_ATTR_OFFS comes first
        payload.extend(tlv(NLMSGERR_ATTR_MSG, b"Unknown device type\0"));
        assert_eq!(
            parse_ext_ack(&payload, NLM_F_CAPPED | NLM_F_ACK_TLVS).as_deref(),
            Some("Unknown device type")
        );
        assert_eq!(parse_ext_ack(&payload, NLM_F_CAPPED), None);
    }

    #[test]
    fn ext_ack_uncapped_skips_the_echoed_request() {
        let mut payload = vec![0u8; 24];
        payload[..4].copy_from_slice(&24u32.to_ne_bytes());
        payload.extend(tlv(NLMSGERR_ATTR_MSG, b"hi\0"));
        assert_eq!(
            parse_ext_ack(&payload, NLM_F_ACK_TLVS).as_deref(),
            Some("hi")
        );
        // Truncated or garbage input never panics.
        assert_eq!(parse_ext_ack(&payload[..10], NLM_F_ACK_TLVS), None);
        assert_eq!(parse_ext_ack(&[], NLM_F_ACK_TLVS | NLM_F_CAPPED), None);
    }
}
