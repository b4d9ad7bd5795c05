//! Forwarding rules for the `firewall` meta plugin (docs/reference.md#firewall,
//! PL:plugins/meta/firewall): accept traffic from a container's addresses and the replies to
//! it, through `CNI-FORWARD` (jumped to from `FORWARD`) and an admin chain (`CNI-ADMIN`) that
//! operators fill; optionally isolate bridges from each other with the
//! `CNI-ISOLATION-STAGE-1/2` chains. Rule for rule the reference's, so a node can switch
//! between the Go plugin and ours.
//!
//! The rules name only addresses, never the attachment, as the reference's do: DEL needs the
//! addresses (from `prevResult`), and GC cannot tell whose a rule is.

mod firewalld;
mod iptables;
mod nftables;

use std::net::IpAddr;

use crate::{Error, Result};

pub use firewalld::{
    firewalld_add_sources, firewalld_missing_sources, firewalld_remove_sources, firewalld_running,
};
pub use nftables::{
    Attachment, allow as nft_allow_forwarding, collect_stale as nft_collect_stale_forwarding,
    missing as nft_missing_forwarding, revoke as nft_revoke_forwarding,
};

/// The reference's own chain, jumped to from `FORWARD`.
pub const FORWARD_CHAIN: &str = "CNI-FORWARD";
/// The admin chain's default name (`iptablesAdminChainName`).
pub const DEFAULT_ADMIN_CHAIN: &str = "CNI-ADMIN";

/// How traffic between bridges is restricted (`ingressPolicy` other than `open`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    /// The bridge the container is on.
    pub bridge: String,
    /// `isolated`: containers on the same bridge are cut off from each other too.
    pub same_bridge_too: bool,
}

/// What one container's ADD installs.
#[derive(Debug, Clone)]
pub struct ForwardPlan<'a> {
    /// The admin chain, checked by [`check_chain_name`]; `None` installs only the isolation
    /// (the firewalld backend, which the reference isolates with iptables all the same).
    pub admin_chain: Option<&'a str>,
    /// The container's addresses.
    pub ips: &'a [IpAddr],
    /// Bridge isolation, if asked for.
    pub isolation: Option<&'a Isolation>,
}

/// Installs `plan` with iptables/ip6tables: one `iptables-restore --noflush` batch per address
/// family present (each atomic), after one listing per family. If a later family fails, the
/// container rules an earlier one added are removed again; the shared chains and jumps stay,
/// as the reference leaves them.
pub fn allow_forwarding(plan: &ForwardPlan) -> Result<()> {
    if let Some(chain) = plan.admin_chain {
        check_chain_name(chain)?;
    }
    if let Some(isolation) = plan.isolation {
        check_bridge_name(&isolation.bridge)?;
    }
    iptables::allow(plan)
}

/// Removes the container rules of `ips` (idempotent; the shared chains stay). A missing
/// `ip6tables` or `iptables` means there is nothing to remove.
pub fn revoke_forwarding(ips: &[IpAddr]) -> Result<()> {
    iptables::revoke(ips)
}

/// What of the container's rules and their chains is missing (chains, jumps, container rules), as readable
/// descriptions; empty when everything is there. Creates nothing.
pub fn missing_forwarding(admin_chain: &str, ips: &[IpAddr]) -> Result<Vec<String>> {
    check_chain_name(admin_chain)?;
    iptables::missing(admin_chain, ips)
}

/// An iptables chain name we can render: 1 to 28 characters (the kernel's limit), no
/// whitespace or quotes, not an option or negation, not a built-in target.
pub fn check_chain_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() || name.len() > 28 {
        Some("must be 1 to 28 characters")
    } else if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'' || c == '\\')
    {
        Some("must not contain whitespace, quotes or backslashes")
    } else if name.starts_with(['-', '!']) {
        Some("must not start with '-' or '!'")
    } else if [
        "ACCEPT", "DROP", "RETURN", "QUEUE", "FORWARD", "INPUT", "OUTPUT",
    ]
    .contains(&name)
    {
        Some("must not be a built-in chain or target")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidArgument {
            what: "iptablesAdminChainName",
            value: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A bridge name iptables accepts for `-i`/`-o`: a Linux interface name.
fn check_bridge_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control() || c == '"');
    if bad {
        return Err(Error::InvalidArgument {
            what: "bridge name",
            value: name.to_owned(),
            reason: "not a Linux interface name",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names() {
        for ok in ["CNI-ADMIN", "my_admin", "A"] {
            check_chain_name(ok).unwrap();
        }
        for bad in ["", "a b", "-j", "!x", "ACCEPT", "x\"y", &"A".repeat(29)] {
            let err = check_chain_name(bad).unwrap_err();
            assert!(err.is_config_error(), "{bad}");
            assert!(err.to_string().contains("iptablesAdminChainName"), "{err}");
        }
    }

    #[test]
    fn bridge_names() {
        check_bridge_name("cni0").unwrap();
        for bad in ["", "a/b", "x y", "0123456789abcdef"] {
            assert!(
                check_bridge_name(bad).unwrap_err().is_config_error(),
                "{bad}"
            );
        }
    }
}
