//! Latency samples and run-to-run summaries.

use std::time::Duration;

/// Every latency sample of a run, in nanoseconds; sorted once when percentiles are asked for.
/// A few million samples fit in memory easily and give exact percentiles.
#[derive(Default)]
pub struct Latencies {
    samples_ns: Vec<u64>,
    sorted: bool,
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        self.samples_ns
            .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
        self.sorted = false;
    }

    /// The `quantile` (0.0..=1.0) in microseconds, nearest-rank; 0 without samples.
    pub fn quantile_us(&mut self, quantile: f64) -> f64 {
        if self.samples_ns.is_empty() {
            return 0.0;
        }
        if !self.sorted {
            self.samples_ns.sort_unstable();
            self.sorted = true;
        }
        let rank = (quantile * self.samples_ns.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.samples_ns.len()) - 1;
        self.samples_ns[index] as f64 / 1000.0
    }
}

/// The median of a run's figures (the middle one of three; the mean of the middle two when even).
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

    pub fn quantiles_are_nearest_rank() {
        let mut latencies = Latencies::default();
        for micros in (1..=1000).rev() {
            latencies.record(Duration::from_micros(micros));
        }
        assert_eq!(latencies.quantile_us(0.5), 500.0);
        assert_eq!(latencies.quantile_us(0.99), 990.0);
        assert_eq!(latencies.quantile_us(0.999), 999.0);
        assert_eq!(latencies.quantile_us(1.0), 1000.0);
        assert_eq!(Latencies::default().quantile_us(0.99), 0.0);
    }

    pub fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
