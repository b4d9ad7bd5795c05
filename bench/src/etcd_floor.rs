//! The etcd floor beside cluster-ipam's ADD: the same request bytes, sent by a process that
//! does nothing else (`src/bin/cni-bench-etcd-floor.rs`). What that process takes, from
//! fork to reap, is what any etcd client in a one-call process pays: process start, a fresh
//! connection and etcd's answer. cluster-ipam's ADD less the floor is what our plugin adds.
//!
//! The bytes are recorded from a real ADD through a relay on loopback that passes
//! everything on both ways and keeps what the plugin sent.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

use crate::http2_frame::{END_STREAM_OR_ACK, FrameHeader, HEADER_LEN, HEADERS, PING, SETTINGS};

/// The HTTP/2 client preface (RFC 9113, section 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long the relay waits for the plugin to connect.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `call` with the endpoint (`http://127.0.0.1:port`) of a relay to etcd at `upstream`
/// (`host:port`), and returns the client's first request as sent: the preface and its
/// frames up to the end of stream 1, acknowledgements of the server's frames left out (the
/// replay does not wait for those). Fails unless that request was the only one: the floor
/// is for an ADD of one round trip.
pub fn record_first_request(
    upstream: &str,
    call: impl FnOnce(&str) -> Result<()>,
) -> Result<Vec<u8>> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the relay")?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let upstream = upstream.to_owned();
    let relay = thread::spawn(move || relay_one_connection(&listener, &upstream));
    call(&endpoint)?;
    let sent = relay
        .join()
        .map_err(|_| anyhow!("the relay thread panicked"))??;
    first_request(&sent)
}

/// Accepts one client, relays it to `upstream` until it closes, and returns what it sent.
fn relay_one_connection(listener: &TcpListener, upstream: &str) -> Result<Vec<u8>> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + ACCEPT_TIMEOUT;
    let mut client = loop {
        match listener.accept() {
            Ok((client, _)) => break client,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e).context("waiting for cluster-ipam to connect to the relay"),
        }
    };
    client.set_nonblocking(false)?;
    let server =
        TcpStream::connect(upstream).with_context(|| format!("connecting to {upstream}"))?;
    let (mut from_server, mut to_client) = (server.try_clone()?, client.try_clone()?);
    let answers = thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
    });
    let mut to_server = server;
    let mut sent = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = client.read(&mut chunk).context("relaying")?;
        if n == 0 {
            break;
        }
        sent.extend_from_slice(&chunk[..n]);
        to_server.write_all(&chunk[..n]).context("relaying")?;
    }
    // The plugin is gone: closing etcd's side ends the other direction's copy.
    let _ = to_server.shutdown(Shutdown::Both);
    let _ = answers.join();
    Ok(sent)
}

/// The preface and the frames of the first request, as described at
/// [`record_first_request`].
fn first_request(sent: &[u8]) -> Result<Vec<u8>> {
    ensure!(sent.starts_with(PREFACE), "the client did not speak HTTP/2");
    let mut request = PREFACE.to_vec();
    let mut rest = &sent[PREFACE.len()..];
    let mut ended = false;
    while let Some(header) = FrameHeader::parse(rest) {
        let frame = rest
            .get(..HEADER_LEN + header.length)
            .context("a truncated HTTP/2 frame")?;
        rest = &rest[frame.len()..];
        let acknowledgement =
            matches!(header.kind, SETTINGS | PING) && header.flags & END_STREAM_OR_ACK != 0;
        if ended {
            if header.kind == HEADERS {
                bail!(
                    "cluster-ipam's ADD sent a second request (stream {}): the floor replays an ADD of one round trip",
                    header.stream
                );
            }
        } else if !acknowledgement {
            request.extend_from_slice(frame);
            ended = header.stream == 1 && header.ends_stream();
        }
    }
    ensure!(ended, "the recorded request never ended");
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http2_frame::DATA;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let length = payload.len().to_be_bytes();
        let mut frame = vec![length[5], length[6], length[7], kind, flags];
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn the_first_request_keeps_its_frames_and_drops_acknowledgements() {
        let settings = frame(SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 0]);
        let headers = frame(HEADERS, 0x4, 1, b"hpack");
        let data = frame(DATA, END_STREAM_OR_ACK, 1, b"grpc");
        let sent = [
            PREFACE.to_vec(),
            settings.clone(),
            headers.clone(),
            frame(SETTINGS, END_STREAM_OR_ACK, 0, &[]),
            frame(PING, END_STREAM_OR_ACK, 0, &[0; 8]),
            data.clone(),
            frame(PING, END_STREAM_OR_ACK, 0, &[1; 8]),
        ]
        .concat();
        let expected = [PREFACE.to_vec(), settings, headers, data].concat();
        assert_eq!(first_request(&sent).unwrap(), expected);
    }

    #[test]
    fn a_second_request_or_an_unfinished_one_is_refused() {
        let one = [
            PREFACE.to_vec(),
            frame(HEADERS, 0x4, 1, b"hpack"),
            frame(DATA, END_STREAM_OR_ACK, 1, b"grpc"),
        ]
        .concat();
        let two = [one.clone(), frame(HEADERS, 0x4, 3, b"hpack")].concat();
        let error = first_request(&two).unwrap_err().to_string();
        assert!(error.contains("second request"), "{error}");
        let unfinished = &one[..one.len() - 13];
        assert!(first_request(unfinished).is_err());
        assert!(first_request(b"GET / HTTP/1.1\r\n").is_err());
    }
}
