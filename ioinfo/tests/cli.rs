//! Runs the `ioinfo` binary: the scheduler.md §2 vector, the unconfigured placeholder, `--check`,
//! bad inputs (exit 2 naming the file) and JSON output.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::{Command, Output};

const VECTOR: &str =
    "disks:\n  - mountpoint: /\n    read_iops: 218786\n    read_bandwidth: 1542559872\n    \
                      write_iops: 121499\n    write_bandwidth: 1130867072\n";

/// A 14 GB/s NVMe array.
const ARRAY: &str =
    "disks:\n  - mountpoint: /\n    read_iops: 3500000\n    read_bandwidth: 14000000000\n    \
                     write_iops: 1800000\n    write_bandwidth: 12000000000\n";

fn ioinfo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ioinfo"))
        .args(args)
        .output()
        .expect("run ioinfo")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn device(dir: &Path) -> u64 {
    fs::metadata(dir.canonicalize().unwrap()).unwrap().dev()
}

fn vector_yaml(device: u64) -> String {
    format!(
        "---
disk_read_max_length: 1048576
disk_write_max_length: 524288
device: {device}
io_latency_goal_ms: 0.75
io_queue:
  id: 1
  req_count_rate: 28004608
  blocks_count_rate: 385639968
  disk_req_write_to_read_multiplier: 230
  disk_blocks_write_to_read_multiplier: 174
fair_queue:
  capacities:
    512:
      read: 82251
      write: 145360
    1024:
      read: 87820
      write: 152929
    2048:
      read: 98957
      write: 168069
    4096:
      read: 121232
      write: 198348
    8192:
      read: 165781
      write: 258907
    16384:
      read: 254879
      write: 380025
    32768:
      read: 433075
      write: 622260
    65536:
      read: 789466
      write: 1106730
    131072:
      read: 1502250
      write: 2075671
  per_tick_grab_threshold: 1797558
  token_bucket:
    limit: 12582912
    rate: 16777216
    threshold: 82251
...
"
    )
}

#[test]
fn section2_vector_inline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = ioinfo(&["--io-properties", VECTOR, "--smp", "7", "--directory", d]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), vector_yaml(device(dir.path())));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    // It is valid YAML, too.
    let v: serde_yaml::Value = serde_yaml::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        v["fair_queue"]["capacities"][512]["write"].as_u64(),
        Some(145360)
    );
}

#[test]
fn section2_vector_from_a_file_picks_the_entry_for_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let data = root.join("data");
    fs::create_dir(&data).unwrap();
    let file = root.join("io_properties.yaml");
    let text = format!(
        "disks:\n  - mountpoint: {}\n    read_iops: 1000\n    read_bandwidth: 1000000\n    \
         write_iops: 1000\n    write_bandwidth: 1000000\n  - mountpoint: {}\n    \
         read_iops: 218786\n    read_bandwidth: 1542559872\n    write_iops: 121499\n    \
         write_bandwidth: 1130867072\n",
        root.display(),
        data.display()
    );
    fs::write(&file, text).unwrap();
    let out = ioinfo(&[
        "--io-properties-file",
        file.to_str().unwrap(),
        "-c",
        "7",
        "--directory",
        data.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), vector_yaml(device(&data)));
}

