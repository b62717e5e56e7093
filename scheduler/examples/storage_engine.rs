//! A small storage engine on tokio that puts the scheduler in front of its own I/O.
//!
//! Two priority classes share one disk through the admission API:
//! - `query`: 4 KiB random reads, a few in flight (`--query-depth`), 1000 shares;
//! - `compaction`: 128 KiB sequential writes (or reads), many in flight
//!   (`--compaction-depth`), 100 shares.
//!
//! Every request first waits for a permit (`AdmissionQueue::admit`), then the engine does
//! the I/O its own way — here `pread`/`pwrite` on O_DIRECT files in tokio's blocking pool —
//! and reports the result on the permit. With `--no-scheduler` the I/O goes straight to the
//! disk. At the end it prints, per class, IOPS, bandwidth and the latency a caller saw
//! (admission wait + I/O) at p50/p99/p999.
//!
//! Only the scheduler's core and admission API are used (no io_uring, no harness):
//! `cargo run --release -p scheduler --example storage_engine --features tokio -- --help`.
//!
//! The data files are unlinked as soon as they are open, so nothing is left behind, even on
//! Ctrl-C. The query file is written in full first, so reads hit real blocks (not holes);
//! `--cgroup DIR` joins a cgroup (e.g. a blkio throttle) only after that.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use scheduler::admission::{AdmissionQueue, ThreadTimer};
use scheduler::cost_model::CostConfig;
use scheduler::io_properties::{parse_size, IoProperties};
use scheduler::io_queue::{ClassConfig, ClassId, IoGroup};
use scheduler::Direction;
use serde::Serialize;

const KIB: u64 = 1024;
const QUERY_SIZE: u64 = 4 * KIB;
const COMPACTION_SIZE: u64 = 128 * KIB;
/// O_DIRECT buffers are aligned to this many bytes.
const ALIGN: usize = 4096;

/// A storage engine sharing a disk between queries and compaction through the scheduler.
#[derive(Debug, Parser)]
#[command(name = "storage_engine")]
struct Args {
    /// Directory for the data files (its filesystem must accept O_DIRECT).
    #[arg(long, value_name = "DIR", default_value = "/var/tmp")]
    dir: PathBuf,
    /// Seconds to run (after the files are written).
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    duration: f64,
    /// io-properties file giving the disk model; without it the scheduler is unconfigured
    /// (requests cost nothing and never wait).
    #[arg(long, value_name = "FILE")]
    io_properties_file: Option<PathBuf>,
    /// Bypass the scheduler: every request goes to the disk at once.
    #[arg(long)]
    no_scheduler: bool,
    /// Query tasks, each with one 4 KiB random read in flight.
    #[arg(long, value_name = "N", default_value_t = 4)]
    query_depth: usize,
    /// Compaction tasks, each with one 128 KiB sequential request in flight.
    #[arg(long, value_name = "N", default_value_t = 32)]
    compaction_depth: usize,
    /// What compaction does.
    #[arg(long, value_enum, default_value_t = Compaction::Write)]
    compaction: Compaction,
    /// Shares of the query class.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    query_shares: u32,
    /// Shares of the compaction class.
    #[arg(long, value_name = "N", default_value_t = 100)]
    compaction_shares: u32,
    /// Size of each data file, bytes (suffixes k, M, G).
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = parse_bytes)]
    file_size: u64,
    /// Latency goal of the scheduler, milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0.75)]
    latency_goal_ms: f64,
    /// Join this cgroup v1 directory (write our pid to its cgroup.procs) once the files are
    /// written, e.g. a blkio throttle.
    #[arg(long, value_name = "DIR")]
    cgroup: Option<PathBuf>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Compaction {
    /// 128 KiB sequential writes.
    Write,
    /// 128 KiB sequential reads.
    Read,
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    match parse_size(s) {
        Ok(n) if n >= COMPACTION_SIZE => Ok(n),
        Ok(n) => Err(format!("{n} bytes is less than one 128 KiB request")),
        Err(e) => Err(e.to_string()),
    }
}

/// Page-aligned memory for O_DIRECT, as plain bytes.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(4096))]
struct Block([u8; ALIGN]);

struct Buffer(Vec<Block>);

impl Buffer {
    /// `len` bytes (a multiple of 4096) of incompressible data.
    fn new(len: u64, seed: u64) -> Buffer {
        let mut b = Buffer(vec![Block([0; ALIGN]); (len as usize).div_ceil(ALIGN)]);
        let mut x = seed | 1;
        for chunk in b.bytes_mut().chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        b
    }

    fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(&mut self.0)
    }
}

/// Opens `dir/name` with O_DIRECT and unlinks it at once.
fn data_file(dir: &Path, name: &str) -> Result<File, String> {
    let path = dir.join(format!(".storage-engine-{}-{name}", std::process::id()));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .map_err(|e| format!("cannot create {} with O_DIRECT: {e}", path.display()))?;
    std::fs::remove_file(&path).map_err(|e| format!("cannot unlink {}: {e}", path.display()))?;
    Ok(f)
}

