//! Address ranges and range sets: parsing one `{subnet, rangeStart, rangeEnd, gateway}` entry
//! into a canonical [`Range`], membership, overlap, and the textual forms the reference prints
//! in its error messages (PL:backend/allocator/range.go, range_set.go; docs/reference.md#host-local).
//!
//! Pure values: no I/O here.

use cni::Cidr;
use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One range entry as written in the configuration (`ipam.ranges[i][j]`, the legacy keys
/// directly under `ipam`, or `runtimeConfig.ipRanges[i][j]`). Values stay text until
/// [`Range::from_spec`] so every fault can name its field.
///
/// containerd sends `runtimeConfig.ipRanges` through go-cni, whose `IPRanges` has no JSON
/// tags, so the keys arrive as Go's field names (`Subnet`, `RangeStart`, ...); the
/// reference reads them because Go matches JSON keys without regard to case, and the
/// aliases take them too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeSpec {
    /// `subnet`: the network in CIDR form, host bits clear.
    #[serde(default, alias = "Subnet")]
    pub subnet: Option<String>,
    /// `rangeStart`: first allocatable address (inclusive).
    #[serde(default, alias = "RangeStart")]
    pub range_start: Option<String>,
    /// `rangeEnd`: last allocatable address (inclusive).
    #[serde(default, alias = "RangeEnd")]
    pub range_end: Option<String>,
    /// `gateway`: never allocated; returned as the gateway of every address of this range.
    #[serde(default, alias = "Gateway")]
    pub gateway: Option<String>,
}

/// A validated range: every address in `range_start..=range_end` lies in `subnet` and is
/// neither its network nor its IPv4 broadcast address. The gateway has the subnet's family,
/// and may lie outside it (as the reference allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The network (host bits clear).
    pub subnet: Cidr,
    /// First allocatable address (inclusive).
    pub range_start: IpAddr,
    /// Last allocatable address (inclusive).
    pub range_end: IpAddr,
    /// The gateway (skipped by the allocator).
    pub gateway: IpAddr,
}

/// Why one range entry is invalid: the field (`subnet`, `gateway`, ...) and the reason, in
/// the reference's words where it has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeFault {
    /// The key inside the range object; empty for faults of a whole range set.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl RangeFault {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        RangeFault {
            field,
            reason: reason.into(),
        }
    }
}

/// An address as a number, for ordering and stepping; the family travels separately.
pub(crate) fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address before `ip` (wrapping at the bottom of the family).
fn prev_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4).wrapping_sub(1))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6).wrapping_sub(1))),
    }
}

/// The address after `ip` (wrapping at the top of the family, as Go's `ip.NextIP`).
pub(crate) fn next_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4).wrapping_add(1))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6).wrapping_add(1))),
    }
}