#[test]
fn unconfigured() {
    let out = ioinfo(&["--smp", "1", "--max-reqsize", "16M", "--directory", "/"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("---\ndisk_read_max_length: 16777216\ndisk_write_max_length: 16777216\n")
    );
    assert!(text.ends_with("...\n"));
    assert!(text.contains("\n  id: 0\n"));
    assert!(text.contains("\n    threshold: 1\n"));
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let caps = v["fair_queue"]["capacities"].as_mapping().unwrap();
    assert_eq!(caps.len(), 16, "512 B .. 16 MiB");
    for (_, rw) in caps {
        assert_eq!(rw["read"].as_u64(), Some(0));
        assert_eq!(rw["write"].as_u64(), Some(0));
    }
    assert_eq!(
        v["fair_queue"]["token_bucket"]["limit"].as_u64(),
        Some(12582912)
    );
    assert_eq!(v["device"].as_u64(), Some(device(Path::new("/"))));
}

#[test]
fn max_reqsize_and_groups() {
    let out = ioinfo(&[
        "--io-properties",
        VECTOR,
        "--max-reqsize",
        "1000",
        "--num-io-groups",
        "2",
        "-c",
        "8",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_yaml::Value = serde_yaml::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["fair_queue"]["capacities"].as_mapping().unwrap().len(), 1);
    // Rates are per IO group; the multipliers are not.
    assert_eq!(
        v["io_queue"]["req_count_rate"].as_u64(),
        Some(128 * (218786 / 2))
    );
    assert_eq!(
        v["io_queue"]["disk_req_write_to_read_multiplier"].as_u64(),
        Some(230)
    );
    assert_eq!(
        v["fair_queue"]["per_tick_grab_threshold"].as_u64(),
        Some(v["fair_queue"]["token_bucket"]["limit"].as_u64().unwrap() / 4)
    );
}

#[test]
fn check_passes_for_the_vector_and_an_array() {
    for (name, props) in [("vector", VECTOR), ("array", ARRAY)] {
        let out = ioinfo(&["--io-properties", props, "--check", "-c", "7"]);
        println!("--- {name} ---\n{}", stdout(&out));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(stdout(&out).contains("check passed"));
        assert!(stdout(&out).contains("closed loop: the scheduling core with 7 shard(s)"));
        // 4 arithmetic rows, then one closed-loop row per direction and size.
        assert!(stdout(&out).matches(" ok\n").count() > 4 + 2 * 10);
        assert!(!stdout(&out).contains("FAIL"));
    }
}

#[test]
fn check_drives_the_scheduler_for_every_size_shards_and_groups() {
    for groups in ["1", "4"] {
        let out = ioinfo(&[
            "--io-properties",
            ARRAY,
            "--check",
            "--smp",
            "192",
            "--num-io-groups",
            groups,
            "--output-format",
            "json",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(v["shards"], 192);
        let rows = v["closed_loop"].as_array().unwrap();
        let sizes: Vec<u64> = rows
            .iter()
            .filter(|r| r["direction"] == "read")
            .map(|r| r["request_size"].as_u64().unwrap())
            .collect();
        assert_eq!(sizes.first(), Some(&512));
        assert_eq!(
            sizes.last().copied(),
            Some(max_read(&["--smp", "192", "--num-io-groups", groups])),
            "up to the maximum read length"
        );
        for r in rows {
            let (delivered, model) = (
                r["delivered_iops"].as_f64().unwrap(),
                r["model_iops"].as_f64().unwrap(),
            );
            assert!(delivered >= 0.99 * model, "{groups} group(s): {r}");
            assert_eq!(r["ok"], true);
        }
    }
}

/// The maximum read length ioinfo prints for the array with `args`.
fn max_read(args: &[&str]) -> u64 {
    let mut all = vec!["--io-properties", ARRAY, "--output-format", "json"];
    all.extend_from_slice(args);
    let out = ioinfo(&all);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["disk_read_max_length"].as_u64().unwrap()
}

#[test]
fn the_latency_goal_printed_is_the_one_the_queue_uses() {
    // A slow disk: a 64 KiB request costs 5.3125 ms, so the bucket holds that much and the
    // queue's goal is 5.3125 ms, not the configured 0.75 (the reference prints the same).
    let out = ioinfo(&[
        "--io-properties",
        "{disks: [{mountpoint: /, read_iops: 200, read_bandwidth: 200M, write_iops: 200, write_bandwidth: 200M}]}",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("io_latency_goal_ms: 5.3125\n"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("5.31 ms latency goal"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_fails_when_the_tolerance_cannot_hold() {
    let out = ioinfo(&[
        "--io-properties",
        VECTOR,
        "--check",
        "--tolerance",
        "0.0001",
    ]);
    println!("{}", stdout(&out));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("FAIL"));
    assert!(stdout(&out).contains("check FAILED"));
}

#[test]
fn check_json() {
    let out = ioinfo(&[
        "--io-properties",
        ARRAY,
        "--check",
        "--output-format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["pass"], true);
    assert_eq!(v["rows"].as_array().unwrap().len(), 4);
    assert_eq!(v["rows"][0]["quantity"], "read_iops");
}

#[test]
fn check_without_properties_is_an_error() {
    let out = ioinfo(&["--check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--check needs"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn json_output_parses_and_matches_yaml() {
    let out = ioinfo(&[
        "--io-properties",
        VECTOR,
        "-c",
        "7",
        "--output-format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["disk_read_max_length"], 1048576);
    assert_eq!(v["disk_write_max_length"], 524288);
    assert_eq!(v["io_latency_goal_ms"], 0.75);
    assert_eq!(v["io_queue"]["id"], 1);
    assert_eq!(v["io_queue"]["blocks_count_rate"], 385639968u64);
    assert_eq!(v["fair_queue"]["capacities"]["4096"]["read"], 121232);
    assert_eq!(v["fair_queue"]["capacities"]["131072"]["write"], 2075671);
    assert_eq!(v["fair_queue"]["per_tick_grab_threshold"], 1797558);
    assert_eq!(v["fair_queue"]["token_bucket"]["threshold"], 82251);
    assert_eq!(v["device"], device(Path::new(".")));
}

#[test]
fn rate_factor_is_applied_by_the_reader() {
    let props =
        "disks:\n  - mountpoint: /\n    read_iops: 437572\n    read_bandwidth: 3085119744\n    \
                 write_iops: 242998\n    write_bandwidth: 2261734144\n    rate_factor: 0.5\n";
    let out = ioinfo(&["--io-properties", props, "-c", "7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("req_count_rate: 28004608\n"), "{text}");
    assert!(text.contains("blocks_count_rate: 385639968\n"), "{text}");
}

/// Each bad input exits 2 with an error naming the file (and what is wrong); nothing on stdout.
#[test]
fn bad_files_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "zero.yaml",
            "disks:\n  - mountpoint: /\n    read_iops: 0\n    read_bandwidth: 1\n    write_iops: 1\n    write_bandwidth: 1\n",
            "read_iops",
        ),
        (
            "section.yaml",
            "disks:\n  - mountpoint: /\n    read_iops: 1\n    read_bandwidth: 1M\n    write_iops: 1\n    write_bandwidth: 1M\nfoo: 1\n",
            "foo",
        ),
        ("malformed.yaml", "disks: [\n  - {mountpoint: /", "malformed"),
        (
            "missing_key.yaml",
            "disks:\n  - mountpoint: /\n    read_iops: 1\n    read_bandwidth: 1\n    write_iops: 1\n",
            "write_bandwidth",
        ),
        (
            "slow.yaml",
            "disks:\n  - mountpoint: /\n    read_iops: 1\n    read_bandwidth: 3\n    write_iops: 1\n    write_bandwidth: 3\n",
            "512-byte",
        ),
        (
            "elsewhere.yaml",
            "disks:\n  - mountpoint: /no/such/mount\n    read_iops: 1\n    read_bandwidth: 1M\n    write_iops: 1\n    write_bandwidth: 1M\n",
            "/no/such/mount",
        ),
    ];
    for (name, text, what) in cases {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        let out = ioinfo(&[
            "--io-properties-file",
            path.to_str().unwrap(),
            "--directory",
            "/",
        ]);
        let err = stderr(&out);
        println!("{name}: {err}");
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(path.to_str().unwrap()), "{name}: {err}");
        assert!(err.contains(what), "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name}");
    }
    // The no-entry message also names the directory.
    let path = dir.path().join("elsewhere.yaml");
    let out = ioinfo(&[
        "--io-properties-file",
        path.to_str().unwrap(),
        "--directory",
        "/tmp",
    ]);
    let canonical = Path::new("/tmp").canonicalize().unwrap();
    assert!(
        stderr(&out).contains(canonical.to_str().unwrap()),
        "{}",
        stderr(&out)
    );

    let missing = dir.path().join("missing.yaml");
    let out = ioinfo(&["--io-properties-file", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(missing.to_str().unwrap()),
        "{}",
        stderr(&out)
    );

    let out = ioinfo(&["--directory", "/no/such/dir"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/no/such/dir"), "{}", stderr(&out));

    let out = ioinfo(&["--io-properties", "disks: [{mountpoint: /, read_iops: 1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("<inline>"), "{}", stderr(&out));
}

#[test]
fn bad_options_exit_2() {
    for args in [
        &["--max-reqsize", "100"][..],
        &["--io-latency-goal-ms", "-1"],
        &["--num-io-groups", "0"],
        &["--tolerance", "x"],
        &["--output-format", "toml"],
    ] {
        let out = ioinfo(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// Issue 9: ranges are stated in `--help`, values outside them exit 2 at once, and more IO
/// groups than shards get a warning.
#[test]
fn issue9_ranges_are_stated_and_enforced() {
    let text = test_support::help(env!("CARGO_BIN_EXE_ioinfo"));
    test_support::assert_mentions(
        &text,
        &[
            "512 to 1 GiB",
            "1 to 1024",
            "from 2^-24",
            "percent (0 to 100)",
        ],
    );
    for args in [
        &["--smp", "100000", "--check"][..],
        &["--num-io-groups", "100000"],
        &["--max-reqsize", "2G"],
        &["--tolerance", "1000"],
        &["--io-latency-goal-ms", "NaN"],
    ] {
        let out = ioinfo(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let out = ioinfo(&[
        "--io-properties",
        VECTOR,
        "--smp",
        "2",
        "--num-io-groups",
        "4",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--num-io-groups 4 is above the shard count 2"),
        "{}",
        stderr(&out)
    );
}
