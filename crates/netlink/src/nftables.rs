//! nf_tables over `NETLINK_NETFILTER` (`linux/netfilter/nf_tables.h`), in the calling thread's
//! netns: reading one chain's rules (each rule's handle and comment, nothing else), whether
//! chains exist, and applying an atomic [`Batch`] of the changes a masquerade setup needs.
//!
//! Reading is here because `nft -j list chain` costs a process, and then grows with the chain:
//! at 1 000 rules it renders 460 KB of netlink replies as 464 KB of JSON for the caller to
//! parse, about 25 ms, where this one dump takes about 2 ms and needs no process. Writing is
//! here because running `nft` means reading it and its libraries from disk on a cold page
//! cache, the first pods after a node boots (bench/analysis.md, "Cold start"). The messages
//! are the ones `nft` 1.0.6 sends for the same commands, so `nft list ruleset` prints the
//! result exactly as if `nft` had made it.

use netlink_sys::protocols::NETLINK_NETFILTER;

use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE};

use crate::error::{Error, Result};
use crate::socket::{Request, Socket, encode_raw};
use crate::wire;

/// `NFNL_SUBSYS_NFTABLES`: the message type is `subsystem << 8 | message`.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
/// `linux/netfilter/nfnetlink.h`: the messages that open and close an atomic batch.
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
/// `NFPROTO_INET`, the `inet` table family; `NFPROTO_UNSPEC` heads a batch.
const NFPROTO_INET: u8 = 1;
const NFPROTO_UNSPEC: u8 = 0;
/// `NLA_F_NESTED`.
const NESTED: u16 = 0x8000;
/// `enum nft_table_attributes`.
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_TABLE_USERDATA: u16 = 6;
/// `enum nft_chain_attributes`, `enum nft_hook_attributes`.
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_CHAIN_USERDATA: u16 = 12;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
/// `NFPROTO_BRIDGE`, the `bridge` table family.
const NFPROTO_BRIDGE: u8 = 7;
/// `enum nft_rule_attributes`.
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
/// libnftnl's user-data TLV type for a comment, the same (0) for tables, chains and rules
/// (`NFTNL_UDATA_{TABLE,CHAIN,RULE}_COMMENT`); each TLV is a 1-byte type, a 1-byte length
/// and the value.
const UDATA_COMMENT: u8 = 0;
/// `NF_INET_POST_ROUTING`.
const NF_INET_POST_ROUTING: u32 = 4;

/// One rule of a listed chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The kernel handle, which `nft delete rule ... handle N` takes.
    pub handle: u64,
    /// The rule's comment, as `nft` stores it.
    pub comment: Option<String>,
    /// Its expressions as the kernel dumped them (`NFTA_RULE_EXPRESSIONS`), for
    /// [`Rule::expresses`].
    pub expressions: Vec<u8>,
}

impl Rule {
    /// An `NFT_MSG_NEWRULE` body from a dump; `None` if it is not a rule of `table`/`chain`
    /// or has no handle.
    pub(crate) fn decode(body: &[u8], table: &str, chain: &str) -> Option<Rule> {
        let (_, attributes) = wire::split_header::<{ wire::NFGENMSG_LEN }>(body)?;
        let (mut in_table, mut in_chain) = (None, None);
        let (mut handle, mut comment, mut expressions) = (None, None, Vec::new());
        for (kind, value) in wire::attrs(attributes) {
            match kind {
                NFTA_RULE_TABLE => in_table = wire::string_value(value),
                NFTA_RULE_CHAIN => in_chain = wire::string_value(value),
                NFTA_RULE_HANDLE => {
                    handle = value
                        .get(..8)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_be_bytes);
                }
                NFTA_RULE_USERDATA => comment = user_comment(value),
                NFTA_RULE_EXPRESSIONS => expressions = value.to_vec(),
                _ => {}
            }
        }
        (in_table.as_deref() == Some(table) && in_chain.as_deref() == Some(chain)).then_some(())?;
        Some(Rule {
            handle: handle?,
            comment,
            expressions,
        })
    }

    /// Whether this dumped rule is the rule `matches` and `action` make (as
    /// [`Batch::add_rule`] writes it): every attribute we would send is in the dump with the
    /// same value, nested ones compared alike and list elements in order. Attributes only the
    /// dump has (defaults the kernel reports back) do not count against it.
    pub fn expresses(&self, matches: &[AddressMatch], action: Action<'_>) -> bool {
        attributes_cover(&self.expressions, &rule_expressions(matches, action))
    }

    /// The rule as a dump of chain `chain` in table `table` lays it out (comments up to 254
    /// bytes, the most a user-data TLV holds with its NUL).
    pub(crate) fn dumped_body(&self, table: &str, chain: &str) -> Option<Vec<u8>> {
        let mut body = rule_body(NFPROTO_INET, table, chain);
        wire::push_attr(&mut body, NFTA_RULE_HANDLE, &self.handle.to_be_bytes());
        if !self.expressions.is_empty() {
            wire::push_attr(&mut body, NFTA_RULE_EXPRESSIONS | NESTED, &self.expressions);
        }
        if let Some(comment) = &self.comment {
            wire::push_attr(
                &mut body,
                NFTA_RULE_USERDATA,
                &comment_userdata(comment).ok()?,
            );
        }
        Some(body)
    }
}

