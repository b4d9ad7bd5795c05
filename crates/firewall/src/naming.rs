//! Names and comments that identify our netfilter objects.
//!
//! This module owns every string that ends up in a chain name or a rule comment, so that setup,
//! teardown and GC, in both backends, agree on them. It runs no commands. The hashes follow the
//! reference Go plugins byte for byte (PL:pkg/utils/utils.go, PL:pkg/ip/ipmasq_nftables_linux.go,
//! PL:pkg/link/spoofcheck.go), so a node running both sees one consistent ruleset.

use sha2::{Digest, Sha512};

use crate::{Error, Result};

/// iptables accepts chain names of at most 28 bytes (`XT_EXTENSION_MAXNAMELEN` 29 with the NUL);
/// the reference makes every generated name exactly this long.
const MAX_CHAIN_LEN: usize = 28;
const CHAIN_PREFIX: &str = "CNI-";
/// Prefix of our per-attachment iptables masquerade chains (see [`masquerade_chain_name`]).
pub(crate) const MASQ_CHAIN_PREFIX: &str = "CNI-MASQ-";
/// knftables' `CommentLengthMax`: the kernel stores at most 128 bytes of rule comment.
const NFT_COMMENT_MAX: usize = 128;
/// Length of one hash part of an nftables masquerade comment (16 hex chars).
const NFT_HASH_LEN: usize = 16;

