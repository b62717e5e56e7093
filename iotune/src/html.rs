//! `--html FILE`: one self-contained page to attach to a ticket. Plots are inline SVG drawn by
//! plotters' SVG backend (text as SVG `<text>`, no font files); no script, no style sheet or
//! font fetched from anywhere, readable without JavaScript. Built from the report alone, so
//! the page, the JSON and the console agree.
//!
//! The plots' data are computed by functions of their own ([`throughput`], [`latency`],
//! [`sweep`], [`frontier`]), which the unit tests check for lengths and units; the drawing only
//! places them.

use std::fmt::Write as _;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use scheduler::engine::Pattern;
use scheduler::io_properties::IoProperties;

use crate::report::{DepthSweep, DiskReport, PhaseReport, Report, Status};

const MIB: f64 = (1u64 << 20) as f64;

/// One plotted line or set of points: its name, the unit of x and of y, and the points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// What it is, as the legend says.
    pub name: String,
    /// Unit of x, as the axis says.
    pub x_unit: &'static str,
    /// Unit of y, as the axis says.
    pub y_unit: &'static str,
    /// (x, y) in those units.
    pub points: Vec<(f64, f64)>,
}

/// A phase's per-second throughput (summed over shards, for the seconds every shard measured)
/// and its least-squares trend line over the same seconds. Sequential phases in MiB/s, random
/// ones in IOPS; x is the second of the measured window (from 0).
pub fn throughput(phase: &PhaseReport) -> (Series, Series) {
    let seconds = phase
        .per_shard
        .iter()
        .map(|s| s.samples.len())
        .min()
        .unwrap_or(0);
    let sequential = phase.pattern == Pattern::Sequential;
    let points: Vec<(f64, f64)> = (0..seconds)
        .map(|i| {
            let (requests, bytes) = phase.per_shard.iter().fold((0u64, 0u64), |(r, b), s| {
                (r + s.samples[i].requests, b + s.samples[i].bytes)
            });
            let y = if sequential {
                bytes as f64 / MIB
            } else {
                requests as f64
            };
            (i as f64, y)
        })
        .collect();
    let y_unit = if sequential { "MiB/s" } else { "IOPS" };
    let trend = Series {
        name: "trend (least squares)".into(),
        x_unit: "s",
        y_unit,
        points: trend_line(&points),
    };
    let per_second = Series {
        name: "each second".into(),
        x_unit: "s",
        y_unit,
        points,
    };
    (per_second, trend)
}

/// The least-squares line through `points`, as its two ends (empty below two points).
fn trend_line(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return Vec::new();
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let (x0, x1) = (points[0].0, points[points.len() - 1].0);
    vec![(x0, my + slope * (x0 - mx)), (x1, my + slope * (x1 - mx))]
}

/// "Nines" of a percentile: 0 for p0, 1 for p90, 2 for p99, 3 for p99.9 (the latency plot's
/// x axis, so the tail gets room). p100 (the maximum) is placed half a nine past the last.
fn nines(percentile: f64, last: f64) -> f64 {
    if percentile >= 100.0 {
        last + 0.5
    } else {
        -(1.0 - percentile / 100.0).log10()
    }
}

/// A phase's latency distribution: x in "nines" of the percentile (see the axis labels), y in
/// µs; and the marked percentiles p50, p99, p99.9 (those the requests resolve) and the maximum
/// as (x, y, label).
pub fn latency(phase: &PhaseReport) -> (Series, Vec<(f64, f64, String)>) {
    let d = &phase.latency_distribution;
    let last = d
        .iter()
        .filter(|p| p.percentile < 100.0)
        .map(|p| nines(p.percentile, 0.0))
        .fold(0.0, f64::max);
    let points = d
        .iter()
        .map(|p| (nines(p.percentile, last), p.us))
        .collect();
    let l = &phase.total.latency;
    let marks = [
        (50.0, l.p50_us, "p50"),
        (99.0, l.p99_us, "p99"),
        (99.9, l.p999_us, "p99.9"),
    ]
    .into_iter()
    .filter(|&(p, _, _)| nines(p, 0.0) <= last + 1e-9)
    .map(|(p, us, name)| (nines(p, 0.0), us, format!("{name} {}", micros(us))))
    .chain(
        d.last()
            // A maximum no higher than p99.9 would print its label over p99.9's.
            .filter(|p| p.percentile >= 100.0 && p.us > l.p999_us * 1.05)
            .map(|p| (nines(100.0, last), p.us, format!("max {}", micros(p.us)))),
    )
    .collect();
    (
        Series {
            name: "completion latency".into(),
            x_unit: "percentile",
            y_unit: "µs",
            points,
        },
        marks,
    )
}

