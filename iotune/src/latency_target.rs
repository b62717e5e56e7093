//! `--latency-target MS [--latency-percentile P]` (issue 10): per random direction, the highest
//! IOPS whose completion-latency percentile stays under the target.
//!
//! The search runs over the in-flight depth per shard, as fio's `latency_target` does: depths
//! 1, 2, 4, .. while the percentile stays under the target (up to the random phases' depth),
//! then bisection between the deepest depth that met it and the shallowest that did not. Every
//! step is a short random phase (a ramp of up to 1 s, then max(1 s, 5% of --duration)); the
//! figure is the highest IOPS among the steps that met the target.

use std::time::Duration;

use anyhow::Result;
use scheduler::Direction;

use crate::options::LatencyTarget;
use crate::phases::Calibration;
use crate::report::{CachedFigure, DiskReport};

/// Most steps per direction (the doubling and bisection together).
pub const MAX_STEPS: usize = 10;

pub use iotune::latency_model::{LatencySearch, Step};

/// The next depth to try after the steps so far (`top`: the deepest allowed), or None when the
/// search is over. Doubling while every step met the target; then bisection between the
/// deepest good and the shallowest bad depth.
pub fn next_depth(steps: &[Step], top: usize) -> Option<usize> {
    if steps.len() >= MAX_STEPS {
        return None;
    }
    let Some(last) = steps.last() else {
        return Some(1);
    };
    let good = steps
        .iter()
        .filter(|s| s.under_target)
        .map(|s| s.in_flight_per_shard)
        .max()
        .unwrap_or(0);
    let bad = steps
        .iter()
        .filter(|s| !s.under_target)
        .map(|s| s.in_flight_per_shard)
        .min();
    let next = match bad {
        None if last.in_flight_per_shard >= top => return None,
        None => (last.in_flight_per_shard * 2).min(top),
        // Depth known within a quarter: enough (IOPS change little across it).
        Some(bad) if good > 0 && bad - good <= good / 4 => return None,
        Some(bad) => good + (bad - good) / 2,
    };
    let tried = steps.iter().any(|s| s.in_flight_per_shard == next);
    (next > good && !tried && next >= 1).then_some(next)
}

/// The step with the highest IOPS under the target.
pub fn best(steps: &[Step]) -> Option<Step> {
    steps
        .iter()
        .filter(|s| s.under_target)
        .max_by(|a, b| a.iops.total_cmp(&b.iops))
        .copied()
}

/// Searches `direction` at request size `size`; `max_iops` is the corner's figure, printed
/// beside the result. Steps a cache served (the served-by-the-disk check of each step) go
/// into `cached`, as the io-properties `figure` they would stand for.
pub fn search(
    cal: &mut Calibration<'_>,
    direction: Direction,
    size: u64,
    max_iops: f64,
    target: LatencyTarget,
    report: &mut DiskReport,
    cached: &mut Vec<CachedFigure>,
) -> Result<LatencySearch> {
    let top = match direction {
        Direction::Read => cal.depths.random_read,
        Direction::Write => cal.depths.random_write,
    };
    let ramp = cal.opts.ramp.min(Duration::from_secs(1));
    let window = cal.opts.duration.mul_f64(0.05).max(Duration::from_secs(1));
    let target_us = target.target_ms * 1000.0;
    let mut steps: Vec<Step> = Vec::new();
    while let Some(depth) = next_depth(&steps, top) {
        let name = format!("latency target {} {size} x {depth}", direction.name());
        let outcome = cal.random_at_depth(direction, size, depth, ramp, window, &name, report)?;
        let figure = match direction {
            Direction::Read => "read_iops",
            Direction::Write => "write_iops",
        };
        cached.extend(outcome.cached_figure(figure, &name));
        let phase = report.phases.last().expect("just run");
        let percentile_us = phase
            .latency_ns
            .as_ref()
            .filter(|h| !h.is_empty())
            .map_or(f64::INFINITY, |h| {
                h.value_at_quantile(target.percentile / 100.0) as f64 / 1000.0
            });
        steps.push(Step {
            in_flight_per_shard: depth,
            iops: phase.total.iops,
            percentile_us,
            p99_us: phase.total.latency.p99_us,
            under_target: percentile_us <= target_us,
        });
    }
    let bounded = best(&steps);
    // Never above the throughput-maximal figure: a short step measuring more than the longer
    // corner phase saw a burst (a throttle's fresh time slice, a cache), not a sustained rate.
    let latency_bounded_iops = bounded
        .or_else(|| steps.iter().find(|s| s.in_flight_per_shard == 1).copied())
        .map_or(max_iops, |s| s.iops.min(max_iops));
    let s = LatencySearch {
        direction,
        request_size: size,
        target_ms: target.target_ms,
        percentile: target.percentile,
        steps,
        bounded,
        max_iops,
        latency_bounded_iops,
    };
    eprintln!("iotune: {}", describe(&s));
    Ok(s)
}

