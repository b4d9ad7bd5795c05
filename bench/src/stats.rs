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

/// The 95 % bootstrap interval of median(a) / median(b): both sample sets resampled with
/// replacement 2 000 times. A fixed seed keeps a report reproducible from its samples.
///
/// Why: a DEL's time is mostly the kernel's unregister wait, spread 15–45 ms by RCU grace
/// periods, so two medians of 200 calls can differ by several per cent by chance alone; the
/// interval says whether a ratio near 1 is a difference at all.
pub fn median_ratio_interval(a: &[Duration], b: &[Duration]) -> Option<(f64, f64)> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |len: usize| {
        // xorshift64*: plenty for resampling indices.
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        (rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % len
    };
    let mut resampled_median = |samples: &[Duration]| {
        let mut ms: Vec<f64> = (0..samples.len())
            .map(|_| samples[next(samples.len())].as_secs_f64())
            .collect();
        Summary::of_ms(&mut ms).median
    };
    let mut ratios: Vec<f64> = (0..2_000)
        .map(|_| resampled_median(a) / resampled_median(b))
        .collect();
    ratios.sort_by(f64::total_cmp);
    Some((ratios[50], ratios[1_949]))
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
    fn ratio_interval_brackets_the_ratio_and_narrows_with_less_spread() {
        let ms =
            |v: &[u64]| -> Vec<Duration> { v.iter().map(|&m| Duration::from_millis(m)).collect() };
        let same: Vec<u64> = (10..50).collect();
        let (lo, hi) = median_ratio_interval(&ms(&same), &ms(&same)).unwrap();
        assert!(lo < 1.0 && hi > 1.0, "{lo} {hi}");
        let slower: Vec<u64> = same.iter().map(|m| m * 2).collect();
        let (lo, hi) = median_ratio_interval(&ms(&slower), &ms(&same)).unwrap();
        assert!(lo > 1.2 && hi < 3.0, "{lo} {hi}");
        let flat = ms(&[20; 40]);
        assert_eq!(median_ratio_interval(&flat, &flat), Some((1.0, 1.0)));
        assert_eq!(median_ratio_interval(&[], &flat), None);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(Summary::of_ms(&mut []).n, 0);
        assert_eq!(median_u64(&[]), 0);
        assert_eq!(median_u64(&[3, 1, 2]), 2);
    }
}
