//! The built `iotune` binary on real directories.

use std::path::Path;
use std::time::Duration;

use e2e::{disk_dir, entries, run, Running};
use scheduler::io_properties::IoProperties;

/// Short-run arguments: 4 s base duration, 2 shards, 128 MiB per shard, 1 s ramps.
fn quick(dir: &Path) -> Vec<String> {
    [
        "--evaluation-directory",
        dir.to_str().unwrap(),
        "--duration",
        "4",
        "--smp",
        "2",
        "--file-size",
        "128M",
        "--ramp-time",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A successful iotune run with `args` (see [`e2e::iotune_reported`]).
fn run_reported(args: &[String]) -> e2e::Reported {
    let done = e2e::iotune_reported(args);
    assert!(
        done.out.status.success(),
        "exit {:?}\n{}",
        done.out.status,
        done.stderr
    );
    done
}

/// `on_disk`: the directory is on a block device (its requests show in the disk's counters).
fn check_full_run(eval: &Path, engine: &str, on_disk: bool) {
    let out_dir = tempfile::tempdir().unwrap();
    let props = out_dir.path().join("io-properties.yaml");
    let report = out_dir.path().join("report.json");
    let out = run(e2e::iotune().args(quick(eval)).args([
        "--engine",
        engine,
        "--properties-file",
        props.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{engine}: exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    for line in [
        "Starting Evaluation",
        "Measuring sequential write bandwidth: ",
        "Measuring sequential read bandwidth: ",
        "Measuring random write IOPS: ",
        "Measuring random read IOPS: ",
        "Writing result to ",
    ] {
        assert!(
            stdout.contains(line),
            "{engine}: stdout lacks {line:?}:\n{stdout}"
        );
    }

    let (p, _) = IoProperties::from_file(&props).expect("valid io-properties");
    assert_eq!(p.disks.len(), 1);
    let d = &p.disks[0];
    let mountpoint = scheduler::topology::mountpoint_of(eval).unwrap();
    assert_eq!(d.mountpoints, vec![mountpoint.clone()]);
    for (name, v) in [
        ("read_iops", d.read_iops),
        ("read_bandwidth", d.read_bandwidth),
        ("write_iops", d.write_iops),
        ("write_bandwidth", d.write_bandwidth),
    ] {
        assert!(v > 0, "{engine}: {name} is {v}");
    }
    assert!(
        d.read_bandwidth > 1 << 20 && d.write_bandwidth > 1 << 20,
        "{engine}: implausible bandwidth {d:?}"
    );
    assert!(
        d.read_iops > 100 && d.write_iops > 100,
        "{engine}: implausible IOPS {d:?}"
    );

    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["status"], "complete");
    assert_eq!(r["engine"], engine);
    assert_eq!(r["shards"], 2);
    let disk = &r["disks"][0];
    assert_eq!(disk["mountpoint"], mountpoint.to_str().unwrap());
    let res = &disk["results"];
    assert_eq!(res["read_iops"], d.read_iops);
    assert_eq!(res["write_bandwidth"], d.write_bandwidth);
    assert!(disk["read_working_set_bytes"].as_u64().unwrap() > 0);
    assert!(disk["read_working_set_bytes"].as_u64().unwrap() <= (2 * 128) << 20);
    let phases = disk["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names[..2],
        ["sequential write", "sequential read"],
        "{names:?}"
    );
    assert_eq!(
        phases[0]["ramp_s"], 3.0,
        "the warm-up is the sequential write's dropped ramp"
    );
    for ph in phases {
        let shards = ph["per_shard"].as_array().unwrap();
        assert_eq!(shards.len(), 2, "{}", ph["name"]);
        let total: f64 = shards.iter().map(|s| s["iops"].as_f64().unwrap()).sum();
        assert!((total - ph["total"]["iops"].as_f64().unwrap()).abs() < 1e-6 * total.max(1.0));
        assert!(
            !shards[0]["samples"].as_array().unwrap().is_empty(),
            "{}: no per-second samples",
            ph["name"]
        );
        assert!(
            ph["total"]["latency"]["p99_us"].as_f64().unwrap()
                >= ph["total"]["latency"]["p50_us"].as_f64().unwrap()
        );
        assert!(
            ph["drift"].is_f64() && ph["drift_t"].is_f64(),
            "{}: no trend",
            ph["name"]
        );
        // O_DIRECT: every measured byte went to the disk, which counted it (ramp included).
        let dev = ph["device_requests"].as_array().unwrap();
        if on_disk {
            let measured =
                ph["total"]["requests"].as_u64().unwrap() * ph["request_size"].as_u64().unwrap();
            let sent: u64 = dev.iter().map(|d| d["bytes"].as_u64().unwrap()).sum();
            assert!(
                sent >= measured,
                "{}: disk counted {sent} B, iotune measured {measured} B",
                ph["name"]
            );
            // Never a cache: the shared work disk may serve more (other I/O), never less.
            let served = &ph["served"];
            assert!(
                ["served", "more"].contains(&served["verdict"].as_str().unwrap()),
                "{}: {served}",
                ph["name"]
            );
        } else {
            assert!(dev.is_empty(), "{}: no disk, yet {dev:?}", ph["name"]);
            assert_eq!(ph["served"]["verdict"], "unverified", "{}", ph["name"]);
        }
    }
    let sw = phases
        .iter()
        .find(|p| p["name"] == "sequential write")
        .unwrap();
    assert_eq!(
        sw["total"]["bandwidth"].as_f64().unwrap().round() as u64,
        d.write_bandwidth
    );
    e2e::assert_empty(eval);
}

#[test]
fn full_run_on_the_work_disk_with_both_engines() {
    let _serial = e2e::serial();
    let eval = disk_dir();
    for engine in ["uring", "threads"] {
        check_full_run(eval.path(), engine, true);
    }
}

#[test]
fn full_run_on_tmpfs_without_a_block_device() {
    let _serial = e2e::serial();
    if !Path::new("/dev/shm").is_dir() {
        println!("skipped: /dev/shm does not exist on this machine");
        return;
    }
    let eval = tempfile::tempdir_in("/dev/shm").unwrap();
    check_full_run(eval.path(), "uring", false);
}

/// Runs iotune with `args` and expects a clear error: non-zero exit, `needle` on stderr, no
/// properties file.
fn expect_error(args: &[&str], needle: &str) {
    let out_dir = tempfile::tempdir().unwrap();
    let props = out_dir.path().join("p.yaml");
    let out = run(e2e::iotune()
        .args(args)
        .args(["--properties-file", props.to_str().unwrap()]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(
        stderr.contains(needle),
        "{args:?}: stderr lacks {needle:?}:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    assert!(!props.exists(), "{args:?} wrote a properties file");
    e2e::assert_empty(out_dir.path());
}

#[test]
fn bad_input_is_a_clear_error() {
    // Some of these measure before they fail: one iotune at a time per disk.
    let _serial = e2e::serial();
    let eval = disk_dir();
    let e = eval.path().to_str().unwrap();
    let file = eval.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let f = file.to_str().unwrap();
    expect_error(
        &["--evaluation-directory", "/nonexistent/iotune"],
        "evaluation directory /nonexistent/iotune cannot be used",
    );
    expect_error(&["--evaluation-directory", f], "is not a directory");
    expect_error(
        &["--evaluation-directory", e, "--duration", "0"],
        "invalid value '0' for '--duration <SECS>'",
    );
    expect_error(
        &["--evaluation-directory", e, "--saturation", "sideways"],
        "sideways",
    );
    expect_error(
        &[
            "--evaluation-directory",
            e,
            "--get-best-iops-with-buffer-sizes",
            "4k,8k",
            "--random-read-io-buffer-size",
            "4k",
        ],
        "conflicts",
    );
    expect_error(
        &[
            "--evaluation-directory",
            e,
            "--random-write-io-buffer-size",
            "100",
        ],
        "multiple of 512",
    );
    expect_error(
        &[
            "--evaluation-directory",
            e,
            "--file-size",
            "100T",
            "--duration",
            "1",
        ],
        "lower --file-size",
    );
    let out = run(e2e::iotune().args([
        "--evaluation-directory",
        e,
        "--options-file",
        "/tmp/iotune-e2e-x.conf",
    ]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--options-file needs --properties-file"));
    assert!(!Path::new("/tmp/iotune-e2e-x.conf").exists());
    std::fs::remove_file(&file).unwrap();
    // An output path in a missing directory fails before measuring.
    let out = run(e2e::iotune()
        .args(quick(eval.path()))
        .args(["--properties-file", "/nonexistent/dir/p.yaml"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Starting Evaluation"));
    assert!(entries(eval.path()).is_empty());
}

#[test]
fn ctrl_c_leaves_nothing_behind() {
    // One iotune at a time per disk (a second would be refused).
    let _serial = e2e::serial();
    let eval = disk_dir();
    let out_dir = tempfile::tempdir().unwrap();
    let props = out_dir.path().join("p.yaml");
    let mut child = Running::spawn(
        e2e::iotune()
            .args([
                "--evaluation-directory",
                eval.path().to_str().unwrap(),
                "--duration",
                "60",
                "--smp",
                "2",
                "--file-size",
                "64M",
            ])
            .args(["--properties-file", props.to_str().unwrap()]),
    );
    // Interrupt once it measures (its first line), however long the setup took.
    assert!(
        child.wait_for_line("Warming up", Duration::from_secs(60)),
        "iotune did not start measuring: {}",
        child.stderr()
    );
    let (status, took) = child.signal_and_wait(libc::SIGINT, Duration::from_secs(10));
    let stderr = child.stderr();
    assert_eq!(status.code(), Some(130), "after {took:?}: {stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!props.exists());
    e2e::assert_empty(eval.path());
    assert!(entries(out_dir.path()).is_empty());
}

#[test]
fn fs_check_and_options_file() {
    let _serial = e2e::serial();
    let eval = disk_dir();
    let out = e2e::iotune_fs_check(eval.path(), &["--smp", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("O_DIRECT supported"));
    assert!(entries(eval.path()).is_empty());

    let out_dir = tempfile::tempdir().unwrap();
    let props = out_dir.path().join("p.yaml");
    let conf = out_dir.path().join("io.conf");
    let out = run(e2e::iotune().args(quick(eval.path())).args([
        "--properties-file",
        props.to_str().unwrap(),
        "--options-file",
        conf.to_str().unwrap(),
        "--format",
        "envfile",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        format!("SEASTAR_IO=\"--io-properties-file={}\"\n", props.display())
    );
}

#[test]
fn optional_probes_write_optional_keys() {
    let _serial = e2e::serial();
    // tmpfs when available (fast), else the work disk.
    let eval = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        disk_dir()
    };
    let mut args = quick(eval.path());
    let ramp = args.iter().position(|a| a == "--ramp-time").unwrap();
    args[ramp + 1] = "0.5".into();
    let mut probes = args.clone();
    probes.extend(["--saturation", "both", "--detect-physical-block-size"].map(String::from));
    let done = run_reported(&probes);
    let (r, props) = (&done.report, &done.props);
    let text = std::fs::read_to_string(props).unwrap();
    let (p, _) = IoProperties::from_file(props).unwrap();
    let d = &p.disks[0];
    for (name, v) in [
        ("read_saturation_length", d.read_saturation_length),
        ("write_saturation_length", d.write_saturation_length),
        ("physical_block_size", d.physical_block_size),
    ] {
        let v = v.unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        assert!(
            v.is_power_of_two() && (512..=1 << 20).contains(&v),
            "{name} = {v}"
        );
    }
    // Key order as the reference writer: the four rates, then the optional keys.
    let keys: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.trim_start_matches([' ', '-']).split(':').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "mountpoint",
            "read_iops",
            "read_bandwidth",
            "write_iops",
            "write_bandwidth",
            "read_saturation_length",
            "write_saturation_length",
            "physical_block_size"
        ]
    );
    let names: Vec<String> = r["disks"][0]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    // Probes start at the smallest request the filesystem does directly: the statx DIO
    // alignment, or its block size when statx does not say (smaller ones may be cached).
    let topo = &r["disks"][0]["topology"];
    let first = topo["dio_offset_align"]
        .as_u64()
        .unwrap_or_else(|| topo["fs_block_size"].as_u64().unwrap())
        .max(512);
    let probes: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("block size probe"))
        .collect();
    assert_eq!(
        probes.first().map(|n| n.as_str()),
        Some(format!("block size probe {first}").as_str()),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("saturation read")),
        "{names:?}"
    );
    // The random write used the detected size.
    assert!(
        names.contains(&format!("random write {}", d.physical_block_size.unwrap())),
        "{names:?}"
    );

    let out_dir = tempfile::tempdir().unwrap();
    let report = out_dir.path().join("r.json");
    let out = run(e2e::iotune().args(&args).args([
        "--get-best-iops-with-buffer-sizes",
        "4k,8k",
        "--report",
        report.to_str().unwrap(),
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let phases = r["disks"][0]["phases"].as_array().unwrap();
    for name in [
        "random write 4096",
        "random write 8192",
        "random read 4096",
        "random read 8192",
    ] {
        assert!(phases.iter().any(|p| p["name"] == name), "{name} missing");
    }
    let best = |dir: &str| {
        phases
            .iter()
            .filter(|p| {
                p["name"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("random {dir}"))
            })
            .map(|p| p["total"]["iops"].as_f64().unwrap().round() as u64)
            .max()
            .unwrap()
    };
    assert_eq!(r["disks"][0]["results"]["write_iops"], best("write"));
    assert_eq!(r["disks"][0]["results"]["read_iops"], best("read"));
    // Without --properties-file the YAML goes to stdout.
    assert!(String::from_utf8_lossy(&out.stdout).contains("disks:\n  - mountpoint: "));
    assert!(entries(eval.path()).is_empty());
}

#[test]
fn sustained_mode_measures_a_steady_trailing_window() {
    let _serial = e2e::serial();
    let eval = disk_dir();
    let mut args = quick(eval.path());
    args.extend(["--sustained", "--sustained-max", "12"].map(String::from));
    let done = run_reported(&args);
    let (out, r, props) = (&done.out, &done.report, &done.props);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let phases = r["disks"][0]["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 4, "the four measured phases");
    for ph in phases {
        let name = ph["name"].as_str().unwrap();
        let s = &ph["sustained"];
        let window = s["window_s"].as_f64().unwrap();
        // The usual windows at --duration 4 are under 5 s: the steady window is 5 s.
        assert_eq!(window, 5.0, "{name}");
        assert_eq!(ph["measure_s"].as_f64().unwrap(), window, "{name}");
        for shard in ph["per_shard"].as_array().unwrap() {
            assert_eq!(shard["samples"].as_array().unwrap().len(), 5, "{name}");
        }
        let settling = s["settling_s"].as_f64().unwrap();
        assert!(
            settling + window <= 12.0 + 1.0,
            "{name}: measured past --sustained-max"
        );
        if s["steady"].as_bool().unwrap() {
            assert!(
                stderr.contains(&format!("{name}: steady after {settling:.0} s")),
                "{name}: no steady line:\n{stderr}"
            );
            // The monitor judged per-tick rates; the exact seconds differ a little.
            assert!(ph["drift"].as_f64().unwrap().abs() <= 0.06, "{name}: {ph}");
        } else {
            assert!(
                stderr.contains(&format!("WARN: {name}: no steady state")),
                "{name}: no warning:\n{stderr}"
            );
        }
    }
    let (p, _) = IoProperties::from_file(props).expect("valid io-properties");
    assert_eq!(
        p.disks[0].write_bandwidth,
        phases[0]["total"]["bandwidth"].as_f64().unwrap().round() as u64,
        "the figure is the steady window's"
    );
    e2e::assert_empty(eval.path());
    // The bound needs the mode.
    expect_error(
        &[
            "--evaluation-directory",
            eval.path().to_str().unwrap(),
            "--sustained-max",
            "10",
        ],
        "--sustained",
    );
}

#[test]
fn depth_sweep_reports_a_knee_and_obeys_littles_law() {
    let _serial = e2e::serial();
    let eval = disk_dir();
    let mut args = quick(eval.path());
    args.extend(["--depth-sweep", "read", "--random-read-io-depth", "16"].map(String::from));
    let done = run_reported(&args);
    let (out, r, props) = (&done.out, &done.report, &done.props);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Measuring random read knee: "), "{stdout}");
    let sweeps = r["disks"][0]["depth_sweeps"].as_array().unwrap();
    assert_eq!(sweeps.len(), 1);
    let s = &sweeps[0];
    assert_eq!(s["direction"], "read");
    let points = s["points"].as_array().unwrap();
    let depths: Vec<u64> = points
        .iter()
        .map(|p| p["in_flight_per_shard"].as_u64().unwrap())
        .collect();
    assert_eq!(
        depths,
        [1, 2, 4, 8, 16, 32],
        "up to twice the random read depth"
    );
    let knee = s["knee_in_flight_per_shard"].as_u64().unwrap();
    assert!(depths.contains(&knee));
    assert_eq!(s["knee_in_flight"].as_u64().unwrap(), knee * 2);
    let best = points
        .iter()
        .map(|p| p["iops"].as_f64().unwrap())
        .fold(0.0, f64::max);
    for p in points {
        let depth = p["in_flight_per_shard"].as_u64().unwrap() as f64 * 2.0;
        let held = p["littles_law_in_flight"].as_f64().unwrap();
        // A closed loop keeps its depth in flight: IOPS x mean latency must give it back.
        assert!(
            held <= depth * 1.05 && held >= depth * 0.7,
            "{p}: Little's law gives {held} for {depth}"
        );
        if p["in_flight_per_shard"].as_u64().unwrap() < knee {
            assert!(
                p["iops"].as_f64().unwrap() < 0.95 * best,
                "{p} is below the knee"
            );
        }
    }
    // The sweep informs; io-properties keeps the four figures only.
    let (p, _) = IoProperties::from_file(props).expect("valid io-properties");
    assert!(p.disks[0].read_saturation_length.is_none());
    e2e::assert_empty(eval.path());
}
