//! The etcd floor of a cluster-ipam ADD: a process that does nothing but open a fresh
//! connection to etcd, send the bytes cluster-ipam's ADD sent before its first read (the
//! HTTP/2 preface, settings and one gRPC `Txn` request, recorded by `cni-bench`), and wait
//! for the answer. No configuration to parse, no client library: what is left is process
//! start, the connection and etcd's own work, which any client pays.
//!
//! stdin: the endpoint (`host:port`) on the first line, then the recorded bytes. Exits 0
//! when the transaction succeeded, 1 when its compares failed, 2 on any other problem.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

#[path = "../http2_frame.rs"]
mod http2_frame;

use http2_frame::{DATA, FrameHeader, HEADER_LEN, PADDED};

/// The recorded request is the client's first, so it is on stream 1.
const STREAM: u32 = 1;

fn main() -> ExitCode {
    match replay() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(problem) => {
            eprintln!("cni-bench-etcd-floor: {problem}");
            ExitCode::from(2)
        }
    }
}

/// Sends the request and tells whether etcd's `TxnResponse` says `succeeded`.
fn replay() -> Result<bool, String> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| format!("reading stdin: {e}"))?;
    let newline = input
        .iter()
        .position(|b| *b == b'\n')
        .ok_or("stdin holds no endpoint line")?;
    let endpoint = std::str::from_utf8(&input[..newline]).map_err(|e| e.to_string())?;
    let mut stream =
        TcpStream::connect(endpoint).map_err(|e| format!("connecting to {endpoint}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .write_all(&input[newline + 1..])
        .map_err(|e| format!("sending: {e}"))?;
    let message = read_response(&mut stream)?;
    // The gRPC message: 1 byte compression flag, 4 bytes length, then the protobuf.
    let txn_response = message.get(5..).ok_or("no gRPC message in the answer")?;
    succeeded(txn_response)
}

/// The DATA payloads of stream 1 up to its end (etcd's answer, trailers not decoded).
fn read_response(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut received = Vec::new();
    let mut message = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut at = 0;
    loop {
        // Whole frames first, then read more.
        while let Some(header) = received.get(at..).and_then(FrameHeader::parse) {
            let start = at + HEADER_LEN;
            let Some(payload) = received.get(start..start + header.length) else {
                break;
            };
            if header.stream == STREAM && header.kind == DATA {
                message.extend_from_slice(unpadded(payload, header.flags)?);
            }
            if header.stream == STREAM && header.ends_stream() {
                return Ok(message);
            }
            at = start + header.length;
        }
        let n = stream
            .read(&mut chunk)
            .map_err(|e| format!("receiving: {e}"))?;
        if n == 0 {
            return Err("etcd closed the connection before answering".into());
        }
        received.extend_from_slice(&chunk[..n]);
    }
}

/// A DATA frame's payload without its padding.
fn unpadded(payload: &[u8], flags: u8) -> Result<&[u8], String> {
    if flags & PADDED == 0 {
        return Ok(payload);
    }
    let (&pad, rest) = payload.split_first().ok_or("empty padded frame")?;
    rest.get(..rest.len().saturating_sub(usize::from(pad)))
        .ok_or_else(|| "bad padding".into())
}

/// `TxnResponse.succeeded` (field 2, a varint; absent means false).
fn succeeded(mut protobuf: &[u8]) -> Result<bool, String> {
    while !protobuf.is_empty() {
        let key = varint(&mut protobuf)?;
        let (field, wire_type) = (key >> 3, key & 7);
        match wire_type {
            0 => {
                let value = varint(&mut protobuf)?;
                if field == 2 {
                    return Ok(value != 0);
                }
            }
            2 => {
                let length = usize::try_from(varint(&mut protobuf)?).map_err(|e| e.to_string())?;
                protobuf = protobuf.get(length..).ok_or("truncated field")?;
            }
            other => return Err(format!("unexpected wire type {other} in TxnResponse")),
        }
    }
    Ok(false)
}

fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or("truncated varint")?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}
