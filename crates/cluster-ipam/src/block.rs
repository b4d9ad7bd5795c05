//! Blocks: the aligned pieces of each range's subnet that a node claims for itself
//! (`blockSizeV4`/`blockSizeV6` prefix lengths, never larger than the subnet).
//!
//! Addresses are handled as integers (`u128` for both families) so one piece of code walks
//! IPv4 and IPv6 blocks alike.

use cni_ipam::RangeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One block: its first address and prefix length. Written `10.97.8.64-26` in keys (a `/`
/// would add a path level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Block {
    first: IpAddr,
    prefix: u8,
}

fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// `value` in the family of `like`; IPv4 values always fit (they come from IPv4 math).
fn from_int(value: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(value).unwrap_or(u32::MAX))),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

fn width(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

impl Block {
    /// The block of prefix length `prefix` holding `ip`.
    pub fn containing(ip: IpAddr, prefix: u8) -> Block {
        let host_bits = u32::from(width(ip) - prefix);
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        Block {
            first: from_int(to_int(ip) & mask, ip),
            prefix,
        }
    }

    /// Parses the key form `first-prefix`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Block> {
        let (first, prefix) = text.rsplit_once('-')?;
        let first: IpAddr = first.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let block = (prefix <= width(first)).then(|| Block::containing(first, prefix))?;
        (block.first == first).then_some(block)
    }

    /// Number of addresses minus one (the last address's offset).
    fn last_offset(self) -> u128 {
        u128::MAX >> (128 - u32::from(width(self.first) - self.prefix))
    }

    /// Whether `ip` lies in the block.
    pub fn contains(self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.first.is_ipv4() && Block::containing(ip, self.prefix) == self
    }

    /// Whether the block is one of [`blocks_of`]`(set, block_size)`: of the right size for
    /// one of the set's ranges, and overlapping it.
    pub fn in_set(self, set: &RangeSet, block_size: u8) -> bool {
        let first = to_int(self.first);
        let last = first + self.last_offset();
        set.ranges().iter().any(|range| {
            range.range_start.is_ipv4() == self.first.is_ipv4()
                && self.prefix == block_size.max(range.subnet.0.prefix())
                && first <= to_int(range.range_end)
                && last >= to_int(range.range_start)
        })
    }

    /// Every address of the block, in ascending order.
    pub fn addresses(self) -> impl Iterator<Item = IpAddr> {
        let first = to_int(self.first);
        (0..=self.last_offset()).map(move |offset| from_int(first + offset, self.first))
    }

    /// Whether the block is IPv4 and lies within one /24, so the texts of its addresses
    /// all begin with the same three octets.
    pub fn within_ipv4_slash24(self) -> bool {
        self.first.is_ipv4() && self.prefix >= 24
    }

    /// The addresses of the block that `set` may hand out (inside one of its ranges, not
    /// a gateway), in ascending order.
    pub fn candidates(self, set: &RangeSet) -> impl Iterator<Item = IpAddr> + '_ {
        self.addresses()
            .filter(move |ip| set.range_for(*ip).is_some_and(|range| range.gateway != *ip))
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.prefix)
    }
}

/// The blocks of `set`, range by range: every block of prefix length `block_size` (or the
/// subnet, if smaller) that overlaps a range's `rangeStart..=rangeEnd`. Walking starts at a
/// block chosen by `seed`, so nodes claiming at the same time mostly try different blocks.
/// Lazy: an IPv6 /64 has 2^58 blocks of /122, and only the first few unclaimed are wanted.
pub fn blocks_of(set: &RangeSet, block_size: u8, seed: u64) -> impl Iterator<Item = Block> + '_ {
    set.ranges().iter().flat_map(move |range| {
        let prefix = block_size.max(range.subnet.0.prefix());
        let start = Block::containing(range.range_start, prefix);
        let end = Block::containing(range.range_end, prefix);
        let step = start.last_offset() + 1;
        let count = (to_int(end.first) - to_int(start.first)) / step + 1;
        let skip = u128::from(seed) % count;
        (0..count).map(move |n| Block {
            first: from_int(
                to_int(start.first) + ((n + skip) % count) * step,
                start.first,
            ),
            prefix,
        })
    })
}

/// A stable hash of a node name (FNV-1a), to spread nodes over the pool.
pub fn seed(node: &str) -> u64 {
    node.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_ipam::{Range, RangeSpec};

    fn set(subnet: &str) -> RangeSet {
        RangeSet::new(vec![
            Range::from_spec(&RangeSpec {
                subnet: Some(subnet.into()),
                ..RangeSpec::default()
            })
            .unwrap(),
        ])
        .unwrap()
    }

    #[test]
    fn key_form_round_trips_and_rejects_unaligned() {
        let block = Block::parse("10.97.8.64-26").unwrap();
        assert_eq!(block.to_string(), "10.97.8.64-26");
        assert!(Block::parse("10.97.8.65-26").is_none());
        assert!(Block::parse("10.97.8.64-33").is_none());
        assert_eq!(
            Block::parse("fd00::40-122").unwrap().to_string(),
            "fd00::40-122"
        );
    }

    #[test]
    fn blocks_tile_the_range_and_skip_network_broadcast_and_gateway() {
        let s = set("10.97.8.0/24");
        let mut blocks: Vec<String> = blocks_of(&s, 26, 7).map(|b| b.to_string()).collect();
        blocks.sort();
        assert_eq!(
            blocks,
            [
                "10.97.8.0-26",
                "10.97.8.128-26",
                "10.97.8.192-26",
                "10.97.8.64-26"
            ]
        );
        let first = Block::parse("10.97.8.0-26").unwrap();
        let ips: Vec<IpAddr> = first.candidates(&s).collect();
        assert_eq!(ips.len(), 62, "no .0, no gateway .1");
        assert_eq!(ips[0].to_string(), "10.97.8.2");
        let last = Block::parse("10.97.8.192-26").unwrap();
        assert_eq!(
            last.candidates(&s).last().unwrap().to_string(),
            "10.97.8.254"
        );
    }

    #[test]
    fn a_subnet_smaller_than_a_block_is_one_block() {
        let s = set("10.0.0.0/29");
        let blocks: Vec<String> = blocks_of(&s, 26, 0).map(|b| b.to_string()).collect();
        assert_eq!(blocks, ["10.0.0.0-29"]);
    }

    #[test]
    fn ipv6_pools_are_walked_lazily() {
        let s = set("fd00::/64");
        let block = blocks_of(&s, 122, seed("node-1")).next().unwrap();
        assert!(block.to_string().ends_with("-122"));
        assert_eq!(
            block.candidates(&s).count(),
            64 - usize::from(block.contains("fd00::1".parse().unwrap()))
                - usize::from(block.contains("fd00::".parse().unwrap()))
        );
    }
}
