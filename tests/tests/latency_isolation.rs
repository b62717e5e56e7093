//! The storage-engine example (`scheduler/examples/storage_engine.rs`) on a device whose
//! capacity is known — a blkio throttle, with io-properties equal to its limits: a 4 KiB
//! random-read query class at 1000 shares beside a 128 KiB sequential-read compaction class at
//! 100 shares. With the scheduler, the query class's p99 latency is at most a tenth of its p99
//! without, and the classes split the model's disk time 10:1 as their shares ask.
//!
//! Both are judged within one test on one machine (ratios, not rates), so other load on the
//! disk shifts both sides alike. Needs root and cgroup v1 blkio; skips with the reason
//! elsewhere.

use std::path::Path;
use std::process::Command;

use e2e::{disk_dir, entries, example, run, serial, throttled_disk, Throttle, KNOWN};

const MIB: u64 = 1 << 20;

/// Runs the example inside `throttle` and returns its JSON report.
fn engine(throttle: &Throttle, dir: &Path, extra: &[&str]) -> serde_json::Value {
    let out = run(Command::new(example("storage_engine"))
        .args([
            "--dir",
            dir.to_str().unwrap(),
            "--duration",
            "8",
            "--file-size",
            "128M",
            "--compaction",
            "read",
            "--cgroup",
            throttle.dir.to_str().unwrap(),
            "--json",
        ])
        .args(extra));
    assert!(
        out.status.success(),
        "storage_engine {extra:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

fn class<'a>(r: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    r["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

#[test]
fn the_scheduler_isolates_queries_from_compaction_on_a_throttled_disk() {
    let _serial = serial();
    let dir = disk_dir();
    let Some(throttle) = throttled_disk(dir.path(), &KNOWN) else {
        return;
    };
    let conf = tempfile::tempdir().unwrap();
    let props = conf.path().join("io-properties.yaml");
    std::fs::write(&props, KNOWN.io_properties("/")).unwrap();
    let props = props.to_str().unwrap();

    // Latency: 8 queries in flight, with the scheduler and without.
    let on = engine(
        &throttle,
        dir.path(),
        &["--io-properties-file", props, "--query-depth", "8"],
    );
    let off = engine(
        &throttle,
        dir.path(),
        &["--no-scheduler", "--query-depth", "8"],
    );
    // Shares: with 32 queries in flight the query class always has queued work, even when
    // other processes keep the CPU busy and the engine's tasks come back late; the split of
    // disk time is then the shares'. (With fewer it sometimes idles, and compaction, always
    // backlogged, takes the gap.)
    let split = engine(
        &throttle,
        dir.path(),
        &["--io-properties-file", props, "--query-depth", "32"],
    );
    drop(throttle);

    let p99 = |r: &serde_json::Value| class(r, "query")["latency_us"]["p99"].as_f64().unwrap();
    let (with, without) = (p99(&on), p99(&off));
    println!(
        "query p99: {:.2} ms with the scheduler, {:.2} ms without ({:.3} of it)",
        with / 1000.0,
        without / 1000.0,
        with / without
    );
    for r in [&on, &off, &split] {
        for c in ["query", "compaction"] {
            let c = class(r, c);
            println!(
                "  scheduler {}: {} {:.0} IOPS, {:.1} MiB/s, p50 {:.2} ms, p99 {:.2} ms, disk time {}",
                r["scheduler"],
                c["name"],
                c["iops"].as_f64().unwrap(),
                c["bandwidth_bytes_per_sec"].as_f64().unwrap() / MIB as f64,
                c["latency_us"]["p50"].as_f64().unwrap() / 1000.0,
                c["latency_us"]["p99"].as_f64().unwrap() / 1000.0,
                c["consumption_sec"]
            );
        }
    }
    let disk_time = |c: &str| class(&split, c)["consumption_sec"].as_f64().unwrap();
    let ratio = disk_time("query") / disk_time("compaction");
    println!("disk time query : compaction = {ratio:.3} (shares 1000 : 100)");
    assert!(class(&off, "query")["iops"].as_f64().unwrap() > 0.0);
    assert!(
        with <= without / 10.0,
        "query p99 {with} us with the scheduler, {without} us without: not a tenth"
    );
    assert!(
        (ratio / 10.0 - 1.0).abs() <= 0.05,
        "disk time ratio {ratio}"
    );
    assert!(entries(dir.path()).is_empty(), "data files left behind");
}
