//! Issue 9, item 8: an output file iotune cannot write (a read-only or missing directory) is
//! found before measuring, not after the whole measurement (2.5 minutes at the default
//! duration).

use std::path::Path;
use std::time::{Duration, Instant};

use e2e::{assert_empty, disk_dir, run, Mount};

/// A directory iotune cannot create files in: a read-only bind mount as root, a directory
/// with mode 0555 otherwise.
enum ReadOnly {
    Mount(Mount),
    Dir(tempfile::TempDir),
}

impl ReadOnly {
    fn new() -> ReadOnly {
        if e2e::is_root() {
            if let Some(m) = Mount::read_only() {
                return ReadOnly::Mount(m);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
        ReadOnly::Dir(dir)
    }

    fn path(&self) -> &Path {
        match self {
            ReadOnly::Mount(m) => &m.path,
            ReadOnly::Dir(d) => d.path(),
        }
    }
}

#[test]
fn issue9_unwritable_outputs_are_refused_before_measuring() {
    let _serial = e2e::serial();
    let eval = disk_dir();
    let ro = ReadOnly::new();
    let scratch = tempfile::tempdir().unwrap();
    let writable = scratch.path().join("p.yaml");
    let (ro_file, missing) = (ro.path().join("out"), Path::new("/nonexistent/iotune/out"));
    for (option, target, why) in [
        (
            "--properties-file",
            ro_file.as_path(),
            "cannot create a file in",
        ),
        (
            "--options-file",
            ro_file.as_path(),
            "cannot create a file in",
        ),
        ("--report", ro_file.as_path(), "cannot create a file in"),
        ("--properties-file", missing, "does not exist"),
        ("--report", missing, "does not exist"),
    ] {
        let mut cmd = e2e::iotune();
        cmd.args(["--evaluation-directory", eval.path().to_str().unwrap()])
            .args(["--duration", "120", "--file-size", "64M"]);
        if option == "--options-file" {
            cmd.arg("--properties-file").arg(&writable);
        }
        cmd.arg(option).arg(target);
        let t = Instant::now();
        let out = run(&mut cmd);
        let took = t.elapsed();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(1), "{option} {target:?}: {stderr}");
        let named = format!("{option} {}: cannot be written", target.display());
        assert!(stderr.contains(&named), "no {named:?} in: {stderr}");
        assert!(stderr.contains(why), "{option}: no {why:?} in: {stderr}");
        assert!(
            !stdout.contains("Warming up"),
            "{option} measured: {stdout}"
        );
        // Well under the warm-up alone (6 s at --duration 120).
        assert!(took < Duration::from_secs(5), "{option} took {took:?}");
        assert!(!writable.exists());
        assert_empty(eval.path());
    }
}
