//! The hidden `--check-conf` mode: job files in, JSON (exit 0) or an error on stderr (exit 2).

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// Seastar's own example job file, which must parse unchanged.
const SEASTAR_CONF: &str = include_str!("../src/workload/testdata/seastar-io_tester-conf.yaml");

/// Writes `text` to a file named after the test in Cargo's per-target temporary directory.
fn write(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("conf-{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn io_tester(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_io-tester"))
        .args(args)
        .output()
        .expect("run io-tester")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn seastar_conf_parses_to_four_jobs() {
    let conf = write("seastar", SEASTAR_CONF);
    let out = io_tester(&["--check-conf", conf.to_str().unwrap(), "--smp", "4"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["smp"], 4);
    let jobs = json["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 4);

    let names: Vec<&str> = jobs.iter().map(|j| j["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["big_writes", "latency_reads", "cpu_hog", "unlinking"]
    );
    let kinds: Vec<&str> = jobs.iter().map(|j| j["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["overwrite", "randread", "cpu", "unlink"]);
    let lines: Vec<u64> = jobs.iter().map(|j| j["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [1, 10, 20, 28]);

    assert_eq!(jobs[0]["shards"], "all");
    assert_eq!(jobs[0]["shard_info"]["parallelism"], 10);
    assert_eq!(jobs[0]["shard_info"]["reqsize"], 262_144);
    assert_eq!(jobs[0]["shard_info"]["think_time_ns"], 0);
    assert_eq!(jobs[0]["data_size_per_shard"], 1u64 << 30);

    assert_eq!(jobs[1]["shards"], serde_json::json!([0]));
    assert_eq!(jobs[1]["data_size"], 1u64 << 30);
    assert_eq!(jobs[1]["shard_info"]["reqsize"], 512);
    assert_eq!(jobs[1]["shard_info"]["shares"], 100);
    assert_eq!(jobs[1]["shard_info"]["think_time_ns"], 1_000_000);

    assert_eq!(jobs[2]["shard_info"]["execution_time_ns"], 90_000);
    assert_eq!(jobs[2]["shard_info"]["think_time_ns"], 10_000);
    assert_eq!(jobs[2]["data_size_per_shard"], 0);

    assert_eq!(jobs[3]["files_count"], 5000);
    assert_eq!(jobs[3]["data_size"], 2u64 << 30);
    assert_eq!(jobs[3]["data_size_per_shard"], 512u64 << 20);
    assert!(json.get("sched_groups").is_none());
}

#[test]
fn bad_file_exits_2_with_job_key_and_line() {
    let conf = write(
        "bad",
        "- name: ok\n  type: cpu\n  shards: all\n\n- name: broken\n  type: randread\n  shards: all\n  shard_info:\n    reqsize: 1000\n",
    );
    let out = io_tester(&["--check-conf", conf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(
        err.contains("conf-bad.yaml: job 'broken' (line 5): key 'shard_info.reqsize' (line 9): "),
        "{err}"
    );
    assert!(err.contains("multiple of 512"), "{err}");
}

#[test]
fn yaml_syntax_error_exits_2_with_line_and_column() {
    let conf = write("syntax", "- name: a\n  type: [cpu\n  shards: all\n");
    let out = io_tester(&["--check-conf", conf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("conf-syntax.yaml: line "), "{err}");
    assert!(err.contains(", column "), "{err}");
    assert!(err.contains("invalid YAML"), "{err}");
}

#[test]
fn missing_file_exits_2() {
    let out = io_tester(&["--check-conf", "/nonexistent/conf.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/conf.yaml: cannot read the file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn classes_resolve_against_sched_groups() {
    let conf = write(
        "classes",
        "- name: bg\n  type: randwrite\n  shards: [0]\n  shard_info:\n    class: background\n",
    );
    let groups = write(
        "groups",
        "- name: top\n  shares: 1000\n- name: background\n  shares: 100\n  parent: top\n",
    );
    let out = io_tester(&[
        "--check-conf",
        conf.to_str().unwrap(),
        "--sched-groups",
        groups.to_str().unwrap(),
        "--smp",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["jobs"][0]["shard_info"]["class"], "background");
    assert_eq!(json["sched_groups"][1]["parent"], "top");
    assert_eq!(json["sched_groups"][1]["line"], 3);

    // Without the groups file the class names nothing.
    let out = io_tester(&["--check-conf", conf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("job 'bg' (line 1): key 'shard_info.class'"),
        "{}",
        stderr(&out)
    );

    // A cycle in the groups file.
    let cyclic = write(
        "cyclic",
        "- {name: a, shares: 1, parent: b}\n- {name: b, shares: 1, parent: a}\n",
    );
    let out = io_tester(&[
        "--check-conf",
        conf.to_str().unwrap(),
        "--sched-groups",
        cyclic.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("group 'a' (line 1): key 'parent': parents form a cycle: a -> b -> a"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_job_file_is_a_clear_error() {
    let out = io_tester(&["--conf", "/nonexistent/conf.yaml", "--storage", "/tmp"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/conf.yaml"),
        "{}",
        stderr(&out)
    );
}

/// `n` good jobs of 9 lines, then one with a bad `reqsize` (line `9 n + 1`).
fn jobs_then_a_bad_one(n: usize) -> String {
    let mut text = String::with_capacity(n * 150);
    for i in 0..n {
        text.push_str(&format!(
            "- name: job{i}\n  type: randread\n  shards: all\n  data_size: 1GB\n  shard_info:\n    parallelism: 2\n    reqsize: 4kB\n    shares: 100\n    think_time: 10us\n"
        ));
    }
    text.push_str(
        "- name: bad\n  type: randread\n  shards: all\n  shard_info:\n    reqsize: 1000\n",
    );
    text
}

#[test]
fn a_file_over_16_mib_is_refused_at_once() {
    // A sparse 50 MB file: judged by its size, never read (it used to take forever).
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("conf-50mb.yaml");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(50 << 20)
        .unwrap();
    let out = io_tester(&["--check-conf", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}: the file has 52428800 bytes (50.0 MiB), more than the 16 MiB limit; that is \
             far more jobs than a run can use: check that this is the right file",
            path.display()
        )),
        "{err}"
    );
    // The same in a run, before anything else; and for a scheduling-group file.
    let storage = env!("CARGO_TARGET_TMPDIR");
    let good = write("small", "- {name: a, type: cpu, shards: all}\n");
    for args in [
        vec!["--conf", path.to_str().unwrap(), "--storage", storage],
        vec![
            "--conf",
            good.to_str().unwrap(),
            "--sched-groups",
            path.to_str().unwrap(),
            "--storage",
            storage,
        ],
    ] {
        let out = io_tester(&args);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("more than the 16 MiB limit"),
            "{}",
            stderr(&out)
        );
    }
    std::fs::remove_file(&path).unwrap();
}

/// `shards: [99]` with `--smp 2` ran nothing and exited 0 with an empty report.
#[test]
fn a_job_on_shards_the_run_lacks_is_refused() {
    let conf = write("shard99", "- name: far\n  type: randread\n  shards: [99]\n");
    let expected = "job 'far' (line 1): key 'shards[0]' (line 3): shard 99 does not exist: the \
                    run has 2 shards (--smp 2; ids 0 to 1), so the job would run on no shard";
    let out = io_tester(&["--check-conf", conf.to_str().unwrap(), "--smp", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(expected), "{}", stderr(&out));
    let out = io_tester(&[
        "--conf",
        conf.to_str().unwrap(),
        "--smp",
        "2",
        "--storage",
        env!("CARGO_TARGET_TMPDIR"),
        "--duration",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(expected), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn control_characters_in_a_name_are_escaped() {
    let conf = write(
        "nul",
        "- name: \"a\\0b\\e[2J\"\n  type: cpu\n  shards: all\n",
    );
    let out = io_tester(&["--check-conf", conf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(!err.trim_end().contains(char::is_control), "{err:?}");
    assert!(err.contains("`a\\u{0}b\\u{1b}[2J` cannot be used"), "{err}");
}

/// Whether `pid` has a handler for SIGINT and SIGTERM (from /proc: bits 2 and 15 of SigCgt).
fn catches_sigint_and_sigterm(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << 1) != 0 && mask & (1 << 14) != 0)
}

/// SIGTERM while a large job file is read ends the run at once (a 16000-job file used to
/// ignore SIGINT and SIGTERM for 14 minutes). The file's last job is bad: had reading gone on
/// to the end, the exit status would be 2, not 130. The signal is sent as soon as the handler
/// is in place, which is before reading starts; reading 15 MiB takes a second or more.
#[test]
fn sigterm_while_reading_a_large_file_stops_at_once() {
    let conf = write("sigterm", &jobs_then_a_bad_one(100_000));
    let child = Command::new(env!("CARGO_BIN_EXE_io-tester"))
        .args([
            "--conf",
            conf.to_str().unwrap(),
            "--storage",
            env!("CARGO_TARGET_TMPDIR"),
            "--duration",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let t = std::time::Instant::now();
    while !catches_sigint_and_sigterm(pid) {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(30),
            "no handler"
        );
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let signalled = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains(&format!("{}: interrupted while reading", conf.display())),
        "{err}"
    );
    // Generous: reading the whole file would not end the run with 130 anyway.
    assert!(
        signalled.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        signalled.elapsed()
    );
    std::fs::remove_file(&conf).unwrap();
}
