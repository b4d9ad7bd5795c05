//! Traffic control: token bucket (`tbf`) and `ingress` qdiscs, a match-all `u32` filter
//! that redirects a link's incoming packets to another link (`mirred`), and reading a
//! link's qdiscs back.
//!
//! Requests are `netlink-packet-route` `TcMessage`s; it has no `tbf` type, so the
//! `tbf` options are built by hand (`struct tc_tbf_qopt`, `linux/pkt_sched.h`). Replies
//! are decoded by hand like every other reply (`wire.rs`).

use netlink_packet_core::{DefaultNla, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionGeneric, TcActionMirror, TcActionMirrorOption,
    TcActionOption, TcActionType, TcAttribute, TcFilterU32, TcFilterU32Option, TcHandle, TcMessage,
    TcMirror, TcMirrorActionType, TcOption, TcU32Key, TcU32Selector, TcU32SelectorFlags,
};

use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::wire;

/// A token bucket: what `tc qdisc add … tbf` sets, in the kernel's units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tbf {
    /// Rate in bytes per second.
    pub rate: u64,
    /// Bucket size in scheduler ticks (`tc_tbf_qopt.buffer`; see [`psched_ticks_per_usec`]).
    pub buffer: u32,
    /// Bytes that may wait in the queue (`tc_tbf_qopt.limit`).
    pub limit: u32,
}

/// A qdisc as the kernel reports it (`RTM_NEWQDISC`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Qdisc {
    /// The link's index.
    pub index: u32,
    /// The qdisc's handle (`major << 16 | minor`).
    pub handle: u32,
    /// Its parent: [`Qdisc::ROOT`], [`Qdisc::INGRESS`] or a class.
    pub parent: u32,
    /// Its kind: `tbf`, `ingress`, `noqueue`, `pfifo_fast`…
    pub kind: String,
    /// The token bucket, when the kind is `tbf`.
    pub tbf: Option<Tbf>,
}

impl Qdisc {
    /// `TC_H_ROOT`: the parent of a link's root (egress) qdisc.
    pub const ROOT: u32 = 0xffff_ffff;
    /// `TC_H_INGRESS`: the parent of an `ingress` qdisc.
    pub const INGRESS: u32 = 0xffff_fff1;
}

/// The scheduler's ticks per microsecond (15.625 on current kernels: a tick is 64 ns), from
/// `/proc/net/psched` as tc and Go's netlink library compute it (`tick_in_usec` in
/// iproute2's `tc_core.c`): `t2us / us2t`, scaled when the clock resolution is not 1 µs.
pub fn psched_ticks_per_usec() -> Result<f64> {
    let path = "/proc/net/psched";
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    let fields: Vec<u64> = text
        .split_whitespace()
        .filter_map(|f| u64::from_str_radix(f, 16).ok())
        .collect();
    let bad = || Error::Protocol {
        op: "read",
        object: path.into(),
        detail: format!("unexpected content {text:?}"),
    };
    let [mut t2us, us2t, clock_res, ..] = fields[..] else {
        return Err(bad());
    };
    if us2t == 0 {
        return Err(bad());
    }
    if clock_res == 1_000_000_000 {
        t2us = us2t;
    }
    let clock_factor = clock_res as f64 / 1_000_000.0;
    Ok(t2us as f64 / us2t as f64 * clock_factor)
}

/// `RTM_NEWQDISC`, the kernel's reply to a qdisc dump.
const RTM_NEWQDISC: u16 = 36;
/// Size of `struct tcmsg`.
const TCMSG_LEN: usize = 20;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
/// `struct tc_tbf_qopt`: two 12-byte `tc_ratespec`s (the rate's `u32` last in each),
/// then `limit`, `buffer` and `mtu`.
const TBF_QOPT_LEN: usize = 36;
const TBF_RATE_AT: usize = 8;
const TBF_LIMIT_AT: usize = 24;
const TBF_BUFFER_AT: usize = 28;
/// `ETH_P_ALL` in network byte order, as a filter's protocol is sent.
const ETH_P_ALL_BE: u16 = 0x0003u16.to_be();

fn index_object(index: u32) -> String {
    format!("link index {index}")
}