/// Lower-case hex of SHA-512(`s`): 128 chars.
fn sha512_hex(s: &str) -> String {
    Sha512::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `prefix` followed by hex SHA-512(`to_hash`), cut to `len` bytes
/// (Go `MustFormatHashWithPrefix`). Callers guarantee `prefix.len() < len <= prefix.len() + 128`
/// and an ASCII prefix, so the cut always falls inside the hex part.
fn hash_with_prefix(len: usize, prefix: &str, to_hash: &str) -> String {
    let mut out = format!("{prefix}{}", sha512_hex(to_hash));
    out.truncate(len);
    out
}

/// The reference iptables chain name: `CNI-` + the first 24 hex chars of
/// SHA-512(`network` + `container_id`), 28 chars in all (Go `utils.FormatChainName`).
///
/// Other plugins (portmap) use it; our own masquerade chains are keyed per attachment instead, see
/// [`masquerade_chain_name`].
pub fn format_chain_name(network: &str, container_id: &str) -> String {
    hash_with_prefix(
        MAX_CHAIN_LEN,
        CHAIN_PREFIX,
        &format!("{network}{container_id}"),
    )
}

/// Like [`format_chain_name`] with `prefix` between `CNI-` and the hash, still 28 chars
/// (Go `utils.MustFormatChainNameWithPrefix`).
///
/// The reference panics when the prefix leaves no room for the hash; this returns
/// [`Error::InvalidArgument`] instead (a prefix must be ASCII and at most 23 bytes).
pub fn format_chain_name_with_prefix(
    network: &str,
    container_id: &str,
    prefix: &str,
) -> Result<String> {
    if !prefix.is_ascii() || CHAIN_PREFIX.len() + prefix.len() >= MAX_CHAIN_LEN {
        return Err(Error::InvalidArgument {
            what: "chain name prefix",
            value: prefix.to_owned(),
            reason: "must be ASCII and leave room for the hash in 28 bytes",
        });
    }
    Ok(hash_with_prefix(
        MAX_CHAIN_LEN,
        &format!("{CHAIN_PREFIX}{prefix}"),
        &format!("{network}{container_id}"),
    ))
}

/// First 16 hex chars of SHA-512(`network`): the part shared by every masquerade comment of one
/// network, which GC filters on.
pub(crate) fn network_hash(network: &str) -> String {
    hash_with_prefix(NFT_HASH_LEN, "", network)
}

/// `<h1>-<h2>`: [`network_hash`], then the first 16 hex chars of
/// SHA-512(`ifname` + `:` + `container_id`). Identifies one attachment's masquerade rules.
pub(crate) fn instance_hash(network: &str, container_id: &str, ifname: &str) -> String {
    format!(
        "{}-{}",
        network_hash(network),
        hash_with_prefix(NFT_HASH_LEN, "", &format!("{ifname}:{container_id}"))
    )
}

/// Length of an [`instance_hash`]: `h1-h2`.
pub(crate) const INSTANCE_HASH_LEN: usize = 2 * NFT_HASH_LEN + 1;

/// Drops what cannot appear inside a one-line quoted comment: `"` (the reference strips it too)
/// and control characters. The reference keeps control characters, but a newline in a network
/// name would end the nft script line and turn the rest of the name into commands; only the
/// human-readable part changes, the hashes are computed on the raw strings.
fn comment_text(s: &str) -> String {
    s.chars().filter(|c| *c != '"' && !c.is_control()).collect()
}

/// Cuts `s` to at most `max` bytes on a char boundary. Go cuts bytes and may split a UTF-8
/// sequence; the two agree for ASCII names, which is what CNI names are in practice.
fn truncate_on_char_boundary(mut s: String, max: usize) -> String {
    if s.len() > max {
        let cut = (0..=max)
            .rev()
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(0);
        s.truncate(cut);
    }
    s
}

/// The masquerade rule comment, identical to the reference nftables backend
/// (`commentForInstance`): `<h1>-<h2>, net: <network>, if: <ifname>, id: <container_id>`,
/// double quotes removed, cut to 128 bytes.
///
/// Note the argument order follows this crate's API (network, container ID, ifname); the Go helper
/// takes (network, ifname, containerID).
pub fn masquerade_comment(network: &str, container_id: &str, ifname: &str) -> String {
    let comment = format!(
        "{}, net: {}, if: {}, id: {}",
        instance_hash(network, container_id, ifname),
        comment_text(network),
        comment_text(ifname),
        comment_text(container_id),
    );
    truncate_on_char_boundary(comment, NFT_COMMENT_MAX)
}

/// Our iptables masquerade chain for one attachment: `CNI-MASQ-` + the first 19 hex chars of
/// SHA-512(`network` NUL `container_id` NUL `ifname`), 28 chars.
///
/// Deliberate deviation from the reference, which names the chain [`format_chain_name`]`(network,
/// container_id)` and ignores ifname: two attachments of one container then share a chain, and
/// the first DEL fails with `CHAIN_DEL ... Device or resource busy` (docs/reference.md#defect-3,
/// observed with Debian 1.1.1). The distinct `CNI-MASQ-` prefix cannot collide with a reference
/// chain (those are `CNI-` + hex) and lets GC tell our chains from anyone else's. The NUL
/// separators keep (`ab`, `c`) and (`a`, `bc`) apart, which plain concatenation does not.
pub fn masquerade_chain_name(network: &str, container_id: &str, ifname: &str) -> String {
    hash_with_prefix(
        MAX_CHAIN_LEN,
        MASQ_CHAIN_PREFIX,
        &format!("{network}\0{container_id}\0{ifname}"),
    )
}

/// The spoof-check reference ID, `<container_id>-<ifname>` (bridge.go passes this to
/// `NewSpoofChecker`).
fn spoofcheck_ref(container_id: &str, ifname: &str) -> String {
    format!("{container_id}-{ifname}")
}

/// Per-attachment spoof-check chain that PREROUTING jumps to: `cni-br-iface-<id>-<ifname>`.
pub fn spoofcheck_iface_chain(container_id: &str, ifname: &str) -> String {
    format!("cni-br-iface-{}", spoofcheck_ref(container_id, ifname))
}

/// Per-attachment spoof-check chain holding the MAC match: `cni-br-iface-<id>-<ifname>-mac`.
pub fn spoofcheck_mac_chain(container_id: &str, ifname: &str) -> String {
    format!("{}-mac", spoofcheck_iface_chain(container_id, ifname))
}

/// Comment on every spoof-check rule of an attachment: `macspoofchk-<id>-<ifname>`.
pub fn spoofcheck_comment(container_id: &str, ifname: &str) -> String {
    format!("macspoofchk-{}", spoofcheck_ref(container_id, ifname))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_name_vectors_match_reference() {
        // PL:pkg/utils/utils_test.go
        assert_eq!(
            format_chain_name("test", "1234"),
            "CNI-2bbe0c48b91a7d1b8a6753a8"
        );
        assert_eq!(
            format_chain_name("testalongnamethatdoesnotmakesense", "1234"),
            "CNI-374f33fe84ab0ed84dcdebe3"
        );
        assert_eq!(
            format_chain_name_with_prefix("test", "1234", "PREFIX-").unwrap(),
            "CNI-PREFIX-2bbe0c48b91a7d1b8"
        );
        for name in [
            format_chain_name("", ""),
            masquerade_chain_name("n", "c", "eth0"),
        ] {
            assert_eq!(name.len(), 28, "{name}");
        }
    }

    #[test]
    fn chain_name_prefix_too_long_is_an_error_not_a_panic() {
        let err = format_chain_name_with_prefix("n", "c", "0123456789012345678901234").unwrap_err();
        assert!(err.is_config_error(), "{err}");
        assert!(format_chain_name_with_prefix("n", "c", "é").is_err());
        // 23 bytes leaves exactly one hex char.
        let name = format_chain_name_with_prefix("n", "c", "01234567890123456789012").unwrap();
        assert_eq!(name.len(), 28);
    }

    #[test]
    fn masquerade_comment_vectors_match_reference() {
        // PL:pkg/ip/ipmasq_nftables_linux_test.go golden dump.
        let cases = [
            (
                "unit-test",
                "one",
                "eth0",
                "6fd94d501e58f0aa-287fc69eff0574a2",
            ),
            (
                "unit-test",
                "two",
                "eth0",
                "6fd94d501e58f0aa-d750b2c8f0f25d5f",
            ),
            (
                "unit-test",
                "three",
                "eth0",
                "6fd94d501e58f0aa-a4d4adb82b669cfe",
            ),
            (
                "unit-test",
                "four",
                "eth0",
                "6fd94d501e58f0aa-e766de567ef6c543",
            ),
            (
                "alternate",
                "three",
                "net1",
                "82783ef24bdc7036-acb19d111858e348",
            ),
        ];
        for (net, id, ifname, hash) in cases {
            assert_eq!(instance_hash(net, id, ifname), hash);
            assert_eq!(
                masquerade_comment(net, id, ifname),
                format!("{hash}, net: {net}, if: {ifname}, id: {id}")
            );
        }
        assert_eq!(INSTANCE_HASH_LEN, instance_hash("a", "b", "c").len());
    }

    #[test]
    fn masquerade_comment_strips_quotes_and_control_chars_and_truncates() {
        let c = masquerade_comment("we\"ird\nnet", "id", "eth0");
        assert!(c.ends_with("net: weirdnet, if: eth0, id: id"), "{c}");
        // The hash still covers the raw name.
        assert!(c.starts_with(&instance_hash("we\"ird\nnet", "id", "eth0")));

        let long = "x".repeat(300);
        assert_eq!(masquerade_comment(&long, "id", "eth0").len(), 128);
        // Multi-byte chars are never split.
        let wide = "é".repeat(100);
        let c = masquerade_comment(&wide, "id", "eth0");
        assert!(c.len() <= 128 && c.len() >= 127, "{}", c.len());
    }

    #[test]
    fn masquerade_chain_is_per_attachment() {
        let eth0 = masquerade_chain_name("net", "ctr", "eth0");
        let eth1 = masquerade_chain_name("net", "ctr", "eth1");
        assert_ne!(eth0, eth1);
        assert!(eth0.starts_with("CNI-MASQ-"));
        assert_ne!(
            masquerade_chain_name("ab", "c", "eth0"),
            masquerade_chain_name("a", "bc", "eth0")
        );
    }

    #[test]
    fn spoofcheck_names_match_reference() {
        // PL:plugins/main/bridge/bridge_test.go
        assert_eq!(
            spoofcheck_comment("dummy-0", "eth0"),
            "macspoofchk-dummy-0-eth0"
        );
        assert_eq!(
            spoofcheck_iface_chain("dummy-0", "eth0"),
            "cni-br-iface-dummy-0-eth0"
        );
        assert_eq!(
            spoofcheck_mac_chain("dummy-0", "eth0"),
            "cni-br-iface-dummy-0-eth0-mac"
        );
    }
}