/// The comment TLV of a rule's user data, without its trailing NUL.
fn user_comment(mut data: &[u8]) -> Option<String> {
    while let [kind, len, rest @ ..] = data {
        let value = rest.get(..usize::from(*len))?;
        if *kind == UDATA_COMMENT {
            let text = value.strip_suffix(&[0]).unwrap_or(value);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        data = rest.get(usize::from(*len)..)?;
    }
    None
}

fn string_attr(out: &mut Vec<u8>, kind: u16, value: &str) {
    let mut bytes = value.as_bytes().to_vec();
    bytes.push(0);
    wire::push_attr(out, kind, &bytes);
}

/// A table family this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `inet`: IPv4 and IPv6 (the masquerade table).
    Inet,
    /// `bridge`: frames crossing a bridge (the spoof check's table).
    Bridge,
}

impl Family {
    fn proto(self) -> u8 {
        match self {
            Family::Inet => NFPROTO_INET,
            Family::Bridge => NFPROTO_BRIDGE,
        }
    }

    fn keyword(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Bridge => "bridge",
        }
    }
}

/// The rules of chain `chain` in table `inet table`, in chain order, from one filtered dump.
/// A missing table or chain lists as no rules.
pub fn inet_chain_rules(table: &str, chain: &str) -> Result<Vec<Rule>> {
    chain_rules(Family::Inet, table, chain)
}

/// The rules of chain `chain` in table `<family> table`, in chain order, from one filtered
/// dump. A missing table or chain lists as no rules.
pub fn chain_rules(family: Family, table: &str, chain: &str) -> Result<Vec<Rule>> {
    let object = format!("{} {table} {chain}", family.keyword());
    let sock = Socket::open(NETLINK_NETFILTER)
        .map_err(|source| Error::io("open netfilter netlink socket", &object, source))?;
    let body = rule_body(family.proto(), table, chain);
    let dump = Request::Raw {
        kind: NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETRULE,
        body,
    };
    match sock.dump("list nftables rules", &object, dump) {
        Ok(replies) => Ok(replies
            .iter()
            .filter_map(|reply| Rule::decode(&reply.body, table, chain))
            .collect()),
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Which address of the IP header a match compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressField {
    /// `ip saddr` / `ip6 saddr`.
    Source,
    /// `ip daddr` / `ip6 daddr`.
    Destination,
}

/// `ip saddr == 10.0.0.2`, `ip6 daddr != fd00::/64`: the packet's address under `network`'s
/// prefix compared with `network`'s (masked) address. A full-length prefix is a plain address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressMatch {
    /// Which address.
    pub field: AddressField,
    /// The address or prefix; its family is the family the rule matches.
    pub network: IpNetwork,
    /// `==` when true, `!=` when false.
    pub equal: bool,
}

/// What a rule does when its matches hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// `return`.
    Return,
    /// `goto <chain>`.
    Goto(&'a str),
    /// `masquerade`.
    Masquerade,
}

/// A base chain's hook, as `{ type nat hook postrouting priority 100 ; }` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `type nat hook postrouting priority <priority>`.
    NatPostrouting {
        /// The chain's priority (100 is `srcnat`).
        priority: i32,
    },
}

