//! `--mixed` (issue 10): the read/write interference frontier after the four corners.
//!
//! The scheduler's model shares one budget between reads and writes: with R the random read
//! IOPS and W the sequential write bandwidth (bytes/s) measured alone, a mix of r reads/s and w
//! bytes/s of writes fits when r/R + w/W <= 1. Six points test it: sequential writes paced
//! (open loop) at 25, 50 and 75% of W while random reads run closed loop as fast as the disk
//! allows, and the mirror (random reads paced at 25, 50, 75% of R, writes flat out). Each
//! point's `load` is r/R + w/W with the achieved pair: 1 on the model's line, below it where
//! the disk delivers less than the model promises, above it where the model under-uses it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use scheduler::engine::{self, JobResult, JobSpec, Pattern, ShardPlan};
use scheduler::io_properties::{DiskProperties, IoProperties};
use scheduler::Direction;

use crate::phases::{cached_figure, Calibration};
use crate::report::{CachedFigure, DiskReport, PhaseReport};

/// Fractions of the paced direction's solo rate the points hold it at.
pub const PACE_FRACTIONS: [f64; 3] = [0.25, 0.5, 0.75];

/// A disk is duplex-like when, at every point, the free direction keeps at least this share of
/// the rate it reached alone.
pub const DUPLEX_KEEP: f64 = 0.9;

const MIB: f64 = 1024.0 * 1024.0;

pub use iotune::mixed_model::{Corners, MixedPoint, MixedReport, Verdict};

/// Rounds down to 3 decimals (a rate factor must not promise more than was measured).
fn floor3(v: f64) -> f64 {
    (v * 1000.0).floor() / 1000.0
}

/// The verdict of `points` at `accuracy` (a fraction, e.g. 0.03), with the rate factor that
/// makes the model safe at every point (None when 1 fits) and whether `duplex: true` fits.
pub fn judge(points: &[MixedPoint], accuracy: f64) -> (Verdict, Option<f64>, bool) {
    let min_load = points.iter().map(|p| p.load).fold(f64::INFINITY, f64::min);
    let max_load = points.iter().map(|p| p.load).fold(0.0, f64::max);
    let min_kept = points
        .iter()
        .map(|p| p.free_kept)
        .fold(f64::INFINITY, f64::min);
    if points.is_empty() {
        return (Verdict::Linear, None, false);
    }
    if min_load < 1.0 - accuracy {
        return (Verdict::WorseThanLinear, Some(floor3(min_load)), false);
    }
    if min_kept >= DUPLEX_KEEP {
        // Under duplex each direction gets its full solo rate beside the other: scale it down
        // to what the worst point kept.
        let factor = (min_kept < 1.0 - accuracy).then(|| floor3(min_kept));
        return (Verdict::DuplexLike, factor, true);
    }
    if max_load <= 1.0 + accuracy {
        (Verdict::Linear, None, false)
    } else {
        (Verdict::BetterThanLinear, None, false)
    }
}

/// A point from the achieved rates of both directions.
#[allow(clippy::too_many_arguments)]
pub fn point(
    corners: &Corners,
    paced: Direction,
    pace_fraction: f64,
    read_iops: f64,
    write_bandwidth: f64,
    read_p99_us: f64,
    write_p99_us: f64,
) -> MixedPoint {
    let r = read_iops / corners.read_iops;
    let w = write_bandwidth / corners.write_bandwidth;
    let (predicted, achieved, free_kept) = match paced {
        Direction::Write => (corners.read_iops * (1.0 - w).max(0.0), read_iops, r),
        Direction::Read => (
            corners.write_bandwidth * (1.0 - r).max(0.0),
            write_bandwidth,
            w,
        ),
    };
    MixedPoint {
        paced,
        pace_fraction,
        paced_target: pace_fraction
            * match paced {
                Direction::Read => corners.read_iops,
                Direction::Write => corners.write_bandwidth,
            },
        read_iops,
        write_bandwidth,
        write_iops: write_bandwidth / corners.write_request_size as f64,
        predicted,
        achieved,
        vs_model: if predicted > 0.0 {
            achieved / predicted
        } else {
            f64::INFINITY
        },
        free_kept,
        load: r + w,
        read_p99_us,
        write_p99_us,
    }
}

