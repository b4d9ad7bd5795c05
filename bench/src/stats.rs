//! Order statistics over latency samples, in milliseconds.

use std::time::Duration;

/// Percentiles of one sample set. Nearest-rank on the sorted samples: with 200 samples
/// p99 is the second largest, which is as much as 200 samples can say.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p25: f64,
    pub median: f64,
    pub p75: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Summary {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        Summary::of_ms(&mut ms)
    }

    pub fn of_ms(ms: &mut [f64]) -> Summary {
        if ms.is_empty() {
            return Summary::default();
        }
        ms.sort_by(f64::total_cmp);
        let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
        Summary {
            n: ms.len(),
            min: ms[0],
            p25: at(0.25),
            median: at(0.5),
            p75: at(0.75),
            p95: at(0.95),
            p99: at(0.99),
            max: ms[ms.len() - 1],
        }
    }
}

/// Median of integers (RSS in KiB).
pub fn median_u64(values: &[u64]) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted[(sorted.len() - 1) / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_hundred() {
        let mut ms: Vec<f64> = (1..=101).map(f64::from).collect();
        let s = Summary::of_ms(&mut ms);
        assert_eq!(
            (s.min, s.median, s.p95, s.p99, s.max),
            (1.0, 51.0, 96.0, 100.0, 101.0)
        );
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(Summary::of_ms(&mut []).n, 0);
        assert_eq!(median_u64(&[]), 0);
        assert_eq!(median_u64(&[3, 1, 2]), 2);
    }
}
