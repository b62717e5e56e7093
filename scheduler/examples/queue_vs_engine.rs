//! What the I/O queue costs on a real ring: 4 KiB random O_DIRECT reads at depth 64 on a
//! fully written 256 MiB file, through the unconfigured queue (one class, closed loop) and
//! around it (the engine's closed-loop job alone), alternating rounds in one process on one
//! thread. Prints per-round IOPS and CPU seconds per million requests for both, and the median
//! queue/engine IOPS ratio.
//!
//! CPU time is the submitting thread's (`RUSAGE_THREAD`): on tmpfs io_uring hands the reads to
//! its kernel workers, whose time is not in it, so IOPS follow the machine's free cores while
//! the thread's CPU per request shows what the queue adds.
//!
//! Usage: queue_vs_engine [DIR] [ROUNDS] [SECONDS] [engine|queue]   (defaults: /dev/shm, 5, 2)
//! With `engine` or `queue`, runs only that side (for profiling one of them with `perf`).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use scheduler::cost_model::CostConfig;
use scheduler::engine::{self, rng::Rng, EngineKind, JobSpec, Pattern, Ring, TestFile};
use scheduler::io_queue::{ClassConfig, ClassId, IoGroup};
use scheduler::ring_queue::{RingIo, RingQueue};
use scheduler::Direction;

const FILE: u64 = 256 << 20;
const SIZE: u64 = 4096;
const DEPTH: usize = 64;
const RAMP: Duration = Duration::from_millis(200);

/// CPU time of the calling thread: (user + system, user).
fn thread_cpu() -> (Duration, Duration) {
    // SAFETY: getrusage fills the zeroed struct; RUSAGE_THREAD is valid on Linux.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime) + tv(ru.ru_stime), tv(ru.ru_utime))
}

/// CPU seconds (total, user) since `t0` per million `requests`.
fn cpu_per_m(t0: (Duration, Duration), requests: u64) -> (f64, f64) {
    let t1 = thread_cpu();
    let m = requests as f64 / 1e6;
    (
        (t1.0 - t0.0).as_secs_f64() / m,
        (t1.1 - t0.1).as_secs_f64() / m,
    )
}

struct Run {
    /// Requests completed in the measured window, per second.
    iops: f64,
    /// CPU seconds of this thread per million completed requests (ramp and drain included).
    cpu_per_m: f64,
    /// The user-space part of it.
    user_per_m: f64,
}

fn fill(f: &TestFile) {
    let mut measure = Duration::from_millis(500);
    loop {
        let job = JobSpec {
            direction: Direction::Write,
            pattern: Pattern::Sequential,
            request_size: 1 << 20,
            in_flight: 4,
            region_start: 0,
            region_len: FILE,
            sequential_start: 0,
            ramp: Duration::ZERO,
            measure,
            rate: None,
        };
        let r = engine::run_job(EngineKind::Uring, f.fd(), &job, 1, &AtomicBool::new(false))
            .expect("fill pass");
        if r.written_end >= FILE {
            return;
        }
        measure *= 2;
    }
}

fn engine_run(f: &TestFile, secs: Duration, seed: u64) -> Run {
    let job = JobSpec {
        direction: Direction::Read,
        pattern: Pattern::Random,
        request_size: SIZE,
        in_flight: DEPTH,
        region_start: 0,
        region_len: FILE,
        sequential_start: 0,
        ramp: RAMP,
        measure: secs,
        rate: None,
    };
    let cpu0 = thread_cpu();
    let r = engine::run_job(
        EngineKind::Uring,
        f.fd(),
        &job,
        seed,
        &AtomicBool::new(false),
    )
    .expect("engine run");
    let (cpu_per_m, user_per_m) = cpu_per_m(cpu0, r.requests + r.ramp_requests);
    assert!(r.registered, "engine ran without registered file/buffers");
    Run {
        iops: r.iops(),
        cpu_per_m,
        user_per_m,
    }
}

/// A 4 KiB read of file 0 at `offset` into `slot`.
fn read(class: ClassId, offset: u64, slot: usize) -> RingIo {
    RingIo {
        class,
        direction: Direction::Read,
        file: 0,
        offset,
        len: SIZE,
        slot,
        user_data: slot as u64,
        iovecs: 0,
    }
}

