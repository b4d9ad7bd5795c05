//! What the timing examples share (a directory, so Cargo does not take it for an example).

use cni_netlink::Netns;

/// A fresh anonymous netns: unshared on a helper thread, kept alive by its fd only, so the
/// calling thread and the machine's own netns are never touched.
pub fn anon_netns() -> Result<Netns, Box<dyn std::error::Error>> {
    let netns = std::thread::spawn(|| -> Result<Netns, String> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|errno| format!("unshare(CLONE_NEWNET) needs root: {errno}"))?;
        Netns::current().map_err(|err| err.to_string())
    })
    .join()
    .map_err(|_| "netns helper thread panicked")??;
    Ok(netns)
}
