//! Cheap "can we use this backend" probes, with the reference's definitions
//! (PL:pkg/utils/netfilter.go), each run at most once per process.
//!
//! The answer depends on the installed binaries and the kernel, not on the network namespace, so
//! one cached answer serves every thread.

use std::sync::OnceLock;

use crate::{Error, Result, exec};

/// Whether `iptables` can query a chain: the reference's `SupportsIPTables` (go-iptables
/// `ChainExists("filter", "INPUT")`). One process spawn, the first time only.
///
/// `-S INPUT` only lists; with iptables-nft it does not create the filter table (checked on
/// Debian's 1.8.9 in an empty netns).
///
/// An error is a probe that could not run at all (see [`verdict`]), not an unusable backend.
pub fn iptables_usable() -> Result<bool> {
    static USABLE: OnceLock<bool> = OnceLock::new();
    cached(&USABLE, || {
        let listed = exec::run(
            "iptables",
            "iptables",
            &["--wait", "-t", "filter", "-S", "INPUT"],
            None,
        );
        Ok(verdict("iptables", listed)?.is_some())
    })
}

/// Whether `nft` is at least 1.0.1 and can check a transaction: the reference's
/// `SupportsNFTables` (`knftables.New`). Two process spawns, the first time only; `--check`
/// never commits, so nothing is created.
///
/// An error is a probe that could not run at all (see [`verdict`]), not an unusable backend.
pub fn nftables_usable() -> Result<bool> {
    static USABLE: OnceLock<bool> = OnceLock::new();
    cached(&USABLE, || {
        let Some(version) = verdict(
            "nftables",
            exec::run("nft", "nftables", &["--version"], None),
        )?
        else {
            return Ok(false);
        };
        if !nft_version_ok(&version) {
            log::debug!("nftables is not usable: too old: {}", version.trim());
            return Ok(false);
        }
        let check = exec::run(
            "nft",
            "nftables",
            &["--check", "-f", "-"],
            Some("add table inet cni_plugins_probe\n"),
        );
        Ok(verdict("nftables", check)?.is_some())
    })
}

/// The answer in `cell`, or `probe`'s, kept only when it is an answer: a probe that could
/// not run is tried again next time.
fn cached(cell: &OnceLock<bool>, probe: impl FnOnce() -> Result<bool>) -> Result<bool> {
    if let Some(&usable) = cell.get() {
        return Ok(usable);
    }
    let usable = probe()?;
    Ok(*cell.get_or_init(|| usable))
}

/// A probe command's output, or `None` when its failure means the backend is not usable
/// (not installed, or it ran and failed). A program that could not be started for another
/// reason (too many open files, no memory, no processes left) says nothing about the
/// backend: that error is returned, so the caller reports the real cause instead of
/// "not available".
fn verdict(backend: &str, result: Result<String>) -> Result<Option<String>> {
    match result {
        Ok(output) => Ok(Some(output)),
        Err(e @ Error::Spawn { .. }) => Err(e),
        Err(e) => {
            log::debug!("{backend} is not usable: {e}");
            Ok(None)
        }
    }
}

/// Parses `nftables v1.0.6 (Lester Gooch #5)` and checks for >= 1.0.1, knftables' minimum.
fn nft_version_ok(output: &str) -> bool {
    let Some(version) = output
        .split_whitespace()
        .find_map(|word| word.strip_prefix('v'))
    else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let triple = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    triple >= (1, 0, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_version_parsing() {
        assert!(nft_version_ok("nftables v1.0.6 (Lester Gooch #5)\n"));
        assert!(nft_version_ok("nftables v1.0.1 (Fearless Fosdick #3)"));
        assert!(nft_version_ok("nftables v1.1 (x)"));
        assert!(!nft_version_ok("nftables v1.0.0 (Fearless Fosdick #2)"));
        assert!(!nft_version_ok("nftables v0.9.8 (E.D.S.)"));
        assert!(!nft_version_ok("garbage"));
    }
}
