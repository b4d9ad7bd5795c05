//! Talking to `nft`: apply one transaction from stdin, and read back chains and rules as JSON.
//!
//! Every change is a single `nft -f -` (or `nft -j -f -`) run, which nftables commits atomically:
//! either all of it applies or none does. Reading uses `nft -j list ...`, the only stable
//! machine-readable form (knftables and go-nft do the same).

use serde_json::Value;

use crate::{Error, Result, exec};

const PROGRAM: &str = "nft";
const BACKEND: &str = "nftables";

/// Applies a text transaction (`add table ...` lines) atomically.
pub(crate) fn apply_text(script: &str) -> Result<()> {
    exec::run(PROGRAM, BACKEND, &["-f", "-"], Some(script)).map(drop)
}

/// Applies a JSON transaction (`{"nftables": [...]}`) atomically.
pub(crate) fn apply_json(commands: Vec<Value>) -> Result<()> {
    let script = serde_json::json!({ "nftables": commands }).to_string();
    exec::run(PROGRAM, BACKEND, &["-j", "-f", "-"], Some(&script)).map(drop)
}

/// A rule as listed by `nft -j`.
#[derive(Debug, Clone)]
pub(crate) struct ListedRule {
    /// Chain holding the rule.
    pub(crate) chain: String,
    /// Kernel handle, needed to delete it.
    pub(crate) handle: u64,
    /// The rule comment, if any.
    pub(crate) comment: Option<String>,
    /// The rule's statements, as nft prints them.
    pub(crate) expr: Value,
}

/// Chains and rules of one listed table or chain.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Names of the chains in the listing.
    pub(crate) chains: Vec<String>,
    /// All rules, in listing order.
    pub(crate) rules: Vec<ListedRule>,
}

/// Runs `nft -j list <what...>` (e.g. `table bridge nat`). A missing table or chain is
/// `Ok(None)`, not an error: teardown on a clean host must succeed.
pub(crate) fn list(what: &[&str]) -> Result<Option<Listing>> {
    let mut args = vec!["-j", "list"];
    args.extend_from_slice(what);
    let out = match exec::run(PROGRAM, BACKEND, &args, None) {
        Ok(out) => out,
        Err(e) if e.is_nft_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    parse_listing(&out).map(Some)
}

fn parse_listing(out: &str) -> Result<Listing> {
    let bad = |reason: String| Error::UnexpectedOutput {
        program: PROGRAM,
        reason,
    };
    let doc: Value = serde_json::from_str(out).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no \"nftables\" array".into()))?;

    let mut listing = Listing::default();
    for item in items {
        if let Some(chain) = item.get("chain") {
            if let Some(name) = chain.get("name").and_then(Value::as_str) {
                listing.chains.push(name.to_owned());
            }
        } else if let Some(rule) = item.get("rule") {
            let chain = rule.get("chain").and_then(Value::as_str);
            let handle = rule.get("handle").and_then(Value::as_u64);
            let (Some(chain), Some(handle)) = (chain, handle) else {
                return Err(bad(format!("rule without chain or handle: {rule}")));
            };
            listing.rules.push(ListedRule {
                chain: chain.to_owned(),
                handle,
                comment: rule
                    .get("comment")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                expr: rule.get("expr").cloned().unwrap_or(Value::Null),
            });
        }
    }
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nft_json_listing() {
        // Shape printed by nft 1.0.6 for `nft -j list table bridge nat`.
        let out = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"table": {"family": "bridge", "name": "nat", "handle": 1}},
            {"chain": {"family": "bridge", "table": "nat", "name": "PREROUTING", "handle": 1,
                       "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}},
            {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 4,
                      "comment": "macspoofchk-a-eth0",
                      "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "veth0"}},
                               {"jump": {"target": "cni-br-iface-a-eth0"}}]}}]}"#;
        let listing = parse_listing(out).unwrap();
        assert_eq!(listing.chains, ["PREROUTING"]);
        assert_eq!(listing.rules.len(), 1);
        assert_eq!(listing.rules[0].handle, 4);
        assert_eq!(
            listing.rules[0].comment.as_deref(),
            Some("macspoofchk-a-eth0")
        );
        assert!(parse_listing("not json").is_err());
        assert!(parse_listing(r#"{"nftables": [{"rule": {}}]}"#).is_err());
    }
}
