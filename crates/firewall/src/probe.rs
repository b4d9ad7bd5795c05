//! Cheap "can we use this backend" probes, with the reference's definitions
//! (PL:pkg/utils/netfilter.go), each run at most once per process.
//!
//! The answer depends on the installed binaries and the kernel, not on the network namespace, so
//! one cached answer serves every thread.

use std::sync::OnceLock;

use crate::exec;

/// True if `iptables` can query a chain: the reference's `SupportsIPTables` (go-iptables
/// `ChainExists("filter", "INPUT")`). One process spawn, the first time only.
///
/// `-S INPUT` only lists; with iptables-nft it does not create the filter table (checked on
/// Debian's 1.8.9 in an empty netns).
pub fn iptables_usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| {
        let result = exec::run(
            "iptables",
            "iptables",
            &["--wait", "-t", "filter", "-S", "INPUT"],
            None,
        );
        if let Err(e) = &result {
            log::debug!("iptables is not usable: {e}");
        }
        result.is_ok()
    })
}

/// True if `nft` is at least 1.0.1 and can check a transaction: the reference's
/// `SupportsNFTables` (`knftables.New`). Two process spawns, the first time only; `--check`
/// never commits, so nothing is created.
pub fn nftables_usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| {
        let version = match exec::run("nft", "nftables", &["--version"], None) {
            Ok(out) => out,
            Err(e) => {
                log::debug!("nftables is not usable: {e}");
                return false;
            }
        };
        if !nft_version_ok(&version) {
            log::debug!("nftables is not usable: too old: {}", version.trim());
            return false;
        }
        let check = exec::run(
            "nft",
            "nftables",
            &["--check", "-f", "-"],
            Some("add table inet cni_plugins_probe\n"),
        );
        if let Err(e) = &check {
            log::debug!("nftables is not usable: {e}");
        }
        check.is_ok()
    })
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
