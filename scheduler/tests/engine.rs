//! The engine on real files: tmpfs (`/dev/shm`, O_DIRECT since Linux 6.6) and a temp dir on
//! the work disk, both back ends.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use scheduler::engine::{self, EngineKind, JobSpec, Pattern, ShardPlan, TestFile};
use scheduler::Direction;

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
        rate: None,
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

/// Submits and reaps until nothing is in flight; returns what the completions carried
/// (user_data, result), sorted.
fn complete_all(ring: &mut scheduler::engine::Ring) -> Vec<(u64, i32)> {
    let mut got = Vec::new();
    while ring.in_flight() > 0 {
        ring.submit_and_wait(1).unwrap();
        ring.reap(|c| got.push((c.user_data, c.result)));
    }
    got.sort_unstable();
    got
}

fn write_req(
    slot: usize,
    slot_offset: usize,
    len: u32,
    offset: u64,
    user_data: u64,
) -> scheduler::engine::RingRequest {
    scheduler::engine::RingRequest {
        direction: Direction::Write,
        file: 0,
        offset,
        slot,
        slot_offset,
        len,
        user_data,
        rw_flags: 0,
        iovecs: 0,
    }
}

/// The first two words of the 4 KiB block at `offset` of `f` (where `stamp` writes).
fn block_header(f: &TestFile, offset: u64) -> [u64; 2] {
    use std::os::unix::fs::FileExt;
    // A buffered read through /proc sees what the O_DIRECT writes put on the disk.
    let file = std::fs::File::open(format!("/proc/self/fd/{}", f.fd())).unwrap();
    let mut b = [0u8; 16];
    file.read_exact_at(&mut b, offset).unwrap();
    [
        u64::from_ne_bytes(b[..8].try_into().unwrap()),
        u64::from_ne_bytes(b[8..].try_into().unwrap()),
    ]
}

#[test]
fn stamp_refuses_a_slot_in_flight_and_reaches_the_disk() {
    use scheduler::engine::{EngineError, Ring};
    for (dir, _guard) in dirs() {
        for kind in kinds() {
            let f = TestFile::create_unlinked(&dir, MIB).unwrap();
            let mut ring = Ring::new(kind, 2, 8192, &[f.fd()]).unwrap();
            ring.stamp(0, 7, 0).unwrap();
            // Two parts of one split request on slot 0, a third request on slot 1; user_data
            // of any value comes back as given.
            ring.push(write_req(0, 0, 4096, 0, u64::MAX)).unwrap();
            ring.push(write_req(0, 4096, 4096, 4096, 1 << 63)).unwrap();
            assert_eq!(ring.slot_in_flight(0), 2, "{kind}");
            assert_eq!(ring.slot_in_flight(1), 0, "{kind}");
            let busy = ring.stamp(0, 8, 0);
            assert!(
                matches!(
                    busy,
                    Err(EngineError::SlotBusy {
                        slot: 0,
                        in_flight: 2
                    })
                ),
                "{kind}: {busy:?}"
            );
            // The idle slot may be stamped meanwhile, and a slot out of range is an error.
            ring.stamp(1, 9, 65536).unwrap();
            assert!(ring.stamp(2, 9, 0).is_err());
            ring.push(write_req(1, 0, 8192, 65536, 0)).unwrap();
            assert_eq!(
                complete_all(&mut ring),
                vec![(0, 8192), (1 << 63, 4096), (u64::MAX, 4096)],
                "{kind} {dir:?}"
            );
            assert_eq!(ring.slot_in_flight(0), 0);
            ring.stamp(0, 10, 0).unwrap();
            drop(ring);
            // What `stamp` wrote is what reached the file: (sequence ^ k, offset + block).
            let k = 0x9e37_79b9_7f4a_7c15u64;
            assert_eq!(block_header(&f, 0), [7 ^ k, 0], "{kind} {dir:?}");
            // The second part carried the slot's second block, stamped for offset 0 + 4096.
            assert_eq!(block_header(&f, 4096), [7 ^ k, 4096], "{kind} {dir:?}");
            assert_eq!(block_header(&f, 65536), [9 ^ k, 65536], "{kind} {dir:?}");
            assert_eq!(block_header(&f, 65536 + 4096), [9 ^ k, 65536 + 4096]);
        }
    }
    // The null ring keeps the same books.
    let mut ring = Ring::null(1, 4096, 1).unwrap();
    ring.push(write_req(0, 0, 4096, 0, 5)).unwrap();
    assert!(ring.stamp(0, 1, 0).is_err());
    assert_eq!(complete_all(&mut ring), vec![(5, 4096)]);
    ring.stamp(0, 1, 0).unwrap();
}

