//! Fidelity against a device whose truth is known: iotune inside a cgroup v1 blkio throttle
//! must measure the configured limits within 1% (fio manages 0.1%; the reference iotune
//! overestimates by up to ~5%). See shared/reference/test-environment.md.

use std::process::Command;

use e2e::{bin, disk_dir, entries, run, throttled_disk, Limits, KNOWN};
use scheduler::io_properties::IoProperties;
use scheduler::topology::Topology;

/// One calibration inside the throttle: per figure, (name, measured, truth).
fn calibrate(eval: &std::path::Path) -> Option<Vec<(&'static str, u64, u64)>> {
    let throttle = throttled_disk(eval, &KNOWN)?;
    let Limits {
        read_bps,
        write_bps,
        read_iops,
        write_iops,
    } = KNOWN;
    let out_dir = tempfile::tempdir().unwrap();
    let props = out_dir.path().join("p.yaml");
    let script = throttle.run_inside_script();
    let out = run(Command::new("sh")
        .env(e2e::IOTUNE_LOCK_DIR, e2e::iotune_lock_dir())
        .args(["-c", &script, "sh"])
        .arg(bin("iotune"))
        .args([
            "--evaluation-directory",
            eval.to_str().unwrap(),
            "--duration",
            "30",
            "--ramp-time",
            "2",
            "--smp",
            "2",
            "--file-size",
            "256M",
            "--properties-file",
            props.to_str().unwrap(),
        ]));
    drop(throttle);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (p, _) = IoProperties::from_file(&props).unwrap();
    let d = &p.disks[0];
    // Random requests are 4096 bytes here (the disk's physical block): min(iops, bps / 4096).
    let rand_size = Topology::for_directory(eval).unwrap().physical_block_size();
    Some(vec![
        ("write_bandwidth", d.write_bandwidth, write_bps),
        ("read_bandwidth", d.read_bandwidth, read_bps),
        (
            "write_iops",
            d.write_iops,
            write_iops.min(write_bps / rand_size),
        ),
        (
            "read_iops",
            d.read_iops,
            read_iops.min(read_bps / rand_size),
        ),
    ])
}

/// A figure above the throttle's truth by more than 1% fails at once: nothing on the machine
/// can make the throttle allow more. One below it may be the shared disk under the throttle
/// being busy with other machines' work (read IOPS 2698 of 3000 was seen under load): the
/// calibration is repeated once, and the second must be within 1%.
#[test]
fn throttled_device_truth_within_one_percent() {
    let eval = disk_dir();
    for attempt in 1..=2 {
        let Some(truth) = calibrate(eval.path()) else {
            return;
        };
        let (mut above, mut below) = (Vec::new(), Vec::new());
        for (name, got, want) in truth {
            let err = (got as f64 - want as f64) / want as f64;
            println!(
                "attempt {attempt}: {name}: measured {got}, throttle allows {want}, error {:+.3}%",
                err * 100.0
            );
            let line = format!("{name} off by {:+.2}%", err * 100.0);
            if err > 0.01 {
                above.push(line);
            } else if err < -0.01 {
                below.push(line);
            }
        }
        assert!(entries(eval.path()).is_empty());
        assert!(above.is_empty(), "above the throttle's truth: {above:?}");
        if below.is_empty() {
            return;
        }
        assert!(attempt < 2, "below the throttle's truth twice: {below:?}");
        println!("below the truth ({below:?}): the shared disk was busy? calibrating again");
    }
}
