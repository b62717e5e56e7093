//! What a run reports: per shard, per job, the reference io_tester's figures (throughput in
//! KiB/s, IOPS, latency percentiles in µs, scheduler statistics) plus the alignment trace.
//! One set of structs; YAML is written by hand in the reference's key order, JSON by serde.
//!
//! Throughput and IOPS are per second of the job's active time on its shard (see
//! `run::shard`): a job that finished early (`limit`) is not diluted by the rest of the run.

pub mod served;

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use scheduler::alignment::AlignmentReport;
use scheduler::io_queue::ClassStats;
use serde::Serialize;

use crate::run::shard::JobRun;
use crate::workload::job::JobKind;

/// One shard's results.
#[derive(Debug, Serialize)]
pub struct ShardReport {
    /// Shard id.
    pub shard: u32,
    /// Its jobs, in job-file order.
    pub jobs: Vec<JobReport>,
    /// Writes resubmitted without RWF_NOWAIT after EAGAIN (the filesystem would have blocked).
    pub aio_retries: u64,
    /// CPU seconds (user + system) the shard's thread used while the jobs ran.
    pub cpu_seconds: f64,
}

/// One job on one shard.
#[derive(Debug, Serialize)]
pub struct JobReport {
    /// Job name.
    pub name: String,
    /// Job type.
    #[serde(rename = "type")]
    pub kind: JobKind,
    /// KiB/s for I/O jobs; cpu steps per second for cpu jobs (per second of active time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput: Option<f64>,
    /// Requests (or unlinks) per second.
    #[serde(rename = "IOPS", skip_serializing_if = "Option::is_none")]
    pub iops: Option<f64>,
    /// Latency from queueing to completion, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latencies: Option<Latencies>,
    /// Scheduler statistics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<Stats>,
    /// Alignment tracing looked at one request in this many by the end of the run: the
    /// `--trace-sample` interval, or without it the adaptive one (1 unless extent-map refreshes
    /// took over 1% of the run time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alignment_sampled_every: Option<u32>,
    /// Where the requests landed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alignment: Option<AlignmentReport>,
    /// Served by the disk, for the whole run in this job's direction (device counters cannot
    /// tell jobs apart; see [`served`]). Absent for cpu and unlink jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served: Option<served::RunServed>,
}

/// Latency percentiles, integer µs (HDR histogram, 3 significant digits).
#[derive(Debug, Serialize)]
pub struct Latencies {
    /// Mean.
    pub average: u64,
    /// Median.
    #[serde(rename = "p0.5", skip_serializing_if = "Option::is_none")]
    pub p50: Option<u64>,
    /// 95th percentile.
    #[serde(rename = "p0.95", skip_serializing_if = "Option::is_none")]
    pub p95: Option<u64>,
    /// 99th percentile.
    #[serde(rename = "p0.99", skip_serializing_if = "Option::is_none")]
    pub p99: Option<u64>,
    /// 99.9th percentile.
    #[serde(rename = "p0.999", skip_serializing_if = "Option::is_none")]
    pub p999: Option<u64>,
    /// Largest.
    pub max: u64,
}

/// The reference's per-job statistics.
#[derive(Debug, Serialize)]
pub struct Stats {
    /// Requests completed.
    pub total_requests: u64,
    /// Bytes those requests moved (I/O jobs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    /// Seconds requests spent in the disk, summed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_queue_total_exec_sec: Option<f64>,
    /// Seconds requests waited in the scheduler, summed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_queue_total_delay_sec: Option<f64>,
    /// Requests the scheduler completed for the job's class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_queue_total_operations: Option<u64>,
    /// Seconds the class waited for tokens with work queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_queue_starvation_time_sec: Option<f64>,
    /// Capacity used, seconds of whole-disk time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_queue_consumption: Option<f64>,
    /// Capacity used after flow-ratio adjustment, seconds of whole-disk time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_queue_adjusted_consumption: Option<f64>,
    /// Times the class became active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_queue_activations: Option<u64>,
    /// Requests split for exceeding the maximum request length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reactor_aio_outsizes: Option<u64>,
    /// Requests in the disk, sampled every 200 ms on the job's shard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_queue_length: Option<QueueLength>,
    /// Times an append file had to grow beyond its allocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_size_overflows: Option<u64>,
}