#[test]
fn more_requests_than_slots_keep_their_user_data() {
    use scheduler::engine::Ring;
    let d = tempfile::tempdir().unwrap();
    for kind in kinds() {
        let f = TestFile::create_unlinked(d.path(), MIB).unwrap();
        // One 64 KiB slot carrying 16 parts of 4 KiB at once: the ring's books grow past the
        // slot count.
        let mut ring = Ring::new(kind, 1, 64 << 10, &[f.fd()]).unwrap();
        for round in 0..3u64 {
            for i in 0..16u64 {
                let ud = (round << 32) | (i * 0x1111);
                ring.push(write_req(0, i as usize * 4096, 4096, i * 4096, ud))
                    .unwrap();
            }
            assert_eq!(ring.slot_in_flight(0), 16);
            let got = complete_all(&mut ring);
            let want: Vec<(u64, i32)> = (0..16)
                .map(|i| ((round << 32) | (i * 0x1111), 4096))
                .collect();
            assert_eq!(got, want, "{kind} round {round}");
            assert_eq!(ring.slot_in_flight(0), 0);
        }
        // A vectored request needs its slot to itself (its iovec array is the slot's).
        ring.push(write_req(0, 0, 4096, 0, 1)).unwrap();
        let mut v = write_req(0, 0, 8192, 0, 2);
        v.iovecs = 2;
        assert!(ring.push(v).is_err(), "{kind}");
        complete_all(&mut ring);
        ring.push(v).unwrap();
        assert_eq!(complete_all(&mut ring), vec![(2, 8192)], "{kind}");
    }
}

#[test]
fn buffer_alignment_follows_what_the_caller_asks() {
    use scheduler::engine::Ring;
    let d = tempfile::tempdir().unwrap();
    for kind in kinds() {
        let f = TestFile::create_unlinked(d.path(), MIB).unwrap();
        // Below a page: still page-aligned (a 4 KiB slot never straddles two pages).
        for (asked, at_least) in [
            (512, 4096),
            (4096, 4096),
            (8192, 8192),
            (65536, 65536),
            (3000, 4096),
        ] {
            let mut ring = Ring::builder(kind)
                .slots(2)
                .slot_size(64 << 10)
                .files(&[f.fd()])
                .buffer_align(asked)
                .build()
                .unwrap();
            assert!(
                ring.buffer_align() >= at_least,
                "{kind}: asked {asked}, got {}",
                ring.buffer_align()
            );
            assert!(ring.buffer_align().is_power_of_two());
            ring.push(write_req(1, 0, 64 << 10, 0, 3)).unwrap();
            assert_eq!(
                complete_all(&mut ring),
                vec![(3, 64 << 10)],
                "{kind} align {asked}"
            );
        }
        // Huge-page arenas stay 2 MiB-aligned whatever is asked.
        let ring = Ring::builder(kind)
            .slots(2)
            .slot_size(1 << 20)
            .buffer_align(512)
            .build()
            .unwrap();
        assert!(ring.buffer_align() >= 2 << 20);
        // An alignment no allocator can give is an error, not a panic.
        let err = Ring::builder(kind).buffer_align(usize::MAX).build();
        assert!(err.is_err(), "{kind}");
        let err = Ring::builder(kind).slot_size(0).build();
        assert!(err.is_err(), "{kind}");

        // The closed-loop jobs take the alignment from the file.
        let f = TestFile::create_unlinked(d.path(), 8 * MIB)
            .unwrap()
            .with_buffer_align(65536);
        let stop = AtomicBool::new(false);
        let mut j = job(Direction::Write, Pattern::Sequential, 64 << 10, 4, 8 * MIB);
        j.measure = Duration::from_millis(300);
        j.ramp = Duration::ZERO;
        let r = engine::run_shards(kind, &[ShardPlan { file: &f, job: j }], &stop, &mut |_| {})
            .unwrap()
            .remove(0);
        assert!(r.requests > 0, "{kind}");
        assert!(engine::fill(kind, &f, 0, MIB, 128 << 10, 2, &stop).is_ok());
    }
}

