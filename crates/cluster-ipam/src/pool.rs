//! The allocator policy on etcd: node-affine blocks, one compare-and-create transaction per
//! reservation, bounded retries on a lost compare. Every verb and the admin release.
//!
//! ADD reads the network's block list and the reservation keys of the blocks it looks into
//! (its own first), never every reservation of the pool; nothing is locked. Its common case
//! is one round trip: a guessed address in the node's home block, written by a transaction
//! whose failure branch reads what the full path needs (see [`Pool::guess`]).

use crate::block::{Block, blocks_of, seed};
use crate::config::ClusterConfig;
use crate::error::{Error, Result};
use crate::etcd::{Etcd, MAX_TXN_OPS, Read, first_kv, kvs, prefix_get, presence, span_presence};
use crate::keys::{AttachmentRecord, BlockOwner, Keys, Reservation};
use cni::{Attachment, IpConfig};
use cni_ipam::RangeSet;
use etcd_client::{Compare, CompareOp, KeyValue, Txn, TxnOp, TxnOpResponse};
use serde::de::DeserializeOwned;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// How many transactions one verb tries before giving up on concurrent writers.
const MAX_ATTEMPTS: usize = 16;
/// How many free-looking blocks ADD tries to claim before borrowing from other nodes.
const MAX_CLAIMS: usize = 8;
/// How many of this node's likeliest blocks a failed guess reads (per range set), so the
/// full path usually finds room without another round trip.
const GUESS_LOOKS_INTO: usize = 4;

/// One network's pool in etcd, seen from one node.
pub struct Pool<'a> {
    etcd: &'a Etcd,
    config: &'a ClusterConfig,
    keys: Keys,
}

/// A claimed block and the node it is affine to.
#[derive(Debug, Clone)]
struct Claimed {
    block: Block,
    node: String,
    /// When the block was claimed (its key's `create_revision`): a node fills its blocks
    /// in that order, so its newest block is the likeliest to have room.
    revision: i64,
}

/// What one ADD attempt knows of the pool: the claimed blocks, and the reserved addresses
/// of each block looked into so far. Filled from etcd as needed, or from the answers of a
/// failed guess, so a wrong guess costs no extra round trip.
#[derive(Default)]
struct View {
    claimed: Vec<Claimed>,
    reserved: HashMap<Block, HashSet<IpAddr>>,
}

/// The reads that tell which addresses of one block are reserved.
enum BlockReads {
    /// One range read over the block's keys ([`Keys::ip_span`]); the answer may also hold
    /// other addresses of the same /24, which are left out.
    Span { start: String, end: String },
    /// One presence read per address the range set may hand out.
    Each(Vec<IpAddr>),
}

impl BlockReads {
    fn of(keys: &Keys, block: Block, set: &RangeSet) -> BlockReads {
        match keys.ip_span(block) {
            Some((start, end)) => BlockReads::Span { start, end },
            None => BlockReads::Each(block.candidates(set).collect()),
        }
    }

    fn ops(&self, keys: &Keys, read: Read) -> Vec<TxnOp> {
        match self {
            BlockReads::Span { start, end } => vec![span_presence(start, end, read)],
            BlockReads::Each(candidates) => candidates
                .iter()
                .map(|ip| presence(&keys.ip(*ip), read))
                .collect(),
        }
    }

    /// The reserved addresses of `block`, from the answers to [`BlockReads::ops`] (taken
    /// from `answers`; later answers stay there).
    fn reserved(
        &self,
        keys: &Keys,
        block: Block,
        answers: &mut impl Iterator<Item = TxnOpResponse>,
    ) -> HashSet<IpAddr> {
        match self {
            BlockReads::Span { .. } => answers
                .next()
                .map(kvs)
                .unwrap_or_default()
                .iter()
                .filter_map(|kv| keys.parse_ip(&key_text(kv)))
                .filter(|ip| block.contains(*ip))
                .collect(),
            BlockReads::Each(candidates) => candidates
                .iter()
                .zip(answers.by_ref().take(candidates.len()).map(first_kv))
                .filter_map(|(ip, kv)| kv.is_some().then_some(*ip))
                .collect(),
        }
    }
}

/// One of `free`, chosen by `spread` (0: the lowest).
fn spread_over(free: &[IpAddr], spread: u64) -> Option<IpAddr> {
    let count = u64::try_from(free.len()).ok().filter(|n| *n > 0)?;
    free.get(usize::try_from(spread % count).ok()?).copied()
}