/// An atomic set of changes to `inet` tables, applied by [`Batch::commit`] in one
/// `NFNL_MSG_BATCH_BEGIN` … `NFNL_MSG_BATCH_END` datagram: all of it or nothing.
#[derive(Debug, Default)]
pub struct Batch {
    /// The encoded messages between the batch's begin and end.
    messages: Vec<Vec<u8>>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// `add table inet <table> { comment "<comment>" ; }`: creates it, or leaves an existing
    /// one as it is.
    pub fn add_table(&mut self, table: &str, comment: &str) -> Result<()> {
        let mut body = wire::nfgenmsg(NFPROTO_INET);
        string_attr(&mut body, NFTA_TABLE_NAME, table);
        wire::push_attr(&mut body, NFTA_TABLE_FLAGS, &0u32.to_be_bytes());
        wire::push_attr(&mut body, NFTA_TABLE_USERDATA, &comment_userdata(comment)?);
        self.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, body);
        Ok(())
    }

    /// `add chain inet <table> <chain> { comment "<comment>" ; }`: a regular chain.
    pub fn add_chain(&mut self, table: &str, chain: &str, comment: &str) -> Result<()> {
        let mut body = chain_body(NFPROTO_INET, table, chain);
        wire::push_attr(&mut body, NFTA_CHAIN_USERDATA, &comment_userdata(comment)?);
        self.push(NFT_MSG_NEWCHAIN, NLM_F_CREATE, body);
        Ok(())
    }

    /// `add chain inet <table> <chain> { type … hook … priority … ; }`: a base chain (policy
    /// accept).
    pub fn add_base_chain(&mut self, table: &str, chain: &str, hook: Hook) {
        let mut body = chain_body(NFPROTO_INET, table, chain);
        let Hook::NatPostrouting { priority } = hook;
        string_attr(&mut body, NFTA_CHAIN_TYPE, "nat");
        let mut nested = Vec::new();
        wire::push_attr(
            &mut nested,
            NFTA_HOOK_HOOKNUM,
            &NF_INET_POST_ROUTING.to_be_bytes(),
        );
        wire::push_attr(&mut nested, NFTA_HOOK_PRIORITY, &priority.to_be_bytes());
        wire::push_attr(&mut body, NFTA_CHAIN_HOOK | NESTED, &nested);
        self.push(NFT_MSG_NEWCHAIN, NLM_F_CREATE, body);
    }

    /// `flush chain inet <table> <chain>`: deletes all its rules.
    pub fn flush_chain(&mut self, table: &str, chain: &str) {
        self.push(NFT_MSG_DELRULE, 0, rule_body(NFPROTO_INET, table, chain));
    }

    /// `delete rule inet <table> <chain> handle <handle>`.
    pub fn delete_rule(&mut self, table: &str, chain: &str, handle: u64) {
        let mut body = rule_body(NFPROTO_INET, table, chain);
        wire::push_attr(&mut body, NFTA_RULE_HANDLE, &handle.to_be_bytes());
        self.push(NFT_MSG_DELRULE, 0, body);
    }

    /// `add rule inet <table> <chain> <matches> <action> [comment "<comment>"]`, appended.
    /// Encoded as `nft` does: a `meta nfproto` check before the first match of each family,
    /// then per match a payload load of the prefix's whole bytes (the whole address, masked
    /// with `bitwise`, when the prefix ends inside a byte or is empty) and a compare.
    pub fn add_rule(
        &mut self,
        table: &str,
        chain: &str,
        matches: &[AddressMatch],
        action: Action<'_>,
        comment: Option<&str>,
    ) -> Result<()> {
        let expressions = rule_expressions(matches, action);
        let mut body = rule_body(NFPROTO_INET, table, chain);
        wire::push_attr(&mut body, NFTA_RULE_EXPRESSIONS | NESTED, &expressions);
        if let Some(comment) = comment {
            wire::push_attr(&mut body, NFTA_RULE_USERDATA, &comment_userdata(comment)?);
        }
        self.push(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, body);
        Ok(())
    }

    fn push(&mut self, message: u16, flags: u16, body: Vec<u8>) {
        self.messages.push(encode_raw(
            NFNL_SUBSYS_NFTABLES << 8 | message,
            &body,
            flags,
            0,
        ));
    }

    /// The whole datagram: begin, the messages (the last one asking for an ACK), end.
    fn encode(self) -> Vec<u8> {
        // `res_id` of the batch messages is the subsystem, big endian.
        let mut delimiter = wire::nfgenmsg(NFPROTO_UNSPEC);
        delimiter[2..4].copy_from_slice(&NFNL_SUBSYS_NFTABLES.to_be_bytes());
        let mut datagram = encode_raw(NFNL_MSG_BATCH_BEGIN, &delimiter, 0, 0);
        let last = self.messages.len().saturating_sub(1);
        for (i, mut message) in self.messages.into_iter().enumerate() {
            if i == last {
                // Flags are bytes 6..8 of the header.
                let flags = wire::u16_value(&message[6..8]).unwrap_or_default() | NLM_F_ACK;
                message[6..8].copy_from_slice(&flags.to_ne_bytes());
            }
            datagram.extend_from_slice(&message);
        }
        datagram.extend_from_slice(&encode_raw(NFNL_MSG_BATCH_END, &delimiter, 0, 0));
        datagram
    }

    /// Applies the batch atomically in the calling thread's netns. `what` names it in errors.
    /// An empty batch sends nothing.
    pub fn commit(self, what: &str) -> Result<()> {
        if self.messages.is_empty() {
            return Ok(());
        }
        let sock = Socket::open(NETLINK_NETFILTER)
            .map_err(|source| Error::io("open netfilter netlink socket", what, source))?;
        sock.change_batch("apply nftables batch", what, self.encode())
    }
}

