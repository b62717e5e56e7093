//! Runs the jobs: one thread per shard, each with its own I/O queue (and io_uring), all
//! starting together; collects what every shard measured.

pub mod files;
pub mod shard;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use scheduler::alignment::{AlignmentParams, AlignmentTracer};
use scheduler::engine::{EngineKind, Ring, MAX_IN_FLIGHT};
use scheduler::io_queue::{BandwidthLimit, ClassConfig, ClassId, GroupId, IoGroup};
use scheduler::ring_queue::RingQueue;
use scheduler::topology::{BlockDevice, CounterSnapshot};

use crate::report::{JobReport, ShardReport};
use crate::workload::job::{Job, JobKind};
use crate::workload::{per_shard_data_size, ClassKey, JobClass, SchedGroup};
use files::{Cleanup, Storage};
use shard::{JobRun, JobStats, TraceSampling};

/// The run was stopped (Ctrl-C, or another shard failed) before it could finish; the error
/// that caused it, if any, is reported instead.
#[derive(Debug, thiserror::Error)]
#[error("stopped before the run could finish")]
pub struct Stopped;

/// Bandwidth buckets by class, shared by every shard.
type Limits = HashMap<ClassKey, BandwidthLimit>;

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
    /// Each job's class (`workload::resolve_job_classes`), in job order.
    pub classes: Vec<JobClass>,
    /// Shards.
    pub smp: u32,
    /// I/O engine.
    pub kind: EngineKind,
    /// Keep the data files.
    pub keep_files: bool,
    /// The run's own directory for named files that are not kept (unlink jobs'), when a job
    /// needs one; removed when the settings drop.
    pub run_dir: Option<files::RunDir>,
    /// The disk model shared by all shards.
    pub group: Arc<IoGroup>,
    /// How alignment is judged (block sizes, partition offset, md chunk).
    pub alignment: AlignmentParams,
    /// Thin out alignment tracing when it gets costly (no `--trace-sample`); see
    /// [`shard::TraceSampling`].
    pub adaptive_tracing: bool,
    /// The devices whose counters account for the storage's I/O (the topology's counted
    /// devices; empty without a block device).
    pub counted_devices: Vec<BlockDevice>,
}

/// What a run measured: each shard's report, and the counted devices' counters when every
/// shard had prepared its files (just before the first request) and after the last one finished.
pub struct RunResult {
    /// Shard reports in shard order.
    pub shards: Vec<ShardReport>,
    /// Counters before the first request (file preparation excluded).
    pub before: CounterSnapshot,
    /// Counters after every shard drained and closed its files.
    pub after: CounterSnapshot,
}