/// Parses an address as Go's `net.ParseIP` + `canonicalizeIP` do: IPv4-mapped IPv6 becomes IPv4.
pub(crate) fn parse_ip(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

fn bits(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// The IPv4 broadcast address of `subnet`, `None` for IPv6 (which has none).
fn broadcast(subnet: Cidr) -> Option<IpAddr> {
    match subnet.0 {
        ipnetwork::IpNetwork::V4(net) => Some(IpAddr::V4(net.broadcast())),
        ipnetwork::IpNetwork::V6(_) => None,
    }
}

impl Range {
    /// Validates and fills in one range entry, as the reference's `Range.Canonicalize`.
    ///
    /// What the reference accepts is accepted, so swapping its binary for ours never breaks a
    /// working config, but with a warning where it is a mistake: a gateway outside the subnet
    /// or on its network or IPv4 broadcast address (plugins #1294), and a `rangeStart` on the
    /// network address or `rangeEnd` on the broadcast address (plugins #1295). Unlike the
    /// reference, those two addresses are never allocated: the range is narrowed past them.
    /// A gateway of the other family is still refused: its result could not be used.
    pub fn from_spec(spec: &RangeSpec) -> Result<Range, RangeFault> {
        let text =
            set_value(&spec.subnet).ok_or_else(|| RangeFault::new("subnet", "missing subnet"))?;
        let parsed: Cidr = text
            .parse()
            .map_err(|_| RangeFault::new("subnet", format!("invalid CIDR address: {text}")))?;
        let ip = parsed.ip().to_canonical();
        let max_prefix = bits(ip) - 2;
        if parsed.prefix() > max_prefix {
            return Err(RangeFault::new(
                "subnet",
                format!("Network {parsed} too small to allocate from"),
            ));
        }
        if ip != parsed.ip() {
            return Err(RangeFault::new(
                "subnet",
                "IPNet IP and Mask version mismatch",
            ));
        }
        let subnet = parsed.network();
        if subnet.ip() != ip {
            return Err(RangeFault::new(
                "subnet",
                format!(
                    "Network has host bits set. For a subnet mask of length {} the network address is {}",
                    subnet.prefix(),
                    subnet.ip()
                ),
            ));
        }
        let network_address = subnet.ip();
        let mut range = Range {
            subnet,
            range_start: next_ip(network_address),
            range_end: last_ip(subnet),
            gateway: next_ip(network_address),
        };
        if let Some(text) = set_value(&spec.gateway) {
            let gateway = range.parse_member("gateway", text)?;
            if !range.in_subnet(gateway) {
                log::warn!(
                    "gateway {gateway} is not in network {subnet}; accepted as the reference does"
                );
            } else if let Some(what) = range.reserved_address(gateway) {
                log::warn!(
                    "gateway {gateway} is the {what} of {subnet}; accepted as the reference does"
                );
            }
            range.gateway = gateway;
        }
        // The reference checks rangeStart while rangeEnd is still unset, then rangeEnd
        // against the final rangeStart, so `rangeEnd < rangeStart` reads "before start".
        if let Some(text) = set_value(&spec.range_start) {
            let start = range.parse_member("rangeStart", text)?;
            range
                .check_in_subnet(start)
                .map_err(|reason| RangeFault::new("rangeStart", reason))?;
            range.range_start = start;
        }
        if let Some(text) = set_value(&spec.range_end) {
            let end = range.parse_member("rangeEnd", text)?;
            // Up to the subnet's very last address: the broadcast address is narrowed away
            // below, with a warning, rather than refused.
            let unbounded_end = Range {
                range_end: broadcast(subnet).unwrap_or_else(|| last_ip(subnet)),
                ..range
            };
            unbounded_end
                .check_in_range(end)
                .map_err(|reason| RangeFault::new("rangeEnd", reason))?;
            range.range_end = end;
        }
        range.exclude_reserved_ends()?;
        Ok(range)
    }

    /// Narrows the range past a `rangeStart` on the network address and a `rangeEnd` on the
    /// IPv4 broadcast address, neither of which a host may use, with a warning; a range of
    /// nothing else is refused.
    fn exclude_reserved_ends(&mut self) -> Result<(), RangeFault> {
        let written = self.to_string();
        let narrow = |field: &str, ip: IpAddr, past: fn(IpAddr) -> IpAddr| {
            let Some(what) = self.reserved_address(ip) else {
                return ip;
            };
            log::warn!(
                "{field} {ip} is the {what} of {}: it is never allocated",
                self.subnet
            );
            past(ip)
        };
        let (start, end) = (
            narrow("rangeStart", self.range_start, next_ip),
            narrow("rangeEnd", self.range_end, prev_ip),
        );
        (self.range_start, self.range_end) = (start, end);
        if ip_to_u128(self.range_start) > ip_to_u128(self.range_end) {
            return Err(RangeFault::new(
                "rangeStart",
                format!(
                    "range {written} holds no address but the network or broadcast address of {}",
                    self.subnet
                ),
            ));
        }
        Ok(())
    }

    /// Which reserved address of the subnet `ip` is, if any: the network address, or the
    /// IPv4 broadcast address.
    fn reserved_address(&self, ip: IpAddr) -> Option<&'static str> {
        if ip == self.subnet.ip() {
            Some("network address")
        } else if Some(ip) == broadcast(self.subnet) {
            Some("broadcast address")
        } else {
            None
        }
    }

    /// Parses an address field and checks its family against the subnet's.
    fn parse_member(&self, field: &'static str, text: &str) -> Result<IpAddr, RangeFault> {
        let ip = parse_ip(text)
            .ok_or_else(|| RangeFault::new(field, format!("invalid IP address: {text}")))?;
        if ip.is_ipv4() != self.subnet.ip().is_ipv4() {
            return Err(RangeFault::new(
                field,
                format!("IP {ip} is not the same protocol as subnet {}", self.subnet),
            ));
        }
        Ok(ip)
    }

    fn in_subnet(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.subnet.ip().is_ipv4() && self.subnet.0.contains(ip)
    }

    fn check_in_subnet(&self, ip: IpAddr) -> Result<(), String> {
        if ip.is_ipv4() != self.subnet.ip().is_ipv4() {
            return Err(format!(
                "IP {ip} is not the same protocol as subnet {}",
                self.subnet
            ));
        }
        if !self.subnet.0.contains(ip) {
            return Err(format!("{ip} not in network {}", self.subnet));
        }
        Ok(())
    }

    /// The reference's `IPInRange`, with its messages: same family, inside the subnet, and
    /// between `rangeStart` and `rangeEnd` inclusive.
    pub fn check_in_range(&self, ip: IpAddr) -> Result<(), String> {
        self.check_in_subnet(ip)?;
        if ip_to_u128(ip) < ip_to_u128(self.range_start) {
            return Err(format!(
                "{ip} is in network {} but before start {}",
                self.subnet, self.range_start
            ));
        }
        if ip_to_u128(ip) > ip_to_u128(self.range_end) {
            return Err(format!(
                "{ip} is in network {} but after end {}",
                self.subnet, self.range_end
            ));
        }
        Ok(())
    }

    /// Whether `ip` is allocatable space of this range (the gateway included).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.check_in_range(ip).is_ok()
    }

    /// Whether the two ranges share an address (different families never overlap).
    pub fn overlaps(&self, other: &Range) -> bool {
        self.range_start.is_ipv4() == other.range_start.is_ipv4()
            && (self.contains(other.range_start)
                || self.contains(other.range_end)
                || other.contains(self.range_start)
                || other.contains(self.range_end))
    }

    /// The address with this range's prefix length, as the result carries it.
    pub fn cidr_of(&self, ip: IpAddr) -> Cidr {
        // UNWRAP: the prefix is the subnet's, valid for the family, and `ip` has that family.
        #[allow(clippy::unwrap_used)]
        Cidr(ipnetwork::IpNetwork::new(ip, self.subnet.prefix()).unwrap())
    }
}

