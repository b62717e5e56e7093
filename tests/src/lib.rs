//! Helpers for the end-to-end tests: locate the built binaries and run them, and a throttled
//! device whose truth is known. What every crate's tests share (root checks, `serial`, loop
//! devices, directories on the work disk, children waited for by what they print) is in
//! `test-support`, re-exported here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod throttle;
pub use test_support::{
    assert_empty, assert_mentions, disk_dir, entries, files_below, has_thread, have, help, is_root,
    run, serial, wait_until, LoopDevice, LoopFs, Mount, Running,
};
pub use throttle::{disk_of, throttled_disk, Limits, Throttle, KNOWN};

/// Path of a workspace binary built in the same profile as the running test
/// (`target/<profile>/<name>`). `cargo test --workspace` builds them, because each binary
/// package has an integration test of its own.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = dir.join(name);
    assert!(path.is_file(), "{} is missing: run `cargo test --workspace` (it builds every binary) or `cargo build --workspace`", path.display());
    path
}

/// The variable naming iotune's directory for its per-disk lock files.
pub const IOTUNE_LOCK_DIR: &str = "IOTUNE_LOCK_DIR";

/// iotune's lock directory for the tests of this checkout (`target/<profile>/iotune-locks`):
/// iotune refuses a second calibration of a disk, and the tests of this checkout serialise
/// their iotune runs (`serial`), but a test suite of another checkout running on the same
/// machine must not count as a second calibration.
pub fn iotune_lock_dir() -> PathBuf {
    let dir = bin("iotune")
        .parent()
        .expect("target/<profile>")
        .join("iotune-locks");
    std::fs::create_dir_all(&dir).expect("iotune's lock dir for the tests");
    dir
}

/// A command running the built iotune, with this checkout's lock directory
/// ([`iotune_lock_dir`]).
pub fn iotune() -> Command {
    let mut cmd = Command::new(bin("iotune"));
    cmd.env(IOTUNE_LOCK_DIR, iotune_lock_dir());
    cmd
}

/// Runs iotune's sanity checks only (`--fs-check`) on `dir`, with `extra` arguments.
pub fn iotune_fs_check(dir: &Path, extra: &[&str]) -> Output {
    run(iotune()
        .arg("--evaluation-directory")
        .arg(dir)
        .arg("--fs-check")
        .args(extra))
}

/// Path of an example of the `scheduler` crate built in the same profile as the running test
/// (`target/<profile>/examples/<name>`); `cargo test --workspace` builds the examples.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = dir.join("examples").join(name);
    assert!(path.is_file(), "{} is missing: run `cargo test --workspace` (it builds the examples) or `cargo build -p scheduler --features tokio --examples`", path.display());
    path
}

/// One iotune run writing its properties, options and JSON report files into a temporary
/// directory that lives as long as this value (keep it bound, not destructured).
pub struct Reported {
    /// Exit status, stdout and stderr.
    pub out: Output,
    /// stderr as text.
    pub stderr: String,
    /// The parsed `--report` file.
    pub report: serde_json::Value,
    /// Where `--properties-file` pointed (it exists only if iotune wrote it).
    pub props: PathBuf,
    /// Where `--options-file` pointed (likewise).
    pub options: PathBuf,
    _dir: tempfile::TempDir,
}

/// Runs the built iotune with `args` plus `--properties-file`, `--options-file` and `--report`
/// in a fresh temp dir, whatever its exit status; panics if it panicked or left no report.
pub fn iotune_reported(args: &[String]) -> Reported {
    let dir = tempfile::tempdir().expect("temp dir");
    let props = dir.path().join("io-properties.yaml");
    let options = dir.path().join("io.conf");
    let report = dir.path().join("report.json");
    let out = run(iotune().args(args).args([
        "--properties-file",
        props.to_str().expect("UTF-8 temp path"),
        "--options-file",
        options.to_str().expect("UTF-8 temp path"),
        "--report",
        report.to_str().expect("UTF-8 temp path"),
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let text = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("no report ({e}), exit {:?}:\n{stderr}", out.status));
    Reported {
        out,
        stderr,
        report: serde_json::from_str(&text).expect("the report is JSON"),
        props,
        options,
        _dir: dir,
    }
}

/// Runs the built io-tester on `storage` with the job file text `conf` and `extra` arguments,
/// JSON output; panics with its stderr unless it succeeds. Returns the parsed shards and stderr.
pub fn io_tester_json(storage: &Path, conf: &str, extra: &[&str]) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf_path = dir.path().join("conf.yaml");
    std::fs::write(&conf_path, conf).expect("write the job file");
    let out = run(Command::new(bin("io-tester"))
        .args([
            "--storage",
            storage.to_str().expect("UTF-8 storage path"),
            "--conf",
            conf_path.to_str().expect("UTF-8 temp path"),
            "--output-format",
            "json",
        ])
        .args(extra));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "io-tester failed: {stderr}\n{conf}");
    let shards = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (shards, stderr)
}
