//! Throwaway network namespaces for the kernel tests.
//!
//! [`anon_netns`] unshares a fresh netns on a short-lived helper thread and keeps only an
//! fd to it: the namespace has no name and no mount, so nothing can leak — the kernel frees
//! it when the last fd closes, on success, on panic, and even if the test process is
//! killed. Tests never touch the machine's own netns: the "host" of each test is one of
//! these too. [`NamedNetns`] (`ip netns add` + Drop) exists only for the one test that
//! needs an nsfs bind mount path.
#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use cni_netlink::{Handle, Link, Netns, VethSpec};

/// A fresh, empty, anonymous netns (only `lo`, down).
pub fn anon_netns() -> Netns {
    std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("unshare(CLONE_NEWNET): these tests need root (CAP_SYS_ADMIN + CAP_NET_ADMIN)");
        Netns::current().expect("open the new netns")
    })
    .join()
    .expect("netns helper thread")
}

/// A fresh netns and a handle on it.
pub fn anon_with_handle() -> (Netns, Handle) {
    let netns = anon_netns();
    let handle = Handle::for_netns(&netns).expect("handle on the throwaway netns");
    (netns, handle)
}

/// A veth pair `name`/`peer` inside one netns; returns the `name` end.
pub fn veth_pair(handle: &Handle, name: &str, peer: &str) -> Link {
    handle
        .create_veth(&VethSpec {
            name,
            peer_name: peer,
            ..Default::default()
        })
        .expect("create veth");
    handle.link_by_name(name).expect("veth just created")
}

/// A named netns (`ip netns add`), deleted on drop.
pub struct NamedNetns {
    pub name: String,
}

impl NamedNetns {
    pub fn new(prefix: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip");
        assert!(status.success(), "ip netns add {name}");
        NamedNetns { name }
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}