/// The `NFTA_RULE_EXPRESSIONS` list of a rule, encoded as `nft` does (see
/// [`Batch::add_rule`]).
fn rule_expressions(matches: &[AddressMatch], action: Action<'_>) -> Vec<u8> {
    let mut expressions = Vec::new();
    let mut family = None;
    for m in matches {
        let nfproto = match m.network {
            IpNetwork::V4(_) => NFPROTO_IPV4,
            IpNetwork::V6(_) => NFPROTO_IPV6,
        };
        if family != Some(nfproto) {
            family = Some(nfproto);
            expression(&mut expressions, "meta", |data| {
                be32_attr(data, NFTA_META_KEY, NFT_META_NFPROTO);
                be32_attr(data, NFTA_META_DREG, NFT_REG_1);
            });
            cmp(&mut expressions, NFT_CMP_EQ, &[nfproto]);
        }
        address_match(&mut expressions, m);
    }
    match action {
        Action::Return => verdict(&mut expressions, NFT_RETURN, None),
        Action::Goto(target) => verdict(&mut expressions, NFT_GOTO, Some(target)),
        Action::Masquerade => expression(&mut expressions, "masq", |_| {}),
    }
    expressions
}

/// Whether every attribute of `ours` is in `dumped`, in the same order, with the same
/// value; a nested one (`NLA_F_NESTED` in `ours`) is compared the same way, one level down.
fn attributes_cover(dumped: &[u8], ours: &[u8]) -> bool {
    let mut theirs = wire::attrs_with_flags(dumped);
    wire::attrs_with_flags(ours).all(|(kind, value)| {
        let nested = kind & NESTED != 0;
        theirs.any(|(dumped_kind, dumped_value)| {
            (dumped_kind & !NESTED) == (kind & !NESTED)
                && if nested {
                    attributes_cover(dumped_value, value)
                } else {
                    dumped_value == value
                }
        })
    })
}

/// `NFPROTO_IPV4`, `NFPROTO_IPV6`: the values `meta nfproto` compares with.
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
/// Expression list elements (`NFTA_LIST_ELEM`) and their name and data (`nft_expr_attributes`).
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
/// `nft_meta_attributes`, `nft_meta_keys`.
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_NFPROTO: u32 = 15;
/// `nft_payload_attributes`; `NFT_PAYLOAD_NETWORK_HEADER`.
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
/// `nft_bitwise_attributes`.
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
/// `nft_cmp_attributes`, `nft_cmp_ops`.
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
/// `nft_immediate_attributes`, `nft_data_attributes`, `nft_verdict_attributes`.
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
/// `NFT_RETURN`, `NFT_GOTO` (`enum nft_verdicts`, negative).
const NFT_RETURN: i32 = -5;
const NFT_GOTO: i32 = -4;
/// `NFT_REG_VERDICT` and `NFT_REG_1`, the registers `nft` uses for these rules.
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;