fn parse<T: DeserializeOwned>(kv: &KeyValue) -> Result<T> {
    serde_json::from_slice(kv.value()).map_err(|e| Error::Corrupt {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        reason: e.to_string(),
    })
}

fn json<T: serde::Serialize>(value: &T) -> String {
    // Serializing these plain structs cannot fail; an empty value would be caught by CHECK.
    serde_json::to_string(value).unwrap_or_default()
}

fn key_text(kv: &KeyValue) -> String {
    String::from_utf8_lossy(kv.key()).into_owned()
}

impl<'a> Pool<'a> {
    /// The pool of `config`'s network, reached through `etcd`.
    pub fn new(etcd: &'a Etcd, config: &'a ClusterConfig) -> Pool<'a> {
        Pool {
            etcd,
            config,
            keys: Keys::new(&config.etcd.prefix, &config.ipam.network),
        }
    }

    fn block_size(&self, set: &RangeSet) -> u8 {
        if set.is_ipv4() {
            self.config.block_v4
        } else {
            self.config.block_v6
        }
    }

    /// The block of `set` this node claims first: where its ADDs start looking, and the
    /// block a guess names.
    fn home(&self, set: &RangeSet) -> Option<Block> {
        blocks_of(set, self.block_size(set), seed(&self.config.node)).next()
    }

    /// A view of the pool: the block list read from etcd, no block looked into yet.
    fn view(&self) -> Result<View> {
        let kvs = self.etcd.get_prefix(
            &self.keys.blocks(),
            Read::Serializable,
            "reading the block list",
        )?;
        Ok(View {
            claimed: self.claimed(&kvs),
            reserved: HashMap::new(),
        })
    }

    /// The claimed blocks among the block keys `kvs` (values that are not ours are skipped).
    fn claimed(&self, kvs: &[KeyValue]) -> Vec<Claimed> {
        kvs.iter()
            .filter_map(|kv| {
                let block = self.keys.parse_block(&key_text(kv))?;
                let owner: BlockOwner = parse(kv).ok()?;
                Some(Claimed {
                    block,
                    node: owner.node,
                    revision: kv.create_revision(),
                })
            })
            .collect()
    }

    /// A free address of `block`: one that `set` may hand out, that no key reserves (as
    /// `view` knows, else as etcd says) and that this ADD has not picked already. `spread`
    /// chooses among the free ones, so concurrent ADDs in one block mostly try different
    /// addresses instead of all racing for the lowest.
    fn free_in(
        &self,
        view: &mut View,
        block: Block,
        set: &RangeSet,
        picked: &[IpAddr],
        spread: u64,
    ) -> Result<Option<IpAddr>> {
        let reserved = match view.reserved.entry(block) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(unknown) => {
                let reads = BlockReads::of(&self.keys, block, set);
                let answers = self.etcd.read_all(
                    reads.ops(&self.keys, Read::Serializable),
                    &format!("reading block {block}"),
                )?;
                unknown.insert(reads.reserved(&self.keys, block, &mut answers.into_iter()))
            }
        };
        let free: Vec<IpAddr> = block
            .candidates(set)
            .filter(|ip| !picked.contains(ip) && !reserved.contains(ip))
            .collect();
        Ok(spread_over(&free, spread))
    }

    /// Claims a free block of `set` for this node: one transaction that creates the block's
    /// key only if it does not exist. Returns the block claimed, `None` when none is left
    /// (or every try was lost to other nodes).
    fn claim(&self, set: &RangeSet, claimed: &mut Vec<Claimed>) -> Result<Option<Block>> {
        let taken: HashSet<Block> = claimed.iter().map(|c| c.block).collect();
        let size = self.block_size(set);
        let free = blocks_of(set, size, seed(&self.config.node)).filter(|b| !taken.contains(b));
        let owner = json(&BlockOwner {
            node: self.config.node.clone(),
        });
        for block in free.take(MAX_CLAIMS) {
            let key = self.keys.block(block);
            let txn = Txn::new()
                .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.as_str(), owner.as_str(), None)]);
            let won = self
                .etcd
                .txn(txn, &format!("claiming block {block}"))?
                .succeeded();
            claimed.push(Claimed {
                block,
                // Lost: another node has it now; which one does not matter here.
                node: if won {
                    self.config.node.clone()
                } else {
                    String::new()
                },
                revision: i64::MAX,
            });
            if won {
                log::info!("node {} claimed block {block}", self.config.node);
                return Ok(Some(block));
            }
        }
        Ok(None)
    }

    /// Picks a free address of `set`: in this node's blocks (its home block first, then the
    /// newest first, so filling a node's pool does not read every full block each time),
    /// else in a newly claimed block, else in another node's block. `None`: the set looks
    /// full.
    fn pick(
        &self,
        view: &mut View,
        set: &RangeSet,
        picked: &[IpAddr],
        spread: u64,
    ) -> Result<Option<IpAddr>> {
        let size = self.block_size(set);
        let node = &self.config.node;
        let in_set = |c: &&Claimed| c.block.in_set(set, size);
        let mut own: Vec<&Claimed> = view
            .claimed
            .iter()
            .filter(in_set)
            .filter(|c| &c.node == node)
            .collect();
        let home = self.home(set);
        own.sort_by_key(|c| (Some(c.block) != home, std::cmp::Reverse(c.revision)));
        let own: Vec<Block> = own.into_iter().map(|c| c.block).collect();
        for block in own {
            if let Some(ip) = self.free_in(view, block, set, picked, spread)? {
                return Ok(Some(ip));
            }
        }
        while let Some(block) = self.claim(set, &mut view.claimed)? {
            if let Some(ip) = self.free_in(view, block, set, picked, spread)? {
                return Ok(Some(ip));
            }
        }
        let mut others: Vec<Block> = view
            .claimed
            .iter()
            .filter(in_set)
            .filter(|c| &c.node != node)
            .map(|c| c.block)
            .collect();
        // Borrowers start at different blocks, so they do not all race for the same address.
        if !others.is_empty() {
            let start = usize::try_from(seed(node) % others.len() as u64).unwrap_or(0);
            others.rotate_left(start);
        }
        for block in others {
            if let Some(ip) = self.free_in(view, block, set, picked, spread)? {
                return Ok(Some(ip));
            }
        }
        Ok(None)
    }
}

