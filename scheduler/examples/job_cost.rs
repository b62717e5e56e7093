//! What the closed-loop job (the one iotune measures with) delivers and costs: random O_DIRECT
//! reads or writes on a fully written file, one shard, per round IOPS, CPU seconds per million
//! requests (every thread of the job: the shard thread and, for the threads engine, its
//! workers; in total as the job reports it, and the user-space part of the whole process) and
//! completion latency percentiles.
//!
//! Made to compare two builds of the engine: run the old and the new binary alternately on the
//! same file and compare medians (see bench/job-before-after.sh).
//!
//! Usage: job_cost [DIR] [uring|threads] [ROUNDS] [SECONDS] [DEPTH] [SIZE] [read|write]
//! (defaults: /dev/shm, uring, 5, 2, 64, 4096, read)

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use scheduler::engine::{self, EngineKind, JobSpec, Pattern, TestFile};
use scheduler::Direction;

const FILE: u64 = 256 << 20;

/// User CPU time of the whole process so far (every thread, ended ones included).
fn process_user_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct; RUSAGE_SELF is always valid.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    Duration::new(ru.ru_utime.tv_sec as u64, ru.ru_utime.tv_usec as u32 * 1000)
}

fn fill(kind: EngineKind, f: &TestFile) {
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
        let r = engine::run_job(kind, f.fd(), &job, 1, &AtomicBool::new(false)).expect("fill");
        if r.written_end >= FILE {
            return;
        }
        measure *= 2;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let dir = PathBuf::from(arg(1, "/dev/shm"));
    let kind: EngineKind = arg(2, "uring").parse().expect("engine");
    let rounds: usize = arg(3, "5").parse().expect("ROUNDS");
    let secs = Duration::from_secs_f64(arg(4, "2").parse().expect("SECONDS"));
    let depth: usize = arg(5, "64").parse().expect("DEPTH");
    let size: u64 = arg(6, "4096").parse().expect("SIZE");
    let direction = match arg(7, "read").as_str() {
        "read" => Direction::Read,
        "write" => Direction::Write,
        other => panic!("read or write, not {other:?}"),
    };
    let f = TestFile::create_unlinked(&dir, FILE).expect("test file");
    fill(kind, &f);
    for round in 0..rounds {
        let job = JobSpec {
            direction,
            pattern: Pattern::Random,
            request_size: size,
            in_flight: depth,
            region_start: 0,
            region_len: FILE,
            sequential_start: 0,
            ramp: Duration::from_millis(200),
            measure: secs,
            rate: None,
        };
        let user0 = process_user_cpu();
        let r = engine::run_job(
            kind,
            f.fd(),
            &job,
            0x5eed + round as u64,
            &AtomicBool::new(false),
        )
        .expect("job");
        let user = process_user_cpu().saturating_sub(user0);
        let all = (r.requests + r.ramp_requests).max(1) as f64;
        let q = |p: f64| r.latency_ns.value_at_quantile(p) as f64 / 1e3;
        // One line per round, whitespace-separated, for scripts.
        println!(
            "round {} iops {:.0} cpu_s_per_m {:.3} user_s_per_m {:.3} p50_us {:.1} p99_us {:.1} p999_us {:.1} registered {}",
            round + 1,
            r.iops(),
            r.cpu.as_secs_f64() / (all / 1e6),
            user.as_secs_f64() / (all / 1e6),
            q(0.5),
            q(0.99),
            q(0.999),
            r.registered
        );
    }
}