fn chain_body(proto: u8, table: &str, chain: &str) -> Vec<u8> {
    let mut body = wire::nfgenmsg(proto);
    string_attr(&mut body, NFTA_CHAIN_TABLE, table);
    string_attr(&mut body, NFTA_CHAIN_NAME, chain);
    body
}

fn rule_body(proto: u8, table: &str, chain: &str) -> Vec<u8> {
    let mut body = wire::nfgenmsg(proto);
    string_attr(&mut body, NFTA_RULE_TABLE, table);
    string_attr(&mut body, NFTA_RULE_CHAIN, chain);
    body
}

/// A comment as libnftnl stores it in user data: one TLV, the text NUL-terminated. Its length
/// byte caps the text at 254 bytes.
fn comment_userdata(comment: &str) -> Result<Vec<u8>> {
    let len = u8::try_from(comment.len() + 1).map_err(|_| Error::InvalidRequest {
        op: "encode nftables comment",
        object: comment.chars().take(40).collect(),
        detail: format!("{} bytes, at most 254 fit", comment.len()),
    })?;
    Ok([&[UDATA_COMMENT, len], comment.as_bytes(), &[0]].concat())
}

fn be32_attr(out: &mut Vec<u8>, kind: u16, value: u32) {
    wire::push_attr(out, kind, &value.to_be_bytes());
}

/// `NFTA_DATA_VALUE` nested in `kind`.
fn data_attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let mut nested = Vec::new();
    wire::push_attr(&mut nested, NFTA_DATA_VALUE, value);
    wire::push_attr(out, kind | NESTED, &nested);
}

/// One list element: the expression's name and its data, filled in by `data`.
fn expression(out: &mut Vec<u8>, name: &str, data: impl FnOnce(&mut Vec<u8>)) {
    let mut element = Vec::new();
    string_attr(&mut element, NFTA_EXPR_NAME, name);
    let mut attributes = Vec::new();
    data(&mut attributes);
    wire::push_attr(&mut element, NFTA_EXPR_DATA | NESTED, &attributes);
    wire::push_attr(out, NFTA_LIST_ELEM | NESTED, &element);
}

/// `cmp` of register 1 with `value`.
fn cmp(out: &mut Vec<u8>, op: u32, value: &[u8]) {
    expression(out, "cmp", |data| {
        be32_attr(data, NFTA_CMP_SREG, NFT_REG_1);
        be32_attr(data, NFTA_CMP_OP, op);
        data_attr(data, NFTA_CMP_DATA, value);
    });
}