fn queue_run(f: &TestFile, secs: Duration, seed: u64) -> Run {
    let group = IoGroup::unconfigured(&CostConfig::default(), Instant::now());
    let ring = Ring::new(EngineKind::Uring, DEPTH, SIZE as usize, &[f.fd()]).expect("ring");
    let mut q = RingQueue::new(group, ring);
    let class = q.add_class(ClassConfig::new("bench", 100)).expect("class");
    let mut rng = Rng::new(seed);
    let blocks = FILE / SIZE;

    let cpu0 = thread_cpu();
    let start = Instant::now();
    let (m0, m1) = (start + RAMP, start + RAMP + secs);
    for slot in 0..DEPTH {
        let off = rng.below(blocks) * SIZE;
        q.queue(read(class, off, slot), start).expect("queue");
    }
    let mut requeue: Vec<usize> = Vec::with_capacity(DEPTH);
    let (mut total, mut measured) = (0u64, 0u64);
    loop {
        requeue.clear();
        q.poll(true, |c| {
            assert_eq!(c.result, SIZE as i64, "read failed or short");
            if c.completed_at >= m0 && c.completed_at < m1 {
                measured += 1;
            }
            requeue.push(c.user_data as usize);
        })
        .expect("poll");
        total += requeue.len() as u64;
        // One clock read per batch, as the engine does.
        let now = Instant::now();
        if now >= m1 {
            break;
        }
        for &slot in &requeue {
            let off = rng.below(blocks) * SIZE;
            q.queue(read(class, off, slot), now).expect("queue");
        }
    }
    while q.pending() > 0 {
        total += q.poll(true, |_| {}).expect("drain") as u64;
    }
    let (cpu_per_m, user_per_m) = cpu_per_m(cpu0, total);
    Run {
        iops: measured as f64 / secs.as_secs_f64(),
        cpu_per_m,
        user_per_m,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).map_or("/dev/shm", |s| s.as_str()));
    let rounds: usize = args.get(2).map_or(5, |s| s.parse().expect("ROUNDS"));
    let secs = Duration::from_secs_f64(args.get(3).map_or(2.0, |s| s.parse().expect("SECONDS")));
    let only = args.get(4).map(|s| s.as_str());

    if let Err(e) = engine::probe_uring() {
        eprintln!("io_uring unavailable: {e}");
        std::process::exit(2);
    }
    let f = TestFile::create_unlinked(&dir, FILE).expect("test file");
    fill(&f);
    println!(
        "4 KiB random O_DIRECT reads, depth {DEPTH}, {} MiB file in {}, {rounds} rounds of {:.1} s (+{} ms ramp)",
        FILE >> 20,
        dir.display(),
        secs.as_secs_f64(),
        RAMP.as_millis()
    );
    println!("CPU: seconds of the submitting thread per million requests, total (user)");
    if let Some(side) = only {
        let run: fn(&TestFile, Duration, u64) -> Run = match side {
            "engine" => engine_run,
            "queue" => queue_run,
            _ => panic!("the fourth argument is `engine` or `queue`, not {side:?}"),
        };
        for round in 0..rounds {
            let r = run(&f, secs, 0x5eed + round as u64);
            println!(
                "{side} round {}: {:.0} IOPS, CPU {:.3} ({:.3}) s/M",
                round + 1,
                r.iops,
                r.cpu_per_m,
                r.user_per_m
            );
        }
        return;
    }
    println!(
        "{:>5} {:>12} {:>12} {:>7} {:>15} {:>15}",
        "round", "engine IOPS", "queue IOPS", "ratio", "engine CPU s/M", "queue CPU s/M"
    );
    let (mut ratios, mut ecpu, mut qcpu) = (Vec::new(), Vec::new(), Vec::new());
    let (mut euser, mut quser) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let seed = 0x5eed + round as u64;
        // Alternate which goes first, so drift (thermal, other load) hits both alike.
        let (e, q) = if round % 2 == 0 {
            let e = engine_run(&f, secs, seed);
            (e, queue_run(&f, secs, seed))
        } else {
            let q = queue_run(&f, secs, seed);
            (engine_run(&f, secs, seed), q)
        };
        let ratio = q.iops / e.iops;
        println!(
            "{:>5} {:>12.0} {:>12.0} {:>7.3} {:>15} {:>15}",
            round + 1,
            e.iops,
            q.iops,
            ratio,
            format!("{:.3} ({:.3})", e.cpu_per_m, e.user_per_m),
            format!("{:.3} ({:.3})", q.cpu_per_m, q.user_per_m),
        );
        euser.push(e.user_per_m);
        quser.push(q.user_per_m);
        ratios.push(ratio);
        ecpu.push(e.cpu_per_m);
        qcpu.push(q.cpu_per_m);
    }
    let ratio = median(ratios);
    let (ecpu, qcpu) = (median(ecpu), median(qcpu));
    let (euser, quser) = (median(euser), median(quser));
    println!(
        "median ratio queue/engine: {ratio:.3} (goal >= 0.97: {})",
        if ratio >= 0.97 { "met" } else { "MISSED" }
    );
    println!(
        "median CPU s per M requests (submitting thread): engine {ecpu:.3}, queue {qcpu:.3} \
         (queue {:+.0} ns/request); user space only: engine {euser:.3}, queue {quser:.3} \
         ({:+.0} ns/request)",
        (qcpu - ecpu) * 1000.0,
        (quser - euser) * 1000.0
    );
}
