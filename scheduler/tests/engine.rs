//! The engine on real files: tmpfs (`/dev/shm`, O_DIRECT since Linux 6.6) and a temp dir on
//! the work disk, both back ends.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use scheduler::engine::{self, Direction, EngineKind, JobSpec, Pattern, ShardPlan, TestFile};

const MIB: u64 = 1 << 20;

fn dirs() -> Vec<(PathBuf, tempfile::TempDir)> {
    let mut out = Vec::new();
    for base in ["/dev/shm", std::env::temp_dir().to_str().unwrap_or("/tmp")] {
        if !Path::new(base).is_dir() {
            println!("skipping {base}: not a directory on this machine");
            continue;
        }
        let d = tempfile::tempdir_in(base).expect("temp dir");
        out.push((d.path().to_path_buf(), d));
    }
    out
}

fn kinds() -> Vec<EngineKind> {
    match engine::probe_uring() {
        Ok(()) => vec![EngineKind::Uring, EngineKind::Threads],
        Err(e) => {
            println!("io_uring unavailable here ({e}); testing the threads engine only");
            vec![EngineKind::Threads]
        }
    }
}

fn job(direction: Direction, pattern: Pattern, size: u64, depth: usize, len: u64) -> JobSpec {
    JobSpec {
        direction,
        pattern,
        request_size: size,
        in_flight: depth,
        region_start: 0,
        region_len: len,
        sequential_start: 0,
        ramp: Duration::from_millis(200),
        measure: Duration::from_millis(1300),
    }
}

#[test]
fn write_then_read_on_real_files() {
    for (dir, _guard) in dirs() {
        for kind in kinds() {
            let f = TestFile::create_unlinked(&dir, 64 * MIB).expect("test file");
            assert_eq!(
                std::fs::read_dir(&dir).unwrap().count(),
                0,
                "test file must have no name"
            );
            let stop = AtomicBool::new(false);
            let plans = [ShardPlan {
                file: &f,
                job: job(
                    Direction::Write,
                    Pattern::Sequential,
                    128 << 10,
                    4,
                    64 * MIB,
                ),
            }];
            let w = engine::run_shards(kind, &plans, &stop, &mut |_| {})
                .expect("sequential write")
                .remove(0);
            assert!(w.requests > 0, "{kind} {dir:?}: no writes completed");
            assert_eq!(w.bytes, w.requests * (128 << 10));
            assert_eq!(w.samples.len(), 1, "one whole second in a 1.3 s window");
            assert!(w.samples[0].requests <= w.requests);
            assert!(w.written_end > 0 && w.written_end <= 64 * MIB);
            assert!(w.latency_ns.len() == w.requests);

            let region = w.written_end;
            let plans = [ShardPlan {
                file: &f,
                job: job(Direction::Read, Pattern::Random, 4096, 16, region),
            }];
            let r = engine::run_shards(kind, &plans, &stop, &mut |_| {})
                .expect("random read")
                .remove(0);
            assert!(
                r.requests > 100,
                "{kind} {dir:?}: only {} reads",
                r.requests
            );
            assert!(r.latency_ns.value_at_quantile(0.99) >= r.latency_ns.value_at_quantile(0.5));
            println!(
                "{kind} {dir:?}: seq write {:.0} MiB/s, rand read {:.0} IOPS",
                w.bandwidth() / MIB as f64,
                r.iops()
            );
        }
    }
}

