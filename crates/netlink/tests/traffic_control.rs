//! Traffic control: tbf and ingress qdiscs, the ifb and the redirect filter, read back
//! through our own qdisc dump, against the real kernel in throwaway namespaces (see
//! `common`).

// Tests: a failed step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cni_netlink::{Qdisc, Tbf, psched_ticks_per_usec};
use common::{anon_with_handle, veth_pair};

#[test]
fn tbf_ingress_and_redirect_to_an_ifb_read_back_and_go_away() {
    let (_ns, handle) = anon_with_handle();
    let veth = veth_pair(&handle, "tcv0", "tcv1");
    handle.create_ifb("tcifb0", 1400).unwrap();
    let ifb = handle.link_by_name("tcifb0").unwrap();
    assert_eq!(ifb.kind.as_deref(), Some("ifb"));
    assert_eq!((ifb.mtu, ifb.txqueuelen, ifb.admin_up), (1400, 0, true));

    // A rate above 32 bits travels in TCA_TBF_RATE64.
    for (index, rate) in [(veth.index, 125_000), (ifb.index, 1 << 33)] {
        let tbf = Tbf {
            rate,
            buffer: 156_250,
            limit: 4_375,
        };
        handle.add_tbf(index, &tbf).unwrap();
        let root: Vec<Qdisc> = handle
            .qdiscs(index)
            .unwrap()
            .into_iter()
            .filter(|q| q.parent == Qdisc::ROOT)
            .collect();
        assert_eq!(root.len(), 1, "{root:?}");
        assert_eq!((root[0].kind.as_str(), root[0].handle), ("tbf", 0x1_0000));
        assert_eq!(root[0].tbf, Some(tbf));
    }
    let err = handle
        .add_tbf(
            veth.index,
            &Tbf {
                rate: 1,
                buffer: 1,
                limit: 1,
            },
        )
        .unwrap_err();
    assert!(err.is_exists(), "{err}");

    handle.add_ingress_qdisc(veth.index).unwrap();
    handle.add_redirect_filter(veth.index, ifb.index).unwrap();
    let kinds: Vec<String> = handle
        .qdiscs(veth.index)
        .unwrap()
        .into_iter()
        .map(|q| q.kind)
        .collect();
    assert!(kinds.contains(&"ingress".to_owned()), "{kinds:?}");

    handle.delete_qdisc(veth.index, Qdisc::INGRESS).unwrap();
    handle.delete_qdisc(veth.index, Qdisc::ROOT).unwrap();
    // Gone already: fine.
    handle.delete_qdisc(veth.index, Qdisc::ROOT).unwrap();
    let left: Vec<Qdisc> = handle.qdiscs(veth.index).unwrap();
    assert!(
        left.iter().all(|q| q.kind != "tbf" && q.kind != "ingress"),
        "{left:?}"
    );
}

#[test]
fn the_scheduler_tick_is_read_from_proc() {
    let ticks = psched_ticks_per_usec().unwrap();
    assert!(ticks > 0.0 && ticks.is_finite(), "{ticks}");
}
