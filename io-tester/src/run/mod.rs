//! Runs the jobs: one thread per shard, each with its own I/O queue (and io_uring), all
//! starting together; collects what every shard measured.

pub mod files;
pub mod shard;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use scheduler::alignment::{AlignmentParams, AlignmentTracer};
use scheduler::engine::{EngineKind, Ring};
use scheduler::io_queue::{ClassHandle, GroupHandle, IoGroup, IoQueue};
use scheduler::token_bucket::SharedTokenBucket;

use crate::report::{JobReport, ShardReport};
use crate::workload::job::{Job, JobKind};
use crate::workload::{per_shard_data_size, SchedGroup};
use files::{Cleanup, Storage};
use shard::{JobRun, JobStats};

/// Everything a run needs, validated.
pub struct Settings {
    /// Directory or block device.
    pub storage: Storage,
    /// Run time.
    pub duration: Duration,
    /// Jobs from the job file.
    pub jobs: Vec<Job>,
    /// Scheduling groups from `--sched-groups`.
    pub groups: Vec<SchedGroup>,
    /// Shards.
    pub smp: u32,
    /// I/O engine.
    pub kind: EngineKind,
    /// Keep the data files.
    pub keep_files: bool,
    /// The disk model shared by all shards.
    pub group: Arc<IoGroup>,
    /// How alignment is judged (block sizes, partition offset, md chunk).
    pub alignment: AlignmentParams,
}

