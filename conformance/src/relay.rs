//! A TCP relay from a lab namespace's loopback to a server in the test's own namespace.
//!
//! Plugins run in a lab host namespace, whose `127.0.0.1` is its own; the etcd that
//! cluster-ipam talks to runs on the test process's loopback (see [`crate::EtcdCluster`]).
//! The relay's listening socket is made inside the lab namespace (a socket stays in the
//! namespace it was created in), and every connection to it is forwarded to the target
//! from the test process, so no interface of the machine is touched.

use crate::Netns;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

/// A running relay; it stops accepting when dropped (open connections end with their peers).
pub struct LoopbackRelay {
    port: u16,
    stop: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl LoopbackRelay {
    /// Listens on a free port of `netns`'s `127.0.0.1` and forwards to `target`.
    ///
    /// # Panics
    /// If the listening socket cannot be made.
    pub fn new(netns: &Netns, target: SocketAddr) -> LoopbackRelay {
        netns.bring_up_loopback();
        let listener = netns
            .run_inside(|| TcpListener::bind("127.0.0.1:0"))
            .unwrap_or_else(|e| panic!("cannot listen on 127.0.0.1 in {}: {e}", netns.name()));
        let port = listener.local_addr().expect("a bound listener").port();
        // Non-blocking, so the acceptor notices `stop` without a connection to wake it.
        listener
            .set_nonblocking(true)
            .expect("cannot make the relay's listener non-blocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let acceptor = thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((inbound, _)) => forward(inbound, target),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => return,
                }
            }
        });
        LoopbackRelay {
            port,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// The URL to give a plugin in the lab namespace, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `https://127.0.0.1:PORT`, for a target that serves TLS: the relay passes the bytes
    /// through, so the client checks the target's certificate, which must name 127.0.0.1.
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

/// Copies both directions of one connection on two threads; a refused target closes
/// the inbound side at once, as an unreachable server would.
fn forward(inbound: TcpStream, target: SocketAddr) {
    let Ok(outbound) = TcpStream::connect(target) else {
        return;
    };
    let _ = inbound.set_nonblocking(false);
    for (mut from, mut to) in [
        (inbound.try_clone(), outbound.try_clone()),
        (Ok(outbound), Ok(inbound)),
    ]
    .into_iter()
    .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
    {
        thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    }
}

impl Drop for LoopbackRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}
