//! `ioinfo`: prints the I/O scheduler's numbers for a disk — the cost model, token bucket and
//! maximum request lengths that `scheduler::cost_model` derives from io-properties — in the
//! format of Seastar's `ioinfo` (`shared/reference/io-tester.md`, "ioinfo"; formulas in
//! `shared/reference/scheduler.md` §2–3). `--check` turns it into a CI gate.
//!
//! Exit status: 0 success, 1 failed `--check`, 2 bad input (io-properties, directory, option).

mod check;
mod cli;
mod print;

use std::io::{self, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::FromArgMatches as _;

use scheduler::cost_model::{CostConfig, CostModel};
use scheduler::io_properties::{DiskProperties, IoProperties, INLINE_SOURCE};

use crate::cli::{Cli, OutputFormat};

fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&cli::build_command().get_matches()) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    match run(&cli) {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ioinfo: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Reads the inputs, builds the cost model and prints the document or the check.
fn run(cli: &Cli) -> Result<ExitCode> {
    let properties = load_properties(cli)?;
    let directory = cli
        .directory
        .canonicalize()
        .with_context(|| format!("cannot resolve directory {}", cli.directory.display()))?;
    let metadata = std::fs::metadata(&directory)
        .with_context(|| format!("cannot stat directory {}", directory.display()))?;
    if !metadata.is_dir() {
        bail!("{} is not a directory", directory.display());
    }
    let smp = cli.smp();
    if cli.num_io_groups > smp {
        eprintln!(
            "ioinfo: warning: --num-io-groups {} is above the shard count {smp}: {} group(s) have \
             no shard, and each group is given 1/{} of the disk, so the shards are scheduled for \
             {smp}/{} of it",
            cli.num_io_groups,
            cli.num_io_groups - smp,
            cli.num_io_groups,
            cli.num_io_groups
        );
    }
    let cfg = CostConfig {
        latency_goal_ms: cli.io_latency_goal_ms,
        io_groups: cli.num_io_groups,
        shards_in_group: cli.shards_in_group(),
    };

    let Some((props, source)) = properties else {
        if cli.check {
            bail!(
                "--check needs the disk's io-properties (--io-properties-file or --io-properties)"
            );
        }
        let model = CostModel::unconfigured(&cfg);
        return print_report(cli, &model, metadata.dev());
    };
    let disk = pick_disk(&props, &source, &directory)?;
    let model = CostModel::from_disk(disk, &cfg).with_context(|| {
        format!(
            "{source}: the disk entry for {} cannot be scheduled",
            mountpoints(disk)
        )
    })?;
    for warning in model.warnings() {
        eprintln!("ioinfo: warning: {warning}");
    }
    if cli.check {
        let report = check::check(&model, disk, &source, &cfg, cli.smp(), cli.tolerance)
            .context("cannot simulate the scheduler")?;
        let text = match cli.output_format {
            OutputFormat::Yaml => report.to_text(),
            OutputFormat::Json => report
                .to_json()
                .context("cannot encode the check as JSON")?,
        };
        write_stdout(&text)?;
        return Ok(if report.pass {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    print_report(cli, &model, metadata.dev())
}

/// The parsed io-properties and their source name (path or `<inline>`), if given.
fn load_properties(cli: &Cli) -> Result<Option<(IoProperties, String)>> {
    let (loaded, source) = match (&cli.io_properties_file, &cli.io_properties) {
        (Some(path), _) => (IoProperties::from_file(path), path.display().to_string()),
        (None, Some(text)) => (
            IoProperties::parse(text, INLINE_SOURCE),
            INLINE_SOURCE.to_owned(),
        ),
        (None, None) => return Ok(None),
    };
    let (props, warnings) = loaded.context("invalid io-properties")?;
    for warning in warnings {
        eprintln!("ioinfo: warning: {warning}");
    }
    Ok(Some((props, source)))
}

/// The disk entry whose mountpoint holds `directory`.
fn pick_disk<'a>(
    props: &'a IoProperties,
    source: &str,
    directory: &Path,
) -> Result<&'a DiskProperties> {
    match props.disk_for(directory) {
        Some(disk) => Ok(disk),
        None => {
            let all: Vec<String> = props.disks.iter().map(mountpoints).collect();
            bail!(
                "{source}: no disk entry has a mountpoint containing directory {} (mountpoints: {}); \
                 use --directory or add an entry",
                directory.display(),
                if all.is_empty() {
                    "none".to_owned()
                } else {
                    all.join(", ")
                }
            )
        }
    }
}

fn mountpoints(disk: &DiskProperties) -> String {
    disk.mountpoints
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_report(cli: &Cli, model: &CostModel, device: u64) -> Result<ExitCode> {
    let report = print::Report::new(model, device, cli.max_reqsize);
    let text = match cli.output_format {
        OutputFormat::Yaml => report.to_yaml(),
        OutputFormat::Json => report
            .to_json()
            .context("cannot encode the report as JSON")?,
    };
    write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn write_stdout(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
