//! Latency samples and run-to-run summaries.

use std::time::Duration;

/// A latency histogram with log-linear buckets: exact below 128 ns, then 128 buckets per power of
/// two (under 0.8% relative error), covering up to `u64::MAX` ns in 59 KiB that never grow. A
/// vector of raw samples would reallocate mid-run, and copying megabytes stalls the generator
/// for milliseconds, which the open loop would then report as server latency.
pub struct Latencies {
    counts: Vec<u64>,
    total: u64,
}

const SUB_BUCKET_BITS: u32 = 7;
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;
const BUCKETS: usize = ((64 - SUB_BUCKET_BITS as usize) + 1) * SUB_BUCKETS as usize;

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket_of(nanos)] += 1;
        self.total += 1;
    }

    /// The `quantile` (0.0..=1.0) in microseconds, nearest-rank, as the middle of its bucket;
    /// 0 without samples.
    pub fn quantile_us(&self, quantile: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((quantile * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_middle_ns(bucket) / 1000.0;
            }
        }
        0.0
    }
}

fn bucket_of(nanos: u64) -> usize {
    if nanos < SUB_BUCKETS {
        return nanos as usize;
    }
    let shift = 63 - nanos.leading_zeros() - SUB_BUCKET_BITS;
    let mantissa = nanos >> shift;
    ((u64::from(shift) + 1) * SUB_BUCKETS + (mantissa - SUB_BUCKETS)) as usize
}

fn bucket_middle_ns(bucket: usize) -> f64 {
    let bucket = bucket as u64;
    if bucket < SUB_BUCKETS {
        return bucket as f64;
    }
    let shift = bucket / SUB_BUCKETS - 1;
    let mantissa = SUB_BUCKETS + bucket % SUB_BUCKETS;
    let low = (mantissa << shift) as f64;
    low + ((1u64 << shift) as f64 - 1.0) / 2.0
}

/// The median of a run's figures (the middle one of three; the mean of the middle two when even).
/// `a[i] / b[i]` for each `i` both have, leaving out pairs whose ratio is not finite (a
/// missing figure is NaN, a zero divisor gives infinity).
pub fn pair_ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(a, b)| a / b)
        .filter(|ratio| ratio.is_finite())
        .collect()
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    }
}

pub mod checks {
    use super::*;

    pub fn quantiles_are_nearest_rank_within_bucket_precision() {
        let mut latencies = Latencies::default();
        for micros in (1..=1000).rev() {
            latencies.record(Duration::from_micros(micros));
        }
        for (quantile, exact) in [(0.5, 500.0), (0.99, 990.0), (0.999, 999.0), (1.0, 1000.0)] {
            let estimate = latencies.quantile_us(quantile);
            assert!(
                (estimate - exact).abs() / exact < 0.008,
                "{quantile}: {estimate}"
            );
        }
        assert_eq!(Latencies::default().quantile_us(0.99), 0.0);
    }

    pub fn buckets_are_exact_when_small_and_monotonic_everywhere() {
        for nanos in 0..128 {
            assert_eq!(bucket_middle_ns(bucket_of(nanos)), nanos as f64);
        }
        let mut previous = 0;
        for nanos in (128..1u64 << 40).step_by(999_983) {
            let bucket = bucket_of(nanos);
            assert!(bucket >= previous);
            let middle = bucket_middle_ns(bucket);
            assert!((middle - nanos as f64).abs() / nanos as f64 <= 1.0 / 128.0);
            previous = bucket;
        }
        assert!(bucket_of(u64::MAX) < BUCKETS);
    }

    pub fn pair_ratios_skip_missing_and_zero_divisors() {
        let ratios = pair_ratios(&[2.0, 3.0, f64::NAN, 1.0, 9.0], &[1.0, 2.0, 1.0, 0.0]);
        assert_eq!(ratios, vec![2.0, 1.5]);
    }

    pub fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