/// What one ADD attempt chose: per range set, the address and whether it was requested.
struct Choice {
    ip: IpAddr,
    requested: bool,
}

/// How the write of an ADD went.
enum Written {
    Committed,
    /// A compare failed (and was not the caller's error): the answers to the extra reads.
    Lost(Vec<TxnOpResponse>),
}

/// How the guess of an ADD went.
enum Guess {
    Won(Vec<Choice>),
    /// What the failed transaction read, for the full path to go on from.
    Lost(View),
    /// No guess made: requested addresses, or a range set without a home block to guess in.
    Skipped,
}

impl Pool<'_> {
    /// ADD: one address per range set for `attachment`, reserved together with the
    /// attachment's index key in one transaction. A lost compare (another node took an
    /// address first) retries; a requested address taken, or an attachment that already
    /// holds addresses, is an error with host-local's code and message.
    pub fn allocate(&self, attachment: &Attachment) -> Result<Vec<IpConfig>> {
        let spread = seed(&format!(
            "{}/{}",
            attachment.container_id, attachment.ifname
        ));
        let mut known = match self.guess(attachment, spread)? {
            Guess::Won(choices) => return Ok(self.result(&choices)),
            Guess::Lost(view) => Some(view),
            Guess::Skipped => None,
        };
        for attempt in 0..MAX_ATTEMPTS as u64 {
            let mut view = match known.take() {
                Some(view) => view,
                None => self.view()?,
            };
            let choices = self.choose(&mut view, spread.wrapping_add(attempt))?;
            if let Written::Committed = self.commit(attachment, &choices, Vec::new(), Vec::new())? {
                return Ok(self.result(&choices));
            }
        }
        Err(Error::Contended {
            attempts: MAX_ATTEMPTS,
        })
    }

    /// The common ADD in one round trip: per range set, the address `free_in` would pick
    /// in this node's home block if that block were empty, written by [`Pool::commit`]
    /// guarded by the block key holding exactly this node's owner value, so the guess never
    /// lands outside the node's own blocks. If a compare fails, the same transaction has
    /// read the block list and the reservation keys of the home block and the next blocks
    /// this node would claim (those that fit etcd's limit on operations), and the full
    /// path goes on from there.
    fn guess(&self, attachment: &Attachment, spread: u64) -> Result<Guess> {
        if !self.config.ipam.requested_ips.is_empty() {
            return Ok(Guess::Skipped);
        }
        let sets = &self.config.ipam.range_sets;
        let owner = json(&BlockOwner {
            node: self.config.node.clone(),
        });
        let mut assumed = View::default();
        let mut choices: Vec<Choice> = Vec::new();
        let mut guards = Vec::new();
        let mut reads = vec![prefix_get(&self.keys.blocks())];
        let mut looked: Vec<(Block, BlockReads)> = Vec::new();
        // The failure branch also holds commit's reads: the attachment and one per set.
        let mut room = MAX_TXN_OPS.saturating_sub(reads.len() + 1 + sets.len());
        for set in sets {
            let Some(home) = self.home(set) else {
                return Ok(Guess::Skipped);
            };
            // Assumed empty, so free_in reads nothing.
            assumed.reserved.insert(home, HashSet::new());
            let picked: Vec<IpAddr> = choices.iter().map(|c| c.ip).collect();
            let Some(ip) = self.free_in(&mut assumed, home, set, &picked, spread)? else {
                return Ok(Guess::Skipped);
            };
            choices.push(Choice {
                ip,
                requested: false,
            });
            let block_key = self.keys.block(home);
            guards.push(Compare::value(block_key, CompareOp::Equal, owner.as_str()));
            // The home block and the next ones this node would claim: where its own
            // blocks most likely are when the home block is full or another node's.
            let likely = blocks_of(set, self.block_size(set), seed(&self.config.node));
            for block in likely.take(GUESS_LOOKS_INTO) {
                let block_reads = BlockReads::of(&self.keys, block, set);
                let ops = block_reads.ops(&self.keys, Read::Linearizable);
                if ops.len() <= room {
                    room -= ops.len();
                    reads.extend(ops);
                    looked.push((block, block_reads));
                }
            }
        }
        let Written::Lost(answers) = self.commit(attachment, &choices, guards, reads)? else {
            return Ok(Guess::Won(choices));
        };
        let mut answers = answers.into_iter();
        let mut view = View {
            claimed: self.claimed(&answers.next().map(kvs).unwrap_or_default()),
            reserved: HashMap::new(),
        };
        for (block, block_reads) in looked {
            let reserved = block_reads.reserved(&self.keys, block, &mut answers);
            view.reserved.insert(block, reserved);
        }
        Ok(Guess::Lost(view))
    }

    /// One address per range set: the requested one, or a free one by [`Pool::pick`].
    fn choose(&self, view: &mut View, spread: u64) -> Result<Vec<Choice>> {
        let mut requested = self.config.ipam.requested_ips.clone();
        let mut choices: Vec<Choice> = Vec::new();
        for (index, set) in self.config.ipam.range_sets.iter().enumerate() {
            let wanted = requested
                .iter()
                .position(|ip| set.contains(*ip))
                .map(|position| requested.remove(position));
            let choice = match wanted {
                Some(ip) => {
                    if set.range_for(ip).is_some_and(|range| range.gateway == ip) {
                        return Err(cni_ipam::Error::RequestedIpIsGateway { set: index, ip }.into());
                    }
                    Choice {
                        ip,
                        requested: true,
                    }
                }
                None => {
                    let picked: Vec<IpAddr> = choices.iter().map(|c| c.ip).collect();
                    let Some(ip) = self.pick(view, set, &picked, spread)? else {
                        return Err(cni_ipam::Error::Exhausted {
                            set: index,
                            ranges: set.to_string(),
                        }
                        .into());
                    };
                    Choice {
                        ip,
                        requested: false,
                    }
                }
            };
            choices.push(choice);
        }
        if !requested.is_empty() {
            return Err(cni_ipam::Error::RequestedIpsUnfulfilled { ips: requested }.into());
        }
        Ok(choices)
    }

    /// The one write of an ADD: every reservation and the attachment key, each compared
    /// absent, and the caller's `guards`. Lost: an address was taken meanwhile (or a guard
    /// failed), try again; the answers to `reads`, done by the same transaction then, come
    /// back with it.
    fn commit(
        &self,
        attachment: &Attachment,
        choices: &[Choice],
        guards: Vec<Compare>,
        reads: Vec<TxnOp>,
    ) -> Result<Written> {
        let node = self.config.node.clone();
        let attachment_key = self.keys.attachment(attachment);
        let reservation = json(&Reservation {
            node: node.clone(),
            container_id: attachment.container_id.clone(),
            ifname: attachment.ifname.clone(),
        });
        let record = json(&AttachmentRecord {
            node,
            ips: choices.iter().map(|c| c.ip).collect(),
        });
        let mut compares = vec![Compare::create_revision(
            attachment_key.as_str(),
            CompareOp::Equal,
            0,
        )];
        let mut puts = vec![TxnOp::put(attachment_key.as_str(), record, None)];
        // On failure, read back what may explain it: the attachment, the requested addresses.
        let mut diagnose = vec![TxnOp::get(attachment_key.as_str(), None)];
        for choice in choices {
            let key = self.keys.ip(choice.ip);
            compares.push(Compare::create_revision(key.as_str(), CompareOp::Equal, 0));
            puts.push(TxnOp::put(key.as_str(), reservation.as_str(), None));
            diagnose.push(TxnOp::get(key.as_str(), None));
        }
        compares.extend(guards);
        diagnose.extend(reads);
        let txn = Txn::new().when(compares).and_then(puts).or_else(diagnose);
        let response = self.etcd.txn(txn, "reserving addresses")?;
        if response.succeeded() {
            return Ok(Written::Committed);
        }
        let mut answers = response.op_responses().into_iter();
        if let Some(Some(kv)) = answers.next().map(first_kv) {
            let held: AttachmentRecord = parse(&kv)?;
            return Err(cni_ipam::Error::DuplicateAllocation {
                set: 0,
                ip: held.ips.first().copied().unwrap_or(choices[0].ip),
                container_id: attachment.container_id.clone(),
            }
            .into());
        }
        // zip asks `choices` first: the answers past the diagnosis stay in `answers`.
        let found = answers.by_ref().map(first_kv);
        for (index, (choice, kv)) in choices.iter().zip(found).enumerate() {
            if choice.requested && kv.is_some() {
                return Err(cni_ipam::Error::RequestedIpTaken {
                    set: index,
                    ip: choice.ip,
                    ranges: self.config.ipam.range_sets[index].to_string(),
                }
                .into());
            }
        }
        Ok(Written::Lost(answers.collect()))
    }

    fn result(&self, choices: &[Choice]) -> Vec<IpConfig> {
        self.config
            .ipam
            .range_sets
            .iter()
            .zip(choices)
            .filter_map(|(set, choice)| {
                let range = set.range_for(choice.ip)?;
                Some(IpConfig {
                    interface: None,
                    address: range.cidr_of(choice.ip),
                    gateway: Some(range.gateway),
                })
            })
            .collect()
    }
}