/// Runs every shard and returns their reports in shard order.
pub fn run(settings: &Settings, stop: &AtomicBool) -> Result<Vec<ShardReport>> {
    let n = settings.smp;
    // Per-job bandwidth limits hold for the job as a whole: one bucket shared by its shards.
    let limits: Vec<Option<Arc<SharedTokenBucket>>> = settings
        .jobs
        .iter()
        .map(|j| {
            j.shard_info
                .bandwidth
                .map(|b| settings.group.bandwidth_limit(b))
        })
        .collect();
    let barrier = Barrier::new(n as usize);
    let results: Vec<Result<ShardReport>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|shard| {
                let (limits, barrier) = (&limits, &barrier);
                std::thread::Builder::new()
                    .name(format!("shard-{shard}"))
                    .spawn_scoped(scope, move || {
                        let r = run_shard(settings, shard, limits, barrier, stop);
                        if r.is_err() {
                            // Let the other shards stop early too.
                            stop.store(true, Ordering::Relaxed);
                        }
                        r
                    })
                    .map_err(|e| anyhow!("cannot start shard {shard}: {e}"))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.and_then(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("shard thread panicked")))
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

fn run_shard(
    settings: &Settings,
    shard: u32,
    limits: &[Option<Arc<SharedTokenBucket>>],
    barrier: &Barrier,
    stop: &AtomicBool,
) -> Result<ShardReport> {
    let mine: Vec<(usize, &Job)> = settings
        .jobs
        .iter()
        .enumerate()
        .filter(|(_, j)| match &j.shards {
            crate::workload::job::Shards::All => true,
            crate::workload::job::Shards::List(ids) => ids.contains(&shard),
        })
        .collect();
    let mut cleanup = Cleanup::default();
    let prepared = prepare_shard(settings, shard, &mine, &mut cleanup);
    // Every shard reaches the barrier, even after an error, so none waits forever.
    barrier.wait();
    let (files, slots, slot_size) = prepared?;
    if stop.load(Ordering::Relaxed) {
        bail!("stopped before the run started");
    }
    let fds: Vec<_> = files.iter().map(|f| f.file.fd()).collect();
    let ring = Ring::new(
        settings.kind,
        slots.max(1),
        slot_size.max(4096) as usize,
        &fds,
    )
    .context("cannot set up the shard's ring")?;
    let mut queue = IoQueue::new(settings.group.clone(), ring);
    queue.set_nowait_writes(settings.kind == EngineKind::Uring);
    let classes = register_classes(&mut queue, settings, &mine, limits);
    let mut runs: Vec<JobRun> = Vec::with_capacity(mine.len());
    let mut files = files;
    for (i, (ji, job)) in mine.iter().enumerate() {
        let f = &mut files[i];
        runs.push(JobRun {
            job: (*job).clone(),
            class: classes[*ji].expect("every job of this shard has a class"),
            file: i,
            start: f.start,
            size: f.size,
            allocated: f.size,
            cursor: 0,
            unlink_files: std::mem::take(&mut f.unlink_files),
            next_unlink: 0,
            stats: JobStats::default(),
            tracer: if job.kind.issues_requests() {
                AlignmentTracer::new(settings.alignment.clone()).ok()
            } else {
                None
            },
            handle: f.file.clone(),
        });
    }
    let seed = scheduler::engine::rng::seed_for(shard as usize);
    let cpu0 = scheduler::engine::thread_cpu_time();
    let queue_len = shard::run(&mut queue, &mut runs, settings.duration, stop, seed)?;
    let cpu_seconds = scheduler::engine::thread_cpu_time()
        .saturating_sub(cpu0)
        .as_secs_f64();
    let elapsed = settings.duration;
    let jobs = runs
        .iter()
        .map(|r| JobReport::new(r, queue.class_stats(r.class), &queue_len, elapsed))
        .collect();
    let aio_retries = queue.stats().aio_retries;
    // The queue (and its ring) drains before the files close; named files go last.
    drop(queue);
    drop(runs);
    drop(files);
    drop(cleanup);
    Ok(ShardReport {
        shard,
        jobs,
        aio_retries,
        cpu_seconds,
    })
}

type Prepared = (Vec<files::JobFile>, usize, u64);

fn prepare_shard(
    settings: &Settings,
    shard: u32,
    mine: &[(usize, &Job)],
    cleanup: &mut Cleanup,
) -> Result<Prepared> {
    let mut out = Vec::with_capacity(mine.len());
    let mut slots = 0usize;
    let mut slot_size = 0u64;
    for (_, job) in mine {
        let size = per_shard_data_size(job, settings.smp);
        let f = files::prepare(
            &settings.storage,
            job,
            shard,
            settings.smp,
            size,
            settings.keep_files,
            settings.kind,
            cleanup,
        )
        .with_context(|| format!("shard {shard}: preparing job '{}'", job.name))?;
        if job.kind.issues_requests() {
            if f.size < job.shard_info.reqsize && job.kind != JobKind::Append {
                bail!("job '{}': its file on shard {shard} ({} bytes) is smaller than one request ({} bytes); raise data_size", job.name, f.size, job.shard_info.reqsize);
            }
            slots += (job.shard_info.parallelism * job.shard_info.batch.max(1)) as usize;
            slot_size = slot_size.max(job.shard_info.reqsize);
        }
        out.push(f);
    }
    Ok((out, slots, slot_size))
}

/// Scheduling groups become class groups (when something nests under them) or classes; a
/// job without `class` gets a class of its own with its `shares`.
fn register_classes(
    queue: &mut IoQueue,
    settings: &Settings,
    mine: &[(usize, &Job)],
    limits: &[Option<Arc<SharedTokenBucket>>],
) -> Vec<Option<ClassHandle>> {
    let groups = &settings.groups;
    let is_parent = |name: &str| groups.iter().any(|g| g.parent.as_deref() == Some(name));
    let mut group_handles: Vec<(String, GroupHandle)> = Vec::new();
    let mut class_handles: Vec<(String, ClassHandle)> = Vec::new();
    // Parents before children: repeat until every group is placed (validated acyclic).
    let mut placed = vec![false; groups.len()];
    while placed.iter().any(|p| !p) {
        let mut progress = false;
        for (i, g) in groups.iter().enumerate() {
            if placed[i] {
                continue;
            }
            let parent = match &g.parent {
                None => None,
                Some(p) => match group_handles.iter().find(|(n, _)| n == p) {
                    Some((_, h)) => Some(*h),
                    None => continue,
                },
            };
            if is_parent(&g.name) {
                group_handles.push((g.name.clone(), queue.register_group(g.shares, parent, None)));
            } else {
                class_handles.push((
                    g.name.clone(),
                    queue.register_class(&g.name, g.shares, parent, None),
                ));
            }
            placed[i] = true;
            progress = true;
        }
        if !progress {
            break;
        }
    }
    let mut out: Vec<Option<ClassHandle>> = vec![None; settings.jobs.len()];
    for (ji, job) in mine {
        out[*ji] = Some(
            match job
                .shard_info
                .class
                .as_deref()
                .and_then(|c| class_handles.iter().find(|(n, _)| n == c))
            {
                Some((_, h)) => *h,
                None => queue.register_class(
                    &job.name,
                    job.shard_info.shares,
                    None,
                    limits[*ji].clone(),
                ),
            },
        );
    }
    out
}
