//! Latency percentiles from an HDR histogram of microseconds.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Recorded latencies, 1 µs to 10 min at three significant digits.
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"))
    }
}

impl Latencies {
    pub fn record(&mut self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.max(1));
    }

    pub fn merge(&mut self, other: &Self) {
        // Both have the same bounds, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn summary(&self) -> LatencySummary {
        let at = |quantile: f64| self.0.value_at_quantile(quantile);
        LatencySummary {
            samples: self.0.len(),
            p50_us: at(0.5),
            p95_us: at(0.95),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: self.0.max(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct LatencySummary {
    pub samples: u64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_data() {
        let mut latencies = Latencies::default();
        for micros in 1..=1000 {
            latencies.record(Duration::from_micros(micros));
        }
        let mut more = Latencies::default();
        more.record(Duration::from_secs(2));
        latencies.merge(&more);
        let summary = latencies.summary();
        assert_eq!(summary.samples, 1001);
        assert_eq!(summary.p50_us, 501);
        assert_eq!(summary.p95_us, 951);
        assert_eq!(summary.p99_us, 991);
        assert_eq!(summary.p999_us, 1000);
        // Three significant digits: 2 s is recorded within 0.1 %.
        assert!(summary.max_us.abs_diff(2_000_000) <= 2_000, "{summary:?}");
    }
}