/// Runs every shard and returns their reports in shard order, with the devices' counters
/// around the run.
pub fn run(settings: &Settings, stop: &AtomicBool) -> Result<RunResult> {
    let n = settings.smp;
    // A class's bandwidth limit holds for the class as a whole: one bucket shared by its shards.
    let mut limits = Limits::new();
    for c in &settings.classes {
        if let Some(b) = c.bandwidth {
            limits
                .entry(c.key)
                .or_insert_with(|| settings.group.bandwidth_limit(b));
        }
    }
    let barrier = Barrier::new(n as usize);
    let sysfs = std::path::Path::new(scheduler::topology::SYSFS_ROOT);
    let devices: Vec<&BlockDevice> = settings.counted_devices.iter().collect();
    // Read by the barrier's leader once every shard prepared its files, before any starts.
    let before = std::sync::Mutex::new(CounterSnapshot::default());
    let snapshot = || {
        let s = CounterSnapshot::read(sysfs, &devices);
        *before.lock().unwrap_or_else(|p| p.into_inner()) = s;
    };
    let results: Vec<Result<ShardReport>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|shard| {
                let (limits, barrier, snapshot) = (&limits, &barrier, &snapshot);
                std::thread::Builder::new()
                    .name(format!("shard-{shard}"))
                    .spawn_scoped(scope, move || {
                        let r = run_shard(settings, shard, limits, barrier, snapshot, stop);
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
    // Report the error that stopped the run, not the shards it stopped.
    let mut first_stopped = None;
    let mut reports = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(report) => reports.push(report),
            Err(e) if is_stopped(&e) => {
                first_stopped.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    let after = CounterSnapshot::read(sysfs, &devices);
    match first_stopped {
        Some(e) => Err(e),
        None => Ok(RunResult {
            shards: reports,
            before: before.into_inner().unwrap_or_else(|p| p.into_inner()),
            after,
        }),
    }
}

fn is_stopped(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Stopped>().is_some()
}

fn run_shard(
    settings: &Settings,
    shard: u32,
    limits: &Limits,
    barrier: &Barrier,
    snapshot: &(dyn Fn() + Sync),
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
    // Declared first, dropped last: named files and directories go after everything else.
    let mut cleanup = Cleanup::default();
    // A panic while preparing is an error like any other: every shard must reach the barrier,
    // or the others would wait there forever.
    let prepared = catch_unwind(AssertUnwindSafe(|| {
        prepare_shard(settings, shard, &mine, &mut cleanup, stop)
    }))
    .unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        Err(anyhow!(
            "shard {shard}: preparing the files panicked: {what}"
        ))
    });
    if prepared.is_err() {
        // The other shards must not start the run.
        stop.store(true, Ordering::Relaxed);
    }
    // Everyone prepared: one shard reads the device counters while the others wait, so that
    // they count the run's I/O and not the files' preparation.
    if barrier.wait().is_leader() {
        snapshot();
    }
    barrier.wait();
    let (mut files, slots, slot_size) = prepared?;
    if stop.load(Ordering::Relaxed) {
        return Err(Stopped.into());
    }
    // Declared before the queue so that they drop after it on every path, errors included:
    // dropping the queue drains the requests in flight, which still use these files' fds.
    let mut runs: Vec<JobRun> = Vec::with_capacity(mine.len());
    let fds: Vec<_> = files.iter().map(|f| f.file.fd()).collect();
    let ring = Ring::new(
        settings.kind,
        slots.max(1),
        slot_size.max(4096) as usize,
        &fds,
    )
    .context("cannot set up the shard's ring")?;
    let mut queue = RingQueue::new(settings.group.clone(), ring);
    queue.set_nowait_writes(settings.kind == EngineKind::Uring);
    let classes = register_classes(&mut queue, settings, &mine, limits)?;
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
            trace: TraceSampling::new(settings.adaptive_tracing),
        });
    }
    let seed = scheduler::engine::rng::seed_for(shard as usize);
    let cpu0 = scheduler::engine::thread_cpu_time();
    let queue_len = shard::run(&mut queue, &mut runs, settings.duration, stop, seed)?;
    let cpu_seconds = scheduler::engine::thread_cpu_time()
        .saturating_sub(cpu0)
        .as_secs_f64();
    for r in &runs {
        if r.trace.every > 1 {
            eprintln!(
                "NOTE: shard {shard}, job '{}': extent-map refreshes took over 1% of the run, so \
                 alignment tracing was thinned out to one request in {} \
                 (alignment_sampled_every); --trace-sample N sets a fixed interval",
                r.job.name, r.trace.every
            );
        }
    }
    let jobs = runs
        .iter()
        .map(|r| Ok(JobReport::new(r, queue.class_stats(r.class)?, &queue_len)))
        .collect::<Result<Vec<_>>>()?;
    let aio_retries = queue.total_aio_retries();
    // The queue (and its ring) drains before the files close (also on the error paths above,
    // by declaration order); named files go last.
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
    stop: &AtomicBool,
) -> Result<Prepared> {
    let mut out = Vec::with_capacity(mine.len());
    let mut slots = 0usize;
    let mut slot_size = 0u64;
    for (_, job) in mine {
        let size = per_shard_data_size(job, settings.smp);
        let f = files::prepare(
            &settings.storage,
            settings.run_dir.as_ref().map(files::RunDir::path),
            job,
            shard,
            settings.smp,
            size,
            settings.keep_files,
            settings.kind,
            cleanup,
            stop,
        )
        .map_err(|e| {
            if is_stopped(&e) {
                e
            } else {
                e.context(format!("shard {shard}: preparing job '{}'", job.name))
            }
        })?;
        if job.kind.issues_requests() {
            if f.size < job.shard_info.reqsize && job.kind != JobKind::Append {
                bail!("job '{}': its file on shard {shard} ({} bytes) is smaller than one request ({} bytes); raise data_size", job.name, f.size, job.shard_info.reqsize);
            }
            slots += (job.shard_info.parallelism * job.shard_info.batch.max(1)) as usize;
            slot_size = slot_size.max(job.shard_info.reqsize);
        }
        out.push(f);
    }
    if slots > MAX_IN_FLIGHT {
        let jobs: Vec<String> = mine
            .iter()
            .filter(|(_, j)| j.kind.issues_requests())
            .map(|(_, j)| {
                format!(
                    "'{}' {}",
                    j.name,
                    j.shard_info.parallelism * j.shard_info.batch.max(1)
                )
            })
            .collect();
        bail!(
            "shard {shard}: its jobs keep up to {slots} requests in flight ({}: parallelism x batch), \
             more than the {MAX_IN_FLIGHT} one shard's ring holds; lower parallelism, or spread \
             the jobs over shards",
            jobs.join(", ")
        );
    }
    Ok((out, slots, slot_size))
}

