//! Statistics over a phase's per-second samples and latency histograms.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Population standard deviation divided by the mean of per-second completed-request counts,
/// as the reference iotune reports it ("deviation N%"). 0 with fewer than two samples or a
/// zero mean.
pub fn deviation(per_second_requests: &[u64]) -> f64 {
    let n = per_second_requests.len();
    if n < 2 {
        return 0.0;
    }
    let mean = per_second_requests.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    if mean == 0.0 {
        return 0.0;
    }
    let var = per_second_requests
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n as f64;
    var.sqrt() / mean
}

/// Completion latency summary, microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest seen.
    pub max_us: f64,
}

impl Latency {
    /// Summarises a histogram of nanoseconds (empty histogram: all zero).
    pub fn from_ns(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.value_at_quantile(0.5)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deviation_is_population_std_over_mean() {
        assert_eq!(deviation(&[]), 0.0);
        assert_eq!(deviation(&[5]), 0.0);
        assert_eq!(deviation(&[7, 7, 7]), 0.0);
        // mean 5, population variance ((3-5)^2+(7-5)^2)/2 = 4, std 2 -> 0.4
        assert!((deviation(&[3, 7]) - 0.4).abs() < 1e-12);
        // mean 2.5, var (2.25+0.25+0.25+2.25)/4 = 1.25
        assert!((deviation(&[1, 2, 3, 4]) - 1.25f64.sqrt() / 2.5).abs() < 1e-12);
        assert_eq!(deviation(&[0, 0]), 0.0);
    }

    #[test]
    fn latency_percentiles() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let l = Latency::from_ns(&h);
        assert!((l.p50_us - 500.0).abs() <= 1.0, "{l:?}");
        assert!((l.p99_us - 990.0).abs() <= 1.0, "{l:?}");
        assert!((l.max_us - 1000.0).abs() <= 1.0, "{l:?}");
        assert_eq!(
            Latency::from_ns(&Histogram::new(3).unwrap()),
            Latency::default()
        );
    }
}
