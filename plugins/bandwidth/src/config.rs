//! The bandwidth plugin's keys (docs/reference.md#bandwidth) and the token buckets they
//! become, validated before anything touches the kernel. Unknown keys are ignored.

use cni::{Error, Request, Result};
use cni_netlink::Tbf;
use serde::Deserialize;
use sha2::{Digest, Sha512};

/// The four limits, at the top level of the config or in `runtimeConfig.bandwidth`
/// (rates in bits per second, bursts in bits; 0 or absent means no limit). containerd
/// (through go-cni, whose BandWidth has no JSON tags) sends Go's field names,
/// `IngressRate` and so on, which the reference reads because Go matches JSON keys
/// without regard to case: the aliases take those too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BandwidthEntry {
    /// `ingressRate`: traffic into the container.
    #[serde(default, alias = "IngressRate")]
    pub ingress_rate: Option<u64>,
    /// `ingressBurst`.
    #[serde(default, alias = "IngressBurst")]
    pub ingress_burst: Option<u64>,
    /// `egressRate`: traffic out of the container.
    #[serde(default, alias = "EgressRate")]
    pub egress_rate: Option<u64>,
    /// `egressBurst`.
    #[serde(default, alias = "EgressBurst")]
    pub egress_burst: Option<u64>,
}

/// The plugin's configuration: the top-level keys (the runtime's capability is read
/// from `runtimeConfig` in [`Limits::from_request`]).
pub type BandwidthConfig = BandwidthEntry;

impl BandwidthEntry {
    fn is_present(&self) -> bool {
        self.ingress_rate.is_some()
            || self.ingress_burst.is_some()
            || self.egress_rate.is_some()
            || self.egress_burst.is_some()
    }
}

/// The reference's queueing latency bound (`latencyInMillis`): the tbf queue holds what
/// the rate sends in this time, plus the burst.
const LATENCY_USEC: f64 = 25_000.0;

/// The checked limits of one ADD or CHECK; `None` shapes nothing in that direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Traffic into the container: a tbf on the host end of the veth.
    pub ingress: Option<Rate>,
    /// Traffic out of the container: a tbf on the ifb.
    pub egress: Option<Rate>,
}

/// One direction's rate and burst, in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Bits per second.
    pub rate: u64,
    /// Bits.
    pub burst: u64,
}

impl Limits {
    /// The limits as the reference picks them: the top-level keys when any of them is
    /// present, else `runtimeConfig.bandwidth`. Code 7 for a bad value.
    pub fn from_request(req: &Request<BandwidthConfig>) -> Result<Limits> {
        let entry = if req.config.is_present() {
            req.config
        } else {
            match req.net.runtime_config("bandwidth") {
                None | Some(serde_json::Value::Null) => BandwidthEntry::default(),
                Some(value) => cni::config::decode(value, "runtimeConfig.bandwidth")?,
            }
        };
        Ok(Limits {
            ingress: direction(entry.ingress_rate, entry.ingress_burst, "ingress")?,
            egress: direction(entry.egress_rate, entry.egress_burst, "egress")?,
        })
    }

    /// Whether anything is shaped.
    pub fn any(&self) -> bool {
        self.ingress.is_some() || self.egress.is_some()
    }
}

/// One direction, validated with the reference's rules and messages, plus one of ours:
/// a rate or burst below one byte would make a tbf of 0 bytes (the reference sends it
/// and the kernel shapes nothing or refuses it).
fn direction(rate: Option<u64>, burst: Option<u64>, which: &str) -> Result<Option<Rate>> {
    let (rate, burst) = (rate.unwrap_or(0), burst.unwrap_or(0));
    match (rate, burst) {
        (0, 0) => return Ok(None),
        (_, 0) => {
            return Err(Error::invalid_config(
                "if rate is set, burst must also be set",
            ));
        }
        (0, _) => {
            return Err(Error::invalid_config(
                "if burst is set, rate must also be set",
            ));
        }
        _ => {}
    }
    if burst / 8 >= u64::from(u32::MAX) {
        return Err(Error::invalid_config("burst cannot be more than 4GB"));
    }
    if rate < 8 || burst < 8 {
        return Err(Error::invalid_config(format!(
            "{which} rate {rate} and burst {burst} must each be at least 8 bits (one byte)"
        )));
    }
    Ok(Some(Rate { rate, burst }))
}

