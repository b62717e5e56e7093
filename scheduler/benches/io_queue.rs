//! What the I/O queue itself costs per request: queue + fair-queue dispatch + token grabbing +
//! completion accounting, through the sans-I/O core alone (`core_per_request`) and through
//! the Ring driver on a `Ring::null` (`ring_driver_per_request`: requests complete at once,
//! no I/O, no syscall). Goals (issue 8): < 50 ns in the core, < 100 ns through the driver.
//!
//! A closed loop keeps 64 4 KiB reads queued or in flight, spread round-robin over 1, 4 or 16
//! classes of equal shares on one shard, and requeues each completion at once. The reported
//! time is per request (`Throughput::Elements(1)` per iteration, one iteration = one completed
//! request). Time is the thread's CPU time (see `thread_cpu`); the null ring makes no syscall,
//! so that is all user-space work of the queue and the loop around it.
//!
//! Models:
//! - `unconfigured`: no io-properties; every request costs 0 and never waits (§3).
//! - `configured`: 1G IOPS, 1 TB/s: a 4 KiB read costs ~5 ns of modelled disk time, far less
//!   than the queue's own cost, so tokens are grabbed and released but never bind.
//! - `configured_10M`: 10M IOPS, 100 GB/s: a 4 KiB read costs ~141 ns of modelled disk time.
//!   If the queue is faster than that, the bucket binds and this bench measures the model's
//!   rate instead of the queue (shown so that the limit is visible next to the others).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use scheduler::cost_model::{CostConfig, CostModel};
use scheduler::engine::Ring;
use scheduler::io_queue::{ClassConfig, ClassId, IoGroup, IoQueue, IoRequest, PartId};
use scheduler::ring_queue::{RingIo, RingQueue};
use scheduler::Direction;

const DEPTH: usize = 64;
const SIZE: u64 = 4096;
const FILE_BLOCKS: u64 = (256 << 20) / SIZE;

/// The closed loop through the Ring driver (a null ring: completions at once, no syscall).
struct RingLoop {
    q: RingQueue,
    classes: Vec<ClassId>,
    /// Completed slots to requeue.
    requeue: Vec<usize>,
    next: u64,
}

impl RingLoop {
    fn new(model: CostModel, nclasses: usize) -> RingLoop {
        let group = IoGroup::new(model, false, Instant::now());
        let ring = Ring::null(DEPTH, SIZE as usize, 1).expect("null ring");
        let mut q = RingQueue::new(group, ring);
        let classes: Vec<_> = (0..nclasses)
            .map(|i| {
                q.add_class(ClassConfig::new(format!("c{i}"), 100))
                    .expect("class")
            })
            .collect();
        let mut l = RingLoop {
            q,
            classes,
            requeue: Vec::with_capacity(DEPTH),
            next: 0,
        };
        for slot in 0..DEPTH {
            l.queue(slot, Instant::now());
        }
        l
    }

    #[inline]
    fn queue(&mut self, slot: usize, now: Instant) {
        // Cheap scattered offsets (an odd multiplier walks every block); the null ring ignores them.
        self.next = self.next.wrapping_add(0x9e37_79b9);
        let io = RingIo {
            class: self.classes[slot % self.classes.len()],
            direction: Direction::Read,
            file: 0,
            offset: (self.next % FILE_BLOCKS) * SIZE,
            len: SIZE,
            slot,
            user_data: slot as u64,
            iovecs: 0,
        };
        self.q.queue(io, now).expect("queue");
    }

    /// Runs until at least `n` requests completed; returns the thread's CPU time scaled to
    /// exactly `n` (a poll completes up to 64 at once, so the loop may overshoot).
    fn run(&mut self, n: u64) -> Duration {
        let start = thread_cpu();
        let mut done = 0u64;
        while done < n {
            let requeue = &mut self.requeue;
            requeue.clear();
            let got = self
                .q
                .poll(true, |c| requeue.push(black_box(c.user_data) as usize))
                .expect("poll");
            done += got as u64;
            // One clock read per batch, as io-tester does.
            let now = Instant::now();
            for i in 0..self.requeue.len() {
                let slot = self.requeue[i];
                self.queue(slot, now);
            }
        }
        (thread_cpu() - start).mul_f64(n as f64 / done.max(1) as f64)
    }
}

/// The same closed loop on the core alone: dispatch, complete at once, requeue. One clock
/// read per batch (what any driver does); no ring, no syscall but the clock.
struct CoreLoop {
    q: IoQueue<u32>,
    classes: Vec<ClassId>,
    parts: Vec<PartId>,
}

impl CoreLoop {
    fn new(model: CostModel, nclasses: usize) -> CoreLoop {
        let now = Instant::now();
        let mut q = IoQueue::new(IoGroup::new(model, false, now));
        let classes: Vec<_> = (0..nclasses)
            .map(|i| {
                q.add_class(ClassConfig::new(format!("c{i}"), 100))
                    .expect("class")
            })
            .collect();
        for i in 0..DEPTH as u32 {
            let class = classes[i as usize % classes.len()];
            let req = IoRequest {
                class,
                direction: Direction::Read,
                len: SIZE,
                token: i,
            };
            q.queue(req, now).expect("queue");
        }
        CoreLoop {
            q,
            classes,
            parts: Vec::with_capacity(DEPTH),
        }
    }

    fn run(&mut self, n: u64) -> Duration {
        let start = thread_cpu();
        let mut done = 0u64;
        while done < n {
            let now = Instant::now();
            while let Some(d) = self.q.poll_dispatch(now) {
                self.parts.push(d.part);
            }
            for i in 0..self.parts.len() {
                let part = self.parts[i];
                if let Ok(Some(c)) = self.q.complete(part, SIZE as i64, now) {
                    done += 1;
                    let token = black_box(c.token);
                    let class = self.classes[token as usize % self.classes.len()];
                    let req = IoRequest {
                        class,
                        direction: Direction::Read,
                        len: SIZE,
                        token,
                    };
                    self.q.queue(req, now).expect("queue");
                }
            }
            self.parts.clear();
        }
        (thread_cpu() - start).mul_f64(n as f64 / done.max(1) as f64)
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

fn models() -> Vec<(&'static str, CostModel)> {
    let cfg = CostConfig::default();
    vec![
        ("unconfigured", CostModel::unconfigured(&cfg)),
        (
            "configured",
            CostModel::from_rates(
                1_000_000_000,
                1_000_000_000_000,
                1_000_000_000,
                1_000_000_000_000,
                &cfg,
            )
            .expect("model"),
        ),
        (
            "configured_10M",
            CostModel::from_rates(
                10_000_000,
                100_000_000_000,
                10_000_000,
                100_000_000_000,
                &cfg,
            )
            .expect("model"),
        ),
    ]
}

fn bench_io_queue(c: &mut Criterion) {
    let mut g = c.benchmark_group("core_per_request");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    for (name, model) in models() {
        for nclasses in [1usize, 4, 16] {
            let mut l = CoreLoop::new(model.clone(), nclasses);
            g.bench_function(BenchmarkId::new(name, format!("{nclasses}_classes")), |b| {
                b.iter_custom(|iters| l.run(iters))
            });
        }
    }
    g.finish();
    let mut g = c.benchmark_group("ring_driver_per_request");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    for (name, model) in models() {
        for nclasses in [1usize, 4, 16] {
            let mut l = RingLoop::new(model.clone(), nclasses);
            g.bench_function(BenchmarkId::new(name, format!("{nclasses}_classes")), |b| {
                b.iter_custom(|iters| l.run(iters))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_io_queue);
criterion_main!(benches);