/// A field's text, `None` when absent or empty: Go decodes `""` into a nil `net.IP`.
fn set_value(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|text| !text.is_empty())
}

/// The last address of `subnet`, minus the broadcast for IPv4 (Go's `lastIP`).
fn last_ip(subnet: Cidr) -> IpAddr {
    match subnet.0 {
        ipnetwork::IpNetwork::V4(net) => {
            IpAddr::V4(Ipv4Addr::from(u32::from(net.broadcast()).wrapping_sub(1)))
        }
        ipnetwork::IpNetwork::V6(net) => IpAddr::V6(net.broadcast()),
    }
}

impl fmt::Display for Range {
    /// `start-end`, as the reference prints a range in its messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.range_start, self.range_end)
    }
}

/// The pools one address is allocated from: one entry of `ranges` ("range set"), all of one
/// family and non-overlapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<Range>,
}

impl RangeSet {
    /// Validates a set as the reference's `RangeSet.Canonicalize`: non-empty, one family,
    /// no two ranges overlapping. On error, the index of the offending range (if any).
    pub fn new(ranges: Vec<Range>) -> Result<RangeSet, (Option<usize>, RangeFault)> {
        let Some(first) = ranges.first() else {
            return Err((None, RangeFault::new("", "empty range set")));
        };
        let family_v4 = first.range_start.is_ipv4();
        if let Some(index) = ranges
            .iter()
            .position(|r| r.range_start.is_ipv4() != family_v4)
        {
            return Err((
                Some(index),
                RangeFault::new("subnet", "mixed address families"),
            ));
        }
        for (i, a) in ranges.iter().enumerate() {
            for (j, b) in ranges.iter().enumerate().skip(i + 1) {
                if a.overlaps(b) {
                    return Err((
                        Some(j),
                        RangeFault::new("subnet", format!("subnets {a} and {b} overlap")),
                    ));
                }
            }
        }
        Ok(RangeSet { ranges })
    }

