//! Inputs the fuzz targets (`fuzz/`) reported, run through the readers on the stable
//! toolchain: none may panic, and each must be read in well under the fuzzers' 1 s.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use io_tester::workload;

/// The files of `fuzz/regressions/TARGET`.
fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
}

/// Runs `read` on every input of `target` that is UTF-8 (the targets skip the others).
fn each(target: &str, read: impl Fn(&str) -> Option<String>) {
    for path in inputs(target) {
        let Ok(text) = String::from_utf8(std::fs::read(&path).unwrap()) else {
            continue;
        };
        let t = Instant::now();
        let message = read(&text);
        let elapsed = t.elapsed();
        assert!(
            elapsed < Duration::from_millis(500),
            "{}: {elapsed:?}",
            path.display()
        );
        if let Some(m) = message {
            assert!(!m.contains(char::is_control), "{}: {m:?}", path.display());
        }
    }
}

#[test]
fn job_file_inputs() {
    each("job_file", |text| {
        match workload::parse_jobs(text, "fuzz.yaml") {
            Ok(jobs) => {
                let _ = workload::check_shards(&jobs, 2, "fuzz.yaml");
                workload::check_job_classes(&jobs, None, "fuzz.yaml")
                    .err()
                    .map(|e| e.to_string())
            }
            Err(e) => Some(e.to_string()),
        }
    });
}

#[test]
fn sched_groups_inputs() {
    each("sched_groups", |text| {
        workload::parse_sched_groups(text, "fuzz.yaml")
            .err()
            .map(|e| e.to_string())
    });
}