#[test]
fn closed_loop_writes_carry_unique_stamps() {
    let d = tempfile::tempdir().unwrap();
    for kind in kinds() {
        for (size, depth) in [(4096u64, 8usize), (1 << 20, 3)] {
            let f = TestFile::create_unlinked(d.path(), 16 * MIB).unwrap();
            let stop = AtomicBool::new(false);
            let mut j = job(Direction::Write, Pattern::Sequential, size, depth, 16 * MIB);
            j.ramp = Duration::ZERO;
            j.measure = Duration::from_millis(400);
            let r = engine::run_shards(kind, &[ShardPlan { file: &f, job: j }], &stop, &mut |_| {})
                .unwrap()
                .remove(0);
            assert!(r.requests > 0);
            // Every 4 KiB block written carries its own offset in its header, and no two
            // requests share a sequence number: nothing a device could compress or dedupe.
            let end = r.written_end.min(16 * MIB);
            let mut sequences = std::collections::HashSet::new();
            let mut block = 0;
            while block < end {
                let [seq, off] = block_header(&f, block);
                assert_eq!(off, block, "{kind} size {size}: block at {block}");
                if block % size == 0 {
                    sequences.insert(seq);
                }
                block += 4096;
            }
            let requests = end.div_ceil(size);
            assert!(
                sequences.len() as u64 == requests,
                "{kind} size {size}: {} sequence numbers for {requests} requests",
                sequences.len()
            );
        }
    }
}

/// A paced job issues requests on its schedule: never more than the rate allows (plus the
/// slots armed at the start), and, on a device far faster than the rate, not much fewer.
#[test]
fn paced_jobs_keep_their_rate() {
    for (dir, _guard) in dirs() {
        for kind in kinds() {
            let f = TestFile::create_unlinked(&dir, 8 * MIB).expect("test file");
            let stop = AtomicBool::new(false);
            for (rate, depth) in [(400.0, 4), (2000.0, 16)] {
                let mut j = job(Direction::Read, Pattern::Random, 4096, depth, 8 * MIB);
                j.ramp = Duration::ZERO;
                j.measure = Duration::from_secs(2);
                j.rate = Some(rate);
                let plans = [ShardPlan { file: &f, job: j }];
                let r = engine::run_shards(kind, &plans, &stop, &mut |_| {})
                    .expect("paced read")
                    .remove(0);
                let want = rate * 2.0;
                println!(
                    "{kind} {dir:?}: paced at {rate}/s x {depth}: {} requests in 2 s",
                    r.requests
                );
                assert!(
                    r.requests as f64 <= want + depth as f64 + 1.0,
                    "{kind} {dir:?}: {} requests, the rate allows {want}",
                    r.requests
                );
                assert!(
                    r.requests as f64 >= 0.8 * want,
                    "{kind} {dir:?}: only {} of {want} paced requests",
                    r.requests
                );
            }
        }
    }
}

#[test]
fn a_bad_rate_is_an_invalid_job() {
    let d = tempfile::tempdir().unwrap();
    let f = TestFile::create_unlinked(d.path(), MIB).unwrap();
    let stop = AtomicBool::new(false);
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let mut j = job(Direction::Read, Pattern::Random, 4096, 1, MIB);
        j.rate = Some(bad);
        let plans = [ShardPlan { file: &f, job: j }];
        let e = engine::run_shards(EngineKind::Threads, &plans, &stop, &mut |_| {})
            .expect_err("a bad rate was accepted");
        assert!(e.to_string().contains("paced rate"), "{e}");
    }
}
