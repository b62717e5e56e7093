//! The queue's Ring driver dispatching real requests on a real file (tmpfs with O_DIRECT, else
//! the work disk): shares, bandwidth limits, splitting, RWF_NOWAIT retries, and no cost when
//! unconfigured. The exact scheduling math is tested on a simulated clock (`tests/core.rs`,
//! `tests/sim.rs`); these check that the same holds when a real ring drives the core.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scheduler::cost_model::{CostConfig, CostModel};
use scheduler::engine::{self, EngineKind, JobSpec, Pattern, Ring, TestFile};
use scheduler::io_queue::{ClassConfig, ClassId, IoGroup};
use scheduler::ring_queue::{RingIo, RingQueue};
use scheduler::Direction;

// The tests compare throughputs: `serial` runs them one at a time, or on 2 cores they would
// measure each other.
use test_support::serial;

const KIB: u64 = 1024;
const MIB: u64 = 1 << 20;
const FILE: u64 = 64 * MIB;

fn base_dir() -> PathBuf {
    if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        println!("no /dev/shm: using the temp dir on the work disk");
        std::env::temp_dir()
    }
}

fn kind() -> EngineKind {
    match engine::probe_uring() {
        Ok(()) => EngineKind::Uring,
        Err(e) => {
            println!("io_uring unavailable ({e}); using the threads engine");
            EngineKind::Threads
        }
    }
}

/// A written test file.
fn written_file(dir: &std::path::Path) -> TestFile {
    let f = TestFile::create_unlinked(dir, FILE).unwrap();
    let job = JobSpec {
        direction: Direction::Write,
        pattern: Pattern::Sequential,
        request_size: MIB,
        in_flight: 4,
        region_start: 0,
        region_len: FILE,
        sequential_start: 0,
        ramp: Duration::ZERO,
        measure: Duration::from_millis(300),
        rate: None,
    };
    let stop = AtomicBool::new(false);
    let r = engine::run_job(kind(), f.fd(), &job, 1, &stop).unwrap();
    assert_eq!(r.written_end, FILE, "fill pass did not cover the file");
    f
}

/// A read or write of `len` bytes at `offset` of file 0, from `slot`, tagged `user_data`.
fn io(
    class: ClassId,
    direction: Direction,
    offset: u64,
    len: u64,
    slot: usize,
    user_data: u64,
) -> RingIo {
    RingIo {
        class,
        direction,
        file: 0,
        offset,
        len,
        slot,
        user_data,
        iovecs: 0,
    }
}

/// Per class: (class, requests kept queued, request size). Runs a closed loop for `secs`
/// after `warm` and returns bytes completed per class in the measured window.
fn closed_loop(
    q: &mut RingQueue,
    classes: &[(ClassId, usize, u64)],
    warm: Duration,
    secs: Duration,
) -> Vec<u64> {
    closed_loop_counting_waits(q, classes, warm, secs).0
}

/// As [`closed_loop`], and counts the polls after which requests were still queued in the
/// core (waiting for tokens, since the ring has a slot for every request): `(bytes, polls,
/// polls that left requests queued)`.
fn closed_loop_counting_waits(
    q: &mut RingQueue,
    classes: &[(ClassId, usize, u64)],
    warm: Duration,
    secs: Duration,
) -> (Vec<u64>, u64, u64) {
    let (mut polls, mut left_queued) = (0u64, 0u64);
    let mut slot_owner = Vec::new();
    let mut next_off = vec![0u64; classes.len()];
    for (ci, &(class, depth, size)) in classes.iter().enumerate() {
        for _ in 0..depth {
            let slot = slot_owner.len();
            slot_owner.push(ci);
            q.queue(
                io(
                    class,
                    Direction::Read,
                    next_off[ci],
                    size,
                    slot,
                    slot as u64,
                ),
                Instant::now(),
            )
            .unwrap();
            next_off[ci] = (next_off[ci] + size) % FILE;
        }
    }
    let start = Instant::now();
    let (m0, m1) = (start + warm, start + warm + secs);
    let mut bytes = vec![0u64; classes.len()];
    let mut requeue = Vec::with_capacity(slot_owner.len());
    loop {
        requeue.clear();
        q.poll(true, |c| {
            assert!(c.result > 0, "request failed: {}", c.result);
            let slot = c.user_data as usize;
            if c.completed_at >= m0 && c.completed_at < m1 {
                bytes[slot_owner[slot]] += c.result as u64;
            }
            requeue.push(slot);
        })
        .unwrap();
        polls += 1;
        if q.core().queued() > 0 {
            left_queued += 1;
        }
        if Instant::now() >= m1 {
            break;
        }
        for &slot in &requeue {
            let ci = slot_owner[slot];
            let (class, _, size) = classes[ci];
            q.queue(
                io(
                    class,
                    Direction::Read,
                    next_off[ci],
                    size,
                    slot,
                    slot as u64,
                ),
                Instant::now(),
            )
            .unwrap();
            next_off[ci] = (next_off[ci] + size) % FILE;
        }
    }
    while q.pending() > 0 {
        q.poll(true, |_| {}).unwrap();
    }
    (bytes, polls, left_queued)
}