/// Writes the whole file with 1 MiB requests, so later reads hit the disk, not holes.
fn fill(f: &File, size: u64) -> Result<(), String> {
    let chunk = 1 << 20;
    let buf = Buffer::new(chunk, 7);
    let mut off = 0;
    while off < size {
        let n = chunk.min(size - off) as usize;
        f.write_all_at(&buf.bytes()[..n], off)
            .map_err(|e| format!("cannot write the data file at {off}: {e}"))?;
        off += n as u64;
    }
    f.sync_all()
        .map_err(|e| format!("cannot sync the data file: {e}"))
}

/// What one class's tasks measured.
struct Measured {
    latency_ns: Histogram<u64>,
    requests: u64,
    bytes: u64,
}

impl Measured {
    fn new() -> Measured {
        Measured {
            latency_ns: Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("static bounds"),
            requests: 0,
            bytes: 0,
        }
    }

    fn merge(&mut self, other: &Measured) {
        let _ = self.latency_ns.add(&other.latency_ns);
        self.requests += other.requests;
        self.bytes += other.bytes;
    }
}

/// One class's job: how its tasks pick requests.
#[derive(Clone, Copy)]
struct Job {
    class: Option<ClassId>,
    direction: Direction,
    size: u64,
    random: bool,
}

/// One task: admit, do the I/O in the blocking pool, report, repeat until `stop`.
async fn task(
    shard: Option<AdmissionQueue>,
    file: Arc<File>,
    job: Job,
    file_size: u64,
    seed: u64,
    stop: Arc<AtomicBool>,
    measure_from: Instant,
) -> Result<Measured, String> {
    let mut m = Measured::new();
    let mut buf = Buffer::new(job.size, seed);
    let blocks = file_size / job.size;
    let mut x = seed | 1;
    // Sequential tasks each walk their own stripe of the file.
    let mut next = (seed % blocks) * job.size;
    while !stop.load(Ordering::Relaxed) {
        let offset = if job.random {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % blocks) * job.size
        } else {
            let o = next;
            next = (next + job.size) % (blocks * job.size);
            o
        };
        let t0 = Instant::now();
        let permit = match (&shard, job.class) {
            (Some(q), Some(class)) => Some(
                q.admit(class, job.direction, job.size)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            _ => None,
        };
        let f = file.clone();
        let direction = job.direction;
        let (b, result) = tokio::task::spawn_blocking(move || {
            let r = match direction {
                Direction::Read => f.read_at(buf.bytes_mut(), offset),
                Direction::Write => f.write_at(buf.bytes(), offset),
            };
            (buf, r)
        })
        .await
        .map_err(|e| format!("I/O task failed: {e}"))?;
        buf = b;
        let n = result.map_err(|e| format!("{direction} at {offset} failed: {e}"))?;
        if let Some(p) = permit {
            p.complete(n as i64);
        }
        let done = Instant::now();
        // The first tenth of the run warms up (the bucket starts full).
        if t0 >= measure_from {
            m.requests += 1;
            m.bytes += n as u64;
            m.latency_ns
                .saturating_record(done.duration_since(t0).as_nanos().max(1) as u64);
        }
    }
    Ok(m)
}