/// Measures the six points on `cal`'s files (what the four corners wrote) and judges them.
/// The per-direction figures of every point go to `report.phases` (dropped, named
/// "mixed ..."); the frontier to the returned section.
pub fn measure(
    cal: &mut Calibration<'_>,
    corners: Corners,
    report: &mut DiskReport,
    cached: &mut Vec<CachedFigure>,
) -> Result<MixedReport> {
    let started = Instant::now();
    let opts = cal.opts;
    let ramp = opts.ramp.min(Duration::from_secs(1));
    let window = opts.duration.mul_f64(0.05).max(Duration::from_secs(2));
    let mut points = Vec::new();
    for paced in [Direction::Write, Direction::Read] {
        for fraction in PACE_FRACTIONS {
            points.push(run_point(
                cal, &corners, paced, fraction, ramp, window, report, cached,
            )?);
        }
    }
    let accuracy = opts.accuracy / 100.0;
    let (verdict, rate_factor, duplex) = judge(&points, accuracy);
    let min_load = points.iter().map(|p| p.load).fold(f64::INFINITY, f64::min);
    let min_free_kept = points
        .iter()
        .map(|p| p.free_kept)
        .fold(f64::INFINITY, f64::min);
    let mut m = MixedReport {
        corners,
        point_measure_s: window.as_secs_f64(),
        ramp_s: ramp.as_secs_f64(),
        points,
        verdict,
        min_load,
        min_free_kept,
        rate_factor,
        duplex,
        summary: String::new(),
        written: opts.write_mixed_model,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    m.summary = summary(&m, accuracy);
    eprintln!("iotune: mixed verdict: {}", m.summary);
    Ok(m)
}

/// Runs one point: both directions on every shard's file at once (2 x shards threads).
/// Each side gets the served-by-the-disk check; a side a cache served goes into `cached`.
#[allow(clippy::too_many_arguments)]
fn run_point(
    cal: &mut Calibration<'_>,
    corners: &Corners,
    paced: Direction,
    fraction: f64,
    ramp: Duration,
    window: Duration,
    report: &mut DiskReport,
    cached: &mut Vec<CachedFigure>,
) -> Result<MixedPoint> {
    let shards = cal.files.len();
    let ends = cal.written_end.clone();
    let (rsize, wsize) = (corners.read_request_size, corners.write_request_size);
    let job = |direction: Direction, i: usize| {
        let (pattern, size, depth, rate) = match direction {
            Direction::Read => (
                Pattern::Random,
                rsize,
                cal.depths.random_read,
                corners.read_iops,
            ),
            Direction::Write => (
                Pattern::Sequential,
                wsize,
                cal.depths.sequential_write,
                corners.write_bandwidth / wsize as f64,
            ),
        };
        JobSpec {
            direction,
            pattern,
            request_size: size,
            in_flight: depth,
            region_start: 0,
            region_len: ends[i],
            sequential_start: 0,
            ramp,
            measure: window,
            rate: (direction == paced).then(|| (rate * fraction / shards as f64).max(1e-3)),
        }
    };
    let reads: Vec<JobSpec> = (0..shards).map(|i| job(Direction::Read, i)).collect();
    let writes: Vec<JobSpec> = (0..shards).map(|i| job(Direction::Write, i)).collect();
    let plans: Vec<ShardPlan<'_>> = reads
        .iter()
        .chain(&writes)
        .enumerate()
        .map(|(k, j)| ShardPlan {
            file: &cal.files[k % shards],
            job: j.clone(),
        })
        .collect();
    let name = format!(
        "mixed: {} paced at {:.0}%",
        match paced {
            Direction::Read => "reads",
            Direction::Write => "writes",
        },
        fraction * 100.0
    );
    let mut bar = cal.progress.phase(&name, ramp + window);
    let before = cal.device_counters();
    let mut results: Vec<JobResult> =
        engine::run_shards(cal.kind, &plans, cal.stop, &mut |t| bar.tick(t))
            .with_context(|| format!("{name} failed"))?;
    let write_results = results.split_off(shards);
    for (i, r) in write_results.iter().enumerate() {
        cal.written_end[i] = cal.written_end[i].max(r.written_end);
    }
    let mut read_phase = PhaseReport::new(&format!("{name}: reads"), true, &reads, &results);
    let mut write_phase =
        PhaseReport::new(&format!("{name}: writes"), true, &writes, &write_results);
    for (phase, jobs, results) in [
        (&mut read_phase, &reads, &results),
        (&mut write_phase, &writes, &write_results),
    ] {
        let served = cal.check_served(&before, jobs, results, phase, report);
        cached.extend(cached_figure(&served, "duplex/rate_factor", &phase.name));
    }
    let p = point(
        corners,
        paced,
        fraction,
        read_phase.total.iops,
        write_phase.total.bandwidth,
        read_phase.total.latency.p99_us,
        write_phase.total.latency.p99_us,
    );
    bar.finish_with_line(&describe(&p));
    report.phases.push(read_phase);
    report.phases.push(write_phase);
    Ok(p)
}

/// One console line per point.
fn describe(p: &MixedPoint) -> String {
    let (paced, free, unit_free, predicted, achieved) = match p.paced {
        Direction::Write => (
            format!(
                "writes paced at {:.0}% ({:.1} MiB/s, achieved {:.1})",
                p.pace_fraction * 100.0,
                p.paced_target / MIB,
                p.write_bandwidth / MIB
            ),
            "reads",
            "IOPS",
            p.predicted,
            p.achieved,
        ),
        Direction::Read => (
            format!(
                "reads paced at {:.0}% ({:.0} IOPS, achieved {:.0})",
                p.pace_fraction * 100.0,
                p.paced_target,
                p.read_iops
            ),
            "writes",
            "MiB/s",
            p.predicted / MIB,
            p.achieved / MIB,
        ),
    };
    format!(
        "mixed: {paced}: {free} {achieved:.1} {unit_free}, linear model {predicted:.1} ({:.0}% of it, {:.0}% of alone), load r/R + w/W = {:.2}; p99 read {:.2} ms, write {:.2} ms",
        p.vs_model * 100.0,
        p.free_kept * 100.0,
        p.load,
        p.read_p99_us / 1000.0,
        p.write_p99_us / 1000.0
    )
}

/// The verdict with its figures.
fn summary(m: &MixedReport, accuracy: f64) -> String {
    let worst = m
        .points
        .iter()
        .min_by(|a, b| a.load.total_cmp(&b.load))
        .map(|p| {
            format!(
                "{} paced at {:.0}%",
                match p.paced {
                    Direction::Read => "reads",
                    Direction::Write => "writes",
                },
                p.pace_fraction * 100.0
            )
        })
        .unwrap_or_default();
    let acc = accuracy * 100.0;
    match m.verdict {
        Verdict::Linear => format!(
            "linear: every point within {acc:.0}% of the model r/R + w/W = 1 (load {:.2} to {:.2})",
            m.min_load,
            m.points.iter().map(|p| p.load).fold(0.0, f64::max)
        ),
        Verdict::BetterThanLinear => format!(
            "better than linear: no point below the model (smallest load {:.2}), some above it by more than {acc:.0}%, but a direction keeps only {:.0}% of its rate under the other, too little for duplex; the model is safe and leaves some of this disk unused",
            m.min_load,
            m.min_free_kept * 100.0
        ),
        Verdict::DuplexLike => format!(
            "duplex-like: each direction keeps at least {:.0}% of its rate alone under the other (load up to {:.2}); the linear model under-uses this disk; `duplex: true` fits it{}",
            m.min_free_kept * 100.0,
            m.points.iter().map(|p| p.load).fold(0.0, f64::max),
            m.rate_factor
                .map(|f| format!(", with `rate_factor: {f}` to cover the worst point"))
                .unwrap_or_default()
        ),
        Verdict::WorseThanLinear => format!(
            "worse than linear: at {worst} the disk delivered load r/R + w/W = {:.3}, less than the model's 1 by more than {acc:.0}%; `rate_factor: {}` makes the model safe at every measured point",
            m.min_load,
            m.rate_factor.unwrap_or(1.0)
        ),
    }
}

/// Applies the verdict to a disk entry (`--write-mixed-model`): `duplex` and `rate_factor`.
/// The measured rates stay as they are; the reader multiplies them by `rate_factor`.
pub fn apply(m: &MixedReport, d: &mut DiskProperties) {
    d.duplex = m.duplex;
    d.rate_factor = m.rate_factor;
}

/// io-properties.yaml: the library's writer (the reference's layout), plus `rate_factor` after
/// the other keys of an entry that has one (the reference's reader takes it after `duplex`).
/// Without a rate factor the bytes are exactly the library's.
pub fn properties_yaml(p: &IoProperties) -> String {
    if p.disks.iter().all(|d| d.rate_factor.is_none()) {
        return p.to_yaml();
    }
    let mut out = String::from("disks:\n");
    for d in &p.disks {
        let one = IoProperties {
            disks: vec![DiskProperties {
                rate_factor: None,
                ..d.clone()
            }],
        }
        .to_yaml();
        out.push_str(one.strip_prefix("disks:\n").unwrap_or(&one));
        if let Some(f) = d.rate_factor {
            out.push_str(&format!("    rate_factor: {f}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Corners = Corners {
        read_iops: 3000.0,
        write_bandwidth: 60.0 * MIB,
        read_request_size: 4096,
        write_request_size: 1 << 20,
    };

    /// Six points of a disk where reads keep `read_keep` under writes and writes `write_keep`
    /// under reads (shares of their solo rate, whatever the pace).
    fn frontier(read_keep: f64, write_keep: f64) -> Vec<MixedPoint> {
        let mut v = Vec::new();
        for f in PACE_FRACTIONS {
            v.push(point(
                &C,
                Direction::Write,
                f,
                C.read_iops * read_keep,
                C.write_bandwidth * f,
                1000.0,
                2000.0,
            ));
        }
        for f in PACE_FRACTIONS {
            v.push(point(
                &C,
                Direction::Read,
                f,
                C.read_iops * f,
                C.write_bandwidth * write_keep,
                1000.0,
                2000.0,
            ));
        }
        v
    }

    /// Six points exactly on the line r/R + w/W = `load`.
    fn on_line(load: f64) -> Vec<MixedPoint> {
        let mut v = Vec::new();
        for f in PACE_FRACTIONS {
            v.push(point(
                &C,
                Direction::Write,
                f,
                C.read_iops * (load - f),
                C.write_bandwidth * f,
                0.0,
                0.0,
            ));
            v.push(point(
                &C,
                Direction::Read,
                f,
                C.read_iops * f,
                C.write_bandwidth * (load - f),
                0.0,
                0.0,
            ));
        }
        v
    }

    #[test]
    fn a_point_carries_the_model_prediction() {
        let p = point(&C, Direction::Write, 0.75, 2400.0, 45.0 * MIB, 1.0, 2.0);
        assert!((p.predicted - 750.0).abs() < 1e-9, "{p:?}");
        assert!((p.vs_model - 3.2).abs() < 1e-9);
        assert!((p.load - 1.55).abs() < 1e-9);
        assert!((p.free_kept - 0.8).abs() < 1e-9);
        assert!((p.write_iops - 45.0).abs() < 1e-9);
        assert!((p.paced_target - 45.0 * MIB).abs() < 1e-6);
        let m = point(&C, Direction::Read, 0.5, 1500.0, 15.0 * MIB, 1.0, 2.0);
        assert!((m.predicted - 30.0 * MIB).abs() < 1e-3, "{m:?}");
        assert!((m.vs_model - 0.5).abs() < 1e-9);
    }

    #[test]
    fn verdicts() {
        // Separate budgets (a blkio throttle): each keeps all of its rate.
        let (v, f, duplex) = judge(&frontier(1.0, 0.995), 0.03);
        assert_eq!((v, f, duplex), (Verdict::DuplexLike, None, true));
        // Nearly duplex: keeps 92%, so duplex needs a rate factor.
        let (v, f, duplex) = judge(&frontier(0.92, 1.0), 0.03);
        assert_eq!((v, f, duplex), (Verdict::DuplexLike, Some(0.92), true));
        // One shared budget.
        assert_eq!(judge(&on_line(1.0), 0.03), (Verdict::Linear, None, false));
        assert_eq!(judge(&on_line(0.98), 0.03), (Verdict::Linear, None, false));
        // Above the line but far from duplex.
        assert_eq!(
            judge(&on_line(1.2), 0.03),
            (Verdict::BetterThanLinear, None, false)
        );
        // Below the line: the factor is the worst load, rounded down.
        let (v, f, duplex) = judge(&on_line(0.8567), 0.03);
        assert_eq!(
            (v, f, duplex),
            (Verdict::WorseThanLinear, Some(0.856), false)
        );
        // One bad point is enough.
        let mut pts = on_line(1.0);
        pts[3] = point(&C, Direction::Read, 0.5, 1500.0, 10.0 * MIB, 0.0, 0.0);
        let (v, f, _) = judge(&pts, 0.03);
        assert_eq!(v, Verdict::WorseThanLinear);
        assert_eq!(f, Some(floor3(0.5 + 10.0 / 60.0)));
        // The accuracy is the tolerance.
        assert_eq!(judge(&on_line(0.96), 0.05).0, Verdict::Linear);
        assert_eq!(judge(&on_line(0.96), 0.03).0, Verdict::WorseThanLinear);
    }

    #[test]
    fn rate_factor_follows_duplex_in_the_file() {
        let mut d = DiskProperties::new("/data", 3000, 80 << 20, 2000, 60 << 20);
        let plain = IoProperties {
            disks: vec![d.clone()],
        };
        assert_eq!(properties_yaml(&plain), plain.to_yaml());
        d.duplex = true;
        d.rate_factor = Some(0.87);
        let two = IoProperties {
            disks: vec![d.clone(), DiskProperties::new("/b", 1, 2, 3, 4)],
        };
        let text = properties_yaml(&two);
        assert_eq!(
            text,
            "disks:\n  - mountpoint: /data\n    read_iops: 3000\n    read_bandwidth: 83886080\n    \
             write_iops: 2000\n    write_bandwidth: 62914560\n    duplex: true\n    rate_factor: 0.87\n  \
             - mountpoint: /b\n    read_iops: 1\n    read_bandwidth: 2\n    write_iops: 3\n    \
             write_bandwidth: 4\n"
        );
        // The reader applies the factor to the written rates.
        let (back, _) = IoProperties::parse(&text, "t").unwrap();
        assert!(back.disks[0].duplex);
        assert_eq!(back.disks[0].read_iops, 2610);
    }
}