/// A depth sweep's IOPS and p99 against the in-flight depth per shard (x in requests).
pub fn sweep(s: &DepthSweep) -> (Series, Series) {
    let depth = |p: &crate::report::DepthPoint| p.in_flight_per_shard as f64;
    (
        Series {
            name: "IOPS (all shards)".into(),
            x_unit: "requests in flight per shard",
            y_unit: "IOPS",
            points: s.points.iter().map(|p| (depth(p), p.iops)).collect(),
        },
        Series {
            name: "p99 latency".into(),
            x_unit: "requests in flight per shard",
            y_unit: "µs",
            points: s.points.iter().map(|p| (depth(p), p.p99_us)).collect(),
        },
    )
}

/// One measured point of a mixed read/write load, as fractions of the io-properties rates
/// (1.0 = the rate written for that direction).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrontierPoint {
    /// Reads served, fraction of the read rate (`read_bandwidth` or `read_iops`).
    pub read: f64,
    /// Writes served, fraction of the write rate (`write_bandwidth` or `write_iops`).
    pub write: f64,
}

/// The mixed-load frontier of one request kind: what was measured against the model's line,
/// on which reads and writes share the disk (read fraction + write fraction = 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Frontier {
    /// What was mixed, e.g. "random reads of 4096 B against sequential writes of 1048576 B".
    pub title: String,
    /// The verdict with its figures, printed under the heading (too long for a caption).
    pub verdict: String,
    /// The measured points.
    pub points: Vec<FrontierPoint>,
}

/// The frontier's measured points and the model's line, both in fractions of the rates
/// (x = writes, y = reads).
pub fn frontier(f: &Frontier) -> (Series, Series) {
    (
        Series {
            name: "measured".into(),
            x_unit: "write, fraction of the io-properties rate",
            y_unit: "read, fraction of the io-properties rate",
            points: f.points.iter().map(|p| (p.write, p.read)).collect(),
        },
        Series {
            name: "model: read + write = 1".into(),
            x_unit: "write, fraction of the io-properties rate",
            y_unit: "read, fraction of the io-properties rate",
            points: vec![(0.0, 1.0), (1.0, 0.0)],
        },
    )
}

/// The frontiers a disk's report holds (`--mixed`: random read IOPS against sequential write
/// bandwidth, each over its solo figure); none without it.
pub fn frontiers(disk: &DiskReport) -> Vec<Frontier> {
    let Some(m) = &disk.mixed else {
        return Vec::new();
    };
    let c = &m.corners;
    if c.read_iops <= 0.0 || c.write_bandwidth <= 0.0 {
        return Vec::new();
    }
    vec![Frontier {
        title: format!(
            "random reads of {} B against sequential writes of {} B",
            c.read_request_size, c.write_request_size
        ),
        verdict: m.summary.clone(),
        points: m
            .points
            .iter()
            .map(|p| FrontierPoint {
                read: p.read_iops / c.read_iops,
                write: p.write_bandwidth / c.write_bandwidth,
            })
            .collect(),
    }]
}

/// "123 µs", "1.2 ms", "2.5 s".
fn micros(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.1} s", us / 1e6)
    } else if us >= 1e4 {
        format!("{:.0} ms", us / 1e3)
    } else if us >= 1e3 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{us:.0} µs")
    }
}

/// Text for HTML content and attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// plotters' SVG, made inline: HTML needs no XML namespace, so the page names no URL at all.
fn inline(svg: String) -> String {
    svg.replacen(r#" xmlns="http://www.w3.org/2000/svg""#, "", 1)
}

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("cannot draw a plot: {e:?}")
}

const FONT: &str = "sans-serif";
const BLUE_: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(230, 110, 20);
const GREY: RGBColor = RGBColor(120, 120, 120);

