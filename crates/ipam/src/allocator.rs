//! Which address to take: requested addresses first, otherwise round robin from each range
//! set's `last_reserved_ip`, never the gateway (PL:backend/allocator/allocator.go;
//! docs/reference.md#allocation). Also the other verbs' policies: release, check,
//! status and garbage collection.
//!
//! Every function works on a [`LockedStore`], so one lock covers a whole operation (the
//! reference locks once per range set).

use crate::config::IpamConfig;
use crate::error::{Error, Result};
use crate::range::{Range, RangeSet, next_ip};
use crate::store::LockedStore;
use cni::{Attachment, IpConfig};
use std::iter::FusedIterator;
use std::net::IpAddr;

/// The addresses of a range set in allocation order (the reference's `RangeIter`): from
/// just after `last_reserved` when the set holds it (crossing to the next range after a
/// range's end and wrapping to the first, so `last_reserved` itself comes last), otherwise
/// from the first range's start. Gateways are skipped. Yields each address with its range.
#[derive(Debug, Clone)]
pub struct Candidates<'a> {
    set: &'a RangeSet,
    range_index: usize,
    current: Option<IpAddr>,
    first: Option<IpAddr>,
    finished: bool,
}

impl<'a> Candidates<'a> {
    /// Starts the iteration; `last_reserved` outside the set is ignored (the set's ranges
    /// may have changed since it was written).
    pub fn new(set: &'a RangeSet, last_reserved: Option<IpAddr>) -> Candidates<'a> {
        let resume = last_reserved.and_then(|ip| {
            set.ranges()
                .iter()
                .position(|range| range.contains(ip))
                .map(|index| (index, ip))
        });
        Candidates {
            set,
            range_index: resume.map_or(0, |(index, _)| index),
            current: resume.map(|(_, ip)| ip),
            first: None,
            finished: false,
        }
    }
}

impl<'a> Iterator for Candidates<'a> {
    type Item = (IpAddr, &'a Range);

    fn next(&mut self) -> Option<Self::Item> {
        let ranges = self.set.ranges();
        while !self.finished {
            let mut range = &ranges[self.range_index];
            let candidate = match self.current {
                // A fresh start begins at the first range's start, inclusive.
                None => {
                    self.first = Some(range.range_start);
                    range.range_start
                }
                Some(current) => {
                    let next = if current == range.range_end {
                        self.range_index = (self.range_index + 1) % ranges.len();
                        range = &ranges[self.range_index];
                        range.range_start
                    } else {
                        next_ip(current)
                    };
                    match self.first {
                        None => self.first = Some(next),
                        Some(first) if first == next => {
                            self.finished = true;
                            return None;
                        }
                        Some(_) => {}
                    }
                    next
                }
            };
            self.current = Some(candidate);
            if candidate != range.gateway {
                return Some((candidate, range));
            }
        }
        None
    }
}

impl FusedIterator for Candidates<'_> {}

/// ADD: one address per range set for `attachment`, in range-set order. On any failure
/// every address reserved by this call is released (and only those: the reference releases
/// everything the attachment holds).
pub fn allocate(
    store: &LockedStore<'_>,
    config: &IpamConfig,
    attachment: &Attachment,
) -> Result<Vec<IpConfig>> {
    let mut reserved = Vec::new();
    reserve_all(store, config, attachment, &mut reserved).inspect_err(|_| {
        for ip in &reserved {
            if let Err(release_error) = store.release(*ip, attachment) {
                log::warn!("rolling back {ip} after a failed ADD: {release_error}");
            }
        }
    })
}

/// The body of [`allocate`]; every address it reserves is pushed to `reserved` at once, so
/// the caller can roll back whatever step fails.
fn reserve_all(
    store: &LockedStore<'_>,
    config: &IpamConfig,
    attachment: &Attachment,
    reserved: &mut Vec<IpAddr>,
) -> Result<Vec<IpConfig>> {
    let held = store.held_for_add(attachment)?;
    let mut requested = config.requested_ips.clone();
    let mut ips = Vec::new();
    for (index, set) in config.range_sets.iter().enumerate() {
        let wanted = requested
            .iter()
            .position(|ip| set.contains(*ip))
            .map(|position| requested.remove(position));
        let (ip, range) = match wanted {
            Some(ip) => reserve_requested(store, index, set, ip, attachment)?,
            None => reserve_next(store, index, set, &held, attachment)?,
        };
        reserved.push(ip);
        store.set_last_reserved_ip(index, ip)?;
        ips.push(IpConfig {
            interface: None,
            address: range.cidr_of(ip),
            gateway: Some(range.gateway),
        });
    }
    if !requested.is_empty() {
        return Err(Error::RequestedIpsUnfulfilled { ips: requested });
    }
    store.remember(attachment, reserved)?;
    Ok(ips)
}

fn reserve_requested<'s>(
    store: &LockedStore<'_>,
    index: usize,
    set: &'s RangeSet,
    ip: IpAddr,
    attachment: &Attachment,
) -> Result<(IpAddr, &'s Range)> {
    // The caller picked `ip` because the set contains it, so this never fails; no panic on
    // the CNI path all the same.
    let Some(range) = set.range_for(ip) else {
        return Err(Error::RequestedIpsUnfulfilled { ips: vec![ip] });
    };
    if ip == range.gateway {
        return Err(Error::RequestedIpIsGateway { set: index, ip });
    }
    if !store.reserve(ip, attachment)? {
        return Err(Error::RequestedIpTaken {
            set: index,
            ip,
            ranges: set.to_string(),
        });
    }
    Ok((ip, range))
}

fn reserve_next<'s>(
    store: &LockedStore<'_>,
    index: usize,
    set: &'s RangeSet,
    held: &[IpAddr],
    attachment: &Attachment,
) -> Result<(IpAddr, &'s Range)> {
    if let Some(ip) = held.iter().find(|ip| set.contains(**ip)) {
        return Err(Error::DuplicateAllocation {
            set: index,
            ip: *ip,
            container_id: attachment.container_id.clone(),
        });
    }
    for (ip, range) in Candidates::new(set, store.last_reserved_ip(index)?) {
        if store.reserve(ip, attachment)? {
            return Ok((ip, range));
        }
    }
    Err(Error::Exhausted {
        set: index,
        ranges: set.to_string(),
    })
}

