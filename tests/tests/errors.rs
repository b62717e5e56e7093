//! Issue 9, item 9: errors name each cause once, and a full filesystem is called full.

use std::path::Path;
use std::process::Command;

use e2e::{bin, run, Mount};

/// A job reading 64 MB, which must be written first.
const READER: &str =
    "- name: r\n  shards: all\n  type: randread\n  data_size: 64MB\n  shard_info: {reqsize: 4kB}\n";

/// Runs io-tester with [`READER`] on `storage`: exit status and stderr.
fn io_tester_on(storage: &Path) -> (Option<i32>, String) {
    let scratch = tempfile::tempdir().unwrap();
    let conf = scratch.path().join("conf.yaml");
    std::fs::write(&conf, READER).unwrap();
    let out = run(Command::new(bin("io-tester"))
        .args(["--storage", storage.to_str().unwrap(), "--conf"])
        .arg(&conf)
        .args(["--duration", "1", "--smp", "1"]));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn issue9_the_os_error_is_printed_once() {
    let _serial = e2e::serial();
    // Skips, with the reason printed, without root.
    let Some(ro) = Mount::read_only() else {
        return;
    };
    let os_error = "Read-only file system (os error 30)";
    let out = e2e::iotune_fs_check(&ro.path, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches(os_error).count(), 1, "{stderr}");
    assert!(stderr.contains("cannot create a test file in"), "{stderr}");

    let (code, stderr) = io_tester_on(&ro.path);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.matches(os_error).count(), 1, "{stderr}");
}

#[test]
fn issue9_a_full_filesystem_is_called_full() {
    // 8.5 MiB: the ninth 1 MiB write of the data file stores half of itself.
    let Some(small) = Mount::tmpfs(8704 << 10) else {
        return;
    };
    let (code, stderr) = io_tester_on(&small.path);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("the filesystem is full"), "{stderr}");
    assert!(!stderr.contains("short write"), "{stderr}");
    e2e::assert_empty(&small.path);
}