/// Upper end of an axis from 0 that shows `max` with room above it (1 when nothing to show).
fn top(max: f64) -> f64 {
    if max.is_finite() && max > 0.0 {
        max * 1.15
    } else {
        1.0
    }
}

/// The smallest latency a logarithmic axis shows, µs (a sub-0.1 µs figure is drawn there).
const LATENCY_FLOOR_US: f64 = 0.1;

/// The latency axis: from a power of ten at or below the smallest point to one above the
/// largest with room for the labels (log scale; 1 µs to 1 ms when there is nothing).
fn latency_range(points: &[(f64, f64)]) -> (f64, f64) {
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(0.0, f64::max);
    if !lo.is_finite() || hi <= 0.0 {
        return (1.0, 1000.0);
    }
    let lo = 10f64.powf(lo.max(LATENCY_FLOOR_US).log10().floor());
    (lo, (hi * 3.0).max(lo * 10.0))
}

/// One SVG for a phase: per-second throughput with its trend (left), latency distribution
/// with p50/p99/p99.9 marked (right).
fn phase_svg(phase: &PhaseReport) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let (left, right) = root.split_horizontally(560);

        let (per_second, trend) = throughput(phase);
        let xmax = per_second.points.last().map_or(1.0, |p| p.0.max(1.0));
        let ymax = top(per_second.points.iter().map(|p| p.1).fold(0.0, f64::max));
        let mean = if per_second.points.is_empty() {
            0.0
        } else {
            per_second.points.iter().map(|p| p.1).sum::<f64>() / per_second.points.len() as f64
        };
        let mut chart = ChartBuilder::on(&left)
            .caption(
                format!(
                    "throughput: mean {} {}, deviation {:.1}%, trend {:+.1}%",
                    if per_second.y_unit == "IOPS" {
                        format!("{mean:.0}")
                    } else {
                        format!("{mean:.1}")
                    },
                    per_second.y_unit,
                    phase.total.deviation * 100.0,
                    phase.trend.drift * 100.0
                ),
                (FONT, 15),
            )
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(78)
            .build_cartesian_2d(-0.2f64..xmax + 0.2, 0f64..ymax)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(format!(
                "second of the measured window ({})",
                per_second.x_unit
            ))
            .y_desc(per_second.y_unit)
            .x_labels(10)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(
                per_second.points.clone(),
                BLUE_.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label(per_second.name.clone())
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE_.stroke_width(2)));
        chart
            .draw_series(
                per_second
                    .points
                    .iter()
                    .map(|&p| Circle::new(p, 3, BLUE_.filled())),
            )
            .map_err(plot_error)?;
        if !trend.points.is_empty() {
            chart
                .draw_series(DashedLineSeries::new(
                    trend.points.clone(),
                    8,
                    5,
                    ORANGE.stroke_width(2),
                ))
                .map_err(plot_error)?
                .label(trend.name.clone())
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], ORANGE.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font((FONT, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(GREY)
            .draw()
            .map_err(plot_error)?;

        let (lat, marks) = latency(phase);
        let last = lat.points.last().map_or(1.0, |p| p.0);
        // Latency spans decades (a 1 ms median, a 5 s stall): a logarithmic axis keeps the
        // median and the tail readable on one plot.
        let floor = LATENCY_FLOOR_US;
        let (lmin, lmax) = latency_range(&lat.points);
        let mut chart = ChartBuilder::on(&right)
            .caption("completion latency (all shards)", (FONT, 15))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(62)
            .build_cartesian_2d(0f64..last.max(1.0) + 0.1, (lmin..lmax).log_scale())
            .map_err(plot_error)?;
        let max_at = last;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (µs, log scale)")
            .x_labels(8)
            .x_label_formatter(&|v| {
                if (v - max_at).abs() < 1e-9 {
                    "max".to_string()
                } else if v.fract().abs() < 1e-9 {
                    let p = 100.0 * (1.0 - 10f64.powf(-v));
                    let text = format!("{p:.4}");
                    format!("p{}", text.trim_end_matches('0').trim_end_matches('.'))
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v| {
                if *v >= 1.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            })
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_error)?;
        let clamp = |(x, y): (f64, f64)| (x, y.max(floor));
        chart
            .draw_series(LineSeries::new(
                lat.points.iter().copied().map(clamp),
                BLUE_.stroke_width(2),
            ))
            .map_err(plot_error)?;
        for (x, y, label) in &marks {
            let (x, y) = clamp((*x, *y));
            let (x, y) = (&x, &y);
            chart
                .draw_series(std::iter::once(Circle::new((*x, *y), 4, ORANGE.filled())))
                .map_err(plot_error)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    label.clone(),
                    (
                        // The maximum sits at the right edge: its label goes left of it.
                        *x - if label.starts_with("max") { 0.3 } else { 0.05 } * last.max(1.0),
                        *y * 1.8,
                    ),
                    (FONT, 12),
                )))
                .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(inline(svg))
}