/// "p99" for 99, "p99.9" for 99.9.
fn percentile_name(p: f64) -> String {
    format!("p{}", p)
}

/// The console line: the bounded figure beside the throughput-maximal one.
pub fn describe(s: &LatencySearch) -> String {
    let p = percentile_name(s.percentile);
    match s.bounded {
        Some(b) => format!(
            "latency-bounded random {} IOPS ({p} <= {} ms): {:.0} IOPS at {} in flight per shard ({p} {:.2} ms{}); throughput-maximal {:.0} IOPS",
            s.direction,
            s.target_ms,
            s.latency_bounded_iops,
            b.in_flight_per_shard,
            b.percentile_us / 1000.0,
            if b.iops > s.latency_bounded_iops {
                format!(
                    "; that step measured {:.0} IOPS, capped at the throughput-maximal figure",
                    b.iops
                )
            } else {
                String::new()
            },
            s.max_iops
        ),
        None => format!(
            "WARN: latency-bounded random {} IOPS ({p} <= {} ms): not met even at 1 in flight per shard ({p} {:.2} ms at {:.0} IOPS); throughput-maximal {:.0} IOPS; --rates latency-bounded would write the depth-1 figure",
            s.direction,
            s.target_ms,
            s.steps.first().map_or(0.0, |s| s.percentile_us / 1000.0),
            s.latency_bounded_iops,
            s.max_iops
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against a disk whose percentile grows linearly with the depth:
    /// `us_per_depth` microseconds per request in flight, IOPS saturating at depth 8.
    fn simulate(target_us: f64, us_per_depth: f64, top: usize) -> Vec<Step> {
        let mut steps = Vec::new();
        while let Some(d) = next_depth(&steps, top) {
            let pct = d as f64 * us_per_depth;
            steps.push(Step {
                in_flight_per_shard: d,
                iops: 1000.0 * (d.min(8) as f64),
                percentile_us: pct,
                p99_us: pct,
                under_target: pct <= target_us,
            });
        }
        steps
    }

    #[test]
    fn doubles_then_bisects_to_the_deepest_good_depth() {
        // 100 us per request in flight, target 2.05 ms: depth 20 is the deepest good one.
        let steps = simulate(2050.0, 100.0, 128);
        let depths: Vec<usize> = steps.iter().map(|s| s.in_flight_per_shard).collect();
        assert_eq!(depths, vec![1, 2, 4, 8, 16, 32, 24, 20]);
        let good = steps
            .iter()
            .filter(|s| s.under_target)
            .map(|s| s.in_flight_per_shard)
            .max();
        assert_eq!(good, Some(20));
        assert_eq!(best(&steps).unwrap().iops, 8000.0);
    }

    #[test]
    fn stops_at_the_top_when_every_depth_meets_the_target() {
        let steps = simulate(1e9, 100.0, 16);
        let depths: Vec<usize> = steps.iter().map(|s| s.in_flight_per_shard).collect();
        assert_eq!(depths, vec![1, 2, 4, 8, 16]);
        let steps = simulate(1e9, 100.0, 6);
        let depths: Vec<usize> = steps.iter().map(|s| s.in_flight_per_shard).collect();
        assert_eq!(depths, vec![1, 2, 4, 6]);
    }

    #[test]
    fn a_target_missed_at_depth_one_ends_the_search() {
        let steps = simulate(50.0, 100.0, 128);
        assert_eq!(steps.len(), 1);
        assert!(best(&steps).is_none());
    }

    #[test]
    fn the_search_is_bounded() {
        let mut steps = Vec::new();
        let mut n = 0;
        // An adversarial disk alternating verdicts cannot run away.
        while let Some(d) = next_depth(&steps, 4096) {
            n += 1;
            steps.push(Step {
                in_flight_per_shard: d,
                iops: 1.0,
                percentile_us: 1.0,
                p99_us: 1.0,
                under_target: n % 2 == 1,
            });
        }
        assert!(steps.len() <= MAX_STEPS);
    }
}
