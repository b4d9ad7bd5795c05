//! [`Handle`]: one netlink socket bound to one network namespace.

use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::socket::Socket;
use netlink_sys::protocols::NETLINK_ROUTE;

/// A netlink socket bound to one network namespace, usable from any thread.
///
/// The netns is fixed when the socket is opened; every operation through the handle acts
/// on that netns no matter which thread calls it, so plugins never need to `setns` for
/// netlink work (netavark's `open_netlink_sockets`, docs/design.md#a-socket-per-netns). Operations are
/// synchronous: each sends one request and waits for its answer. The handle is `Send +
/// Sync`; concurrent calls are serialised.
pub struct Handle {
    pub(crate) sock: Socket,
}

impl Handle {
    /// A handle on the calling thread's netns.
    pub fn current() -> Result<Self> {
        let sock = Socket::open(NETLINK_ROUTE)
            .map_err(|source| Error::io("open netlink socket", "", source))?;
        Ok(Handle { sock })
    }

    /// A handle on `netns`: the socket is opened inside it (through [`Netns::run`]) and
    /// stays bound to it afterwards.
    pub fn for_netns(netns: &Netns) -> Result<Self> {
        netns
            .run(|| Socket::open(NETLINK_ROUTE))?
            .map(|sock| Handle { sock })
            .map_err(|source| {
                Error::io(
                    "open netlink socket in",
                    netns.path().display().to_string(),
                    source,
                )
            })
    }

    /// Netlink requests this handle has sent (one request and its replies each); for
    /// measuring how chatty a sequence of operations is.
    pub fn round_trips(&self) -> u64 {
        self.sock.round_trips()
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}
