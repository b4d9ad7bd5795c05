//! The HTTP/2 frame header (RFC 9113, section 4.1), as much of it as the etcd floor needs:
//! `etcd_floor.rs` cuts a recorded request into frames, `cni-bench-etcd-floor` reads the
//! answer's.

#![allow(
    dead_code,
    reason = "included by two binaries, each of which uses part of it"
)]

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
/// END_STREAM on DATA and HEADERS, ACK on SETTINGS and PING: the same bit.
pub const END_STREAM_OR_ACK: u8 = 0x1;
pub const PADDED: u8 = 0x8;
pub const HEADER_LEN: usize = 9;

pub struct FrameHeader {
    /// The payload's length, without these 9 bytes.
    pub length: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl FrameHeader {
    /// The header at the start of `bytes`, if all 9 bytes are there.
    pub fn parse(bytes: &[u8]) -> Option<FrameHeader> {
        let h = bytes.get(..HEADER_LEN)?;
        Some(FrameHeader {
            length: usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]),
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        })
    }

    /// Whether this frame ends its stream (a DATA or HEADERS frame with END_STREAM).
    pub fn ends_stream(&self) -> bool {
        matches!(self.kind, DATA | HEADERS) && self.flags & END_STREAM_OR_ACK != 0
    }
}