/// Disk queue length percentiles (requests).
#[derive(Debug, Serialize)]
pub struct QueueLength {
    /// Median.
    #[serde(rename = "p0.5")]
    pub p50: u64,
    /// 90th percentile.
    #[serde(rename = "p0.9")]
    pub p90: u64,
    /// Largest.
    pub max: u64,
}

fn us(ns: u64) -> u64 {
    (ns + 500) / 1000
}

impl JobReport {
    /// Builds the report of one job from its run state and its class's statistics. Rates are
    /// per second of the job's active time.
    pub fn new(r: &JobRun, class: ClassStats, queue_len: &Histogram<u64>) -> JobReport {
        // A job that completed nothing has rates of 0, not NaN.
        let secs = r.stats.active.as_secs_f64().max(1e-9);
        let h = &r.stats.latency_ns;
        let lat_full = || Latencies {
            average: us(h.mean() as u64),
            p50: Some(us(h.value_at_quantile(0.5))),
            p95: Some(us(h.value_at_quantile(0.95))),
            p99: Some(us(h.value_at_quantile(0.99))),
            p999: Some(us(h.value_at_quantile(0.999))),
            max: us(h.max()),
        };
        let kind = r.job.kind;
        let (throughput, iops, latencies, stats) = match kind {
            JobKind::Cpu => (Some(r.stats.requests as f64 / secs), None, None, None),
            JobKind::Unlink => (
                None,
                Some(r.stats.requests as f64 / secs),
                Some(Latencies {
                    average: us(h.mean() as u64),
                    p50: None,
                    p95: None,
                    p99: None,
                    p999: None,
                    max: us(h.max()),
                }),
                Some(Stats {
                    total_requests: r.stats.requests,
                    total_bytes: None,
                    io_queue_total_exec_sec: None,
                    io_queue_total_delay_sec: None,
                    io_queue_total_operations: None,
                    io_queue_starvation_time_sec: None,
                    io_queue_consumption: None,
                    io_queue_adjusted_consumption: None,
                    io_queue_activations: None,
                    reactor_aio_outsizes: None,
                    disk_queue_length: None,
                    file_size_overflows: None,
                }),
            ),
            _ => (
                Some(r.stats.bytes as f64 / 1024.0 / secs),
                Some(r.stats.requests as f64 / secs),
                Some(lat_full()),
                Some(Stats {
                    total_requests: r.stats.requests,
                    total_bytes: Some(r.stats.bytes),
                    io_queue_total_exec_sec: Some(class.total_exec_sec),
                    io_queue_total_delay_sec: Some(class.total_delay_sec),
                    io_queue_total_operations: Some(class.operations),
                    io_queue_starvation_time_sec: Some(class.starvation_time_sec),
                    io_queue_consumption: Some(class.consumption),
                    io_queue_adjusted_consumption: Some(class.adjusted_consumption),
                    io_queue_activations: Some(class.activations),
                    reactor_aio_outsizes: Some(class.split_requests),
                    disk_queue_length: Some(QueueLength {
                        p50: queue_len.value_at_quantile(0.5),
                        p90: queue_len.value_at_quantile(0.9),
                        max: queue_len.max(),
                    }),
                    file_size_overflows: (kind == JobKind::Append)
                        .then_some(r.stats.file_size_overflows),
                }),
            ),
        };
        let sampled_every = r
            .tracer
            .as_ref()
            .map(|t| t.params().sample_every.max(1).saturating_mul(r.trace.every));
        let alignment = r.tracer.as_ref().map(|t| {
            let mut a = t.report();
            // The tracer saw only the completions handed to it: report the job's whole count
            // and the interval in effect at the end.
            a.requests_seen = r.trace.seen;
            a.sampled = sampled_every.unwrap_or(1);
            a
        });
        JobReport {
            name: r.job.name.clone(),
            kind,
            throughput,
            iops,
            latencies,
            stats,
            alignment_sampled_every: sampled_every,
            alignment,
            served: None,
        }
    }
}

