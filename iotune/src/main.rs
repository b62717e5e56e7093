//! iotune: measures the disk under one or more directories and writes io-properties.yaml.
//! See `iotune --help` and the README for units and options.

mod cli;
mod disk_lock;
mod extras;
mod latency_target;
mod mixed;
mod options;
mod phases;
mod progress;
mod steady;

// The report's types live in the library, so the end-to-end tests read it through them.
use iotune::{fio_jobs, html, plausibility, report, stats};

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use clap::Parser;
use scheduler::engine::{self, EngineKind, TestFile};
use scheduler::io_properties::{DiskProperties, IoProperties};
use scheduler::topology::Topology;
use scheduler::Direction;

use crate::cli::{Cli, OptionsFormat};
use crate::options::Options;
use crate::phases::{with_deviation, Calibration, Corners, Depths, Outcome};
use crate::progress::Progress;
use crate::report::{write_atomically, CachedFigure, DiskReport, Report, Results, Status};

static STOP: AtomicBool = AtomicBool::new(false);

const GIB: u64 = 1 << 30;

fn main() -> ExitCode {
    // Values out of range are refused by clap (exit 2); so are bad combinations and sizes.
    let opts = match Options::from_cli(Cli::parse()) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("iotune: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    // The pages and job files of this issue are checked here: a bad path given on the
    // command line is a bad command line, found before any work.
    if let Err(e) = check_page_outputs(&opts) {
        eprintln!("iotune: error: {e:#}");
        return ExitCode::from(2);
    }
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if STOP.load(Ordering::Relaxed) => {
            eprintln!("iotune: interrupted; no properties file was written and no test file is left behind");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("iotune: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(opts: Options) -> Result<()> {
    // First Ctrl-C: stop submitting, drain, exit 130. Test files have no name, so even a second
    // Ctrl-C (immediate exit) leaves nothing behind.
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
    });
    for (option, path) in [
        ("--properties-file", opts.properties_file.as_deref()),
        (
            "--options-file",
            opts.options_file.as_ref().map(|(p, _)| p.as_path()),
        ),
        ("--report", opts.report.as_deref()),
    ] {
        if let Some(path) = path {
            check_output_dir(option, path)?;
        }
    }
    let kind = choose_engine(opts.engine)?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let shards = opts.smp.unwrap_or(cpus.min(cli::MAX_SHARDS));
    let too_many_shards = plausibility::more_shards_than_cpus(shards, cpus);
    if let Some(w) = &too_many_shards {
        eprintln!("WARN: {w}");
    }

    let targets = resolve_targets(&opts.directories)?;
    // One calibration per disk: held until the run ends.
    let _locks = disk_lock::lock_disks(&targets)?;
    let progress = Progress::new();
    let mut report = Report {
        tool: "iotune-rs".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        command_line: std::env::args().collect(),
        started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        engine: kind,
        shards,
        cpus,
        duration_s: opts.duration.as_secs_f64(),
        status: Status::Running,
        plausibility: too_many_shards.into_iter().collect(),
        disks: Vec::new(),
    };
    let mut properties = IoProperties { disks: Vec::new() };
    for (dir, topology) in targets {
        for w in &topology.warnings {
            eprintln!("WARN: {}: {w}", topology.mountpoint.display());
        }
        let outcome = measure(&opts, kind, shards, &dir, topology, &progress, &mut report);
        if let Err(e) = outcome {
            report.status = if STOP.load(Ordering::Relaxed) {
                Status::Interrupted
            } else {
                Status::Failed
            };
            // Keep what was measured; a failure to save must not hide the real error.
            if let Err(save) = save_outputs(&opts, &report) {
                eprintln!("WARN: could not save the report: {save:#}");
            }
            return Err(e);
        }
        if let Some(d) = outcome? {
            properties.disks.push(d);
        }
    }
    let cached: Vec<(&Path, &CachedFigure)> = report
        .disks
        .iter()
        .flat_map(|d| d.cached_figures.iter().map(|c| (d.mountpoint.as_path(), c)))
        .collect();
    if !cached.is_empty() {
        let list = cached
            .iter()
            .map(|(mountpoint, c)| {
                format!(
                    "{} of {} (phase \"{}\": the disks served {:.1}% of the bytes and received \
                     {:.1}% of the requests iotune completed)",
                    c.figure,
                    mountpoint.display(),
                    c.phase,
                    c.fraction * 100.0,
                    c.request_fraction * 100.0
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        if !opts.allow_cached {
            report.status = Status::Refused;
            save_outputs(&opts, &report)?;
            bail!(
                "refusing to write io-properties: {list} came from a cache, not from the disk, \
                 so no properties or options file was written; measure with requests the \
                 filesystem does directly (leave --random-read-io-buffer-size and \
                 --random-write-io-buffer-size at their defaults), or give --allow-cached to \
                 write these figures anyway"
            );
        }
        eprintln!(
            "WARN: writing figures the disk did not serve, as --allow-cached asks: {list} came \
             from a cache"
        );
    }
    report.status = Status::Complete;
    save_outputs(&opts, &report)?;
    if opts.fs_check {
        return Ok(());
    }
    let yaml = mixed::properties_yaml(&properties);
    match &opts.properties_file {
        Some(path) => {
            println!("Writing result to {}", path.display());
            write_atomically(path, yaml.as_bytes())?;
            if let Some((opt_path, format)) = &opts.options_file {
                println!("Writing result to {}", opt_path.display());
                write_atomically(opt_path, options_line(path, *format).as_bytes())?;
            }
        }
        None => print!("{yaml}"),
    }
    Ok(())
}

/// Rewrites the outputs that follow the run (the JSON report, the HTML page, the fio jobs),
/// each atomically.
fn save_outputs(opts: &Options, report: &Report) -> Result<()> {
    if let Some(path) = &opts.report {
        report.save(path)?;
    }
    if let Some(path) = &opts.html {
        html::save(report, path).with_context(|| format!("--html {}", path.display()))?;
    }
    if let Some(dir) = &opts.fio_jobs {
        fio_jobs::write_all(dir, report)
            .with_context(|| format!("--fio-jobs {}: cannot write the jobs", dir.display()))?;
    }
    Ok(())
}

/// The options-file line (ScyllaDB's io.conf).
fn options_line(properties: &Path, format: OptionsFormat) -> String {
    match format {
        OptionsFormat::Seastar => format!("io-properties-file={}\n", properties.display()),
        OptionsFormat::Envfile => format!(
            "SEASTAR_IO=\"--io-properties-file={}\"\n",
            properties.display()
        ),
    }
}

/// Fails when `--html` or `--fio-jobs` could not be written: a missing, read-only or immutable
/// directory (for `--fio-jobs`, the directory itself must exist).
fn check_page_outputs(opts: &Options) -> Result<()> {
    if let Some(path) = &opts.html {
        check_output_dir("--html", path)?;
    }
    if let Some(dir) = &opts.fio_jobs {
        if !dir.is_dir() {
            bail!(
                "--fio-jobs {}: not an existing directory: create it, or name another",
                dir.display()
            );
        }
        scheduler::atomic_file::check_writable(&dir.join(fio_jobs::README))
            .with_context(|| format!("--fio-jobs {}: cannot be written", dir.display()))?;
    }
    Ok(())
}

/// Fails before measuring when the output file `path` of `option` could not be written
/// afterwards: its directory is missing, read-only or immutable, or the path is a directory.
fn check_output_dir(option: &str, path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "{option} {}: cannot be written: directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    // A read-only or immutable directory is found now, not after the measurement.
    scheduler::atomic_file::check_writable(path)
        .with_context(|| format!("{option} {}: cannot be written", path.display()))
}

fn choose_engine(requested: Option<EngineKind>) -> Result<EngineKind> {
    let (kind, passed_over) = engine::select(requested).context("--engine uring was requested")?;
    if let Some(e) = passed_over {
        eprintln!(
            "WARN: {:#}; falling back to the threads engine (blocking pread/pwrite)",
            anyhow::Error::from(e)
        );
    }
    Ok(kind)
}

/// Checks each directory, finds its filesystem, keeps one directory per mountpoint.
fn resolve_targets(dirs: &[PathBuf]) -> Result<Vec<(PathBuf, Topology)>> {
    let mut out: Vec<(PathBuf, Topology)> = Vec::new();
    for dir in dirs {
        let meta = std::fs::metadata(dir).with_context(|| {
            format!(
                "evaluation directory {} cannot be used (create it, or fix the path)",
                dir.display()
            )
        })?;
        if !meta.is_dir() {
            bail!("evaluation directory {} is not a directory: give the directory the test files should go in", dir.display());
        }
        let canonical = dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        let topology = Topology::for_directory(&canonical).with_context(|| {
            format!("cannot find the block device under {}", canonical.display())
        })?;
        if out.iter().any(|(_, t)| t.mountpoint == topology.mountpoint) {
            eprintln!(
                "iotune: {} is on {}, already measured; skipping it",
                dir.display(),
                topology.mountpoint.display()
            );
            continue;
        }
        out.push((canonical, topology));
    }
    Ok(out)
}

/// Memory alignment for the O_DIRECT buffers, bytes: the filesystem's DIO memory alignment
/// (statx), at least 512; 4096 when the kernel does not say (before Linux 6.1).
fn buffer_align(topology: &Topology) -> usize {
    topology
        .dio_mem_align
        .map_or(4096, |a| (a as usize).max(512))
}

/// What the sanity checks found and derived for one filesystem, before any phase.
struct Prepared {
    /// Each shard's test file size, bytes.
    file_size: u64,
    /// In-flight depths per shard.
    depths: Depths,
    /// The smallest random request the filesystem does directly, bytes.
    direct: u64,
    /// Memory alignment of the O_DIRECT buffers, bytes.
    align: usize,
}

/// Sanity checks, then (unless --fs-check) the phases; returns the disk entry.
fn measure(
    opts: &Options,
    kind: EngineKind,
    shards: usize,
    dir: &Path,
    topology: Topology,
    progress: &Progress,
    report: &mut Report,
) -> Result<Option<DiskProperties>> {
    let Some(prepared) = prepare(opts, kind, shards, dir, &topology, report)? else {
        return Ok(None);
    };
    let files = create_files(dir, &topology, shards, &prepared)?;
    let cal = Calibration::new(
        opts,
        kind,
        &STOP,
        progress,
        &topology,
        files,
        prepared.depths,
        prepared.file_size,
    );
    let mut m = Measurement {
        opts,
        cal,
        report,
        cached_figures: Vec::new(),
    };
    m.save()?;

    // The four corners: the figures io-properties holds.
    println!("Warming up the disk for sequential write job...");
    let sequential_write = m.sequential(Direction::Write)?;
    let sequential_read = m.sequential(Direction::Read)?;
    let detected = if opts.detect_physical_block_size {
        Some(m.physical_block_size()?)
    } else {
        None
    };
    let random_write = m.random(
        Direction::Write,
        opts.random_write_size.or(detected),
        prepared.direct,
    )?;
    let random_read = m.random(Direction::Read, opts.random_read_size, prepared.direct)?;
    let corners = Corners {
        sequential_write,
        sequential_read,
        random_write,
        random_read,
    };
    let mut results = phases::results(&topology.mountpoint, &corners);
    results.properties.physical_block_size = detected;

    // Optional probes after the corners, each its own phase(s).
    if opts.saturation_read {
        results.properties.read_saturation_length = Some(m.saturation_length(Direction::Read)?);
    }
    if opts.saturation_write {
        results.properties.write_saturation_length = Some(m.saturation_length(Direction::Write)?);
    }
    for (on, direction, size) in [
        (
            opts.depth_sweep_read,
            Direction::Read,
            corners.random_read.1,
        ),
        (
            opts.depth_sweep_write,
            Direction::Write,
            corners.random_write.1,
        ),
    ] {
        if on {
            m.depth_sweep(direction, size)?;
        }
    }
    // Issue 10: what runs after the corners on request (--mixed, --latency-target).
    let disk = m.report.disks.last_mut().expect("pushed by prepare");
    extras::after_corners(&mut m.cal, &mut results, disk, &mut m.cached_figures)?;
    m.finish(results).map(Some)
}

/// Sanity checks (O_DIRECT, non-blocking submission, free space, request sizes); pushes the
/// disk's entry to the report. `None` with `--fs-check` (after printing its line).
fn prepare(
    opts: &Options,
    kind: EngineKind,
    shards: usize,
    dir: &Path,
    topology: &Topology,
    report: &mut Report,
) -> Result<Option<Prepared>> {
    let mountpoint = &topology.mountpoint;
    let mut warnings: Vec<String> = topology.warnings.iter().map(|w| w.to_string()).collect();
    let mut warn = |w: String| {
        eprintln!("WARN: {w}");
        warnings.push(w);
    };

    // Sanity: O_DIRECT, non-blocking submission, free space.
    let align = buffer_align(topology);
    let probe = TestFile::create_unlinked(dir, 0)
        .with_context(|| format!("sanity check on {}", mountpoint.display()))?
        .with_buffer_align(align);
    let check = engine::submission_check(
        kind,
        &probe,
        1000,
        topology.logical_block_size().max(4096) as usize,
    )
    .with_context(|| format!("sanity check on {}", mountpoint.display()))?;
    drop(probe);
    if let Some(c) = check {
        if c.context_switches_per_write > 0.1 {
            bail!(
                "async I/O is not supported on {}: submissions block ({:.2} context switches per write); \
                 use XFS or ext4 on a local disk",
                mountpoint.display(),
                c.context_switches_per_write
            );
        }
        if c.would_block_share > 0.1 {
            warn(format!(
                "{:.0}% of appending writes on {} would have blocked (the filesystem allocates synchronously; \
                 io_uring hands them to kernel workers, which adds latency); XFS allocates without blocking",
                c.would_block_share * 100.0,
                mountpoint.display()
            ));
        }
    }
    let free = engine::available_space(dir)
        .with_context(|| format!("cannot read free space of {}", dir.display()))?;
    if free < 10 * GIB {
        warn(format!(
            "only {:.1} GiB free in {}: results on a nearly full filesystem may be pessimistic",
            free as f64 / GIB as f64,
            dir.display()
        ));
    }
    let min_file = 2 * opts.sequential_write_size.max(opts.sequential_read_size);
    let file_size = match opts.file_size {
        Some(s) => {
            let need = s.saturating_mul(shards as u64);
            if need > free {
                bail!(
                    "the test files need {need} bytes ({shards} x {s}) but only {free} bytes are free in {}: lower --file-size or --smp, or free space",
                    dir.display()
                );
            }
            s
        }
        None => free / (2 * shards as u64) / (1 << 20) * (1 << 20),
    };
    if file_size < min_file {
        bail!("not enough free space in {}: {free} bytes free, each of {shards} shards needs at least {min_file}", dir.display());
    }
    let bound = topology.in_flight_bound();
    if bound.is_none() && opts.force_io_depth.is_none() {
        warn("the disk's in-flight bound (queue/nr_requests) is unknown: assuming 128; use --force-io-depth to set it".to_string());
    }
    let depths = Depths::derive(opts, topology.leaf_count(), bound, shards);
    let logical = topology.logical_block_size().max(512);
    // The smallest random request the filesystem does directly (btrfs serves smaller direct
    // I/O from its page cache).
    let direct = topology.direct_io_size().max(logical);
    let forced = [
        ("random-read-io-buffer-size", opts.random_read_size),
        ("random-write-io-buffer-size", opts.random_write_size),
    ]
    .into_iter()
    .filter_map(|(name, size)| Some((name, size?)))
    .chain(
        opts.best_iops_sizes
            .iter()
            .map(|&s| ("get-best-iops-with-buffer-sizes", s)),
    );
    for (name, s) in forced {
        if s % logical != 0 {
            bail!(
                "--{name} {s} is not a multiple of the logical block size {logical} of {}",
                mountpoint.display()
            );
        }
        if s < direct {
            warn(small_request_warning(name, s, direct, topology));
        }
    }
    report.disks.push(DiskReport {
        evaluation_directory: dir.to_path_buf(),
        mountpoint: mountpoint.clone(),
        topology: topology.clone(),
        warnings,
        submission_check: check,
        free_bytes: free,
        file_size_per_shard: file_size,
        read_working_set_bytes: 0,
        phases: Vec::new(),
        results: None,
        depth_sweeps: Vec::new(),
        cached_figures: Vec::new(),
        plausibility: Vec::new(),
        mixed: None,
        latency_targets: Vec::new(),
    });
    if opts.fs_check {
        println!(
            "{}: O_DIRECT supported, submissions do not block{}, {:.1} GiB free",
            mountpoint.display(),
            check
                .map(|c| format!(
                    " ({:.2} context switches per write, {:.0}% of appending writes would have blocked)",
                    c.context_switches_per_write,
                    c.would_block_share * 100.0
                ))
                .unwrap_or_default(),
            free as f64 / GIB as f64
        );
        return Ok(None);
    }
    Ok(Some(Prepared {
        file_size,
        depths,
        direct,
        align,
    }))
}

/// One unnamed test file per shard (an XFS extent size hint on each, as the reference).
fn create_files(
    dir: &Path,
    topology: &Topology,
    shards: usize,
    prepared: &Prepared,
) -> Result<Vec<TestFile>> {
    let (file_size, align) = (prepared.file_size, prepared.align);
    let files = (0..shards)
        .map(|_| TestFile::create_unlinked(dir, file_size).map(|f| f.with_buffer_align(align)))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot create the test files in {}", dir.display()))?;
    if topology.fs_type == "xfs" {
        // As the reference: one extent per file, so writes never wait on allocation.
        for f in &files {
            if let Err(e) = f.set_extent_size_hint(file_size.min(u32::MAX as u64 / 4096 * 4096)) {
                eprintln!("WARN: cannot set the XFS extent size hint on a test file: {e}");
                break;
            }
        }
    }
    Ok(files)
}

/// One filesystem's calibration under way: runs the phases, prints the reference's lines,
/// and keeps the report (whose last disk is this one) saved after each phase.
struct Measurement<'a> {
    opts: &'a Options,
    cal: Calibration<'a>,
    report: &'a mut Report,
    /// Figures for io-properties whose phase a cache served (see served.rs in the library).
    cached_figures: Vec<CachedFigure>,
}

impl Measurement<'_> {
    /// This filesystem's entry in the report.
    fn disk(&mut self) -> &mut DiskReport {
        self.report.disks.last_mut().expect("pushed by prepare")
    }

    /// Re-runs the plausibility checks (printing the ones new since the last save) and
    /// rewrites the outputs.
    fn save(&mut self) -> Result<()> {
        let engine = self.report.engine;
        let disk = self.disk();
        let found = plausibility::check_disk(disk, engine);
        for w in found.iter().filter(|w| !disk.plausibility.contains(w)) {
            eprintln!("WARN: {w}");
        }
        disk.plausibility = found;
        save_outputs(self.opts, self.report)
    }

    /// Prints a corner's line ("Measuring sequential read bandwidth: 3074 MiB/s").
    fn say(&self, what: &str, value: String, deviation: f64) {
        println!(
            "Measuring {what}: {}",
            with_deviation(value, deviation, self.opts.accuracy)
        );
    }

    /// Sequential bandwidth in `direction` (the write includes the warm-up).
    fn sequential(&mut self, direction: Direction) -> Result<Outcome> {
        let disk = self.report.disks.last_mut().expect("pushed by prepare");
        let (outcome, figure) = match direction {
            Direction::Write => (self.cal.sequential_write(disk)?, "write_bandwidth"),
            Direction::Read => (self.cal.sequential_read(disk)?, "read_bandwidth"),
        };
        let phase = format!("sequential {direction}");
        self.cached_figures
            .extend(outcome.cached_figure(figure, &phase));
        self.say(
            &format!("{phase} bandwidth"),
            format!("{:.0} MiB/s", outcome.bandwidth / (1 << 20) as f64),
            outcome.deviation,
        );
        let working_set = self.cal.working_set();
        self.disk().read_working_set_bytes = working_set;
        self.save()?;
        Ok(outcome)
    }

    /// `--detect-physical-block-size`: the write size that avoids read-modify-write, bytes.
    fn physical_block_size(&mut self) -> Result<u64> {
        let disk = self.report.disks.last_mut().expect("pushed by prepare");
        let (size, cached) = self.cal.detect_physical_block_size(disk)?;
        self.cached_figures.extend(cached);
        println!("Detected physical block size: {size} bytes");
        let reported = self.cal.topology.physical_block_size();
        if size != reported {
            let w = format!(
                "measured physical block size {size} differs from the {reported} bytes sysfs reports: the disk may be lying"
            );
            eprintln!("WARN: {w}");
            self.disk().warnings.push(w);
        }
        self.save()?;
        Ok(size)
    }

    /// Random IOPS in `direction`: at `forced` bytes, or else at each
    /// `--get-best-iops-with-buffer-sizes` size keeping the best, or else at `direct` bytes.
    /// Returns the outcome and its request size.
    fn random(
        &mut self,
        direction: Direction,
        forced: Option<u64>,
        direct: u64,
    ) -> Result<(Outcome, u64)> {
        let sizes = match (&self.opts.best_iops_sizes[..], forced) {
            ([], forced) => vec![forced.unwrap_or(direct)],
            (best, _) => best.to_vec(),
        };
        let mut best: Option<(Outcome, u64)> = None;
        for s in sizes {
            let disk = self.report.disks.last_mut().expect("pushed by prepare");
            let o = self.cal.random(
                direction,
                s,
                &format!("random {direction} {s}"),
                false,
                disk,
            )?;
            if best.as_ref().is_none_or(|(b, _)| o.beats(b)) {
                best = Some((o, s));
            }
            self.save()?;
        }
        let (outcome, size) = best.expect("at least one size");
        let figure = match direction {
            Direction::Read => "read_iops",
            Direction::Write => "write_iops",
        };
        self.cached_figures
            .extend(outcome.cached_figure(figure, &format!("random {direction} {size}")));
        self.say(
            &format!("random {direction} IOPS"),
            format!("{:.0} IOPS", outcome.iops),
            outcome.deviation,
        );
        Ok((outcome, size))
    }

    /// `--saturation`: the smallest request reaching full bandwidth in `direction`, bytes.
    fn saturation_length(&mut self, direction: Direction) -> Result<u64> {
        let disk = self.report.disks.last_mut().expect("pushed by prepare");
        let (length, cached) = self.cal.saturation_length(direction, disk)?;
        self.cached_figures.extend(cached);
        println!("Measuring {direction} saturation length: {length} bytes");
        Ok(length)
    }

    /// `--depth-sweep`: random IOPS against depth at `size` bytes, and the knee.
    fn depth_sweep(&mut self, direction: Direction, size: u64) -> Result<()> {
        let disk = self.report.disks.last_mut().expect("pushed by prepare");
        let sweep = self.cal.depth_sweep(direction, size, disk)?;
        let best = sweep.points.iter().map(|p| p.iops).fold(0.0, f64::max);
        println!(
            "Measuring random {} knee: {} in flight ({} per shard), {:.0} IOPS of the best {best:.0}",
            direction,
            sweep.knee_in_flight,
            sweep.knee_in_flight_per_shard,
            sweep
                .points
                .iter()
                .find(|p| p.in_flight_per_shard == sweep.knee_in_flight_per_shard)
                .map_or(0.0, |p| p.iops),
        );
        self.disk().depth_sweeps.push(sweep);
        self.save()
    }

    /// Records the results and the cached figures; returns the io-properties entry (with
    /// `--write-mixed-model`, the frontier's `duplex` / `rate_factor` in it).
    fn finish(mut self, results: Results) -> Result<DiskProperties> {
        let mut properties = results.properties.clone();
        let cached = std::mem::take(&mut self.cached_figures);
        let write_mixed_model = self.opts.write_mixed_model;
        let disk = self.disk();
        disk.results = Some(results);
        disk.cached_figures = cached;
        extras::apply(disk, write_mixed_model, &mut properties);
        self.save()?;
        Ok(properties)
    }
}

/// The warning for a forced random request size below what the filesystem does directly.
fn small_request_warning(option: &str, size: u64, direct: u64, topology: &Topology) -> String {
    let dio = topology
        .dio_offset_align
        .map_or("not reported by statx".to_owned(), |a| format!("{a} bytes"));
    format!(
        "--{option} {size} is smaller than {direct} bytes, the smallest request {} on {} is \
         known to do directly (filesystem block size {} bytes, direct-I/O alignment {dio}, \
         physical block size {} bytes): the filesystem may serve it from its page cache (btrfs \
         does) or turn it into read-modify-write; the served-by-the-disk check of each phase \
         tells which",
        topology.fs_type,
        topology.mountpoint.display(),
        topology.fs_block_size,
        topology.physical_block_size()
    )
}
