//! What the shared token bucket costs per operation: one `grab` + `deficiency` + `replenish`,
//! the per-reservation work of the dispatcher (§4, §6).
//!
//! The bucket is the disk bucket of a 10M IOPS / 100 GB/s model (rate 2^24 × 1000 units/s,
//! the model's limit and threshold); each operation grabs the cost of a 4 KiB read.
//!
//! Clocks:
//! - `synthetic`: each thread's clock advances by the modelled time of one request per
//!   operation, so every replenish passes the threshold and does its compare-and-swap (worst
//!   case); with two threads the clocks run side by side and race for the timestamp.
//! - `real`: `Instant::now()` per operation (what the queue does), included in the time.
//!
//! `single_thread`: one iteration = one operation. `2_threads`: two threads each do one
//! operation per iteration on the same bucket; the time shown is CPU time per operation per
//! thread (the two threads' mean) and the throughput counts both threads' operations.
//!
//! Time is the threads' CPU time (see `thread_cpu`), not the wall clock, so that time taken by
//! other processes does not count. With two threads, contention shows only while they really
//! run at once: on a loaded 2-core machine they often do not, and the figure is a lower bound.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use scheduler::cost_model::{CostConfig, CostModel};
use scheduler::token_bucket::SharedTokenBucket;
use scheduler::Direction;

struct Params {
    rate_per_sec: u64,
    limit: u64,
    threshold: u64,
    /// Tokens grabbed per operation (a 4 KiB read).
    cost: u64,
    /// Nanoseconds of bucket time those tokens take to accrue.
    step_ns: u64,
}

fn params() -> Params {
    let m = CostModel::from_rates(
        10_000_000,
        100_000_000_000,
        10_000_000,
        100_000_000_000,
        &CostConfig::default(),
    )
    .expect("model");
    let rate_per_sec = m.rate_per_ms() * 1000;
    let cost = m.capacity(Direction::Read, 4096).0;
    Params {
        rate_per_sec,
        limit: m.limit(),
        threshold: m.threshold(),
        cost,
        step_ns: (cost as u128 * 1_000_000_000).div_ceil(rate_per_sec as u128) as u64,
    }
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`). The benches time with it rather
/// than the wall clock: on a small shared machine other processes take the CPU away for part of
/// a run, which the wall clock counts and this does not.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given; the clock id is valid on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[derive(Clone, Copy)]
enum Clock {
    Synthetic,
    Real,
}

/// `n` operations on `b`; `t0` is this thread's synthetic clock start.
#[inline(never)]
fn ops(b: &SharedTokenBucket, p: &Params, clock: Clock, origin: Instant, t0: u64, n: u64) -> u64 {
    let mut now = t0;
    let mut sum = 0u64;
    for _ in 0..n {
        let pos = b.grab(black_box(p.cost));
        sum = sum.wrapping_add(b.deficiency(pos));
        now = match clock {
            Clock::Synthetic => now + p.step_ns,
            Clock::Real => origin.elapsed().as_nanos() as u64,
        };
        b.replenish(now);
    }
    black_box(sum)
}

fn bench_token_bucket(c: &mut Criterion) {
    let p = params();
    eprintln!(
        "bucket: rate {} units/s, limit {}, threshold {}, 4 KiB read {} units = {} ns",
        p.rate_per_sec, p.limit, p.threshold, p.cost, p.step_ns
    );
    let mut g = c.benchmark_group("token_bucket");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));

    for (clock, name) in [(Clock::Synthetic, "synthetic"), (Clock::Real, "real")] {
        g.throughput(Throughput::Elements(1));
        let origin = Instant::now();
        let b = SharedTokenBucket::new(p.rate_per_sec, p.limit, p.threshold, 0);
        let mut t = 0u64;
        g.bench_function(format!("single_thread/{name}_clock"), |bch| {
            bch.iter_custom(|iters| {
                let start = thread_cpu();
                ops(&b, &p, clock, origin, t, iters);
                t += iters * p.step_ns;
                thread_cpu() - start
            })
        });

        g.throughput(Throughput::Elements(2));
        let b = Arc::new(SharedTokenBucket::new(
            p.rate_per_sec,
            p.limit,
            p.threshold,
            0,
        ));
        let mut t = 0u64;
        // (CPU time of both threads, wall time) over every run, to tell how much they overlapped.
        let (mut cpu_sum, mut wall_sum) = (Duration::ZERO, Duration::ZERO);
        g.bench_function(format!("2_threads/{name}_clock"), |bch| {
            bch.iter_custom(|iters| {
                let barrier = Barrier::new(3);
                let (cpu, wall) = std::thread::scope(|s| {
                    let threads: Vec<_> = (0..2)
                        .map(|_| {
                            let (b, p, barrier) = (&b, &p, &barrier);
                            s.spawn(move || {
                                barrier.wait();
                                let start = thread_cpu();
                                ops(b, p, clock, origin, t, iters);
                                thread_cpu() - start
                            })
                        })
                        .collect();
                    barrier.wait();
                    let start = Instant::now();
                    let cpu: Duration = threads
                        .into_iter()
                        .map(|h| h.join().expect("bench thread"))
                        .sum();
                    (cpu, start.elapsed())
                });
                t += iters * p.step_ns;
                cpu_sum += cpu;
                wall_sum += wall;
                cpu / 2
            })
        });
        eprintln!(
            "2_threads/{name}_clock: the threads ran {:.2} CPUs on average (2.00 = fully \
             concurrent; less means the contention figure is partly untested)",
            cpu_sum.as_secs_f64() / wall_sum.as_secs_f64().max(1e-9)
        );
    }
    g.finish();
}

criterion_group!(benches, bench_token_bucket);
criterion_main!(benches);
