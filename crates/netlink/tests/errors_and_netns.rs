//! Error kinds, `Netns` opening rules and `Netns::run` isolation.

// Tests: a failed step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cni_netlink::{Error, Handle, Netns, VethSpec};
use common::{NamedNetns, anon_netns, anon_with_handle, veth_pair};

#[test]
fn missing_and_duplicate_links_have_distinct_kinds() {
    let (_ns, handle) = anon_with_handle();
    let err = handle.link_by_name("no-such-link").unwrap_err();
    assert!(err.is_not_found() && !err.is_exists(), "{err}");
    assert_eq!(err.errno(), Some(libc::ENODEV));
    assert_eq!(err.op(), Some("get link"));
    assert!(err.to_string().contains("no-such-link"), "{err}");

    veth_pair(&handle, "vdup0", "vdup0p");
    let err = handle
        .create_veth(&VethSpec {
            name: "vdup0",
            peer_name: "vdup1p",
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.is_exists() && !err.is_not_found(), "{err}");
    assert_eq!(err.errno(), Some(libc::EEXIST));
    assert!(
        err.to_string()
            .starts_with("create veth link \"vdup0\": File exists"),
        "{err}"
    );

    let err = handle.set_link_up(987_654).unwrap_err();
    assert!(err.is_not_found(), "{err}");

    // The kernel's extended-ACK text reaches the message (`dev_validate_mtu`).
    let link = handle.link_by_name("vdup0").unwrap();
    let err = handle.set_mtu(link.index, 70_000).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL));
    assert!(
        err.to_string()
            .contains("(mtu greater than device maximum)"),
        "{err}"
    );
}

#[test]
fn netns_path_rules_follow_go() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = Netns::from_path(file.path()).unwrap_err();
    assert!(matches!(err, Error::NotNetns { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "unknown FS magic on \"{}\": ",
            file.path().display()
        )),
        "{err}"
    );
    assert!(
        !err.is_not_found(),
        "DEL must not tolerate a non-netns path"
    );

    let err = Netns::from_path("/run/netns/cni-netlink-test-absent").unwrap_err();
    assert!(
        matches!(err, Error::NetnsNotFound { .. }) && err.is_not_found(),
        "{err}"
    );

    // An `ip netns add` bind mount (nsfs) and a /proc path are both accepted.
    let named = NamedNetns::new("cninl");
    let netns = Netns::from_path(named.path()).unwrap();
    let on_proc = Netns::from_path("/proc/thread-self/ns/net").unwrap();
    assert!(!netns.is_same(&on_proc).unwrap());
    let handle = Handle::for_netns(&netns).unwrap();
    assert_eq!(
        handle.links().unwrap().len(),
        1,
        "a new netns holds only lo"
    );
}

#[test]
fn run_enters_the_netns_and_the_caller_always_comes_back() {
    let before = Netns::current().unwrap();
    let ctr = anon_netns();

    let inside = ctr
        .run(|| Netns::current().unwrap().is_same(&ctr).unwrap())
        .unwrap();
    assert!(inside, "the closure runs inside the target netns");

    let result: Result<(), String> = ctr.run(|| Err("closure failed".to_owned())).unwrap();
    assert_eq!(result, Err("closure failed".to_owned()));
    assert!(Netns::current().unwrap().is_same(&before).unwrap());

    let panic = std::panic::catch_unwind(|| ctr.run(|| panic!("boom inside netns"))).unwrap_err();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"boom inside netns"));
    assert!(
        Netns::current().unwrap().is_same(&before).unwrap(),
        "the caller's thread is back in its netns after a panic"
    );
}

#[test]
fn handle_for_netns_stays_bound_from_any_thread() {
    let (ctr_ns, ctr) = anon_with_handle();
    veth_pair(&ctr, "vbound0", "vbound0p");
    // The handle moves to another thread and still talks to the same netns.
    let names = std::thread::spawn(move || {
        ctr.links()
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    assert!(names.contains(&"vbound0".to_owned()), "{names:?}");
    drop(ctr_ns);
}