fn queue(group: Arc<IoGroup>, f: &TestFile, slots: usize, slot_size: u64) -> RingQueue {
    RingQueue::new(
        group,
        Ring::new(kind(), slots, slot_size as usize, &[f.fd()]).unwrap(),
    )
}

#[test]
fn shares_400_to_100_deliver_4_to_1() {
    let _serial = serial();
    let dir = tempfile::tempdir_in(base_dir()).unwrap();
    let f = written_file(dir.path());
    // A model far slower than tmpfs, so the scheduler is the bottleneck: 200 MiB/s, 20k IOPS.
    let model = CostModel::from_rates(20_000, 200 * MIB, 20_000, 200 * MIB, &CostConfig::default())
        .unwrap();
    let mut q = queue(IoGroup::new(model, false, Instant::now()), &f, 32, 64 * KIB);
    let a = q.add_class(ClassConfig::new("a", 400)).unwrap();
    let b = q.add_class(ClassConfig::new("b", 100)).unwrap();
    let bytes = closed_loop(
        &mut q,
        &[(a, 16, 64 * KIB), (b, 16, 64 * KIB)],
        Duration::from_millis(300),
        Duration::from_secs(2),
    );
    let ratio = bytes[0] as f64 / bytes[1] as f64;
    let total = (bytes[0] + bytes[1]) as f64 / 2.0;
    println!(
        "shares 400:100 -> bytes {bytes:?}, ratio {ratio:.3}, total {:.1} MiB/s",
        total / MIB as f64
    );
    assert!(
        (ratio - 4.0).abs() <= 0.2,
        "ratio {ratio:.3} not within 4.0 ± 5%"
    );
    // The model allows 1 s of disk time per second: 64 KiB reads at 1/20000 + 64Ki/200Mi s each.
    let per_req = 1.0 / 20_000.0 + (64 * KIB) as f64 / (200 * MIB) as f64;
    let model_bw = (64 * KIB) as f64 / per_req;
    println!("model allows {:.1} MiB/s", model_bw / MIB as f64);
    assert!(
        total <= model_bw * 1.05,
        "dispatched {total:.0} B/s above the model's {model_bw:.0}"
    );
    assert!(
        total >= model_bw * 0.85,
        "dispatched {total:.0} B/s far below the model's {model_bw:.0}"
    );
    let s = q.class_stats(a).unwrap();
    assert!(s.operations > 0 && s.consumption > 0.0 && s.total_exec_sec > 0.0);
}

#[test]
fn class_limited_to_100_mib_stays_under_115_percent() {
    let _serial = serial();
    let dir = tempfile::tempdir_in(base_dir()).unwrap();
    let f = written_file(dir.path());
    let model = CostModel::unconfigured(&CostConfig::default());
    let group = IoGroup::new(model, false, Instant::now());
    let limit = group.bandwidth_limit(100 * MIB);
    let mut q = queue(group, &f, 16, 128 * KIB);
    let limited = q
        .add_class(ClassConfig::new("limited", 100).bandwidth(limit))
        .unwrap();
    let bytes = closed_loop(
        &mut q,
        &[(limited, 16, 128 * KIB)],
        Duration::from_millis(500),
        Duration::from_secs(2),
    );
    let bw = bytes[0] as f64 / 2.0;
    println!("limited class: {:.1} MiB/s (limit 100)", bw / MIB as f64);
    assert!(
        bw <= 1.15 * (100 * MIB) as f64,
        "{bw:.0} B/s exceeds 115% of the limit"
    );
    assert!(
        bw >= 0.8 * (100 * MIB) as f64,
        "{bw:.0} B/s: the limit throttles far too hard"
    );
}

