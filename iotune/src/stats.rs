//! Statistics over a phase's per-second samples and latency histograms.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

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

/// Trend of a throughput series across its window, by least squares on the per-second counts.
/// In the report as `drift` and `drift_t`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Slope times the window's span, over the mean: -0.08 = fell 8% from first to last second.
    pub drift: f64,
    /// Slope over its standard error: how far the trend stands out of the second-to-second noise
    /// (|t| >= 3 is a trend, not noise; ±1e9 for a noiseless slope, which JSON can carry).
    #[serde(rename = "drift_t")]
    pub t: f64,
}

impl Trend {
    /// The trend of `per_second_requests`; zero with fewer than three samples or a zero mean.
    pub fn of(per_second_requests: &[u64]) -> Trend {
        let n = per_second_requests.len();
        if n < 3 {
            return Trend::default();
        }
        let nf = n as f64;
        let mean_x = (nf - 1.0) / 2.0;
        let mean_y = per_second_requests.iter().map(|&v| v as f64).sum::<f64>() / nf;
        if mean_y == 0.0 {
            return Trend::default();
        }
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for (i, &v) in per_second_requests.iter().enumerate() {
            let dx = i as f64 - mean_x;
            sxy += dx * (v as f64 - mean_y);
            sxx += dx * dx;
        }
        let slope = sxy / sxx;
        let residual: f64 = per_second_requests
            .iter()
            .enumerate()
            .map(|(i, &v)| (v as f64 - mean_y - slope * (i as f64 - mean_x)).powi(2))
            .sum();
        let se = (residual / (nf - 2.0) / sxx).sqrt();
        Trend {
            drift: slope * (nf - 1.0) / mean_y,
            t: if se > 0.0 {
                slope / se
            } else if slope == 0.0 {
                0.0
            } else {
                slope.signum() * 1e9
            },
        }
    }

    /// Whether the window was not steady: it drifted by more than `accuracy` (a fraction) and the
    /// drift is a trend rather than noise.
    pub fn unsteady(&self, accuracy: f64) -> bool {
        self.drift.abs() > accuracy && self.t.abs() >= 3.0
    }
}

/// Completion latency summary, microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
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

/// One point of a latency distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyPoint {
    /// Percentile, 0 to 100 (99.9 = the 99.9th).
    pub percentile: f64,
    /// Completion latency at that percentile, microseconds.
    pub us: f64,
}

/// The percentile spectrum of a histogram of nanoseconds: ten points per decade of "nines"
/// (p0, p20.6, .., p90, .., p99, .., p99.9, ..), as far as the sample count resolves (one
/// nine per decade of requests, at most four), then the maximum as p100. Empty for an empty
/// histogram.
pub fn latency_distribution(h: &Histogram<u64>) -> Vec<LatencyPoint> {
    if h.is_empty() {
        return Vec::new();
    }
    let nines = (h.len() as f64).log10().floor().clamp(0.0, 4.0);
    let steps = (nines * 10.0) as u32;
    let mut out: Vec<LatencyPoint> = (0..=steps)
        .map(|i| {
            let q = 1.0 - 10f64.powf(-(i as f64) / 10.0);
            LatencyPoint {
                percentile: q * 100.0,
                us: h.value_at_quantile(q) as f64 / 1000.0,
            }
        })
        .collect();
    out.push(LatencyPoint {
        percentile: 100.0,
        us: h.max() as f64 / 1000.0,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_of_flat_falling_noisy_and_short_series() {
        assert_eq!(Trend::of(&[100, 100, 100, 100]), Trend::default());
        // 110 -> 90 across the window: a fall of 20 around a mean of 100, without noise.
        let t = Trend::of(&[110, 105, 100, 95, 90]);
        assert!((t.drift + 0.2).abs() < 1e-12, "{t:?}");
        assert!(t.unsteady(0.03));
        assert!(Trend::of(&[90, 96, 99, 106, 110]).unsteady(0.03));
        // Noise without a trend is steady even when a chance slope exceeds the accuracy.
        let noisy = Trend::of(&[100, 108, 93, 104, 95, 103, 97, 106]);
        assert!(noisy.t.abs() < 3.0 && !noisy.unsteady(0.03), "{noisy:?}");
        // A trend inside the accuracy is steady; two samples are no trend.
        assert!(!Trend::of(&[101, 100, 99]).unsteady(0.03));
        assert_eq!(Trend::of(&[1, 1000]), Trend::default());
        assert_eq!(Trend::of(&[0, 0, 0]), Trend::default());
    }

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
    fn latency_distribution_resolves_as_many_nines_as_samples() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        assert!(latency_distribution(&h).is_empty());
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let d = latency_distribution(&h);
        // 1000 samples: three nines, ten points each, p0, and the maximum.
        assert_eq!(d.len(), 32);
        assert_eq!(d[0].percentile, 0.0);
        assert!((d[30].percentile - 99.9).abs() < 1e-9, "{:?}", d[30]);
        assert_eq!(d[31].percentile, 100.0);
        assert!((d[31].us - 1000.0).abs() <= 1.0);
        assert!(d.windows(2).all(|w| w[0].us <= w[1].us), "{d:?}");
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