#[test]
fn stop_flag_interrupts_and_drains() {
    let d = tempfile::tempdir().unwrap();
    for kind in kinds() {
        let f = TestFile::create_unlinked(d.path(), 8 * MIB).unwrap();
        let stop = AtomicBool::new(false);
        let mut j = job(Direction::Write, Pattern::Random, 4096, 8, 8 * MIB);
        j.measure = Duration::from_secs(30);
        let plans = [ShardPlan { file: &f, job: j }];
        let t = std::time::Instant::now();
        let res = engine::run_shards(kind, &plans, &stop, &mut |el| {
            if el > Duration::from_millis(300) {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
        assert!(
            matches!(res, Err(engine::EngineError::Interrupted)),
            "{kind}: {res:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn finishing_early_keeps_the_whole_seconds_measured() {
    let d = tempfile::tempdir().unwrap();
    for kind in kinds() {
        let f = TestFile::create_unlinked(d.path(), 8 * MIB).unwrap();
        let stop = AtomicBool::new(false);
        let mut j = job(Direction::Write, Pattern::Random, 4096, 8, 8 * MIB);
        j.ramp = Duration::from_millis(200);
        j.measure = Duration::from_secs(60);
        let plans = [
            ShardPlan {
                file: &f,
                job: j.clone(),
            },
            ShardPlan { file: &f, job: j },
        ];
        let t = std::time::Instant::now();
        let mut seen = 0;
        let res = engine::run_shards_until(kind, &plans, &stop, &mut |el, done| {
            assert!(done >= seen, "completions only grow");
            seen = done;
            el > Duration::from_millis(2700)
        })
        .unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{kind}: did not finish early"
        );
        assert!(seen > 0, "{kind}: the tick never saw a completion");
        for r in &res {
            // 2.7 s minus the 0.2 s ramp: two whole seconds (the partial third one is dropped).
            assert_eq!(r.measured, Duration::from_secs(2), "{kind}");
            assert_eq!(r.samples.len(), 2, "{kind}");
            assert_eq!(
                r.requests,
                r.samples.iter().map(|s| s.requests).sum::<u64>()
            );
            assert!(r.requests > 0 && r.iops() > 0.0);
            let mut last = r.clone();
            last.keep_last(1);
            assert_eq!(last.requests, r.samples[1].requests);
            assert_eq!(last.ramp_requests, r.ramp_requests + r.samples[0].requests);
            assert_eq!(last.measured, Duration::from_secs(1));
        }
    }
}

#[test]
fn reading_past_the_end_is_an_error_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    for kind in kinds() {
        let f = TestFile::create_unlinked(d.path(), MIB).unwrap();
        let stop = AtomicBool::new(false);
        let mut j = job(Direction::Read, Pattern::Sequential, 4096, 2, 2 * MIB);
        j.region_start = MIB;
        j.sequential_start = MIB;
        let err = engine::run_shards(kind, &[ShardPlan { file: &f, job: j }], &stop, &mut |_| {})
            .unwrap_err();
        assert!(err.to_string().contains("short read"), "{kind}: {err}");
    }
}

#[test]
fn context_switch_check_passes_on_ext4_and_tmpfs() {
    for (dir, _g) in dirs() {
        let f = TestFile::create_unlinked(&dir, 0).unwrap();
        if let Some(c) = engine::submission_check(EngineKind::Uring, &f, 200, 4096).unwrap() {
            let cs = c.context_switches_per_write;
            println!("{dir:?}: {cs:.3} voluntary context switches per submission, {:.0}% would have blocked", c.would_block_share * 100.0);
            assert!((0.0..=1.0).contains(&c.would_block_share));
            assert!(
                cs <= 0.1,
                "{dir:?}: submissions block ({cs} switches per write)"
            );
        }
    }
}

#[test]
fn vectored_requests_on_both_back_ends() {
    use scheduler::engine::{Ring, RingRequest};
    let d = tempfile::tempdir().unwrap();
    for kind in kinds() {
        let f = TestFile::create_unlinked(d.path(), MIB).unwrap();
        let mut ring = Ring::new(kind, 2, 64 << 10, &[f.fd()]).unwrap();
        for (i, direction) in [Direction::Write, Direction::Read].into_iter().enumerate() {
            let req = RingRequest {
                direction,
                file: 0,
                offset: 128 << 10,
                slot: i,
                slot_offset: 0,
                len: 64 << 10,
                user_data: 9,
                rw_flags: 0,
                iovecs: 8,
            };
            ring.push(req).unwrap();
            ring.submit_and_wait(1).unwrap();
            let mut got = Vec::new();
            while got.is_empty() {
                ring.submit_and_wait(1).unwrap();
                ring.reap(|c| got.push((c.user_data, c.result)));
            }
            assert_eq!(got, vec![(9, 64 << 10)], "{kind} {direction:?}");
        }
        // Pieces that are not 512-byte multiples are refused before reaching the kernel.
        let bad = RingRequest {
            direction: Direction::Read,
            file: 0,
            offset: 0,
            slot: 0,
            slot_offset: 0,
            len: 4096,
            user_data: 1,
            rw_flags: 0,
            iovecs: 3,
        };
        assert!(ring.push(bad).is_err());
    }
}
