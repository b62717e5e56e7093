//! Issue 9, item 3: io-tester ends at `--duration` and on SIGINT, whatever its jobs wait for —
//! a `cpu` step, tokens of a disk model with tiny rates, a think time. Judged by exit status
//! and generous time bounds (seconds where the bug took tens of seconds or forever), so a
//! loaded machine does not fail them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::{bin, disk_dir, wait_until, Running};

/// A disk model that lets 512 bytes a second through: four 4 KiB writes take 32 s of tokens.
const TINY_RATES: &str = "disks: [{mountpoint: /, read_iops: 100, read_bandwidth: 512, \
                          write_iops: 100, write_bandwidth: 512}]";

/// A job spinning the CPU for 31 years per step.
const ENDLESS_CPU: &str = "- name: spin\n  shards: all\n  type: cpu\n  \
                           shard_info: {parallelism: 1, execution_time: 1000000000s}\n";

/// Four fibers writing 4 KiB requests.
const WRITES: &str = "- name: w\n  shards: all\n  type: seqwrite\n  data_size: 1MB\n  \
                      shard_info: {parallelism: 4, reqsize: 4kB}\n";

/// One fiber writing a request, then thinking for 1000 s.
const THINKER: &str = "- name: w\n  shards: all\n  type: seqwrite\n  data_size: 1MB\n  \
                       shard_info: {parallelism: 1, reqsize: 4kB, think_time: 1000s}\n";

/// Generous: the runs below take about 1 s, or a few milliseconds after SIGINT.
const BOUND: Duration = Duration::from_secs(10);

/// Starts io-tester on `storage` with the job file `conf` (written into `scratch`), one shard,
/// data files kept (so a test can see the first write land), and `extra` arguments.
fn start(storage: &Path, scratch: &Path, conf: &str, extra: &[&str]) -> Running {
    let path = scratch.join("conf.yaml");
    std::fs::write(&path, conf).unwrap();
    Running::spawn(
        Command::new(bin("io-tester"))
            .args(["--storage", storage.to_str().unwrap(), "--conf"])
            .arg(&path)
            .args(["--smp", "1", "--keep-files", "true"])
            .args(extra),
    )
}

/// Waits up to [`BOUND`] for the run to end; panics (killing it) if it does not.
fn ends_within_bound(child: &mut Running, what: &str) -> (i32, Duration) {
    match child.wait_exit(BOUND) {
        Some((status, took)) => (status.code().unwrap_or(-1), took),
        None => panic!(
            "{what}: still running {BOUND:?} later (killed); stderr: {}",
            child.stderr()
        ),
    }
}

/// CPU time (user) of `pid`'s thread named `name`, in clock ticks (/proc/PID/task/*/stat).
fn thread_ticks(pid: u32, name: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            // Fields after the parenthesised name: state is field 3, utime field 14.
            let rest = &stat[stat.rfind(')')? + 2..];
            rest.split_whitespace().nth(11)?.parse::<u64>().ok()
        })
        .sum()
}

/// Whether the kept data file of job `w` on shard 0 has data: the first write completed.
fn first_write_landed(storage: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(storage.join("io-tester-w-0.data")).is_ok_and(|m| m.blocks() > 0)
}

#[test]
fn issue9_a_cpu_step_ends_at_the_deadline() {
    let (storage, scratch) = (disk_dir(), tempfile::tempdir().unwrap());
    let mut child = start(
        storage.path(),
        scratch.path(),
        ENDLESS_CPU,
        &["--duration", "1"],
    );
    let (code, took) = ends_within_bound(&mut child, "a 1 s run of a 31-year cpu step");
    assert_eq!(code, 0, "{}", child.stderr());
    assert!(child.stdout().contains("spin:"), "{}", child.stdout());
    println!("a 1 s run with a 31-year cpu step took {took:?}");
}

#[test]
fn issue9_waits_for_tokens_end_at_the_deadline() {
    let (storage, scratch) = (disk_dir(), tempfile::tempdir().unwrap());
    let args = ["--duration", "1", "--io-properties", TINY_RATES];
    let mut child = start(storage.path(), scratch.path(), WRITES, &args);
    // Before the fix the drain waited for 32 s of tokens.
    let (code, took) = ends_within_bound(&mut child, "a 1 s run at 512 B/s");
    assert_eq!(code, 0, "{}", child.stderr());
    assert!(child.stdout().contains("w:"), "{}", child.stdout());
    println!("a 1 s run at 512 B/s took {took:?}");
}

/// SIGINT once the run is inside the wait (a long `--duration`, so only the signal can end
/// it): exit 130 within the bound.
fn sigint_ends(conf: &str, extra: &[&str], inside: impl Fn(&Running, &Path) -> bool) {
    let (storage, scratch) = (disk_dir(), tempfile::tempdir().unwrap());
    let mut args = vec!["--duration", "600"];
    args.extend_from_slice(extra);
    let mut child = start(storage.path(), scratch.path(), conf, &args);
    assert!(
        wait_until(Duration::from_secs(60), || inside(&child, storage.path())),
        "the run did not reach its wait: {}",
        child.stderr()
    );
    child.signal(libc::SIGINT);
    let (code, took) = ends_within_bound(&mut child, "after SIGINT");
    assert_eq!(code, 130, "{}", child.stderr());
    println!("SIGINT ended it in {took:?}");
}

#[test]
fn issue9_sigint_ends_a_cpu_step() {
    // Inside the step once the shard thread has burnt a fifth of a second (100 Hz ticks).
    sigint_ends(ENDLESS_CPU, &[], |child, _| {
        thread_ticks(child.pid(), "shard-0") >= 20
    });
}

#[test]
fn issue9_sigint_ends_a_wait_for_tokens() {
    // The bucket's first tokens let the first write out; the other three wait for 24 s more.
    sigint_ends(WRITES, &["--io-properties", TINY_RATES], |_, storage| {
        first_write_landed(storage)
    });
}

#[test]
fn issue9_sigint_ends_a_think_time() {
    // After its first write the fiber thinks for 1000 s.
    sigint_ends(THINKER, &[], |_, storage| first_write_landed(storage));
}