impl Rate {
    /// The token bucket the reference makes for this rate (`createTBF`): rate and burst
    /// in bytes, the bucket as the time the burst takes at the rate in scheduler ticks,
    /// the queue limit as 25 ms at the rate plus the burst. Go's float-to-`uint32`
    /// conversions are kept, so both plugins make, and CHECK accepts, the same numbers.
    pub fn tbf(&self, ticks_per_usec: f64) -> Tbf {
        let rate = self.rate / 8;
        // Below 4 GB by validation.
        let burst = (self.burst / 8) as u32;
        let burst_usec = go_u32(f64::from(burst) * 1_000_000.0 / rate as f64);
        let buffer = go_u32(f64::from(burst_usec) * ticks_per_usec);
        let limit = go_u32(rate as f64 * LATENCY_USEC / 1_000_000.0).wrapping_add(burst);
        Tbf {
            rate,
            buffer,
            limit,
        }
    }
}

/// Go's `uint32(f)` on amd64: truncation to a 64-bit integer, then its low 32 bits;
/// out of range (and NaN) is 0 there.
fn go_u32(f: f64) -> u32 {
    // 2^63: the first value outside i64 (NaN is outside every range).
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !(-LIMIT..LIMIT).contains(&f) {
        return 0;
    }
    (f as i64) as u32
}

/// The ifb's name, as the reference names it: `bwp` and the start of the hex SHA-512 of
/// the network name followed by the container ID, 15 characters in all. One way, so
/// GC cannot tell whose an ifb is.
pub fn ifb_name(network: &str, container_id: &str) -> String {
    let digest = Sha512::digest(format!("{network}{container_id}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("bwp{}", &hex[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_tbf_numbers() {
        // 1 Mbit/s, 10 kbit burst: 125000 B/s, 1250 B = 10000 us = 156250 ticks; the
        // limit is 3125 + 1250 bytes.
        let tbf = Rate {
            rate: 1_000_000,
            burst: 10_000,
        }
        .tbf(15.625);
        assert_eq!(
            tbf,
            Tbf {
                rate: 125_000,
                buffer: 156_250,
                limit: 4_375
            }
        );
    }

    #[test]
    fn validation_follows_the_reference() {
        assert_eq!(direction(None, None, "ingress").unwrap(), None);
        assert_eq!(direction(Some(0), Some(0), "ingress").unwrap(), None);
        let msg = |r, b| direction(r, b, "egress").unwrap_err().msg().to_owned();
        assert_eq!(msg(Some(8), None), "if rate is set, burst must also be set");
        assert_eq!(msg(None, Some(8)), "if burst is set, rate must also be set");
        assert_eq!(
            msg(Some(8), Some(8 * u64::from(u32::MAX))),
            "burst cannot be more than 4GB"
        );
        assert!(msg(Some(7), Some(800)).contains("at least 8 bits"));
    }

    #[test]
    fn containerd_spelling_is_read() {
        let entry: BandwidthEntry = serde_json::from_value(serde_json::json!({
            "IngressRate": 8000, "IngressBurst": 800, "EgressRate": 16000, "EgressBurst": 1600
        }))
        .unwrap();
        assert_eq!(
            (
                entry.ingress_rate,
                entry.ingress_burst,
                entry.egress_rate,
                entry.egress_burst
            ),
            (Some(8000), Some(800), Some(16000), Some(1600))
        );
    }

    #[test]
    fn go_conversions() {
        assert_eq!(go_u32(1.9), 1);
        assert_eq!(go_u32(4_294_967_297.0), 1);
        assert_eq!(go_u32(f64::INFINITY), 0);
        assert_eq!(go_u32(f64::NAN), 0);
    }

    #[test]
    fn ifb_names_are_15_characters() {
        let name = ifb_name("mynet", "abc");
        assert_eq!(name.len(), 15);
        assert!(name.starts_with("bwp"));
        assert_ne!(name, ifb_name("mynet", "abd"));
    }
}
