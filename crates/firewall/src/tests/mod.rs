//! Root tests against the real `nft` and `iptables`, each in its own throwaway netns.
//!
//! Hygiene: the library and every inspection command run on a thread that did `setns` into a
//! netns created for the test (`cnifw-<pid>-<n>`), and a guard deletes the netns even when the
//! test panics. Nothing here touches the machine's own firewall.

mod masquerade;
mod spoofcheck;

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::CloneFlags;

/// A named netns that exists for the life of the value.
pub(crate) struct TestNetns {
    name: String,
    file: File,
}

impl TestNetns {
    pub(crate) fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "cnifw-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip netns add (these tests need root)");
        assert!(status.success(), "ip netns add {name}: {status}");
        // Built before opening, so the netns is deleted even if the open fails.
        let guard = Cleanup(name.clone());
        let file = File::open(format!("/run/netns/{name}")).expect("open netns");
        std::mem::forget(guard);
        TestNetns { name, file }
    }

    /// The netns name, for `ip -n` / `ip netns exec`.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on a fresh thread inside this netns; a panic in `f` is re-raised here.
    pub(crate) fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            let handle = s.spawn(|| {
                nix::sched::setns(&self.file, CloneFlags::CLONE_NEWNET).expect("setns");
                crate::exec::take_spawn_count();
                f()
            });
            match handle.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        drop(Cleanup(std::mem::take(&mut self.name)));
    }
}

/// Runs a command in the calling thread's netns and returns its stdout; panics on failure.
pub(crate) fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Spawns made by this thread since the last call.
pub(crate) fn spawns() -> usize {
    crate::exec::take_spawn_count()
}

#[test]
fn choose_backend_absent_prefers_iptables_when_usable() {
    TestNetns::new().run(|| {
        assert!(crate::iptables_usable().unwrap());
        assert!(crate::nftables_usable().unwrap());
        assert_eq!(
            crate::choose_backend(None).unwrap(),
            crate::MasqBackend::Iptables
        );
        // The probes created nothing.
        assert_eq!(sh("nft", &["list", "ruleset"]), "");
    });
}