/// The printed result of one class.
#[derive(Debug, Serialize)]
struct ClassReport {
    name: &'static str,
    shares: u32,
    requests: u64,
    iops: f64,
    bandwidth_bytes_per_sec: f64,
    /// Admission wait + I/O, microseconds.
    latency_us: Latency,
    /// Seconds of whole-disk time the scheduler charged in the measured window (absent
    /// without the scheduler).
    #[serde(skip_serializing_if = "Option::is_none")]
    consumption_sec: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    scheduler: bool,
    duration_sec: f64,
    classes: Vec<ClassReport>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("storage_engine: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    if !(args.duration > 0.0 && args.duration <= 86_400.0) {
        return Err(format!(
            "--duration {} must be in (0, 86400] seconds",
            args.duration
        ));
    }
    let query_file = Arc::new(data_file(&args.dir, "query")?);
    fill(&query_file, args.file_size)?;
    let compaction_file = Arc::new(data_file(&args.dir, "compaction")?);
    if args.compaction == Compaction::Read {
        fill(&compaction_file, args.file_size)?;
    }
    if let Some(cg) = &args.cgroup {
        std::fs::write(cg.join("cgroup.procs"), std::process::id().to_string())
            .map_err(|e| format!("cannot join cgroup {}: {e}", cg.display()))?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    rt.block_on(engine(args, query_file, compaction_file))
}

async fn engine(
    args: &Args,
    query_file: Arc<File>,
    compaction_file: Arc<File>,
) -> Result<(), String> {
    // One shard of the scheduler, on the disk model of io-properties.
    let cfg = CostConfig {
        latency_goal_ms: args.latency_goal_ms,
        ..CostConfig::default()
    };
    let group = match &args.io_properties_file {
        Some(path) => {
            let (props, warnings) = IoProperties::from_file(path).map_err(|e| e.to_string())?;
            for w in warnings {
                eprintln!("WARN: {w}");
            }
            let disk = props
                .disks
                .first()
                .ok_or_else(|| format!("{}: no disk entry", path.display()))?;
            IoGroup::from_properties(disk, &cfg, Instant::now()).map_err(|e| e.to_string())?
        }
        None => IoGroup::unconfigured(&cfg, Instant::now()),
    };
    let shard = AdmissionQueue::new(group, ThreadTimer::try_new().map_err(|e| e.to_string())?);
    let add = |name, shares| {
        shard
            .add_class(ClassConfig::new(name, shares))
            .map_err(|e| e.to_string())
    };
    let query = add("query", args.query_shares)?;
    let compaction = add("compaction", args.compaction_shares)?;
    let use_scheduler = !args.no_scheduler;
    let jobs = [
        (
            Job {
                class: use_scheduler.then_some(query),
                direction: Direction::Read,
                size: QUERY_SIZE,
                random: true,
            },
            args.query_depth,
            query_file,
        ),
        (
            Job {
                class: use_scheduler.then_some(compaction),
                direction: match args.compaction {
                    Compaction::Write => Direction::Write,
                    Compaction::Read => Direction::Read,
                },
                size: COMPACTION_SIZE,
                random: false,
            },
            args.compaction_depth,
            compaction_file,
        ),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let run_for = Duration::from_secs_f64(args.duration);
    let measure_from = Instant::now() + run_for / 10;
    let mut handles = Vec::new();
    for (ji, (job, depth, file)) in jobs.iter().enumerate() {
        for t in 0..*depth {
            let seed = (ji as u64 + 1) * 1_000_003 + t as u64 * 7919;
            handles.push((
                ji,
                tokio::spawn(task(
                    use_scheduler.then(|| shard.clone()),
                    file.clone(),
                    *job,
                    args.file_size,
                    seed,
                    stop.clone(),
                    measure_from,
                )),
            ));
        }
    }
    // Disk time each class was charged in the measured window (snapshots at its ends: the
    // requests still queued when the run stops are drained, and must not count).
    let consumption = |c| shard.class_stats(c).map_or(0.0, |s| s.consumption);
    let snapshot = || [consumption(query), consumption(compaction)];
    let mut before = [0.0; 2];
    tokio::select! {
        _ = async {
            tokio::time::sleep_until(measure_from.into()).await;
            before = snapshot();
            tokio::time::sleep(run_for - run_for / 10).await;
        } => {}
        _ = tokio::signal::ctrl_c() => eprintln!("interrupted: stopping"),
    }
    let after = snapshot();
    stop.store(true, Ordering::Relaxed);
    let elapsed = measure_from.elapsed().as_secs_f64().max(1e-9);
    let mut measured = [Measured::new(), Measured::new()];
    let mut error = None;
    for (ji, h) in handles {
        match h.await {
            Ok(Ok(m)) => measured[ji].merge(&m),
            Ok(Err(e)) => {
                error.get_or_insert(e);
            }
            Err(e) => {
                error.get_or_insert(format!("a task failed: {e}"));
            }
        }
    }
    if let Some(e) = error {
        return Err(e);
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    let classes: Vec<ClassReport> = [
        ("query", args.query_shares),
        ("compaction", args.compaction_shares),
    ]
    .into_iter()
    .zip(&measured)
    .enumerate()
    .map(|(i, ((name, shares), m))| ClassReport {
        name,
        shares,
        requests: m.requests,
        iops: m.requests as f64 / elapsed,
        bandwidth_bytes_per_sec: m.bytes as f64 / elapsed,
        latency_us: Latency {
            p50: us(m.latency_ns.value_at_quantile(0.5)),
            p99: us(m.latency_ns.value_at_quantile(0.99)),
            p999: us(m.latency_ns.value_at_quantile(0.999)),
            max: us(m.latency_ns.max()),
        },
        consumption_sec: use_scheduler.then(|| after[i] - before[i]),
    })
    .collect();
    let report = Report {
        scheduler: use_scheduler,
        duration_sec: elapsed,
        classes,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        println!(
            "scheduler {}, {:.1} s",
            if use_scheduler { "on" } else { "off" },
            elapsed
        );
        println!(
            "{:<11} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}",
            "class", "shares", "IOPS", "MiB/s", "p50 ms", "p99 ms", "p999 ms", "disk time s"
        );
        for c in &report.classes {
            println!(
                "{:<11} {:>7} {:>10.0} {:>10.1} {:>10.3} {:>10.3} {:>10.3} {:>12}",
                c.name,
                c.shares,
                c.iops,
                c.bandwidth_bytes_per_sec / (1 << 20) as f64,
                c.latency_us.p50 / 1000.0,
                c.latency_us.p99 / 1000.0,
                c.latency_us.p999 / 1000.0,
                c.consumption_sec
                    .map_or("-".to_owned(), |s| format!("{s:.3}"))
            );
        }
        println!("(latency: admission wait + I/O, as the engine's caller sees it)");
    }
    Ok(())
}
