//! What runs after the four corners on request (issue 10): the mixed frontier (`--mixed`)
//! and the latency-bounded random IOPS (`--latency-target`). One entry point for `measure`.

use anyhow::Result;
use scheduler::io_properties::DiskProperties;
use scheduler::Direction;

use crate::latency_target;
use crate::mixed::{self, Corners};
use crate::phases::{as_rate, Calibration};
use crate::report::{CachedFigure, DiskReport, Results};

/// Runs what the options ask for after the corners, records it in `report`, and with `--rates latency-bounded` puts the latency-bounded IOPS
/// into `results`.
///
/// A figure these phases write (`--write-mixed-model`, `--rates latency-bounded`) must have
/// been served by the disk like the corners': phases a cache served are added to `cached`,
/// which refuses the file as it does for the corners (unless `--allow-cached`). Figures that
/// are only reported keep the warning each such phase printed.
pub fn after_corners(
    cal: &mut Calibration<'_>,
    results: &mut Results,
    report: &mut DiskReport,
    cached: &mut Vec<CachedFigure>,
) -> Result<()> {
    let opts = cal.opts;
    if opts.mixed {
        let corners = Corners {
            read_iops: results.properties.read_iops as f64,
            write_bandwidth: results.properties.write_bandwidth as f64,
            read_request_size: results.random_read_request_size,
            write_request_size: opts.sequential_write_size,
        };
        let mut served_by_cache = Vec::new();
        report.mixed = Some(mixed::measure(cal, corners, report, &mut served_by_cache)?);
        if opts.write_mixed_model {
            cached.extend(served_by_cache);
        }
    }
    if let Some(target) = opts.latency_target {
        for (direction, size, max) in [
            (
                Direction::Read,
                results.random_read_request_size,
                results.properties.read_iops,
            ),
            (
                Direction::Write,
                results.random_write_request_size,
                results.properties.write_iops,
            ),
        ] {
            let mut served_by_cache = Vec::new();
            let s = latency_target::search(
                cal,
                direction,
                size,
                max as f64,
                target,
                report,
                &mut served_by_cache,
            )?;
            if opts.latency_bounded_rates {
                cached.extend(served_by_cache);
            }
            if opts.latency_bounded_rates {
                let iops = as_rate(s.latency_bounded_iops);
                match direction {
                    Direction::Read => results.properties.read_iops = iops,
                    Direction::Write => results.properties.write_iops = iops,
                }
            }
            report.latency_targets.push(s);
        }
    }
    Ok(())
}

/// `--write-mixed-model`: the frontier's `duplex` / `rate_factor` into the disk entry.
pub fn apply(report: &DiskReport, write_mixed_model: bool, d: &mut DiskProperties) {
    if let (true, Some(m)) = (write_mixed_model, &report.mixed) {
        mixed::apply(m, d);
    }
}