/// The `tbf` options: `TCA_TBF_PARMS`, plus `TCA_TBF_RATE64` when the rate does not fit
/// the 32-bit field (as tc sends them).
fn tbf_options(tbf: &Tbf) -> Vec<TcOption> {
    let mut qopt = [0u8; TBF_QOPT_LEN];
    let rate32 = u32::try_from(tbf.rate).unwrap_or(u32::MAX);
    qopt[TBF_RATE_AT..TBF_RATE_AT + 4].copy_from_slice(&rate32.to_ne_bytes());
    qopt[TBF_LIMIT_AT..TBF_LIMIT_AT + 4].copy_from_slice(&tbf.limit.to_ne_bytes());
    qopt[TBF_BUFFER_AT..TBF_BUFFER_AT + 4].copy_from_slice(&tbf.buffer.to_ne_bytes());
    let mut options = vec![TcOption::Other(DefaultNla::new(
        TCA_TBF_PARMS,
        qopt.to_vec(),
    ))];
    if tbf.rate > u64::from(u32::MAX) {
        options.push(TcOption::Other(DefaultNla::new(
            TCA_TBF_RATE64,
            tbf.rate.to_ne_bytes().to_vec(),
        )));
    }
    options
}

/// The match-all `u32` filter on `index`'s ingress qdisc that sends every packet out of
/// `to_index` and stops there (`tc filter add dev X parent ffff: protocol all prio 1 u32
/// match u32 0 0 classid 1:1 action mirred egress redirect dev Y`).
pub(crate) fn redirect_filter_message(index: u32, to_index: u32) -> TcMessage {
    let mut mirror = TcMirror::default();
    mirror.generic = TcActionGeneric::default();
    mirror.generic.action = TcActionType::Stolen;
    mirror.eaction = TcMirrorActionType::EgressRedir;
    mirror.ifindex = to_index;
    let mut action = TcAction::default();
    action.attributes = vec![
        TcActionAttribute::Kind(TcActionMirror::KIND.to_owned()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
            mirror,
        ))]),
    ];
    let mut selector = TcU32Selector::default();
    selector.flags = TcU32SelectorFlags::Terminal;
    selector.nkeys = 1;
    selector.keys = vec![TcU32Key::default()];
    let mut msg = TcMessage::with_index(index as i32);
    msg.header.parent = TcHandle::from(0xffff_0000);
    msg.header.info = (1 << 16) | u32::from(ETH_P_ALL_BE);
    msg.attributes = vec![
        TcAttribute::Kind(TcFilterU32::KIND.to_owned()),
        TcAttribute::Options(vec![
            TcOption::U32(TcFilterU32Option::Selector(selector)),
            TcOption::U32(TcFilterU32Option::ClassId(TcHandle { major: 1, minor: 1 })),
            TcOption::U32(TcFilterU32Option::Action(vec![action])),
        ]),
    ];
    msg
}

impl Qdisc {
    /// Decodes an `RTM_NEWQDISC` body; `None` when it is malformed.
    fn decode(body: &[u8]) -> Option<Qdisc> {
        let (header, attributes) = wire::split_header::<TCMSG_LEN>(body)?;
        let field = |at: usize| wire::u32_value(&header[at..]);
        let mut qdisc = Qdisc {
            index: field(4)?,
            handle: field(8)?,
            parent: field(12)?,
            kind: String::new(),
            tbf: None,
        };
        let mut options = None;
        for (kind, value) in wire::attrs(attributes) {
            match kind {
                TCA_KIND => qdisc.kind = wire::string_value(value).unwrap_or_default(),
                TCA_OPTIONS => options = Some(value),
                _ => {}
            }
        }
        if qdisc.kind == "tbf" {
            qdisc.tbf = options.and_then(decode_tbf);
        }
        Some(qdisc)
    }
}

/// Reads `TCA_TBF_PARMS` (and `TCA_TBF_RATE64`, which the kernel adds for rates above
/// 32 bits).
fn decode_tbf(options: &[u8]) -> Option<Tbf> {
    let mut tbf = None;
    let mut rate64 = None;
    for (kind, value) in wire::attrs(options) {
        match kind {
            TCA_TBF_PARMS => {
                let at = |offset: usize| wire::u32_value(value.get(offset..)?);
                tbf = Some(Tbf {
                    rate: u64::from(at(TBF_RATE_AT)?),
                    limit: at(TBF_LIMIT_AT)?,
                    buffer: at(TBF_BUFFER_AT)?,
                });
            }
            TCA_TBF_RATE64 => {
                rate64 = value
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_ne_bytes)
            }
            _ => {}
        }
    }
    let mut tbf = tbf?;
    if let Some(rate) = rate64 {
        tbf.rate = rate;
    }
    Some(tbf)
}