#[test]
fn unconfigured_queue_costs_nothing_against_the_engine_alone() {
    let _serial = serial();
    let dir = tempfile::tempdir_in(base_dir()).unwrap();
    let f = written_file(dir.path());
    let (size, depth, secs) = (128 * KIB, 16usize, Duration::from_millis(700));
    let stop = AtomicBool::new(false);
    let mut engine_bw = Vec::new();
    let mut queue_bw = Vec::new();
    let mut q = queue(
        IoGroup::unconfigured(&CostConfig::default(), Instant::now()),
        &f,
        depth,
        size,
    );
    let class = q.add_class(ClassConfig::new("only", 100)).unwrap();
    // Rounds alternate which side runs first, so drift in the machine's load cancels out.
    let mut ratios = Vec::new();
    let (mut polls, mut waits) = (0u64, 0u64);
    for round in 0..7u64 {
        let job = JobSpec {
            direction: Direction::Read,
            pattern: Pattern::Sequential,
            request_size: size,
            in_flight: depth,
            region_start: 0,
            region_len: FILE,
            sequential_start: 0,
            ramp: Duration::from_millis(100),
            measure: secs,
            rate: None,
        };
        let engine_side = || {
            engine::run_job(kind(), f.fd(), &job, round, &stop)
                .unwrap()
                .bandwidth()
        };
        let mut queue_side = |q: &mut RingQueue| {
            let (b, p, w) = closed_loop_counting_waits(
                q,
                &[(class, depth, size)],
                Duration::from_millis(100),
                secs,
            );
            polls += p;
            waits += w;
            b[0] as f64 / secs.as_secs_f64()
        };
        let (e, qb) = if round % 2 == 0 {
            let e = engine_side();
            (e, queue_side(&mut q))
        } else {
            let qb = queue_side(&mut q);
            (engine_side(), qb)
        };
        engine_bw.push(e);
        queue_bw.push(qb);
        ratios.push(qb / e);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (e, qb, ratio) = (
        median(&mut engine_bw),
        median(&mut queue_bw),
        median(&mut ratios),
    );
    println!(
        "engine alone {:.0} MiB/s, through the unconfigured queue {:.0} MiB/s, median ratio \
         {ratio:.3}; {waits} of {polls} polls left requests waiting for tokens",
        e / MIB as f64,
        qb / MIB as f64,
    );
    // The exact property, whatever else runs on the machine: an unconfigured queue never
    // holds a request back (the ring has a slot for each), so every poll dispatches all.
    assert!(polls > 0);
    assert_eq!(
        waits, 0,
        "{waits} of {polls} polls left requests queued in an unconfigured queue"
    );
    // A gross-error bound on the cost: the seed's plateau (a queue that throttles itself)
    // cost 40% and more. The precise goal (≥ 0.97) is bench/queue-vs-engine.sh's. The queue
    // side spends more CPU per byte than the engine alone, so when other processes take the
    // machine's 2 cores it loses more (0.75 with a load average of 13): the CPU's share, not
    // the queue's throttling, which the count above judges.
    assert!(
        ratio >= 0.5,
        "the queue costs {:.1}% of bandwidth",
        (1.0 - ratio) * 100.0
    );
}

#[test]
fn split_requests_reassemble() {
    let _serial = serial();
    let dir = tempfile::tempdir_in(base_dir()).unwrap();
    let f = written_file(dir.path());
    // A slow model makes the maximum request length small, so 1 MiB requests get split.
    let model = CostModel::from_rates(20_000, 200 * MIB, 20_000, 200 * MIB, &CostConfig::default())
        .unwrap();
    let max = model.max_request_len(Direction::Read);
    assert!(max < MIB, "max length {max}");
    let mut q = queue(IoGroup::new(model, false, Instant::now()), &f, 2, MIB);
    let c = q.add_class(ClassConfig::new("c", 100)).unwrap();
    q.queue(io(c, Direction::Read, 0, MIB, 0, 7), Instant::now())
        .unwrap();
    // A request running past the end of the file: only the part inside it counts.
    q.queue(
        io(c, Direction::Read, FILE - 256 * KIB, MIB, 1, 8),
        Instant::now(),
    )
    .unwrap();
    let mut results = Vec::new();
    while q.pending() > 0 {
        q.poll(true, |c| results.push((c.user_data, c.result)))
            .unwrap();
    }
    results.sort();
    assert_eq!(results, vec![(7, MIB as i64), (8, (256 * KIB) as i64)]);
    assert_eq!(q.stats().split_requests, 2);
}

#[test]
fn nowait_writes_that_would_block_are_retried_and_counted() {
    let _serial = serial();
    if kind() != EngineKind::Uring {
        println!("skipped: RWF_NOWAIT needs io_uring");
        return;
    }
    // Appending O_DIRECT writes allocate blocks: ext4 and XFS answer RWF_NOWAIT with EAGAIN.
    let dir = tempfile::tempdir().unwrap();
    let f = TestFile::create_unlinked(dir.path(), 0).unwrap();
    let mut q = queue(
        IoGroup::unconfigured(&CostConfig::default(), Instant::now()),
        &f,
        4,
        64 * KIB,
    );
    q.set_nowait_writes(true);
    let c = q.add_class(ClassConfig::new("appends", 100)).unwrap();
    let mut completed = 0;
    for i in 0..64u64 {
        q.queue(
            io(
                c,
                Direction::Write,
                i * 64 * KIB,
                64 * KIB,
                (i % 4) as usize,
                i,
            ),
            Instant::now(),
        )
        .unwrap();
        if i % 4 == 3 {
            while q.pending() > 0 {
                q.poll(true, |c| {
                    assert_eq!(c.result, (64 * KIB) as i64, "write {} failed", c.user_data);
                    completed += 1;
                })
                .unwrap();
            }
        }
    }
    assert_eq!(completed, 64);
    let retries = q.total_aio_retries();
    println!(
        "{} of 64 appending writes were retried without RWF_NOWAIT",
        retries
    );
    assert_eq!(q.aio_retries(c).unwrap(), retries);
    let fs = scheduler::topology::Topology::for_directory(dir.path())
        .map(|t| t.fs_type)
        .unwrap_or_default();
    if fs == "ext4" || fs == "xfs" {
        assert!(retries > 0, "{fs}: extending writes never returned EAGAIN");
    }
}

#[test]
fn nowait_writes_on_a_filesystem_without_rwf_nowait_just_work() {
    let _serial = serial();
    if kind() != EngineKind::Uring || !std::path::Path::new("/dev/shm").is_dir() {
        println!("skipped: needs io_uring and /dev/shm");
        return;
    }
    // tmpfs answers RWF_NOWAIT writes with EOPNOTSUPP: the queue must write them plainly.
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let f = TestFile::create_unlinked(dir.path(), MIB).unwrap();
    let mut q = queue(
        IoGroup::unconfigured(&CostConfig::default(), Instant::now()),
        &f,
        4,
        64 * KIB,
    );
    q.set_nowait_writes(true);
    let c = q.add_class(ClassConfig::new("w", 100)).unwrap();
    for i in 0..4u64 {
        q.queue(
            io(c, Direction::Write, i * 64 * KIB, 64 * KIB, i as usize, i),
            Instant::now(),
        )
        .unwrap();
    }
    let mut ok = 0;
    while q.pending() > 0 {
        q.poll(true, |c| {
            assert_eq!(c.result, (64 * KIB) as i64, "write {} failed", c.user_data);
            ok += 1;
        })
        .unwrap();
    }
    assert_eq!(ok, 4);
    assert_eq!(
        q.total_aio_retries(),
        0,
        "EOPNOTSUPP is not a would-block retry"
    );
}

/// A caller with a deadline cancels what still waits for tokens: those requests come back at
/// once and never reach the disk, so the drain waits only for what is in it (issue 9: at
/// 512 B/s, io-tester's drain waited 24 s for tokens).
#[test]
fn cancelled_requests_waiting_for_tokens_never_go_out() {
    let dir = tempfile::tempdir_in(base_dir()).unwrap();
    let f = TestFile::create_unlinked(dir.path(), MIB).unwrap();
    let model = CostModel::from_rates(100, 512, 100, 512, &CostConfig::default()).unwrap();
    let mut q = queue(IoGroup::new(model, false, Instant::now()), &f, 64, 4 * KIB);
    let class = q.add_class(ClassConfig::new("slow", 100)).unwrap();
    // The bucket starts with a few requests' worth of tokens; the rest wait for minutes.
    let ids: Vec<_> = (0..64)
        .map(|s| {
            let req = io(
                class,
                Direction::Read,
                s as u64 * 4 * KIB,
                4 * KIB,
                s,
                s as u64,
            );
            q.queue(req, Instant::now()).unwrap()
        })
        .collect();
    let mut completed = Vec::new();
    q.poll_timeout(Duration::from_millis(10), |c| completed.push(c.user_data))
        .unwrap();
    let cancelled: Vec<u64> = ids.iter().filter_map(|&r| q.cancel(r).ok()?).collect();
    assert!(
        !cancelled.is_empty(),
        "a 512 B/s model let 64 requests of 4 KiB out at once"
    );
    let t = Instant::now();
    while q.in_flight() > 0 {
        q.poll_timeout(Duration::from_millis(100), |c| completed.push(c.user_data))
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(10), "the drain waited");
    }
    // Nothing cancelled goes out later, and each request either completed or came back.
    for _ in 0..3 {
        q.poll_timeout(Duration::from_millis(10), |c| completed.push(c.user_data))
            .unwrap();
    }
    let mut all: Vec<u64> = completed.iter().chain(&cancelled).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..64).collect::<Vec<u64>>(),
        "completed {completed:?}, cancelled {cancelled:?}"
    );
    assert_eq!(q.in_flight(), 0);
}
