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