    /// The ranges, in configuration order (never empty).
    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }

    /// Whether the set's addresses are IPv4.
    pub fn is_ipv4(&self) -> bool {
        self.ranges[0].range_start.is_ipv4()
    }

    /// The range holding `ip`, if any.
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.ranges.iter().find(|r| r.contains(ip))
    }

    /// Whether some range of the set holds `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some()
    }

    /// Whether any range of `self` overlaps any range of `other`.
    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.ranges
            .iter()
            .any(|a| other.ranges.iter().any(|b| a.overlaps(b)))
    }
}

impl fmt::Display for RangeSet {
    /// `start-end,start-end`, as the reference prints a range set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, range) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{range}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(subnet: &str) -> RangeSpec {
        RangeSpec {
            subnet: Some(subnet.into()),
            ..RangeSpec::default()
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn range(subnet: &str, start: Option<&str>, end: Option<&str>) -> Range {
        Range::from_spec(&RangeSpec {
            range_start: start.map(Into::into),
            range_end: end.map(Into::into),
            ..spec(subnet)
        })
        .unwrap()
    }

    fn fault(spec: RangeSpec) -> RangeFault {
        Range::from_spec(&spec).unwrap_err()
    }

    #[test]
    fn defaults_follow_the_reference() {
        // (subnet, start, end, gateway)
        let table = [
            ("192.0.2.0/24", "192.0.2.1", "192.0.2.254", "192.0.2.1"),
            ("192.0.2.0/25", "192.0.2.1", "192.0.2.126", "192.0.2.1"),
            ("192.0.2.0/30", "192.0.2.1", "192.0.2.2", "192.0.2.1"),
            (
                "2001:db8:1::/64",
                "2001:db8:1::1",
                "2001:db8:1::ffff:ffff:ffff:ffff",
                "2001:db8:1::1",
            ),
        ];
        for (subnet, start, end, gateway) in table {
            let r = Range::from_spec(&spec(subnet)).unwrap();
            assert_eq!(r.subnet.to_string(), subnet);
            assert_eq!(
                (r.range_start, r.range_end, r.gateway),
                (ip(start), ip(end), ip(gateway))
            );
        }
    }

    #[test]
    fn subnets_with_host_bits_are_refused() {
        let f = fault(spec("192.0.2.1/24"));
        assert_eq!(f.field, "subnet");
        assert_eq!(
            f.reason,
            "Network has host bits set. For a subnet mask of length 24 the network address is 192.0.2.0"
        );
        let f = fault(spec("2001:db8:1::1/64"));
        assert!(
            f.reason.ends_with("the network address is 2001:db8:1::"),
            "{}",
            f.reason
        );
    }

    #[test]
    fn too_small_networks_are_refused() {
        for subnet in ["192.0.2.0/31", "192.0.2.0/32", "2001:db8::/127"] {
            let f = fault(spec(subnet));
            assert_eq!(
                f.reason,
                format!("Network {subnet} too small to allocate from")
            );
        }
    }

    #[test]
    fn bad_subnet_text_names_the_field() {
        for text in [
            "",
            "10.0.0.0",
            "10.0.0.0/33",
            "garbage/8",
            "10.0.0.0/255.0.0.0",
        ] {
            assert_eq!(fault(spec(text)).field, "subnet", "{text}");
        }
    }

    #[test]
    fn range_start_and_end_must_lie_in_the_subnet() {
        let f = fault(RangeSpec {
            range_start: Some("10.1.1.5".into()),
            ..spec("192.0.2.0/24")
        });
        assert_eq!(
            (f.field, f.reason.as_str()),
            ("rangeStart", "10.1.1.5 not in network 192.0.2.0/24")
        );
        let f = fault(RangeSpec {
            range_end: Some("10.1.1.5".into()),
            ..spec("192.0.2.0/24")
        });
        assert_eq!(
            (f.field, f.reason.as_str()),
            ("rangeEnd", "10.1.1.5 not in network 192.0.2.0/24")
        );
        let f = fault(RangeSpec {
            range_start: Some("2001:db8::5".into()),
            ..spec("192.0.2.0/24")
        });
        assert_eq!(
            f.reason,
            "IP 2001:db8::5 is not the same protocol as subnet 192.0.2.0/24"
        );
    }

    #[test]
    fn range_end_before_range_start_is_refused() {
        let f = fault(RangeSpec {
            range_start: Some("192.0.2.50".into()),
            range_end: Some("192.0.2.40".into()),
            ..spec("192.0.2.0/24")
        });
        assert_eq!(f.field, "rangeEnd");
        assert_eq!(
            f.reason,
            "192.0.2.40 is in network 192.0.2.0/24 but before start 192.0.2.50"
        );
    }

    #[test]
    fn all_fields_parse() {
        let r = Range::from_spec(&RangeSpec {
            subnet: Some("192.0.2.0/24".into()),
            range_start: Some("192.0.2.40".into()),
            range_end: Some("192.0.2.50".into()),
            gateway: Some("192.0.2.254".into()),
        })
        .unwrap();
        assert_eq!(r.range_start, ip("192.0.2.40"));
        assert_eq!(r.range_end, ip("192.0.2.50"));
        assert_eq!(r.gateway, ip("192.0.2.254"));
        assert_eq!(r.to_string(), "192.0.2.40-192.0.2.50");
    }

    #[test]
    fn empty_strings_mean_unset_as_in_go() {
        let r = Range::from_spec(&RangeSpec {
            gateway: Some(String::new()),
            range_start: Some(String::new()),
            ..spec("192.0.2.0/24")
        })
        .unwrap();
        assert_eq!(r.gateway, ip("192.0.2.1"));
    }

    /// plugins #1294: the reference accepts a gateway outside the subnet, and so do we (with
    /// a warning); one of the other family is refused.
    #[test]
    fn gateway_outside_the_subnet_is_accepted_but_not_of_the_other_family() {
        for gateway in ["10.9.9.9", "192.0.2.0", "192.0.2.255"] {
            let r = Range::from_spec(&RangeSpec {
                gateway: Some(gateway.into()),
                ..spec("192.0.2.0/24")
            })
            .unwrap();
            assert_eq!(r.gateway, ip(gateway));
            assert_eq!(r.to_string(), "192.0.2.1-192.0.2.254", "{gateway}");
        }
        let f = fault(RangeSpec {
            gateway: Some("2001:db8::1".into()),
            ..spec("192.0.2.0/24")
        });
        assert_eq!(f.field, "gateway");
    }

    /// plugins #1295: a range written from the network to the broadcast address is accepted
    /// as the reference does, but those two addresses are never handed out.
    #[test]
    fn network_and_broadcast_range_ends_are_narrowed() {
        let cases = [
            (
                "192.0.2.0/24",
                Some("192.0.2.0"),
                None,
                "192.0.2.1-192.0.2.254",
            ),
            (
                "192.0.2.0/24",
                None,
                Some("192.0.2.255"),
                "192.0.2.1-192.0.2.254",
            ),
            (
                "192.0.2.0/30",
                Some("192.0.2.0"),
                Some("192.0.2.3"),
                "192.0.2.1-192.0.2.2",
            ),
            (
                "2001:db8::/64",
                Some("2001:db8::"),
                None,
                "2001:db8::1-2001:db8::ffff:ffff:ffff:ffff",
            ),
        ];
        for (subnet, start, end, want) in cases {
            let r = Range::from_spec(&RangeSpec {
                range_start: start.map(Into::into),
                range_end: end.map(Into::into),
                ..spec(subnet)
            })
            .unwrap();
            assert_eq!(r.to_string(), want, "{subnet} {start:?} {end:?}");
        }
        let f = fault(RangeSpec {
            range_start: Some("192.0.2.0".into()),
            range_end: Some("192.0.2.0".into()),
            ..spec("192.0.2.0/24")
        });
        assert_eq!(
            (f.field, f.reason.as_str()),
            (
                "rangeStart",
                "range 192.0.2.0-192.0.2.0 holds no address but the network or broadcast address of 192.0.2.0/24"
            )
        );
    }

    #[test]
    fn contains_checks_family_subnet_and_bounds() {
        let r = range("192.0.2.0/24", Some("192.0.2.40"), Some("192.0.2.50"));
        assert!(r.contains(ip("192.0.2.40")) && r.contains(ip("192.0.2.50")));
        assert!(!r.contains(ip("192.0.2.39")) && !r.contains(ip("192.0.2.51")));
        assert!(!r.contains(ip("10.0.0.45")) && !r.contains(ip("2001:db8::45")));
        let v6 = range("2001:db8:1::/64", None, None);
        assert!(v6.contains(ip("2001:db8:1::ffff")));
        assert!(!v6.contains(ip("2001:db8:2::1")) && !v6.contains(ip("192.0.2.1")));
    }

    #[test]
    fn overlap_table() {
        // (a, b, overlaps)
        let table = [
            (
                range("10.0.0.0/24", None, None),
                range("10.0.1.0/24", None, None),
                false,
            ),
            (
                range("10.0.0.0/24", None, None),
                range("2001:db8::/64", None, None),
                false,
            ),
            (
                range("10.0.0.0/24", None, None),
                range("10.0.0.0/24", None, None),
                true,
            ),
            (
                range("10.0.0.0/20", None, None),
                range("10.0.1.0/24", None, None),
                true,
            ),
            (
                range("10.0.0.0/24", None, Some("10.0.0.127")),
                range("10.0.0.0/24", Some("10.0.0.128"), None),
                false,
            ),
            (
                range("10.0.0.0/24", None, Some("10.0.0.128")),
                range("10.0.0.0/24", Some("10.0.0.128"), None),
                true,
            ),
        ];
        for (a, b, expected) in table {
            assert_eq!(a.overlaps(&b), expected, "{a} / {b}");
            assert_eq!(b.overlaps(&a), expected, "{b} / {a}");
        }
    }

    #[test]
    fn range_set_membership_and_validation() {
        let set = RangeSet::new(vec![
            range("192.0.2.0/24", None, None),
            range("198.51.100.0/24", None, None),
        ])
        .unwrap();
        assert!(set.contains(ip("198.51.100.7")) && !set.contains(ip("203.0.113.1")));
        assert_eq!(
            set.to_string(),
            "192.0.2.1-192.0.2.254,198.51.100.1-198.51.100.254"
        );

        let (index, f) = RangeSet::new(vec![]).unwrap_err();
        assert_eq!((index, f.reason.as_str()), (None, "empty range set"));
        let (index, f) = RangeSet::new(vec![
            range("192.0.2.0/24", None, None),
            range("2001:db8::/64", None, None),
        ])
        .unwrap_err();
        assert_eq!(
            (index, f.reason.as_str()),
            (Some(1), "mixed address families")
        );
        let (index, f) = RangeSet::new(vec![
            range("192.0.2.0/24", None, None),
            range("192.0.2.0/25", None, None),
        ])
        .unwrap_err();
        assert_eq!(index, Some(1));
        assert_eq!(
            f.reason,
            "subnets 192.0.2.1-192.0.2.254 and 192.0.2.1-192.0.2.126 overlap"
        );
    }

    #[test]
    fn range_sets_overlap_when_any_pair_does() {
        let a = RangeSet::new(vec![
            range("10.0.0.0/24", None, None),
            range("10.0.2.0/24", None, None),
        ])
        .unwrap();
        let b = RangeSet::new(vec![
            range("10.0.1.0/24", None, None),
            range("10.0.2.0/24", None, None),
        ])
        .unwrap();
        let c = RangeSet::new(vec![range("10.0.3.0/24", None, None)]).unwrap();
        assert!(a.overlaps(&b) && !a.overlaps(&c));
    }
}