/// DEL: releases everything `attachment` holds. Idempotent; returns what was released.
pub fn release(store: &LockedStore<'_>, attachment: &Attachment) -> Result<Vec<IpAddr>> {
    store.release_all(attachment)
}

/// CHECK: succeeds when `attachment` holds any address, as the reference does.
pub fn check(store: &LockedStore<'_>, attachment: &Attachment) -> Result<()> {
    if store.find(attachment)?.is_empty() {
        return Err(Error::AttachmentNotFound {
            container_id: attachment.container_id.clone(),
        });
    }
    Ok(())
}

/// STATUS: fails with the first range set that has no free address left.
pub fn status(store: &LockedStore<'_>, config: &IpamConfig) -> Result<()> {
    for (index, set) in config.range_sets.iter().enumerate() {
        let mut free = false;
        for (ip, _) in Candidates::new(set, None) {
            if !store.is_reserved(ip)? {
                free = true;
                break;
            }
        }
        if !free {
            return Err(Error::NoFreeAddress {
                set: index,
                ranges: set.to_string(),
            });
        }
    }
    Ok(())
}

/// GC: releases every lease whose holder is not in `valid`. A legacy (ID-only) lease is
/// kept when its container ID matches any valid attachment. Returns the released addresses.
pub fn gc(store: &LockedStore<'_>, valid: &[Attachment]) -> Result<Vec<IpAddr>> {
    let mut released = Vec::new();
    for lease in store.leases()? {
        if valid
            .iter()
            .any(|attachment| lease.owner.matches(attachment))
        {
            continue;
        }
        let holder = Attachment {
            container_id: lease.owner.container_id.clone(),
            ifname: lease.owner.ifname.clone().unwrap_or_default(),
        };
        if store.release(lease.ip, &holder)? {
            released.push(lease.ip);
        }
    }
    store.forget_unless(|attachment| valid.contains(attachment))?;
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::RangeSpec;
    use crate::store::Store;
    use std::path::PathBuf;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// A range set from `(subnet, rangeStart, rangeEnd)` triples.
    fn set(ranges: &[(&str, Option<&str>, Option<&str>)]) -> RangeSet {
        RangeSet::new(
            ranges
                .iter()
                .map(|(subnet, start, end)| {
                    Range::from_spec(&RangeSpec {
                        subnet: Some((*subnet).into()),
                        range_start: start.map(Into::into),
                        range_end: end.map(Into::into),
                        gateway: None,
                    })
                    .unwrap()
                })
                .collect(),
        )
        .unwrap()
    }

    fn attachment(id: &str) -> Attachment {
        Attachment {
            container_id: id.into(),
            ifname: "eth0".into(),
        }
    }

    struct Fixture {
        dir: tempfile::TempDir,
        store: Store,
        config: IpamConfig,
    }

    impl Fixture {
        fn new(range_sets: Vec<RangeSet>) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path(), "mynet").unwrap();
            let config = IpamConfig {
                network: "mynet".into(),
                cni_version: cni::Version::V1_0_0,
                range_sets,
                requested_ips: Vec::new(),
                routes: Vec::new(),
                data_dir: dir.path().into(),
                resolv_conf: None,
            };
            Fixture { dir, store, config }
        }

        fn net_dir(&self) -> PathBuf {
            self.dir.path().join("mynet")
        }

        fn allocate(&self, id: &str) -> Result<Vec<IpConfig>> {
            allocate(&self.store.lock().unwrap(), &self.config, &attachment(id))
        }

        fn allocate_ip(&self, id: &str) -> String {
            self.allocate(id).unwrap()[0].address.ip().to_string()
        }

        fn reserve(&self, texts: &[&str]) {
            let locked = self.store.lock().unwrap();
            for text in texts {
                assert!(locked.reserve(ip(text), &attachment("other")).unwrap());
            }
        }

        fn set_last(&self, text: &str) {
            self.store
                .lock()
                .unwrap()
                .set_last_reserved_ip(0, ip(text))
                .unwrap();
        }
    }

    fn walk(set: &RangeSet, last: Option<&str>) -> Vec<String> {
        Candidates::new(set, last.map(ip))
            .map(|(ip, _)| ip.to_string())
            .collect()
    }

    #[test]
    fn iterator_from_the_beginning_skips_the_gateway() {
        let s = set(&[("192.168.1.0/29", None, None)]);
        assert_eq!(
            walk(&s, None),
            [".2", ".3", ".4", ".5", ".6"].map(|t| format!("192.168.1{t}"))
        );
        let mut it = Candidates::new(&s, None);
        it.by_ref().for_each(drop);
        assert!(it.next().is_none(), "stays exhausted");
    }

    #[test]
    fn iterator_from_the_end_wraps() {
        let s = set(&[("192.168.1.0/29", None, None)]);
        assert_eq!(
            walk(&s, Some("192.168.1.6")),
            [".2", ".3", ".4", ".5", ".6"].map(|t| format!("192.168.1{t}"))
        );
    }

    #[test]
    fn iterator_from_the_middle_tries_the_last_reserved_last() {
        let s = set(&[("192.168.1.0/29", None, None)]);
        assert_eq!(
            walk(&s, Some("192.168.1.3")),
            [".4", ".5", ".6", ".2", ".3"].map(|t| format!("192.168.1{t}"))
        );
    }

    #[test]
    fn iterator_crosses_ranges_and_ignores_foreign_last_reserved() {
        let s = set(&[
            ("192.168.1.0/30", None, None),
            ("192.168.2.0/30", None, None),
        ]);
        assert_eq!(
            walk(&s, Some("192.168.1.2")),
            ["192.168.2.2", "192.168.1.2"]
        );
        assert_eq!(walk(&s, Some("10.0.0.1")), ["192.168.1.2", "192.168.2.2"]);
    }

    #[test]
    fn ipv6_first_allocation_is_2() {
        let f = Fixture::new(vec![set(&[("2001:db8:1::/64", None, None)])]);
        let ips = f.allocate("c1").unwrap();
        assert_eq!(ips[0].address.to_string(), "2001:db8:1::2/64");
        assert_eq!(ips[0].gateway, Some(ip("2001:db8:1::1")));
    }

    /// The reference's round-robin table (allocator_test.go), one fixture per row.
    #[test]
    fn round_robin_table() {
        struct Row {
            name: &'static str,
            ranges: Vec<(&'static str, Option<&'static str>, Option<&'static str>)>,
            taken: Vec<&'static str>,
            last: Option<&'static str>,
            expect: &'static str,
        }
        let row = |name, ranges, taken, last, expect| Row {
            name,
            ranges,
            taken,
            last,
            expect,
        };
        let single = vec![("10.0.0.0/29", None, None)];
        let double = vec![("10.0.0.0/30", None, None), ("10.0.1.0/30", None, None)];
        let table = vec![
            row("fresh start", single.clone(), vec![], None, "10.0.0.2"),
            row(
                "skips taken at start",
                single.clone(),
                vec!["10.0.0.2"],
                None,
                "10.0.0.3",
            ),
            row(
                "after lastIP",
                single.clone(),
                vec![],
                Some("10.0.0.3"),
                "10.0.0.4",
            ),
            row(
                "wraps to start",
                single.clone(),
                vec![],
                Some("10.0.0.6"),
                "10.0.0.2",
            ),
            row(
                "lastIP out of range",
                single.clone(),
                vec![],
                Some("10.9.9.9"),
                "10.0.0.2",
            ),
            row(
                "full except lastIP",
                single.clone(),
                vec!["10.0.0.2", "10.0.0.3", "10.0.0.5", "10.0.0.6"],
                Some("10.0.0.4"),
                "10.0.0.4",
            ),
            row("multiple subnets", double.clone(), vec![], None, "10.0.0.2"),
            row(
                "advance to next subnet",
                double.clone(),
                vec![],
                Some("10.0.0.2"),
                "10.0.1.2",
            ),
            row(
                "roll over subnets",
                double.clone(),
                vec![],
                Some("10.0.1.2"),
                "10.0.0.2",
            ),
            row(
                "explicit start/end",
                vec![("10.0.0.0/24", Some("10.0.0.50"), Some("10.0.0.52"))],
                vec![],
                Some("10.0.0.52"),
                "10.0.0.50",
            ),
        ];
        for row in table {
            let f = Fixture::new(vec![set(&row.ranges)]);
            f.reserve(&row.taken);
            if let Some(last) = row.last {
                f.set_last(last);
            }
            assert_eq!(f.allocate_ip("c1"), row.expect, "{}", row.name);
        }
    }

    #[test]
    fn never_allocates_the_broadcast_address() {
        let f = Fixture::new(vec![set(&[("192.168.1.0/29", None, None)])]);
        let got: Vec<String> = (0..5).map(|n| f.allocate_ip(&format!("c{n}"))).collect();
        assert_eq!(
            got,
            [".2", ".3", ".4", ".5", ".6"].map(|t| format!("192.168.1{t}"))
        );
        let err = f.allocate("c9").unwrap_err();
        assert!(err.to_string().starts_with(
            "failed to allocate for range 0: no IP addresses available in range set: 192.168.1.1-192.168.1.6"
        ), "{err}");
        assert!(matches!(err, Error::Exhausted { set: 0, .. }));
    }

    #[test]
    fn release_then_allocate_gives_the_next_address() {
        let f = Fixture::new(vec![set(&[("192.168.1.0/29", None, None)])]);
        assert_eq!(f.allocate_ip("c1"), "192.168.1.2");
        release(&f.store.lock().unwrap(), &attachment("c1")).unwrap();
        assert_eq!(f.allocate_ip("c2"), "192.168.1.3");
    }

    #[test]
    fn requested_ip_is_reserved_and_bookmarked() {
        let mut f = Fixture::new(vec![set(&[("192.168.1.0/24", None, None)])]);
        f.config.requested_ips = vec![ip("192.168.1.88")];
        assert_eq!(f.allocate_ip("c1"), "192.168.1.88");
        let locked = f.store.lock().unwrap();
        assert_eq!(
            locked.last_reserved_ip(0).unwrap(),
            Some(ip("192.168.1.88"))
        );
    }

    #[test]
    fn requested_ip_already_taken_is_refused_with_the_reference_message() {
        let mut f = Fixture::new(vec![set(&[("192.168.1.0/24", None, None)])]);
        f.reserve(&["192.168.1.5"]);
        f.config.requested_ips = vec![ip("192.168.1.5")];
        let err = f.allocate("c1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to allocate for range 0: requested IP address 192.168.1.5 is not available in range set 192.168.1.1-192.168.1.254"
        );
    }

    #[test]
    fn requested_ip_outside_the_range_bounds_is_left_over() {
        for requested in ["192.168.1.90", "192.168.1.40"] {
            let mut f = Fixture::new(vec![set(&[(
                "192.168.1.0/24",
                Some("192.168.1.50"),
                Some("192.168.1.80"),
            )])]);
            f.config.requested_ips = vec![ip(requested)];
            let err = f.allocate("c1").unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("failed to allocate all requested IPs: {requested}")
            );
            assert!(
                f.store.lock().unwrap().leases().unwrap().is_empty(),
                "nothing leaked"
            );
        }
    }

    #[test]
    fn requested_gateway_is_refused() {
        let mut f = Fixture::new(vec![set(&[("192.168.1.0/24", None, None)])]);
        f.config.requested_ips = vec![ip("192.168.1.1")];
        let err = f.allocate("c1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to allocate for range 0: requested ip 192.168.1.1 is subnet's gateway"
        );
    }

    #[test]
    fn duplicate_attachment_is_refused_and_a_different_one_gets_the_next() {
        let f = Fixture::new(vec![set(&[("10.1.2.0/24", None, None)])]);
        assert_eq!(f.allocate_ip("dummy"), "10.1.2.2");
        let err = f.allocate("dummy").unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to allocate for range 0: 10.1.2.2 has been allocated to dummy, duplicate allocation is not allowed"
        );
        assert_eq!(f.allocate_ip("other"), "10.1.2.3");
        // The failed ADD must not have released the first lease.
        check(&f.store.lock().unwrap(), &attachment("dummy")).unwrap();
    }

    #[test]
    fn a_failure_in_a_later_set_releases_only_this_add() {
        let f = Fixture::new(vec![
            set(&[("10.1.2.0/24", None, None)]),
            set(&[("10.1.3.0/30", None, None)]),
        ]);
        f.reserve(&["10.1.3.2"]);
        let err = f.allocate("c1").unwrap_err();
        assert!(matches!(err, Error::Exhausted { set: 1, .. }), "{err}");
        let leases = f.store.lock().unwrap().leases().unwrap();
        assert_eq!(
            leases.len(),
            1,
            "only the pre-existing lease remains: {leases:?}"
        );
    }

    #[test]
    fn two_sets_give_one_address_each_and_files_like_the_reference() {
        let f = Fixture::new(vec![
            set(&[("10.1.2.0/24", None, None), ("10.2.2.0/24", None, None)]),
            set(&[("2001:db8:1::/64", None, None)]),
        ]);
        let ips = f.allocate("dummy").unwrap();
        let text: Vec<String> = ips.iter().map(|c| c.address.to_string()).collect();
        assert_eq!(text, ["10.1.2.2/24", "2001:db8:1::2/64"]);
        let read = |name: &str| std::fs::read_to_string(f.net_dir().join(name)).unwrap();
        assert_eq!(read("10.1.2.2"), "dummy\r\neth0");
        assert_eq!(read("2001:db8:1::2"), "dummy\r\neth0");
        assert_eq!(read("last_reserved_ip.0"), "10.1.2.2");
        assert_eq!(read("last_reserved_ip.1"), "2001:db8:1::2");
        release(&f.store.lock().unwrap(), &attachment("dummy")).unwrap();
        assert!(!f.net_dir().join("10.1.2.2").exists());
        assert!(!f.net_dir().join("2001:db8:1::2").exists());
    }

    #[test]
    fn release_matches_legacy_id_only_files_and_is_idempotent() {
        let f = Fixture::new(vec![set(&[("10.1.2.0/24", None, None)])]);
        std::fs::write(f.net_dir().join("10.1.2.2"), "dummy").unwrap();
        let locked = f.store.lock().unwrap();
        check(&locked, &attachment("dummy")).unwrap();
        assert_eq!(
            release(&locked, &attachment("dummy")).unwrap(),
            [ip("10.1.2.2")]
        );
        assert!(release(&locked, &attachment("dummy")).unwrap().is_empty());
        assert!(release(&locked, &attachment("unknown")).unwrap().is_empty());
    }

    #[test]
    fn check_fails_for_an_unknown_attachment() {
        let f = Fixture::new(vec![set(&[("10.1.2.0/24", None, None)])]);
        let err = check(&f.store.lock().unwrap(), &attachment("nobody")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "host-local: Failed to find address added by container nobody"
        );
    }

    #[test]
    fn status_reports_a_full_range_set() {
        let f = Fixture::new(vec![set(&[("10.1.2.0/30", None, None)])]);
        status(&f.store.lock().unwrap(), &f.config).unwrap();
        f.allocate("c1").unwrap();
        let err = status(&f.store.lock().unwrap(), &f.config).unwrap_err();
        assert!(matches!(err, Error::NoFreeAddress { set: 0, .. }));
        assert_eq!(cni::Error::from(err).code(), 50);
    }

    #[test]
    fn gc_keeps_valid_attachments_and_legacy_files_of_valid_ids() {
        let f = Fixture::new(vec![set(&[("10.1.2.0/24", None, None)])]);
        for id in ["keep", "drop"] {
            f.allocate(id).unwrap();
        }
        let eth1 = Attachment {
            container_id: "keep".into(),
            ifname: "eth1".into(),
        };
        allocate(&f.store.lock().unwrap(), &f.config, &eth1).unwrap();
        std::fs::write(f.net_dir().join("10.1.2.100"), "keep").unwrap();
        std::fs::write(f.net_dir().join("10.1.2.101"), "gone").unwrap();
        let locked = f.store.lock().unwrap();
        let mut released = gc(&locked, &[attachment("keep")]).unwrap();
        released.sort();
        assert_eq!(released, [ip("10.1.2.3"), ip("10.1.2.4"), ip("10.1.2.101")]);
        let mut left: Vec<IpAddr> = locked.leases().unwrap().into_iter().map(|l| l.ip).collect();
        left.sort();
        assert_eq!(left, [ip("10.1.2.2"), ip("10.1.2.100")]);
        // The collected attachments' index entries are gone too.
        let index = f.net_dir().join(".attachments");
        assert!(index.join("keep+eth0").exists());
        assert!(!index.join("keep+eth1").exists() && !index.join("drop+eth0").exists());
    }

    /// Rewrites a lease in place (same inode, directory untouched), which neither plugin
    /// ever does: the one change the index stamp cannot see, used here to tell whether an
    /// ADD scanned the leases or trusted the stamp.
    fn rewrite_in_place(path: &std::path::Path, content: &str) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_len(0).unwrap();
        file.write_all(content.as_bytes()).unwrap();
    }

    fn dir_mtime(path: &std::path::Path) -> std::time::SystemTime {
        std::fs::metadata(path).unwrap().modified().unwrap()
    }

    fn set_dir_mtime(path: &std::path::Path, time: std::time::SystemTime) {
        std::fs::File::open(path)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }

    /// While only we write, ADD's duplicate check trusts the stamp and reads no lease.
    #[test]
    fn the_duplicate_check_trusts_the_stamp_while_only_we_write() {
        let f = Fixture::new(vec![set(&[("10.1.2.0/24", None, None)])]);
        assert_eq!(f.allocate_ip("c1"), "10.1.2.2");
        assert_eq!(f.allocate_ip("c2"), "10.1.2.3");
        let stamp = std::fs::read_to_string(f.net_dir().join(".index-stamp")).unwrap();
        assert!(
            stamp.starts_with("# host-local index stamp v1\n"),
            "{stamp}"
        );
        // c1's lease now claims to be c3's: only a scan would notice.
        rewrite_in_place(&f.net_dir().join("10.1.2.2"), "c3\r\neth0");
        assert_eq!(f.allocate_ip("c3"), "10.1.2.4", "the stamp was trusted");
        // DEL keeps the stamp current.
        release(&f.store.lock().unwrap(), &attachment("c2")).unwrap();
        rewrite_in_place(&f.net_dir().join("10.1.2.4"), "c5\r\neth0");
        assert_eq!(f.allocate_ip("c5"), "10.1.2.5", "still trusted after DEL");
    }

    /// Any lease the Go plugin writes or removes sends ADD back to the scan, even when the
    /// directory's mtime is put back (a coarse clock): the listing differs.
    #[test]
    fn a_foreign_lease_sends_the_duplicate_check_back_to_the_scan() {
        let f = Fixture::new(vec![set(&[("10.1.2.0/24", None, None)])]);
        assert_eq!(f.allocate_ip("c1"), "10.1.2.2");
        let net = f.net_dir();
        std::fs::write(net.join("10.1.2.50"), "go1\r\neth0").unwrap();
        let err = f.allocate("go1").unwrap_err();
        assert!(matches!(err, Error::DuplicateAllocation { .. }), "{err}");

        // Now the same with the mtime restored: the listing gives it away.
        assert_eq!(f.allocate_ip("c2"), "10.1.2.3");
        let mtime = dir_mtime(&net);
        std::fs::write(net.join("10.1.2.60"), "go2\r\neth0").unwrap();
        set_dir_mtime(&net, mtime);
        let err = f.allocate("go2").unwrap_err();
        assert!(matches!(err, Error::DuplicateAllocation { .. }), "{err}");

        // A Go-format lease without an index entry keeps every ADD scanning (no stamp is
        // vouched for), as before the stamp existed.
        rewrite_in_place(&net.join("10.1.2.2"), "c7\r\neth0");
        let err = f.allocate("c7").unwrap_err();
        assert!(matches!(err, Error::DuplicateAllocation { .. }), "{err}");

        // Once the foreign leases are gone, the scan finds every lease indexed again and
        // the stamp is trusted from the next ADD on.
        for name in ["10.1.2.2", "10.1.2.50", "10.1.2.60"] {
            std::fs::remove_file(net.join(name)).unwrap();
        }
        assert_eq!(f.allocate_ip("c8"), "10.1.2.4");
        rewrite_in_place(&net.join("10.1.2.4"), "c9\r\neth0");
        assert_eq!(f.allocate_ip("c9"), "10.1.2.5", "the stamp was trusted");
    }

    /// GC leaves the stamp stale: the next ADD scans.
    #[test]
    fn gc_sends_the_next_duplicate_check_to_the_scan() {
        let f = Fixture::new(vec![set(&[("10.1.2.0/24", None, None)])]);
        for id in ["keep", "drop"] {
            f.allocate(id).unwrap();
        }
        gc(&f.store.lock().unwrap(), &[attachment("keep")]).unwrap();
        rewrite_in_place(&f.net_dir().join("10.1.2.2"), "c3\r\neth0");
        let err = f.allocate("c3").unwrap_err();
        assert!(matches!(err, Error::DuplicateAllocation { .. }), "{err}");
    }

    #[test]
    fn error_codes_map_once() {
        let exhausted = Error::Exhausted {
            set: 0,
            ranges: "a-b".into(),
        };
        assert_eq!(
            cni::Error::from(exhausted).code(),
            cni::error::code::IPAM_EXHAUSTED
        );
        let taken = Error::RequestedIpTaken {
            set: 0,
            ip: ip("10.0.0.1"),
            ranges: "a-b".into(),
        };
        assert_eq!(
            cni::Error::from(taken).code(),
            cni::error::code::IPAM_ALLOCATED
        );
        let invalid = Error::InvalidRange {
            set: 0,
            field: "ipam.subnet".into(),
            reason: "x".into(),
        };
        assert_eq!(cni::Error::from(invalid).code(), 7);
        let io = Error::Store {
            op: "read",
            path: "/x".into(),
            source: std::io::ErrorKind::Other.into(),
        };
        assert_eq!(cni::Error::from(io).code(), 5);
    }
}
