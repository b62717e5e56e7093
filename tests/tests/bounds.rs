//! Issue 9, item 4: absurd option values end in exit 2 (a bad command line) before any work —
//! no panic, no allocation sized from them, nothing created — and more shards than CPUs get a
//! warning (item 9).

use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{assert_empty, bin, disk_dir, run};

/// Runs `program` with `base` and each (option, value) in turn: see [`refused`].
fn each_refused(program: &str, base: &[&str], cases: &[(&str, &str)]) {
    for &(option, value) in cases {
        let mut args = base.to_vec();
        args.extend([option, value]);
        refused(program, &args, option);
    }
}

/// Runs `program` with `args`; asserts exit 2 within a few seconds, an error naming `option`,
/// and no panic.
fn refused(program: &str, args: &[&str], option: &str) {
    let t = Instant::now();
    let out = run(Command::new(bin(program)).args(args));
    let took = t.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{program} {args:?}: {stderr}");
    assert!(stderr.contains(option), "{program} {args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{program} {args:?}: {stderr}");
    assert!(
        took < Duration::from_secs(5),
        "{program} {args:?} took {took:?}"
    );
}

#[test]
fn issue9_io_tester_refuses_absurd_values_before_any_work() {
    let storage = disk_dir();
    let scratch = tempfile::tempdir().unwrap();
    let conf = scratch.path().join("conf.yaml");
    std::fs::write(
        &conf,
        "- name: r\n  shards: all\n  type: randread\n  data_size: 1MB\n  shard_info: {reqsize: 4kB}\n",
    )
    .unwrap();
    let base = [
        "--storage",
        storage.path().to_str().unwrap(),
        "--conf",
        conf.to_str().unwrap(),
    ];
    let cases = [
        ("--duration", "1.9e19"),
        ("--duration", "1e300"),
        ("--duration", "1e19"),
        ("--duration", "0"),
        ("--duration", "NaN"),
        ("--smp", "0"),
        ("--smp", "100000"),
        ("--io-latency-goal-ms", "0"),
        ("--io-latency-goal-ms", "NaN"),
        ("--physical-block-size", "1000"),
    ];
    each_refused("io-tester", &base, &cases);
    assert_empty(storage.path());
}

#[test]
fn issue9_iotune_refuses_absurd_values_before_any_work() {
    let eval = disk_dir();
    let base = ["--evaluation-directory", eval.path().to_str().unwrap()];
    let cases = [
        ("--duration", "18446744073709551615"),
        ("--duration", "10000000000"),
        ("--duration", "1000000000"),
        ("--duration", "0"),
        ("--smp", "0"),
        ("--smp", "100000"),
        ("--accuracy", "1000"),
        ("--ramp-time", "NaN"),
        ("--random-read-io-depth", "0"),
        ("--sequential-read-buffer-size", "1000"),
    ];
    each_refused("iotune", &base, &cases);
    assert_empty(eval.path());
}

#[test]
fn issue9_more_shards_than_cpus_get_a_warning() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let smp = (cpus + 1).to_string();
    let eval = disk_dir();
    let out = e2e::iotune_fs_check(eval.path(), &["--smp", &smp]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("--smp {smp} is above the {cpus} CPU(s)")),
        "{stderr}"
    );

    let scratch = tempfile::tempdir().unwrap();
    let conf = scratch.path().join("conf.yaml");
    std::fs::write(
        &conf,
        "- name: spin\n  shards: all\n  type: cpu\n  shard_info: {execution_time: 1ms}\n",
    )
    .unwrap();
    let out = run(Command::new(bin("io-tester")).args([
        "--storage",
        eval.path().to_str().unwrap(),
        "--conf",
        conf.to_str().unwrap(),
        "--duration",
        "0.2",
        "--smp",
        &smp,
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("--smp {smp} is above the {cpus} CPU(s)")),
        "{stderr}"
    );
}