impl Pool<'_> {
    /// DEL: releases the attachment's reservations and its index key. Idempotent: nothing
    /// to release is success. Returns the addresses released.
    pub fn release(&self, attachment: &Attachment) -> Result<Vec<IpAddr>> {
        let key = self.keys.attachment(attachment);
        for _ in 0..MAX_ATTEMPTS {
            let Some(kv) = self.etcd.get(&key, "reading the attachment")? else {
                return Ok(Vec::new());
            };
            if let Some(released) = self.release_record(&kv)? {
                return Ok(released);
            }
        }
        Err(Error::Contended {
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Deletes one attachment key and the reservations written with it (same
    /// `mod_revision`), all compared unchanged. `None`: something changed meanwhile.
    ///
    /// The first transaction assumes every reservation is still the attachment's (the
    /// common case: DEL in two round trips). If one is not (released or reused since), the
    /// same transaction has read them back, and a second deletes exactly those still ours.
    fn release_record(&self, kv: &KeyValue) -> Result<Option<Vec<IpAddr>>> {
        let record: AttachmentRecord = parse(kv)?;
        let keys: Vec<String> = record.ips.iter().map(|ip| self.keys.ip(*ip)).collect();
        let revision = kv.mod_revision();
        let mut ours = vec![true; keys.len()];
        for first_try in [true, false] {
            let mut compares = vec![Compare::mod_revision(kv.key(), CompareOp::Equal, revision)];
            let mut deletes = vec![TxnOp::delete(kv.key(), None)];
            let mut released = Vec::new();
            for ((ip, key), _) in record.ips.iter().zip(&keys).zip(&ours).filter(|(_, o)| **o) {
                compares.push(Compare::mod_revision(
                    key.as_str(),
                    CompareOp::Equal,
                    revision,
                ));
                deletes.push(TxnOp::delete(key.as_str(), None));
                released.push(*ip);
            }
            let mut txn = Txn::new().when(compares).and_then(deletes);
            if first_try {
                let reads = keys.iter().map(|key| presence(key, Read::Linearizable));
                txn = txn.or_else(reads.collect::<Vec<_>>());
            }
            let response = self.etcd.txn(txn, "releasing addresses")?;
            if response.succeeded() {
                return Ok(Some(released));
            }
            // A reservation with another revision belongs to a later ADD: left alone.
            let found = response.op_responses().into_iter().map(first_kv);
            ours = found
                .map(|kv| kv.is_some_and(|kv| kv.mod_revision() == revision))
                .collect();
        }
        Ok(None)
    }

    /// CHECK: the attachment's index key and every reservation written with it exist.
    pub fn check(&self, attachment: &Attachment) -> Result<()> {
        let key = self.keys.attachment(attachment);
        let Some(kv) = self.etcd.get(&key, "reading the attachment")? else {
            return Err(Error::AttachmentNotFound {
                container_id: attachment.container_id.clone(),
                ifname: attachment.ifname.clone(),
            });
        };
        let record: AttachmentRecord = parse(&kv)?;
        let keys: Vec<String> = record.ips.iter().map(|ip| self.keys.ip(*ip)).collect();
        let reads = keys.iter().map(|key| presence(key, Read::Linearizable));
        let found = self
            .etcd
            .read_all(reads.collect(), "reading the attachment's reservations")?
            .into_iter()
            .map(first_kv);
        for (ip, found) in record.ips.iter().zip(found) {
            if found.is_none_or(|k| k.mod_revision() != kv.mod_revision()) {
                return Err(Error::ReservationMissing {
                    container_id: attachment.container_id.clone(),
                    ifname: attachment.ifname.clone(),
                    ip: *ip,
                });
            }
        }
        Ok(())
    }

    /// STATUS: fails (code 50) with the first range set that has no free address: no
    /// unclaimed block left and no free address in any claimed one.
    pub fn status(&self) -> Result<()> {
        let mut view = self.view()?;
        let claimed = view.claimed.clone();
        let taken: HashSet<Block> = claimed.iter().map(|c| c.block).collect();
        for (index, set) in self.config.ipam.range_sets.iter().enumerate() {
            let size = self.block_size(set);
            if blocks_of(set, size, 0).any(|b| !taken.contains(&b)) {
                continue;
            }
            let mut free = false;
            for claim in claimed.iter().filter(|c| c.block.in_set(set, size)) {
                if self.free_in(&mut view, claim.block, set, &[], 0)?.is_some() {
                    free = true;
                    break;
                }
            }
            if !free {
                return Err(cni_ipam::Error::NoFreeAddress {
                    set: index,
                    ranges: set.to_string(),
                }
                .into());
            }
        }
        Ok(())
    }

    /// The attachment keys of the network held by `node`.
    fn attachments_of(&self, node: &str) -> Result<Vec<(Attachment, KeyValue)>> {
        let kvs = self.etcd.get_prefix(
            &self.keys.attachments(),
            Read::Linearizable,
            "reading the attachments",
        )?;
        Ok(kvs
            .into_iter()
            .filter_map(|kv| {
                let attachment = self.keys.parse_attachment(&key_text(&kv))?;
                let record: AttachmentRecord = parse(&kv).ok()?;
                (record.node == node).then_some((attachment, kv))
            })
            .collect())
    }

    /// GC: releases this node's attachments on this network that are not in `valid`.
    /// An attachment changed meanwhile is left for the next GC. Returns how many went.
    pub fn gc(&self, valid: &[Attachment]) -> Result<usize> {
        let mut released = 0;
        for (attachment, kv) in self.attachments_of(&self.config.node)? {
            if !valid.contains(&attachment) && self.release_record(&kv)?.is_some() {
                released += 1;
            }
        }
        Ok(released)
    }

    /// Admin: releases every attachment and block of `node` on this network (a node that
    /// is gone for good). Returns the numbers of attachments and blocks released.
    pub fn release_node(&self, node: &str) -> Result<(usize, usize)> {
        let mut attachments = 0;
        for (_, kv) in self.attachments_of(node)? {
            if self.release_record(&kv)?.is_some() {
                attachments += 1;
            }
        }
        let mut blocks = 0;
        for kv in self.etcd.get_prefix(
            &self.keys.blocks(),
            Read::Linearizable,
            "reading the block list",
        )? {
            let owner: Option<BlockOwner> = parse(&kv).ok();
            if owner.is_none_or(|o| o.node != node) {
                continue;
            }
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    kv.key(),
                    CompareOp::Equal,
                    kv.mod_revision(),
                )])
                .and_then([TxnOp::delete(kv.key(), None)]);
            if self.etcd.txn(txn, "releasing a block")?.succeeded() {
                blocks += 1;
            }
        }
        Ok((attachments, blocks))
    }
}