impl Handle {
    /// Adds a `tbf` qdisc as the root qdisc of link `index`, handle `1:`. An existing
    /// root qdisc other than the default is [`Error::is_exists`].
    pub fn add_tbf(&self, index: u32, tbf: &Tbf) -> Result<()> {
        let mut msg = TcMessage::with_index(index as i32);
        msg.header.handle = TcHandle { major: 1, minor: 0 };
        msg.header.parent = TcHandle::ROOT;
        msg.attributes = vec![
            TcAttribute::Kind("tbf".into()),
            TcAttribute::Options(tbf_options(tbf)),
        ];
        self.add_tc(
            "add tbf qdisc",
            index,
            RouteNetlinkMessage::NewQueueDiscipline(msg),
        )?;
        log::info!(
            "added tbf qdisc on link index {index}: rate {} B/s, buffer {} ticks, limit {} B",
            tbf.rate,
            tbf.buffer,
            tbf.limit
        );
        Ok(())
    }

    /// Adds the `ingress` qdisc (handle `ffff:`) to link `index`.
    pub fn add_ingress_qdisc(&self, index: u32) -> Result<()> {
        let mut msg = TcMessage::with_index(index as i32);
        msg.header.handle = TcHandle::from(0xffff_0000);
        msg.header.parent = TcHandle::INGRESS;
        msg.attributes = vec![TcAttribute::Kind("ingress".into())];
        self.add_tc(
            "add ingress qdisc",
            index,
            RouteNetlinkMessage::NewQueueDiscipline(msg),
        )
    }

    /// Redirects every packet arriving on link `index` (which needs its `ingress` qdisc)
    /// out of link `to_index`, with a match-all `u32` filter and a `mirred` action.
    pub fn add_redirect_filter(&self, index: u32, to_index: u32) -> Result<()> {
        let msg = redirect_filter_message(index, to_index);
        self.add_tc(
            "add redirect filter",
            index,
            RouteNetlinkMessage::NewTrafficFilter(msg),
        )?;
        log::info!("redirected link index {index}'s ingress to link index {to_index}");
        Ok(())
    }

    fn add_tc(&self, op: &'static str, index: u32, msg: RouteNetlinkMessage) -> Result<()> {
        self.sock
            .change(op, &index_object(index), msg, NLM_F_CREATE | NLM_F_EXCL)
    }

    /// Deletes the qdisc of link `index` whose parent is `parent` ([`Qdisc::ROOT`],
    /// [`Qdisc::INGRESS`]); the filters on it go with it. One already gone is fine.
    pub fn delete_qdisc(&self, index: u32, parent: u32) -> Result<()> {
        let mut msg = TcMessage::with_index(index as i32);
        msg.header.parent = TcHandle::from(parent);
        let request = RouteNetlinkMessage::DelQueueDiscipline(msg);
        match self
            .sock
            .change("delete qdisc", &index_object(index), request, 0)
        {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// The qdiscs of link `index`.
    pub fn qdiscs(&self, index: u32) -> Result<Vec<Qdisc>> {
        let replies = self.sock.dump(
            "dump qdiscs",
            &index_object(index),
            RouteNetlinkMessage::GetQueueDiscipline(TcMessage::with_index(index as i32)),
        )?;
        Ok(replies
            .iter()
            .filter(|reply| reply.kind == RTM_NEWQDISC)
            .filter_map(|reply| Qdisc::decode(&reply.body))
            .filter(|qdisc| qdisc.index == index)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::tests::emitted;

    #[test]
    fn tbf_round_trips_through_its_options() {
        for rate in [125_000u64, 1 << 33] {
            let tbf = Tbf {
                rate,
                buffer: 1_562_500,
                limit: 3_125,
            };
            let mut msg = TcMessage::with_index(7);
            msg.header.handle = TcHandle { major: 1, minor: 0 };
            msg.header.parent = TcHandle::ROOT;
            msg.attributes = vec![
                TcAttribute::Kind("tbf".into()),
                TcAttribute::Options(tbf_options(&tbf)),
            ];
            let qdisc = Qdisc::decode(&emitted(&msg)).expect("a qdisc");
            assert_eq!(qdisc.index, 7);
            assert_eq!(qdisc.handle, 0x1_0000);
            assert_eq!(qdisc.parent, Qdisc::ROOT);
            assert_eq!(qdisc.kind, "tbf");
            assert_eq!(qdisc.tbf, Some(tbf));
        }
    }

    #[test]
    fn truncated_qdiscs_never_panic() {
        let bytes = emitted(&redirect_filter_message(3, 4));
        for cut in 0..bytes.len() {
            let _ = Qdisc::decode(&bytes[..cut]);
        }
        assert_eq!(decode_tbf(&[1, 2, 3]), None);
    }

    #[test]
    fn the_filter_is_prio_1_protocol_all_on_ffff() {
        let msg = redirect_filter_message(3, 4);
        assert_eq!(u32::from(msg.header.parent), 0xffff_0000);
        assert_eq!(msg.header.info >> 16, 1);
        assert_eq!(u16::from_be(msg.header.info as u16), 3);
    }
}
