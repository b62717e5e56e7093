//! io-tester: runs Seastar-format fiber workloads through the scheduler and reports
//! throughput, IOPS, latency percentiles, scheduler statistics and request alignment.
//! See `io-tester --help` and shared/reference/io-tester.md.

mod cli;
mod report;
mod run;
mod workload;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use scheduler::alignment::AlignmentParams;
use scheduler::cost_model::{CostConfig, CostModel};
use scheduler::engine::{self, EngineKind, TestFile};
use scheduler::io_properties::IoProperties;
use scheduler::io_queue::IoGroup;
use scheduler::topology::Topology;

use crate::cli::{Cli, Engine, OutputFormat};
use crate::run::files::{is_block_device, Storage};
use crate::run::Settings;

static STOP: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--check-conf") {
        return workload::check_conf_cli(&args[1..]);
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if STOP.load(Ordering::Relaxed) && INTERRUPTED.load(Ordering::Relaxed) => {
            eprintln!("io-tester: interrupted; data files removed");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("io-tester: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn run(cli: Cli) -> Result<()> {
    if !(cli.duration > 0.0 && cli.duration.is_finite()) {
        bail!(
            "--duration {}: must be a positive number of seconds",
            cli.duration
        );
    }
    // Ctrl-C stops every shard; they drain their requests (milliseconds) and remove their
    // files on the way out. A second Ctrl-C does not cut that short: named files (unlink jobs)
    // would be left behind.
    let _ = ctrlc::set_handler(|| {
        INTERRUPTED.store(true, Ordering::Relaxed);
        STOP.store(true, Ordering::Relaxed);
    });
    let conf_name = cli.conf.display().to_string();
    let jobs = workload::read_jobs_file(&cli.conf).map_err(|e| anyhow::anyhow!("{e}"))?;
    let groups = match &cli.sched_groups {
        Some(p) => workload::read_sched_groups_file(p).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => Vec::new(),
    };
    for j in &jobs {
        let info = &j.shard_info;
        if info.vectorized && j.kind.issues_requests() {
            let n = u64::from(info.iov_count.max(1));
            if n > u64::from(scheduler::engine::MAX_IOVECS) || info.reqsize % (n * 512) != 0 {
                bail!(
                    "{conf_name}: job '{}' (line {}): iov_count {n} must be at most {} and split reqsize {} into 512-byte multiples",
                    j.name,
                    j.line,
                    scheduler::engine::MAX_IOVECS,
                    info.reqsize
                );
            }
        }
    }
    workload::check_job_classes(
        &jobs,
        cli.sched_groups.as_ref().map(|_| groups.as_slice()),
        &conf_name,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let smp = cli.smp.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1)
    });
    if smp == 0 {
        bail!("--smp 0: at least one shard is needed");
    }
    let kind = match cli.engine {
        Some(Engine::Threads) => EngineKind::Threads,
        Some(Engine::Uring) => {
            engine::probe_uring().context("--engine uring was requested")?;
            EngineKind::Uring
        }
        None => match engine::probe_uring() {
            Ok(()) => EngineKind::Uring,
            Err(e) => {
                eprintln!("WARN: {e}; falling back to the threads engine (no RWF_NOWAIT retries are counted)");
                EngineKind::Threads
            }
        },
    };

    // Storage: a directory or a block device.
    let meta = std::fs::metadata(&cli.storage)
        .with_context(|| format!("--storage {} cannot be used", cli.storage.display()))?;
    let (storage, topo_dir) = if is_block_device(&cli.storage) {
        let size = TestFile::open_device(&cli.storage, false)?
            .size()
            .context("cannot read the block device's size")?;
        (
            Storage::BlockDevice {
                path: cli.storage.clone(),
                size,
                writable: cli.allow_block_device_writes,
            },
            None,
        )
    } else if meta.is_dir() {
        let dir = cli.storage.canonicalize()?;
        (Storage::Directory(dir.clone()), Some(dir))
    } else {
        bail!(
            "--storage {}: give a directory for the data files, or a block device",
            cli.storage.display()
        );
    };

    // The disk model.
    let cfg = CostConfig {
        latency_goal_ms: cli.io_latency_goal_ms,
        io_groups: 1,
        shards_in_group: smp,
    };
    let props = match (&cli.io_properties_file, &cli.io_properties) {
        (Some(p), _) => Some(IoProperties::from_file(p)?),
        (None, Some(text)) => Some(IoProperties::parse(text, "--io-properties")?),
        (None, None) => None,
    };
    let probe_dir = topo_dir
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("/"));
    let disk = props
        .as_ref()
        .and_then(|(p, _)| p.disk_for(&probe_dir).or(p.disks.first()).cloned());
    if let Some((_, warnings)) = &props {
        for w in warnings {
            eprintln!("WARN: {w}");
        }
    }
    let group = match &disk {
        Some(d) => IoGroup::from_properties(d, &cfg)
            .context("the io-properties cannot be used by the scheduler")?,
        None => IoGroup::new(CostModel::unconfigured(&cfg), false),
    };

    // How alignment is judged, and the pitfalls worth a warning.
    let physical_override = cli
        .physical_block_size
        .or(disk.as_ref().and_then(|d| d.physical_block_size));
    let alignment = match &topo_dir {
        Some(dir) => {
            let t = Topology::for_directory(dir)
                .with_context(|| format!("cannot inspect {}", dir.display()))?;
            warn_pitfalls(&t, physical_override);
            AlignmentParams::from_topology(&t, physical_override, cli.trace_sample)
        }
        None => AlignmentParams {
            fs_block_size: 4096,
            logical_block_size: 512,
            physical_block_size: physical_override.unwrap_or(4096),
            device_physical_block_size: 4096,
            md_chunk_size: None,
            partition_start: 0,
            sample_every: cli.trace_sample.max(1),
        },
    };
    alignment.validate().map_err(|e| anyhow::anyhow!("{e}"))?;

    let settings = Settings {
        storage,
        duration: Duration::from_secs_f64(cli.duration),
        jobs,
        groups,
        smp,
        kind,
        keep_files: cli.keep_files,
        group,
        alignment,
    };
    let shards = run::run(&settings, &STOP)?;
    if INTERRUPTED.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    match cli.output_format {
        OutputFormat::Yaml => print!("{}", report::to_yaml(&shards)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&shards)?),
    }
    Ok(())
}

fn warn_pitfalls(t: &Topology, physical_override: Option<u64>) {
    if t.fs_type != "xfs" {
        eprintln!(
            "WARN: {} is {}, not XFS: Seastar applications are tuned for XFS, results may differ",
            t.mountpoint.display(),
            t.fs_type
        );
    }
    let physical = physical_override.unwrap_or(t.physical_block_size());
    if t.fs_block_size < physical {
        eprintln!(
            "WARN: the filesystem block size ({} B) is smaller than the device's physical block size ({physical} B): \
             files may start at unaligned device offsets and writes cost read-modify-write; see the alignment section",
            t.fs_block_size
        );
    }
}