/// `immediate` of a verdict into the verdict register.
fn verdict(out: &mut Vec<u8>, code: i32, chain: Option<&str>) {
    expression(out, "immediate", |data| {
        be32_attr(data, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
        let mut verdict = Vec::new();
        wire::push_attr(&mut verdict, NFTA_VERDICT_CODE, &code.to_be_bytes());
        if let Some(chain) = chain {
            string_attr(&mut verdict, NFTA_VERDICT_CHAIN, chain);
        }
        let mut value = Vec::new();
        wire::push_attr(&mut value, NFTA_DATA_VERDICT | NESTED, &verdict);
        wire::push_attr(data, NFTA_IMMEDIATE_DATA | NESTED, &value);
    });
}

/// The payload load, optional mask, and compare of one address match.
fn address_match(out: &mut Vec<u8>, m: &AddressMatch) {
    // Offsets in the IPv4 and IPv6 headers.
    let (octets, mask, offset) = match (m.network, m.field) {
        (IpNetwork::V4(n), field) => (
            n.network().octets().to_vec(),
            n.mask().octets().to_vec(),
            if field == AddressField::Source {
                12
            } else {
                16
            },
        ),
        (IpNetwork::V6(n), field) => (
            n.network().octets().to_vec(),
            n.mask().octets().to_vec(),
            if field == AddressField::Source { 8 } else { 24 },
        ),
    };
    let prefix = usize::from(m.network.prefix());
    let whole_bytes = prefix > 0 && prefix % 8 == 0;
    let len = if whole_bytes {
        prefix / 8
    } else {
        octets.len()
    };
    expression(out, "payload", |data| {
        be32_attr(data, NFTA_PAYLOAD_DREG, NFT_REG_1);
        be32_attr(data, NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
        be32_attr(data, NFTA_PAYLOAD_OFFSET, offset);
        be32_attr(data, NFTA_PAYLOAD_LEN, len as u32);
    });
    if !whole_bytes {
        expression(out, "bitwise", |data| {
            be32_attr(data, NFTA_BITWISE_SREG, NFT_REG_1);
            be32_attr(data, NFTA_BITWISE_DREG, NFT_REG_1);
            be32_attr(data, NFTA_BITWISE_LEN, len as u32);
            data_attr(data, NFTA_BITWISE_MASK, &mask);
            data_attr(data, NFTA_BITWISE_XOR, &vec![0; len]);
        });
    }
    let op = if m.equal { NFT_CMP_EQ } else { NFT_CMP_NEQ };
    cmp(out, op, &octets[..len]);
}

/// Which of `chains` exist in table `<family> table`, one `NFT_MSG_GETCHAIN` each: a lookup by
/// name, whatever else the table holds (a dump of the table's chains grows with it). A missing
/// table means none does.
pub fn existing_chains<'a>(
    family: Family,
    table: &str,
    chains: &[&'a str],
) -> Result<Vec<&'a str>> {
    let object = format!("{} {table}", family.keyword());
    let sock = Socket::open(NETLINK_NETFILTER)
        .map_err(|source| Error::io("open netfilter netlink socket", &object, source))?;
    let mut found = Vec::new();
    for &chain in chains {
        let body = chain_body(family.proto(), table, chain);
        let get = Request::Raw {
            kind: NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETCHAIN,
            body,
        };
        match sock.get("get nftables chain", &format!("{object} {chain}"), get) {
            Ok(_) => found.push(chain),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::tlv;

    fn cstr(s: &str) -> Vec<u8> {
        [s.as_bytes(), &[0]].concat()
    }

    /// A dumped rule as the kernel lays it out, with `nft`'s comment user data.
    fn dumped(chain: &str, handle: u64, userdata: &[u8]) -> Vec<u8> {
        [
            vec![NFPROTO_INET, 0, 0, 0],
            tlv(NFTA_RULE_TABLE, &cstr("t")),
            tlv(NFTA_RULE_CHAIN, &cstr(chain)),
            tlv(NFTA_RULE_HANDLE, &handle.to_be_bytes()),
            tlv(4 | 0x8000, &[]), // NFTA_RULE_EXPRESSIONS
            tlv(NFTA_RULE_USERDATA, userdata),
        ]
        .concat()
    }

    #[test]
    fn decodes_handle_and_comment() {
        let userdata = [&[1u8, 2, 9, 9][..], &[UDATA_COMMENT, 4], b"abc\0"].concat();
        let rule = Rule::decode(&dumped("c", 42, &userdata), "t", "c").unwrap();
        assert_eq!(
            rule,
            Rule {
                handle: 42,
                comment: Some("abc".into()),
                expressions: Vec::new(),
            }
        );
        assert_eq!(
            Rule::decode(&dumped("other", 42, &userdata), "t", "c"),
            None
        );
        let no_comment = Rule::decode(&dumped("c", 7, &[]), "t", "c").unwrap();
        assert_eq!(no_comment.comment, None);
        // A user-data length past the end is no comment, not a panic.
        assert_eq!(user_comment(&[UDATA_COMMENT, 200, b'a']), None);
        assert_eq!(Rule::decode(&[1, 0], "t", "c"), None);
    }

    #[test]
    fn a_dumped_rule_expresses_what_we_send_whatever_defaults_the_kernel_adds() {
        let goto = |chain| rule_expressions(&[], Action::Goto(chain));
        let rule = |expressions: Vec<u8>| Rule {
            handle: 1,
            comment: None,
            expressions,
        };
        assert!(rule(goto("masq_checks")).expresses(&[], Action::Goto("masq_checks")));
        assert!(!rule(goto("other")).expresses(&[], Action::Goto("masq_checks")));
        assert!(!rule(goto("masq_checks")).expresses(&[], Action::Return));
        assert!(!rule(Vec::new()).expresses(&[], Action::Return));
        // An attribute the kernel adds to an expression's data (here a made-up type 15
        // after the destination register) is not a difference.
        let mut element = Vec::new();
        string_attr(&mut element, NFTA_EXPR_NAME, "immediate");
        let mut data = Vec::new();
        be32_attr(&mut data, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
        be32_attr(&mut data, 15, 7);
        let verdict_data = wire::attrs_with_flags(&goto("masq_checks"))
            .flat_map(|(_, element)| wire::attrs_with_flags(element).collect::<Vec<_>>())
            .find(|&(kind, _)| kind & !NESTED == NFTA_EXPR_DATA)
            .map(|(_, data)| data.to_vec())
            .unwrap();
        let immediate_data = wire::attrs_with_flags(&verdict_data)
            .find(|&(kind, _)| kind & !NESTED == NFTA_IMMEDIATE_DATA)
            .map(|(_, value)| value.to_vec())
            .unwrap();
        wire::push_attr(&mut data, NFTA_IMMEDIATE_DATA | NESTED, &immediate_data);
        wire::push_attr(&mut element, NFTA_EXPR_DATA | NESTED, &data);
        let mut dumped = Vec::new();
        wire::push_attr(&mut dumped, NFTA_LIST_ELEM | NESTED, &element);
        assert!(rule(dumped).expresses(&[], Action::Goto("masq_checks")));
    }

    /// (type, flags) of each message in a datagram.
    fn headers(mut datagram: &[u8]) -> Vec<(u16, u16)> {
        let mut out = Vec::new();
        while let Some(len) = wire::u32_value(datagram) {
            out.push((
                wire::u16_value(&datagram[4..]).unwrap(),
                wire::u16_value(&datagram[6..]).unwrap(),
            ));
            datagram = &datagram[len as usize..];
        }
        out
    }

    #[test]
    fn a_batch_is_framed_and_only_its_last_message_asks_for_an_ack() {
        let mut batch = Batch::new();
        batch.add_table("t", "a table").unwrap();
        batch.flush_chain("t", "c");
        batch
            .add_rule(
                "t",
                "c",
                &[AddressMatch {
                    field: AddressField::Destination,
                    network: "10.0.0.0/12".parse().unwrap(),
                    equal: false,
                }],
                Action::Masquerade,
                Some("why"),
            )
            .unwrap();
        let datagram = batch.encode();
        let nft = |m| NFNL_SUBSYS_NFTABLES << 8 | m;
        let request = 1; // NLM_F_REQUEST
        assert_eq!(
            headers(&datagram),
            [
                (NFNL_MSG_BATCH_BEGIN, request),
                (nft(NFT_MSG_NEWTABLE), request | NLM_F_CREATE),
                (nft(NFT_MSG_DELRULE), request),
                (
                    nft(NFT_MSG_NEWRULE),
                    request | NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK
                ),
                (NFNL_MSG_BATCH_END, request),
            ]
        );
        // The batch delimiters name the nf_tables subsystem in `res_id`, big endian.
        assert_eq!(&datagram[16..20], &[NFPROTO_UNSPEC, 0, 0, 10]);
    }

    #[test]
    fn prefixes_load_whole_bytes_or_mask_the_whole_address() {
        let encoded = |network: &str| {
            let mut out = Vec::new();
            address_match(
                &mut out,
                &AddressMatch {
                    field: AddressField::Source,
                    network: network.parse().unwrap(),
                    equal: true,
                },
            );
            let names: Vec<String> = wire::attrs(&out)
                .filter_map(|(_, element)| wire::attrs(element).next())
                .filter_map(|(_, name)| wire::string_value(name))
                .collect();
            (names, out)
        };
        let (names, bytes) = encoded("192.168.1.0/24");
        assert_eq!(names, ["payload", "cmp"]);
        // The load is 3 bytes and the compared value is the 3 bytes of the prefix.
        assert!(bytes.windows(8).any(|w| w == [8, 0, 4, 0, 0, 0, 0, 3]));
        assert!(bytes.windows(7).any(|w| w == [7, 0, 1, 0, 192, 168, 1]));
        assert_eq!(encoded("10.1.0.0/20").0, ["payload", "bitwise", "cmp"]);
        assert_eq!(encoded("0.0.0.0/0").0, ["payload", "bitwise", "cmp"]);
        assert_eq!(encoded("fd00::3/128").0, ["payload", "cmp"]);
    }

    #[test]
    fn a_comment_too_long_for_user_data_is_an_error() {
        assert!(comment_userdata(&"x".repeat(254)).is_ok());
        let err = Batch::new().add_table("t", &"x".repeat(255)).unwrap_err();
        assert!(matches!(err, Error::InvalidRequest { .. }), "{err}");
        // An empty batch sends nothing (no socket either).
        assert!(Batch::new().commit("nothing").is_ok());
    }
}
