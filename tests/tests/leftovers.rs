//! Issue 9, item 5: what io-tester leaves after `kill -9`, and the next run recovering from it.
//! Before, the unlink jobs' directories stayed with their files and the next run refused to
//! start ("already exists ... remove it").

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e::{assert_empty, bin, disk_dir, entries, run, wait_until, Running};

/// An unlink job removing one of its 2000 files every millisecond (so it lasts), beside a
/// write job.
const UNLINKER: &str = "\
- name: w
  shards: all
  type: randwrite
  data_size: 4MB
  shard_info: {reqsize: 4kB}
- name: u
  shards: all
  type: unlink
  data_size: 1MB
  files_count: 2000
  shard_info: {parallelism: 1, think_time: 1ms}
";

/// io-tester running [`UNLINKER`] (in `conf`) on `storage` for `duration` seconds, one shard.
fn io_tester(storage: &Path, conf: &Path, duration: &str) -> Command {
    let mut cmd = Command::new(bin("io-tester"));
    cmd.args(["--storage", storage.to_str().unwrap(), "--conf"])
        .arg(conf)
        .args(["--duration", duration, "--smp", "1"]);
    cmd
}

/// Starts a 600 s run on `storage` and waits until its unlink job has made its files; returns
/// it and the directories it made.
fn start_long_run(storage: &Path, conf: &Path) -> (Running, Vec<PathBuf>) {
    let child = Running::spawn(&mut io_tester(storage, conf, "600"));
    assert!(
        wait_until(Duration::from_secs(120), || e2e::files_below(storage)
            > 1000),
        "the unlink job made no files: {}",
        child.stderr()
    );
    (child, entries(storage))
}

/// A half-second run on `storage`: its output.
fn short_run(storage: &Path, conf: &Path) -> std::process::Output {
    run(&mut io_tester(storage, conf, "0.5"))
}

#[test]
fn issue9_the_run_after_a_kill_9_removes_what_it_left() {
    let (storage, scratch) = (disk_dir(), tempfile::tempdir().unwrap());
    let conf = scratch.path().join("conf.yaml");
    std::fs::write(&conf, UNLINKER).unwrap();
    let (mut killed, left) = start_long_run(storage.path(), &conf);
    killed.signal_and_wait(libc::SIGKILL, Duration::from_secs(30));
    // One directory, named after the killed process, holding the unlink job's files.
    assert_eq!(left.len(), 1, "{left:?}");
    let name = left[0].file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(name, format!("io-tester-run.{}", killed.pid()));
    let files = e2e::files_below(storage.path());
    assert!(files > 1000, "{files} files left");

    let out = short_run(storage.path(), &conf);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let note = format!("NOTE: removed {} ({files} files)", left[0].display());
    assert!(stderr.contains(&note), "no {note:?} in: {stderr}");
    assert!(stderr.contains("killed or crashed"), "{stderr}");
    assert_empty(storage.path());
}

#[test]
fn issue9_a_running_runs_directory_is_left_alone() {
    let (storage, scratch) = (disk_dir(), tempfile::tempdir().unwrap());
    let conf = scratch.path().join("conf.yaml");
    std::fs::write(&conf, UNLINKER).unwrap();
    let (mut first, mine) = start_long_run(storage.path(), &conf);
    // A second run of the same jobs on the same storage, while the first goes on.
    let out = short_run(storage.path(), &conf);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("NOTE: removed"), "{stderr}");
    assert!(
        mine[0].is_dir(),
        "the second run removed the first's {mine:?}"
    );
    let (status, _) = first.signal_and_wait(libc::SIGINT, Duration::from_secs(60));
    assert_eq!(status.code(), Some(130), "{}", first.stderr());
    assert_empty(storage.path());
}

#[test]
fn issue9_help_says_what_can_be_left() {
    let text = e2e::help(bin("io-tester").to_str().unwrap());
    e2e::assert_mentions(
        &text,
        &[
            "STORAGE/io-tester-run.PID/",
            "After kill -9",
            "the next io-tester run on the same storage removes it",
            ".iotune-PID-*",
            "io-tester-JOB-SHARD.data",
        ],
    );
}
