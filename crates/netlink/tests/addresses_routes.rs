//! Addresses and routes, and sysctls inside a netns.

// Tests: a failed step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;

use cni_netlink::{
    AddressOptions, Error, IpFamily, IpNetwork, RouteSpec, Scope, TABLE_MAIN, sysctl,
};
use common::{anon_with_handle, veth_pair};

fn net(text: &str) -> IpNetwork {
    text.parse().unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn addresses_v4_v6_add_list_delete() {
    let (_ns, handle) = anon_with_handle();
    let link = veth_pair(&handle, "vaddr0", "vaddr0p");
    handle.set_link_up(link.index).unwrap();

    handle
        .add_address(link.index, net("10.1.2.3/24"), AddressOptions::default())
        .unwrap();
    handle
        .add_address(
            link.index,
            net("2001:db8::5/64"),
            AddressOptions { nodad: true },
        )
        .unwrap();

    let addrs = handle.addresses(Some(link.index)).unwrap();
    let v4 = addrs
        .iter()
        .find(|a| a.network == net("10.1.2.3/24"))
        .expect("v4, host bits kept");
    assert_eq!(v4.scope, Scope::Universe);
    assert!(v4.flags.permanent);
    let v6 = addrs
        .iter()
        .find(|a| a.network == net("2001:db8::5/64"))
        .expect("v6");
    assert!(
        v6.flags.nodad && !v6.flags.tentative && !v6.flags.dadfailed,
        "{:?}",
        v6.flags
    );
    assert!(addrs.iter().all(|a| a.index == link.index));

    let err = handle
        .add_address(link.index, net("10.1.2.3/24"), AddressOptions::default())
        .unwrap_err();
    assert!(err.is_exists(), "{err}");

    // All links: lo's addresses appear once lo is up.
    let lo = handle.link_by_name("lo").unwrap();
    handle.set_link_up(lo.index).unwrap();
    let all = handle.addresses(None).unwrap();
    let lo_v4 = all
        .iter()
        .find(|a| a.network == net("127.0.0.1/8"))
        .expect("127.0.0.1/8");
    assert_eq!((lo_v4.index, lo_v4.scope), (lo.index, Scope::Host));

    handle.del_address(link.index, net("10.1.2.3/24")).unwrap();
    handle
        .del_address(link.index, net("2001:db8::5/64"))
        .unwrap();
    let left = handle.addresses(Some(link.index)).unwrap();
    assert!(
        left.iter().all(|a| !matches!(a.network, IpNetwork::V4(_))),
        "{left:?}"
    );
    let err = handle
        .del_address(link.index, net("10.1.2.3/24"))
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn routes_default_ecmp_dump_delete() {
    let (_ns, handle) = anon_with_handle();
    let link = veth_pair(&handle, "vroute0", "vroute0p");
    let peer = handle.link_by_name("vroute0p").unwrap();
    handle.set_link_up(link.index).unwrap();
    handle.set_link_up(peer.index).unwrap();
    handle
        .add_address(link.index, net("10.9.0.2/24"), AddressOptions::default())
        .unwrap();
    assert_eq!(handle.default_route_interface(IpFamily::V4).unwrap(), None);

    let first = RouteSpec {
        gateway: Some(ip("10.9.0.1")),
        oif: Some(link.index),
        ..RouteSpec::new(net("0.0.0.0/0"))
    };
    let second = RouteSpec {
        gateway: Some(ip("10.9.0.254")),
        ..first
    };
    handle.add_route(&first).unwrap();
    handle.add_route(&second).unwrap(); // NLM_F_APPEND: a second next hop, not EEXIST
    let err = handle.add_route(&first).unwrap_err();
    assert!(err.is_exists(), "identical route: {err}");

    let routes = handle.routes(IpFamily::V4).unwrap();
    let defaults: BTreeSet<IpAddr> = routes
        .iter()
        .filter(|r| r.is_default() && r.table == TABLE_MAIN)
        .filter_map(|r| r.gateway)
        .collect();
    assert_eq!(defaults, BTreeSet::from([ip("10.9.0.1"), ip("10.9.0.254")]));
    let def = routes.iter().find(|r| r.is_default()).unwrap();
    assert_eq!(
        (def.oif, def.protocol, def.scope),
        (Some(link.index), 3, Scope::Universe)
    );
    // The kernel's connected route for the address is in the dump too.
    assert!(
        routes
            .iter()
            .any(|r| r.dst == net("10.9.0.0/24") && r.scope == Scope::Link)
    );

    let default_link = handle
        .default_route_interface(IpFamily::V4)
        .unwrap()
        .unwrap();
    assert_eq!(default_link.name, "vroute0");

    // A route with metrics, a metric and another table; host bits in dst are cleared.
    let custom = RouteSpec {
        oif: Some(link.index),
        priority: Some(100),
        table: Some(1000),
        scope: Some(Scope::Link),
        mtu: Some(1300),
        advmss: Some(1260),
        ..RouteSpec::new(net("192.168.77.9/24"))
    };
    handle.add_route(&custom).unwrap();
    let found = handle
        .routes(IpFamily::V4)
        .unwrap()
        .into_iter()
        .find(|r| r.table == 1000)
        .expect("route in table 1000");
    assert_eq!(found.dst, net("192.168.77.0/24"));
    assert_eq!(
        (found.priority, found.mtu, found.scope),
        (Some(100), Some(1300), Scope::Link)
    );

    handle.del_route(&custom).unwrap();
    handle.del_route(&first).unwrap();
    handle.del_route(&second).unwrap();
    let err = handle.del_route(&first).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(
        handle
            .routes(IpFamily::V4)
            .unwrap()
            .iter()
            .all(|r| !r.is_default() && r.table != 1000)
    );
}

#[test]
fn ipv6_appended_default_routes_become_multipath() {
    let (_ns, handle) = anon_with_handle();
    let link = veth_pair(&handle, "vr6", "vr6p");
    let peer = handle.link_by_name("vr6p").unwrap();
    handle.set_link_up(link.index).unwrap();
    handle.set_link_up(peer.index).unwrap();
    for gw in ["fe80::1", "fe80::2"] {
        handle
            .add_route(&RouteSpec {
                gateway: Some(ip(gw)),
                oif: Some(link.index),
                ..RouteSpec::new(net("::/0"))
            })
            .unwrap();
    }
    let routes = handle.routes(IpFamily::V6).unwrap();
    let gateways: BTreeSet<IpAddr> = routes
        .iter()
        .filter(|r| r.is_default())
        .flat_map(|r| {
            r.gateway
                .into_iter()
                .chain(r.nexthops.iter().filter_map(|h| h.gateway))
        })
        .collect();
    assert_eq!(gateways, BTreeSet::from([ip("fe80::1"), ip("fe80::2")]));
    assert_eq!(
        handle
            .default_route_interface(IpFamily::V6)
            .unwrap()
            .unwrap()
            .index,
        link.index
    );
}

#[test]
fn sysctl_follows_the_netns_of_the_calling_thread() {
    let (ctr_ns, ctr) = anon_with_handle();
    veth_pair(&ctr, "eth0", "eth0p");
    let outside = sysctl::read("net.ipv4.ip_forward").unwrap();
    let (wrote_first, wrote_again, value, per_link, missing) = ctr_ns
        .run(|| {
            let target = if sysctl::read("net.ipv4.ip_forward").unwrap() == "1" {
                "0"
            } else {
                "1"
            };
            let first = sysctl::ensure("net.ipv4.ip_forward", target).unwrap();
            let again = sysctl::ensure("net/ipv4/ip_forward", target).unwrap();
            let value = sysctl::read("net.ipv4.ip_forward").unwrap() == target;
            sysctl::write("net.ipv4.conf.eth0.rp_filter", "2").unwrap();
            let per_link = sysctl::read("net/ipv4/conf/eth0/rp_filter").unwrap();
            let missing = sysctl::read("net.ipv4.conf.eth9.rp_filter").unwrap_err();
            (first, again, value, per_link, missing)
        })
        .unwrap();
    assert!(wrote_first && !wrote_again && value);
    assert_eq!(per_link, "2");
    assert!(matches!(missing, Error::SysctlNotFound { .. }), "{missing}");
    assert_eq!(
        sysctl::read("net.ipv4.ip_forward").unwrap(),
        outside,
        "outside untouched"
    );
}

/// One thread through netns made and dropped in turn (their inode numbers are reused): each
/// sees its own values, written and read back with one open each.
#[test]
fn sysctl_follows_netns_churn() {
    for round in 0..4 {
        let (ns, ctr) = anon_with_handle();
        veth_pair(&ctr, "eth0", "eth0p");
        let value = if round % 2 == 0 { "2" } else { "1" };
        let read_back = ns
            .run(|| {
                assert!(sysctl::ensure("net.ipv4.conf.eth0.rp_filter", value).unwrap());
                sysctl::read("net/ipv4/conf/eth0/rp_filter").unwrap()
            })
            .unwrap();
        assert_eq!(read_back, value, "round {round}");
    }
}

/// `Handle::ipv4_forwarding` (netconf) agrees with `net.ipv4.ip_forward` both ways.
#[test]
fn ipv4_forwarding_matches_the_sysctl() {
    let (ns, ctr) = anon_with_handle();
    for value in ["1", "0"] {
        ns.run(|| sysctl::write("net.ipv4.ip_forward", value).unwrap())
            .unwrap();
        assert_eq!(ctr.ipv4_forwarding().unwrap(), value == "1", "{value}");
    }
}