/// Formats a float the way the reference's output reads (up to 9 significant digits, no
/// exponent, trailing zeros trimmed).
fn num(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    let digits = if v.abs() >= 1.0 {
        9usize.saturating_sub(v.abs().log10().floor() as usize + 1)
    } else {
        9
    };
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The reference's YAML document: a list of shards, each with one section per job.
pub fn to_yaml(shards: &[ShardReport]) -> String {
    let mut o = String::from("---\n");
    for s in shards {
        let _ = writeln!(o, "- shard: {}", s.shard);
        for j in &s.jobs {
            let _ = writeln!(o, "  {}:", j.name);
            if let Some(t) = j.throughput {
                let unit = if j.kind == JobKind::Cpu {
                    "steps/s"
                } else {
                    "kB/s"
                };
                let _ = writeln!(o, "    throughput: {}  # {unit}", num(t));
            }
            if let Some(v) = j.iops {
                let _ = writeln!(o, "    IOPS: {}", num(v));
            }
            if let Some(l) = &j.latencies {
                let _ = writeln!(o, "    latencies:  # usec");
                let _ = writeln!(o, "      average: {}", l.average);
                for (k, v) in [
                    ("p0.5", l.p50),
                    ("p0.95", l.p95),
                    ("p0.99", l.p99),
                    ("p0.999", l.p999),
                ] {
                    if let Some(v) = v {
                        let _ = writeln!(o, "      {k}: {v}");
                    }
                }
                let _ = writeln!(o, "      max: {}", l.max);
            }
            if let Some(st) = &j.stats {
                let _ = writeln!(o, "    stats:");
                let _ = writeln!(o, "      total_requests: {}", st.total_requests);
                if let Some(b) = st.total_bytes {
                    let _ = writeln!(o, "      total_bytes: {b}");
                }
                let floats = [
                    ("io_queue_total_exec_sec", st.io_queue_total_exec_sec),
                    ("io_queue_total_delay_sec", st.io_queue_total_delay_sec),
                ];
                for (k, v) in floats {
                    if let Some(v) = v {
                        let _ = writeln!(o, "      {k}: {}", num(v));
                    }
                }
                if let Some(v) = st.io_queue_total_operations {
                    let _ = writeln!(o, "      io_queue_total_operations: {v}");
                }
                for (k, v) in [
                    (
                        "io_queue_starvation_time_sec",
                        st.io_queue_starvation_time_sec,
                    ),
                    ("io_queue_consumption", st.io_queue_consumption),
                    (
                        "io_queue_adjusted_consumption",
                        st.io_queue_adjusted_consumption,
                    ),
                ] {
                    if let Some(v) = v {
                        let _ = writeln!(o, "      {k}: {}", num(v));
                    }
                }
                for (k, v) in [
                    ("io_queue_activations", st.io_queue_activations),
                    ("reactor_aio_outsizes", st.reactor_aio_outsizes),
                ] {
                    if let Some(v) = v {
                        let _ = writeln!(o, "      {k}: {v}");
                    }
                }
                if let Some(q) = &st.disk_queue_length {
                    let _ = writeln!(o, "      disk_queue_length:\n        p0.5: {}\n        p0.9: {}\n        max: {}", q.p50, q.p90, q.max);
                }
                if let Some(v) = st.file_size_overflows {
                    let _ = writeln!(o, "      file_size_overflows: {v}");
                }
            }
            if let Some(s) = &j.served {
                let _ = writeln!(
                    o,
                    "    served:  # by the disks; all {}s of the run together",
                    s.direction
                );
                let text = serde_yaml::to_string(s).unwrap_or_default();
                for line in text.lines().filter(|l| *l != "---") {
                    let _ = writeln!(o, "      {line}");
                }
            }
            if let Some(n) = j.alignment_sampled_every {
                let _ = writeln!(o, "    alignment_sampled_every: {n}");
            }
            if let Some(a) = &j.alignment {
                let _ = writeln!(o, "    alignment:");
                let text = serde_yaml::to_string(a).unwrap_or_default();
                for line in text.lines().filter(|l| *l != "---") {
                    let _ = writeln!(o, "      {line}");
                }
            }
        }
        let _ = writeln!(
            o,
            "  statistics:\n    aio_retries: {}\n    cpu_seconds: {}",
            s.aio_retries,
            num(s.cpu_seconds)
        );
    }
    o.push_str("...\n");
    o
}

#[cfg(test)]
mod tests {
    use super::num;

    #[test]
    fn numbers_read_like_the_reference() {
        assert_eq!(num(426268.781), "426268.781");
        assert_eq!(num(1664.78357), "1664.78357");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(2.5), "2.5");
        assert_eq!(num(f64::NAN), "0");
    }
}