/// The depth sweep's SVG: IOPS (left axis) and p99 (right axis) against depth, knee marked.
fn sweep_svg(s: &DepthSweep) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let (iops, p99) = sweep(s);
        // Depths double: a log2 axis.
        let lg = |v: f64| v.log2();
        let xmax = iops.points.last().map_or(1.0, |p| lg(p.0).max(1.0));
        let ymax = top(iops.points.iter().map(|p| p.1).fold(0.0, f64::max));
        let pmax = top(p99.points.iter().map(|p| p.1).fold(0.0, f64::max));
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "random {} {} B, {} shard(s): knee at {} in flight per shard ({} in all)",
                    s.direction,
                    s.request_size,
                    s.shards,
                    s.knee_in_flight_per_shard,
                    s.knee_in_flight
                ),
                (FONT, 15),
            )
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(78)
            .right_y_label_area_size(70)
            .build_cartesian_2d(-0.2f64..xmax + 0.2, 0f64..ymax)
            .map_err(plot_error)?
            .set_secondary_coord(-0.2f64..xmax + 0.2, 0f64..pmax);
        chart
            .configure_mesh()
            .x_desc(iops.x_unit)
            .y_desc("IOPS (all shards)")
            .x_labels((xmax as usize + 1) * 2)
            .x_label_formatter(&|v| {
                if v.fract().abs() < 1e-9 && *v >= 0.0 {
                    format!("{}", 2f64.powf(*v) as u64)
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_error)?;
        chart
            .configure_secondary_axes()
            .y_desc("p99 latency (µs)")
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(plot_error)?;
        let pts = |s: &Series| {
            s.points
                .iter()
                .map(|&(x, y)| (lg(x), y))
                .collect::<Vec<_>>()
        };
        chart
            .draw_series(LineSeries::new(pts(&iops), BLUE_.stroke_width(2)))
            .map_err(plot_error)?
            .label(iops.name.clone())
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE_.stroke_width(2)));
        chart
            .draw_series(
                pts(&iops)
                    .into_iter()
                    .map(|p| Circle::new(p, 3, BLUE_.filled())),
            )
            .map_err(plot_error)?;
        chart
            .draw_secondary_series(LineSeries::new(pts(&p99), ORANGE.stroke_width(2)))
            .map_err(plot_error)?
            .label(format!("{} (right axis)", p99.name))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], ORANGE.stroke_width(2)));
        let knee = lg(s.knee_in_flight_per_shard as f64);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(knee, 0.0), (knee, ymax)],
                6,
                4,
                GREY.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label("knee: 95% of the best IOPS")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], GREY.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font((FONT, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(GREY)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(inline(svg))
}

/// The frontier's SVG: measured points against the model's line.
fn frontier_svg(f: &Frontier) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let (measured, model) = frontier(f);
        let max = measured
            .points
            .iter()
            .flat_map(|p| [p.0, p.1])
            .fold(1.0, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption("measured points against the linear model", (FONT, 15))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..max, 0f64..max)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(measured.x_unit)
            .y_desc(measured.y_unit)
            .x_label_formatter(&|v| format!("{v:.1}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(DashedLineSeries::new(
                model.points.clone(),
                8,
                5,
                GREY.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label(model.name.clone())
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], GREY.stroke_width(2)));
        chart
            .draw_series(
                measured
                    .points
                    .iter()
                    .map(|&p| Circle::new(p, 5, BLUE_.filled())),
            )
            .map_err(plot_error)?
            .label(measured.name.clone())
            .legend(|(x, y)| Circle::new((x + 9, y), 4, BLUE_.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(GREY)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(inline(svg))
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:1em auto;padding:0 1em;\
color:#222}h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}\
h3{margin-bottom:.2em}table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.n{text-align:right}pre,code{background:#f6f6f6}\
pre{padding:.6em;overflow-x:auto}.warn{background:#fff4e0;border-left:4px solid #e67e22;\
padding:.4em .8em;margin:.4em 0}.fix{color:#555}.status{font-weight:bold}\
svg{display:block;max-width:100%;height:auto}.settings{color:#444;margin:.2em 0}";

/// The whole page for `report` as it stands (a running report gives a partial page).
pub fn page(report: &Report) -> Result<String> {
    let mut h = String::new();
    let mounts: Vec<String> = report
        .disks
        .iter()
        .map(|d| d.mountpoint.display().to_string())
        .collect();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{tool} calibration of {m}</title><style>{STYLE}</style></head><body>\n\
         <h1>{tool} calibration of {m}</h1>\n",
        tool = esc(&report.tool),
        m = esc(&mounts.join(", ")),
    );
    let status = match report.status {
        Status::Running => "running: this page is rewritten after each phase",
        Status::Complete => "complete",
        Status::Interrupted => "interrupted: nothing was written",
        Status::Failed => "failed: nothing was written",
        Status::Refused => "refused: a figure came from a cache, nothing was written",
    };
    let _ = writeln!(h, "<p class=\"status\">Status: {}</p>", esc(status));
    let _ = writeln!(h, "<table>");
    for (k, v) in [
        (
            "command line",
            format!("<code>{}</code>", esc(&report.command_line.join(" "))),
        ),
        ("tool", esc(&format!("{} {}", report.tool, report.version))),
        ("started", esc(&report.started)),
        (
            "engine",
            esc(&format!("{:?}", report.engine).to_lowercase()),
        ),
        (
            "shards",
            esc(&format!(
                "{} (the process may use {} CPUs)",
                report.shards, report.cpus
            )),
        ),
        ("base duration", esc(&format!("{} s", report.duration_s))),
    ] {
        let _ = writeln!(h, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    let _ = writeln!(h, "</table>");

    // What to look at first: the warnings, then the figures.
    let plausibility: Vec<_> = report
        .plausibility
        .iter()
        .chain(report.disks.iter().flat_map(|d| d.plausibility.iter()))
        .collect();
    let others: Vec<(&DiskReport, &String)> = report
        .disks
        .iter()
        .flat_map(|d| d.warnings.iter().map(move |w| (d, w)))
        .collect();
    let _ = writeln!(h, "<h2 id=\"warnings\">Warnings</h2>");
    if plausibility.is_empty() && others.is_empty() {
        let _ = writeln!(h, "<p>None: every plausibility check passed.</p>");
    }
    for w in &plausibility {
        let _ = writeln!(
            h,
            "<div class=\"warn\"><b>{}</b>: {}<br><span class=\"fix\">What to do: {}</span></div>",
            esc(w.check.title()),
            esc(&w.message),
            esc(&w.fix)
        );
    }
    for (d, w) in &others {
        let _ = writeln!(
            h,
            "<div class=\"warn\">{}: {}</div>",
            esc(&d.mountpoint.display().to_string()),
            esc(w)
        );
    }

    let written: Vec<_> = report
        .disks
        .iter()
        .filter_map(|d| d.results.as_ref().map(|r| r.properties.clone()))
        .collect();
    let _ = writeln!(h, "<h2 id=\"io-properties\">io-properties</h2>");
    if written.is_empty() {
        let _ = writeln!(h, "<p>Not measured yet.</p>");
    } else {
        let note = if report.status == Status::Complete {
            "The figures written (rates in operations/s and bytes/s):"
        } else {
            "The figures measured, not written (see the status):"
        };
        let yaml = IoProperties {
            disks: written.clone(),
        }
        .to_yaml();
        let _ = writeln!(h, "<p>{note}</p><pre>{}</pre>", esc(&yaml));
        let _ = writeln!(h, "<table><tr><th>mount point</th><th>read IOPS</th><th>read MiB/s</th><th>write IOPS</th><th>write MiB/s</th></tr>");
        for d in &written {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.0}</td><td class=\"n\">{}</td><td class=\"n\">{:.0}</td></tr>",
                esc(&d.mountpoints.iter().map(|m| m.display().to_string()).collect::<Vec<_>>().join(", ")),
                d.read_iops,
                d.read_bandwidth as f64 / MIB,
                d.write_iops,
                d.write_bandwidth as f64 / MIB
            );
        }
        let _ = writeln!(h, "</table>");
    }

    for disk in &report.disks {
        disk_section(&mut h, disk)?;
    }
    let _ = writeln!(h, "</body></html>");
    Ok(h)
}

fn disk_section(h: &mut String, disk: &DiskReport) -> Result<()> {
    let t = &disk.topology;
    let _ = writeln!(
        h,
        "<h2>{} ({})</h2>",
        esc(&disk.mountpoint.display().to_string()),
        esc(&t.fs_type)
    );
    let opt = |v: Option<u32>| v.map_or("not reported".to_string(), |v| format!("{v} B"));
    let _ = writeln!(h, "<table>");
    for (k, v) in [
        (
            "evaluation directory",
            disk.evaluation_directory.display().to_string(),
        ),
        (
            "filesystem",
            format!("{}, {} B blocks", t.fs_type, t.fs_block_size),
        ),
        (
            "direct I/O alignment",
            format!(
                "offsets {}, memory {}",
                opt(t.dio_offset_align),
                opt(t.dio_mem_align)
            ),
        ),
        (
            "free before the run",
            format!("{:.1} GiB", disk.free_bytes as f64 / (1u64 << 30) as f64),
        ),
        (
            "test file per shard",
            format!("{:.0} MiB", disk.file_size_per_shard as f64 / MIB),
        ),
        (
            "read working set",
            format!(
                "{:.0} MiB (what this run wrote)",
                disk.read_working_set_bytes as f64 / MIB
            ),
        ),
    ] {
        let _ = writeln!(h, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    let _ = writeln!(h, "</table>");
    let devices = t.counted_devices();
    if devices.is_empty() {
        let _ = writeln!(h, "<p>No block device under this filesystem (e.g. tmpfs): the disks' counters cannot confirm the figures.</p>");
    } else {
        let _ = writeln!(h, "<table><tr><th>disk</th><th>logical / physical block</th><th>nr_requests</th><th>max_sectors_kb</th><th>scheduler</th><th>nomerges</th><th>write cache</th><th>rotational</th></tr>");
        let show = |v: Option<String>| v.unwrap_or_else(|| "?".into());
        for d in devices {
            let q = &d.queue;
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{} / {} B</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&d.name),
                q.logical_block_size,
                q.physical_block_size,
                show(q.nr_requests.map(|v| v.to_string())),
                show(q.max_sectors_kb.map(|v| v.to_string())),
                esc(&show(q.scheduler.clone())),
                show(q.nomerges.map(|v| v.to_string())),
                esc(&show(q.write_cache.map(|v| format!("{v:?}").to_lowercase()))),
                show(q.rotational.map(|v| v.to_string())),
            );
        }
        let _ = writeln!(h, "</table>");
    }

    let _ = writeln!(h, "<h2 id=\"phases\">Phases</h2>");
    for phase in disk.phases.iter().filter(|p| !p.dropped) {
        let _ = writeln!(
            h,
            "<h3 id=\"{}\">{}</h3><p class=\"settings\">{} shard(s) × {} in flight × {} B requests; {:.1} s ramp dropped, {:.1} s measured: <b>{:.0} IOPS, {:.1} MiB/s</b>, p50 {}, p99 {}, p99.9 {}{}</p>",
            esc(&phase.name.replace(' ', "-")),
            esc(&phase.name),
            phase.shards,
            phase.in_flight_per_shard,
            phase.request_size,
            phase.ramp_s,
            phase.measure_s,
            phase.total.iops,
            phase.total.bandwidth / MIB,
            micros(phase.total.latency.p50_us),
            micros(phase.total.latency.p99_us),
            micros(phase.total.latency.p999_us),
            phase
                .served
                .as_ref()
                .map(|s| format!("; served by the disk: {}", format!("{:?}", s.verdict).to_lowercase()))
                .unwrap_or_default()
        );
        h.push_str(&phase_svg(phase)?);
        h.push('\n');
    }
    let probes: Vec<&PhaseReport> = disk.phases.iter().filter(|p| p.dropped).collect();
    if !probes.is_empty() {
        let _ = writeln!(h, "<h3>Probes (not in io-properties)</h3><table><tr><th>phase</th><th>in flight per shard</th><th>IOPS</th><th>MiB/s</th><th>p99</th></tr>");
        for p in probes {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.0}</td><td class=\"n\">{:.1}</td><td class=\"n\">{}</td></tr>",
                esc(&p.name),
                p.in_flight_per_shard,
                p.total.iops,
                p.total.bandwidth / MIB,
                micros(p.total.latency.p99_us)
            );
        }
        let _ = writeln!(h, "</table>");
    }
    for s in &disk.depth_sweeps {
        let _ = writeln!(
            h,
            "<h2 id=\"sweep-{0}\">Depth sweep: random {0}</h2>",
            s.direction
        );
        h.push_str(&sweep_svg(s)?);
        h.push('\n');
    }
    for f in frontiers(disk) {
        let _ = writeln!(
            h,
            "<h2>Mixed read/write frontier</h2>\n<p>{}. Verdict: {}</p>",
            esc(&f.title),
            esc(&f.verdict)
        );
        h.push_str(&frontier_svg(&f)?);
        h.push('\n');
    }
    Ok(())
}

/// Writes the page for `report` to `path` atomically.
pub fn save(report: &Report, path: &std::path::Path) -> Result<()> {
    crate::report::write_atomically(path, page(report)?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{DepthPoint, Figures, ShardFigures};
    use crate::stats::{Latency, LatencyPoint, Trend};
    use scheduler::engine::SecondSample;
    use scheduler::Direction;

    fn phase(pattern: Pattern, seconds: &[u64], shards: usize) -> PhaseReport {
        let shard = ShardFigures {
            figures: Figures {
                iops: 0.0,
                bandwidth: 0.0,
                requests: 0,
                deviation: 0.0,
                latency: Latency::default(),
            },
            samples: seconds
                .iter()
                .map(|&r| SecondSample {
                    requests: r,
                    bytes: r << 20,
                })
                .collect(),
            cpu_s: 0.1,
            runqueue_wait_s: 0.0,
            registered_buffers: true,
        };
        PhaseReport {
            name: "sequential read".into(),
            dropped: false,
            direction: Direction::Read,
            pattern,
            request_size: 1 << 20,
            in_flight_per_shard: 4,
            shards,
            ramp_s: 1.0,
            measure_s: seconds.len() as f64,
            region_bytes_per_shard: 1 << 30,
            total: Figures {
                iops: 100.0,
                bandwidth: 100.0 * MIB,
                requests: 400,
                deviation: 0.1,
                latency: Latency {
                    mean_us: 120.0,
                    p50_us: 100.0,
                    p99_us: 400.0,
                    p999_us: 900.0,
                    max_us: 1500.0,
                },
            },
            per_shard: vec![shard; shards],
            trend: Trend::default(),
            latency_distribution: (0..=30)
                .map(|i| LatencyPoint {
                    percentile: 100.0 * (1.0 - 10f64.powf(-(i as f64) / 10.0)),
                    us: 100.0 + i as f64 * 30.0,
                })
                .chain(std::iter::once(LatencyPoint {
                    percentile: 100.0,
                    us: 1500.0,
                }))
                .collect(),
            sustained: None,
            device_requests: Vec::new(),
            served: None,
            latency_ns: None,
        }
    }

    #[test]
    fn throughput_sums_shards_per_second_with_a_trend() {
        let p = phase(Pattern::Sequential, &[100, 110, 120, 130], 2);
        let (per_second, trend) = throughput(&p);
        assert_eq!((per_second.x_unit, per_second.y_unit), ("s", "MiB/s"));
        assert_eq!(
            per_second.points,
            [(0.0, 200.0), (1.0, 220.0), (2.0, 240.0), (3.0, 260.0)]
        );
        assert_eq!(trend.points.len(), 2);
        assert!(
            (trend.points[0].1 - 200.0).abs() < 1e-9 && (trend.points[1].1 - 260.0).abs() < 1e-9
        );
        let r = phase(Pattern::Random, &[5], 1);
        let (per_second, trend) = throughput(&r);
        assert_eq!(per_second.y_unit, "IOPS");
        assert_eq!(per_second.points, [(0.0, 5.0)]);
        assert!(trend.points.is_empty(), "one second has no trend");
    }

    #[test]
    fn latency_is_on_a_nines_axis_with_marks() {
        let p = phase(Pattern::Random, &[1, 2], 1);
        let (series, marks) = latency(&p);
        assert_eq!((series.x_unit, series.y_unit), ("percentile", "µs"));
        assert_eq!(series.points.len(), 32);
        assert!((series.points[10].0 - 1.0).abs() < 1e-9, "p90 is one nine");
        assert!(
            (series.points[31].0 - 3.5).abs() < 1e-9,
            "max half a nine past p99.9"
        );
        let names: Vec<&str> = marks.iter().map(|m| m.2.as_str()).collect();
        assert_eq!(
            names,
            ["p50 100 µs", "p99 400 µs", "p99.9 900 µs", "max 1.5 ms"]
        );
        assert!(
            (marks[3].0 - 3.5).abs() < 1e-9,
            "the maximum half a nine past p99.9"
        );
        assert!((marks[1].0 - 2.0).abs() < 1e-9);
        // A stall: the maximum is p99.9 (a 3 s wait), so only p99.9 is labelled.
        let mut stalled = p.clone();
        stalled.total.latency.p999_us = 1500.0;
        assert_eq!(latency(&stalled).1.len(), 3);
    }

    #[test]
    fn sweep_and_frontier_series() {
        let s = DepthSweep {
            direction: Direction::Read,
            request_size: 4096,
            shards: 2,
            points: [(1, 10e3, 90.0), (2, 19e3, 95.0), (4, 30e3, 130.0)]
                .iter()
                .map(|&(d, iops, p99)| DepthPoint {
                    in_flight_per_shard: d,
                    iops,
                    mean_us: 0.0,
                    p99_us: p99,
                    littles_law_in_flight: 0.0,
                })
                .collect(),
            knee_in_flight_per_shard: 4,
            knee_in_flight: 8,
        };
        let (iops, p99) = sweep(&s);
        assert_eq!(iops.points.len(), 3);
        assert_eq!((iops.y_unit, p99.y_unit), ("IOPS", "µs"));
        assert_eq!(iops.x_unit, "requests in flight per shard");
        assert_eq!(p99.points[2], (4.0, 130.0));
        let svg = sweep_svg(&s).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("knee"), "{svg}");

        let f = Frontier {
            title: "bandwidth".into(),
            verdict: "linear".into(),
            points: vec![
                FrontierPoint {
                    read: 0.9,
                    write: 0.0,
                },
                FrontierPoint {
                    read: 0.45,
                    write: 0.5,
                },
                FrontierPoint {
                    read: 0.0,
                    write: 1.05,
                },
            ],
        };
        let (measured, model) = frontier(&f);
        assert_eq!(measured.points, [(0.0, 0.9), (0.5, 0.45), (1.05, 0.0)]);
        assert_eq!(model.points, [(0.0, 1.0), (1.0, 0.0)]);
        assert!(measured.x_unit.starts_with("write") && measured.y_unit.starts_with("read"));
        let svg = frontier_svg(&f).unwrap();
        assert_eq!(
            svg.matches("<circle").count(),
            3 + 1,
            "three points and the legend's"
        );
    }

    #[test]
    fn phase_svg_is_inline_and_labelled() {
        let svg = phase_svg(&phase(Pattern::Sequential, &[100, 90, 95], 2)).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(!svg.contains("http"), "no URL, not even a namespace");
        for label in [
            "MiB/s",
            "latency (µs, log scale)",
            "percentile",
            "p99 400 µs",
            "deviation 10.0%",
        ] {
            assert!(svg.contains(label), "no {label:?} in the SVG");
        }
    }

    #[test]
    fn latency_axis_spans_the_decades_of_the_points() {
        assert_eq!(latency_range(&[]), (1.0, 1000.0));
        let (lo, hi) = latency_range(&[(0.0, 250.0), (1.0, 900.0), (3.5, 5.8e6)]);
        assert_eq!(lo, 100.0);
        assert!(hi >= 5.8e6 * 2.0);
        assert_eq!(latency_range(&[(0.0, 0.0), (1.0, 3.0)]).0, LATENCY_FLOOR_US);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a & 'b'>"), "&lt;a &amp; &#39;b&#39;&gt;");
    }
}
