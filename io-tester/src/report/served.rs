//! Served by the disk: what the run's jobs completed against what the storage's devices counted
//! (`/sys/dev/block/MAJ:MIN/stat`) from the first request to the last completion, judged by
//! `scheduler::topology::served`.
//!
//! The counters are per device, so jobs sharing a device cannot be told apart: the figures are
//! per direction for the whole run (all reading jobs together, all writing jobs together), and
//! each job carries its direction's figures beside its own completed bytes
//! (`stats.total_bytes`). Other I/O on the devices meanwhile (another program, or this run's
//! `unlink` jobs and file metadata) is counted too and reads as "more".

use scheduler::topology::served::{self, Coverage, Served, ServedInput, Verdict};
use scheduler::topology::CounterSnapshot;
use serde::Serialize;

use super::ShardReport;
use crate::workload::job::JobKind;

/// The run's served-by-the-disk figures in one direction.
#[derive(Debug, Clone, Serialize)]
pub struct RunServed {
    /// "read" or "write".
    pub direction: &'static str,
    /// Kernel names of the devices counted.
    pub devices: Vec<String>,
    /// Requests and bytes completed by every job of the run in this direction, against what
    /// the devices counted, and the verdict.
    #[serde(flatten)]
    pub served: Served,
}

/// Whether a job of `kind` writes (`Some(true)`), reads (`Some(false)`) or issues no data
/// requests (`None`: cpu, unlink).
fn writes(kind: JobKind) -> Option<bool> {
    match kind {
        JobKind::SeqRead | JobKind::RandRead => Some(false),
        JobKind::Overwrite | JobKind::RandWrite | JobKind::Append => Some(true),
        JobKind::Cpu | JobKind::Unlink => None,
    }
}

/// Judges each direction some job of the run used: the jobs' completed requests and bytes
/// against the devices' counters between `before` and `after`. `copies` is the storage's
/// [`write_copies`](scheduler::topology::Topology::write_copies).
pub fn judge_run(
    shards: &[ShardReport],
    before: &CounterSnapshot,
    after: &CounterSnapshot,
    coverage: &Coverage,
    copies: u32,
) -> Vec<RunServed> {
    let mut out = Vec::new();
    for write in [false, true] {
        let jobs = shards
            .iter()
            .flat_map(|s| &s.jobs)
            .filter(|j| writes(j.kind) == Some(write));
        let (mut requests, mut bytes, mut any) = (0u64, 0u64, false);
        for j in jobs {
            any = true;
            if let Some(st) = &j.stats {
                requests += st.total_requests;
                bytes += st.total_bytes.unwrap_or(0);
            }
        }
        if !any {
            continue;
        }
        let (deltas, unreadable) = after.since(before, write);
        let devices = deltas.iter().map(|(n, _)| n.clone()).collect();
        let total: scheduler::topology::DeviceDelta = deltas.into_iter().map(|(_, d)| d).sum();
        let input = ServedInput {
            write,
            completed_requests: requests,
            completed_bytes: bytes,
            // Every completion is counted, the drain's included.
            uncounted_bytes: 0,
            device_requests: total.requests,
            device_merges: total.merges,
            device_bytes: total.bytes,
            write_copies: copies,
        };
        out.push(RunServed {
            direction: if write { "write" } else { "read" },
            devices,
            served: served::judge(&input, &coverage.with_unreadable(&unreadable)),
        });
    }
    out
}

/// Gives every job the figures of its direction.
pub fn attach(shards: &mut [ShardReport], served: &[RunServed]) {
    for job in shards.iter_mut().flat_map(|s| &mut s.jobs) {
        let direction = match writes(job.kind) {
            Some(true) => "write",
            Some(false) => "read",
            None => continue,
        };
        job.served = served.iter().find(|s| s.direction == direction).cloned();
    }
}

/// The console lines: one summary per direction, and the warning when a cache served the
/// jobs or the devices served clearly more.
pub fn console(served: &[RunServed]) -> Vec<String> {
    let mut out = Vec::new();
    for s in served {
        let what = format!("{}s of all jobs", s.direction);
        if let Some(w) = s.served.warning(&what) {
            out.push(format!("WARN: {w}"));
            continue;
        }
        let line = match (s.served.verdict, s.served.fraction) {
            (Verdict::Unverified, _) => format!(
                "{what}: unverified: {}",
                s.served.reason.as_deref().unwrap_or("unknown")
            ),
            (_, Some(f)) => format!(
                "{what}: the disks ({}) served {:.1}% of the {} bytes completed",
                s.devices.join(", "),
                f * 100.0,
                s.served.completed_bytes
            ),
            (_, None) => continue,
        };
        out.push(format!("io-tester: served by the disk: {line}"));
    }
    out
}
