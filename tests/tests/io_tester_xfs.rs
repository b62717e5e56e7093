//! The seed's alignment pitfall, seen through io-tester's own trace: concurrent 128 KiB
//! append jobs on XFS with 1 KiB blocks start at disk offsets that are not 4 KiB aligned
//! (read-modify-write on a 4K drive); with 4 KiB blocks they always are. Loop devices report
//! 512-byte sectors, so the trace judges at 4 KiB through `--physical-block-size`, as on the
//! seed's 512e drives.
//!
//! Each job stops after 1000 requests: 2 shards x 4 jobs x 1000 x 128 KiB = 1 GiB, so a disk
//! fast enough to append more than 2 GiB within the second cannot fill the filesystem.

use std::process::Command;

use e2e::{bin, run, LoopFs};

const APPENDS: &str = "
- name: a0
  shards: all
  type: append
  shard_info: {parallelism: 1, reqsize: 128kB, limit: 1000}
- name: a1
  shards: all
  type: append
  shard_info: {parallelism: 1, reqsize: 128kB, limit: 1000}
- name: a2
  shards: all
  type: append
  shard_info: {parallelism: 1, reqsize: 128kB, limit: 1000}
- name: a3
  shards: all
  type: append
  shard_info: {parallelism: 1, reqsize: 128kB, limit: 1000}
";

/// Runs the append jobs on `fs` and returns (mapped requests, requests not 4 KiB aligned on
/// the disk, share of physical starts aligned to at least 4 KiB).
fn appends_on(fs: &LoopFs) -> (u64, f64, Vec<f64>) {
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("c.yaml");
    std::fs::write(&conf, APPENDS).unwrap();
    let out = run(Command::new(bin("io-tester")).args([
        "--storage",
        fs.mountpoint.to_str().unwrap(),
        "--conf",
        conf.to_str().unwrap(),
        "--duration",
        "1",
        "--smp",
        "2",
        "--physical-block-size",
        "4096",
        "--output-format",
        "json",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shards: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (mut traced, mut rmw) = (0u64, 0.0);
    let mut aligned_shares = Vec::new();
    for s in shards.as_array().unwrap() {
        for j in s["jobs"].as_array().unwrap() {
            let a = &j["alignment"];
            assert_eq!(a["physical_block_size"], 4096);
            let n = a["requests_traced"].as_u64().unwrap()
                - a["physical_start"]["unmapped"].as_u64().unwrap_or(0);
            traced += n;
            rmw += a["rmw_share"].as_f64().unwrap_or(0.0) * n as f64;
            let starts = a["physical_start"].as_object().unwrap();
            let (mut ok, mut all) = (0u64, 0u64);
            for (bucket, count) in starts {
                if bucket == "unmapped" {
                    continue;
                }
                let c = count.as_u64().unwrap();
                all += c;
                if !matches!(bucket.as_str(), "<512B" | "512B" | "1KiB" | "2KiB") {
                    ok += c;
                }
            }
            aligned_shares.push(ok as f64 / all.max(1) as f64);
            println!(
                "{}: {} traced, physical starts {:?}, rmw_share {}",
                j["name"], n, starts, a["rmw_share"]
            );
        }
    }
    (traced, rmw / traced.max(1) as f64, aligned_shares)
}

#[test]
fn one_kib_xfs_blocks_misalign_appends_four_kib_blocks_do_not() {
    let Some(small) = LoopFs::xfs(1024, 2 << 30) else {
        return;
    };
    let (n, rmw, _) = appends_on(&small);
    assert!(
        n > 100,
        "only {n} requests were placed on the 1 KiB-block XFS"
    );
    assert!(
        rmw > 0.0,
        "1 KiB-block XFS: every append was 4 KiB aligned (rmw share {rmw})"
    );
    drop(small);

    let Some(big) = LoopFs::xfs(4096, 2 << 30) else {
        return;
    };
    let (n, rmw, shares) = appends_on(&big);
    assert!(
        n > 100,
        "only {n} requests were placed on the 4 KiB-block XFS"
    );
    assert_eq!(
        rmw, 0.0,
        "4 KiB-block XFS: some appends were not 4 KiB aligned"
    );
    assert!(
        shares.iter().all(|&s| s == 1.0),
        "4 KiB-block XFS: starts below 4 KiB alignment: {shares:?}"
    );
}