/// Registers this shard's classes. Scheduling groups become class groups (when something
/// nests under them) or classes; every job then gets the class `settings.classes` gives it:
/// a group's class, or one owned by a job (its own, or the job it names with `class`; registered
/// here even when that job does not run on this shard), nested in a group when the job named
/// a group with subgroups. Bandwidth limits go to the class they limit.
fn register_classes(
    queue: &mut RingQueue,
    settings: &Settings,
    mine: &[(usize, &Job)],
    limits: &Limits,
) -> Result<Vec<Option<ClassId>>> {
    let groups = &settings.groups;
    let is_parent = |name: &str| groups.iter().any(|g| g.parent.as_deref() == Some(name));
    let index = |name: &str| groups.iter().position(|g| g.name == name);
    let mut group_handles: Vec<Option<GroupId>> = vec![None; groups.len()];
    let mut group_classes: Vec<Option<ClassId>> = vec![None; groups.len()];
    // Parents before children: repeat until every group is placed (validated acyclic).
    let mut placed = vec![false; groups.len()];
    while placed.iter().any(|p| !p) {
        let mut progress = false;
        for (i, g) in groups.iter().enumerate() {
            if placed[i] {
                continue;
            }
            let parent = match g.parent.as_deref().and_then(index) {
                None => None,
                Some(p) => match group_handles[p] {
                    Some(h) => Some(h),
                    None => continue,
                },
            };
            if is_parent(&g.name) {
                group_handles[i] = Some(queue.add_group(g.shares, parent, None)?);
            } else {
                let mut cfg = ClassConfig::new(g.name.as_str(), g.shares);
                if let Some(p) = parent {
                    cfg = cfg.parent(p);
                }
                if let Some(limit) = limits.get(&ClassKey::Group(i)) {
                    cfg = cfg.bandwidth(limit.clone());
                }
                group_classes[i] = Some(queue.add_class(cfg)?);
            }
            placed[i] = true;
            progress = true;
        }
        if !progress {
            break;
        }
    }
    let mut owned: HashMap<usize, ClassId> = HashMap::new();
    let mut out: Vec<Option<ClassId>> = vec![None; settings.jobs.len()];
    for (ji, _) in mine {
        let key = settings.classes[*ji].key;
        out[*ji] = match key {
            ClassKey::Group(gi) => group_classes[gi],
            ClassKey::Job { job, parent } => {
                if let Some(&c) = owned.get(&job) {
                    Some(c)
                } else {
                    let owner = &settings.jobs[job];
                    let mut cfg = ClassConfig::new(owner.name.as_str(), owner.shard_info.shares);
                    if let Some(p) = parent.and_then(|p| group_handles[p]) {
                        cfg = cfg.parent(p);
                    }
                    if let Some(limit) = limits.get(&key) {
                        cfg = cfg.bandwidth(limit.clone());
                    }
                    let c = queue.add_class(cfg)?;
                    owned.insert(job, c);
                    Some(c)
                }
            }
        };
    }
    Ok(out)
}
