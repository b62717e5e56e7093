//! Issue 9, item 7: one calibration per disk. Two iotune runs on one disk at once both exited 0
//! with about half of the disk each; now the second refuses, naming the first's pid, and a
//! first run killed with SIGKILL does not block the next.

use std::time::Duration;

use e2e::{disk_dir, Running};

/// A calibration of `dir` long enough to be running when the test looks.
fn long_calibration(dir: &std::path::Path) -> Running {
    let child = Running::spawn(e2e::iotune().args([
        "--evaluation-directory",
        dir.to_str().unwrap(),
        "--duration",
        "600",
        "--smp",
        "1",
        "--file-size",
        "64M",
    ]));
    assert!(
        child.wait_for_line("Warming up", Duration::from_secs(60)),
        "iotune did not start measuring: {}",
        child.stderr()
    );
    child
}

#[test]
fn issue9_a_second_calibration_of_the_disk_is_refused() {
    let _serial = e2e::serial();
    // Two directories on the same disk.
    let (first_dir, second_dir) = (disk_dir(), disk_dir());
    let mut first = long_calibration(first_dir.path());
    let out = e2e::iotune_fs_check(second_dir.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let needle = format!("another iotune (pid {}) is calibrating", first.pid());
    assert!(stderr.contains(&needle), "no {needle:?} in: {stderr}");
    assert!(stderr.contains("lock file"), "{stderr}");
    // The first goes on, undisturbed.
    assert!(
        first.wait_exit(Duration::ZERO).is_none(),
        "{}",
        first.stderr()
    );
    let (status, _) = first.signal_and_wait(libc::SIGINT, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130), "{}", first.stderr());
}

#[test]
fn issue9_a_killed_calibration_does_not_block_the_next() {
    let _serial = e2e::serial();
    let dir = disk_dir();
    let mut killed = long_calibration(dir.path());
    killed.signal_and_wait(libc::SIGKILL, Duration::from_secs(30));
    let out = e2e::iotune_fs_check(dir.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("another iotune"), "{stderr}");
}
