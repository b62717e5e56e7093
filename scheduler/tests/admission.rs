//! The async admission driver on real executors: tokio with two worker threads, tokio on a
//! paused clock, and a minimal hand-written single-threaded executor. Two classes at 400:100
//! shares under a model that makes the scheduler the bottleneck get 4:1.
//!
//! The wall-clock tests judge a ratio of counts taken in the same run (both classes see the
//! same machine), not a rate, so a busy machine does not fail them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use scheduler::admission::{AdmissionQueue, ThreadTimer, Timer};
use scheduler::cost_model::{CostConfig, CostModel};
use scheduler::io_queue::{ClassConfig, ClassId, IoGroup, QueueError};
use scheduler::Direction;

const KIB: u64 = 1024;

/// 10k IOPS, 1 GB/s: a 4 KiB read costs ~104 µs of disk time, so ~9.6k admissions per second
/// in all, far below what the executor can do.
fn slow_model() -> CostModel {
    model_with_goal(CostConfig::default().latency_goal_ms)
}

/// The slow model with a latency goal of `goal_ms`. The bucket holds the goal's worth of disk
/// time: a driver whose timer wakes it later than that loses the difference (tokio's timer
/// ticks in milliseconds, so its tests use a 2 ms goal).
fn model_with_goal(goal_ms: f64) -> CostModel {
    let cfg = CostConfig {
        latency_goal_ms: goal_ms,
        ..CostConfig::default()
    };
    CostModel::from_rates(10_000, 1 << 30, 10_000, 1 << 30, &cfg).unwrap()
}

fn queue(timer: Arc<dyn Timer>) -> (AdmissionQueue, ClassId, ClassId) {
    queue_with(slow_model(), timer)
}

fn queue_with(model: CostModel, timer: Arc<dyn Timer>) -> (AdmissionQueue, ClassId, ClassId) {
    let q = AdmissionQueue::new(IoGroup::new(model, false, timer.now()), timer);
    let a = q.add_class(ClassConfig::new("a", 400)).unwrap();
    let b = q.add_class(ClassConfig::new("b", 100)).unwrap();
    (q, a, b)
}

/// Counts admissions of one class while `counting` is set.
#[derive(Default)]
struct Counter {
    counting: AtomicBool,
    stop: AtomicBool,
    n: [AtomicU64; 2],
}

/// One task of the workload: admit, "do the I/O" (nothing), report, repeat.
async fn worker(q: AdmissionQueue, class: ClassId, which: usize, c: Arc<Counter>) {
    while !c.stop.load(Ordering::Relaxed) {
        let permit = q.admit(class, Direction::Read, 4 * KIB).await.unwrap();
        if c.counting.load(Ordering::Relaxed) {
            c.n[which].fetch_add(1, Ordering::Relaxed);
        }
        permit.complete(4096);
    }
}

fn ratio(c: &Counter) -> (u64, u64, f64) {
    let (a, b) = (
        c.n[0].load(Ordering::Relaxed),
        c.n[1].load(Ordering::Relaxed),
    );
    (a, b, a as f64 / b.max(1) as f64)
}

/// 32 tasks per class on tokio, counted for `window` after 200 ms of warm-up. Enough tasks
/// per class that each keeps requests queued while its admitted tasks are still on their way
/// back (a class with nothing queued cannot use its shares).
async fn on_tokio(q: &AdmissionQueue, a: ClassId, b: ClassId, window: Duration) -> Arc<Counter> {
    let c = Arc::new(Counter::default());
    let mut tasks = Vec::new();
    for (class, which) in [(a, 0), (b, 1)] {
        for _ in 0..32 {
            tasks.push(tokio::spawn(worker(q.clone(), class, which, c.clone())));
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.counting.store(true, Ordering::Relaxed);
    tokio::time::sleep(window).await;
    c.counting.store(false, Ordering::Relaxed);
    c.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    c
}

#[test]
fn shares_hold_on_tokio_with_two_worker_threads() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        #[cfg(feature = "tokio")]
        let (q, a, b) = queue_with(
            model_with_goal(2.0),
            scheduler::admission::TokioTimer::current().unwrap(),
        );
        #[cfg(not(feature = "tokio"))]
        let (q, a, b) = queue(ThreadTimer::new());
        let c = on_tokio(&q, a, b, Duration::from_secs(1)).await;
        let (na, nb, r) = ratio(&c);
        println!("tokio, 2 workers: {na} vs {nb} admissions, ratio {r:.3}");
        assert!((r - 4.0).abs() <= 0.2, "ratio {r} not within 4.0 ± 5%");
        assert!(na + nb > 1000, "only {} admissions in a second", na + nb);
        let sa = q.class_stats(a).unwrap();
        assert!(sa.operations >= na && sa.bytes == sa.operations * 4096);
    });
}

#[cfg(feature = "tokio")]
#[test]
fn shares_are_exact_on_a_paused_tokio_clock() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let timer: Arc<dyn Timer> = scheduler::admission::TokioTimer::current().unwrap();
        let (q, a, b) = queue_with(model_with_goal(2.0), timer);
        // Simulated time: tokio jumps to each alarm the queue sets.
        let c = on_tokio(&q, a, b, Duration::from_secs(2)).await;
        let (na, nb, r) = ratio(&c);
        // 2 s of a model allowing 1 s of disk time per second, 4 KiB reads.
        let per = 1.0 / 10_000.0 + 4096.0 / (1u64 << 30) as f64;
        let allowed = 2.0 / per;
        println!(
            "paused tokio: {na} vs {nb}, ratio {r:.4}, {} of {allowed:.0} allowed",
            na + nb
        );
        assert!((r - 4.0).abs() <= 0.04, "ratio {r}");
        assert!(
            ((na + nb) as f64 / allowed - 1.0).abs() <= 0.01,
            "{} of {allowed}",
            na + nb
        );
    });
}

/// A minimal single-threaded executor: tasks in a list, each woken task polled again, the
/// thread parked while none is ready.
struct MiniExecutor {
    tasks: Vec<Task>,
}

/// A spawned future and its wake flag.
type Task = (Pin<Box<dyn Future<Output = ()>>>, Arc<TaskWake>);

struct TaskWake {
    ready: AtomicBool,
    thread: std::thread::Thread,
}

impl Wake for TaskWake {
    fn wake(self: Arc<Self>) {
        self.ready.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

impl MiniExecutor {
    fn spawn(&mut self, f: impl Future<Output = ()> + 'static) {
        let w = Arc::new(TaskWake {
            ready: AtomicBool::new(true),
            thread: std::thread::current(),
        });
        self.tasks.push((Box::pin(f), w));
    }

    fn run(mut self) {
        while !self.tasks.is_empty() {
            let mut progressed = false;
            let mut i = 0;
            while i < self.tasks.len() {
                let (f, w) = &mut self.tasks[i];
                if w.ready.swap(false, Ordering::Acquire) {
                    progressed = true;
                    let waker = Waker::from(w.clone());
                    if f.as_mut().poll(&mut Context::from_waker(&waker)).is_ready() {
                        drop(self.tasks.swap_remove(i));
                        continue;
                    }
                }
                i += 1;
            }
            if !progressed {
                std::thread::park_timeout(Duration::from_millis(10));
            }
        }
    }
}

/// Resolves after `d` (a thread timer alarm, so no runtime is needed).
struct Sleep {
    timer: Arc<ThreadTimer>,
    until: Instant,
    armed: bool,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.until {
            return Poll::Ready(());
        }
        if !self.armed {
            self.armed = true;
            self.timer.wake_at(self.until, cx.waker().clone());
        }
        Poll::Pending
    }
}

#[test]
fn shares_hold_on_a_minimal_single_threaded_executor() {
    let timer = ThreadTimer::new();
    let (q, a, b) = queue(timer.clone());
    let c = Arc::new(Counter::default());
    let mut ex = MiniExecutor { tasks: Vec::new() };
    for (class, which) in [(a, 0), (b, 1)] {
        for _ in 0..8 {
            ex.spawn(worker(q.clone(), class, which, c.clone()));
        }
    }
    let control = c.clone();
    let t = timer.clone();
    ex.spawn(async move {
        let start = Instant::now();
        Sleep {
            timer: t.clone(),
            until: start + Duration::from_millis(200),
            armed: false,
        }
        .await;
        control.counting.store(true, Ordering::Relaxed);
        Sleep {
            timer: t,
            until: start + Duration::from_millis(1200),
            armed: false,
        }
        .await;
        control.counting.store(false, Ordering::Relaxed);
        control.stop.store(true, Ordering::Relaxed);
    });
    ex.run();
    let (na, nb, r) = ratio(&c);
    println!("minimal executor: {na} vs {nb}, ratio {r:.3}");
    assert!((r - 4.0).abs() <= 0.2, "ratio {r} not within 4.0 ± 5%");
    assert!(na + nb > 1000);
}

/// Polls a future to completion on the calling thread.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

#[test]
fn results_reach_the_statistics_and_bad_requests_are_errors() {
    let (q, a, _) = queue(ThreadTimer::new());
    let p = block_on(q.admit(a, Direction::Write, 8 * KIB)).unwrap();
    assert_eq!((p.len(), p.direction()), (8 * KIB, Direction::Write));
    p.complete(4096); // short
    let p = block_on(q.admit(a, Direction::Read, 4 * KIB)).unwrap();
    p.complete(-5); // failed
    drop(block_on(q.admit(a, Direction::Read, 4 * KIB)).unwrap()); // dropped: full length
    let s = q.class_stats(a).unwrap();
    assert_eq!((s.operations, s.bytes), (3, 4096 + 4096));

    let (other, foreign, _) = queue(ThreadTimer::new());
    assert_eq!(
        block_on(q.admit(foreign, Direction::Read, 4096)).unwrap_err(),
        QueueError::ForeignClass(foreign)
    );
    assert_eq!(
        block_on(q.admit(a, Direction::Read, 0)).unwrap_err(),
        QueueError::Empty(Direction::Read)
    );
    drop(other);
}

#[test]
fn a_long_request_is_admitted_once_every_part_went_out() {
    let (q, a, _) = queue(ThreadTimer::new());
    let max = slow_model().max_request_len(Direction::Read);
    let len = 4 * max + 4096;
    let p = block_on(q.admit(a, Direction::Read, len)).unwrap();
    assert_eq!(p.len(), len);
    let st = q.stats();
    assert_eq!((st.split_requests, st.in_flight, st.queued), (1, 5, 0));
    p.complete(len as i64);
    let s = q.class_stats(a).unwrap();
    assert_eq!((s.operations, s.bytes, s.split_requests), (1, len, 1));
    assert_eq!(q.stats().in_flight, 0);
}

#[test]
fn dropping_a_waiting_admission_withdraws_the_request() {
    let (q, a, b) = queue(ThreadTimer::new());
    // Use up the bucket, so the next request waits.
    let mut held = Vec::new();
    loop {
        let mut f = Box::pin(q.admit(a, Direction::Read, 64 * KIB));
        let waker = Waker::from(Arc::new(NoWake));
        match f.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(p) => held.push(p.unwrap()),
            Poll::Pending => {
                assert_eq!(q.stats().queued, 1);
                drop(f);
                break;
            }
        }
    }
    assert_eq!(q.stats().queued, 0, "the withdrawn request left the queue");
    drop(held);
    // The queue still works: a later request is admitted.
    let p = block_on(q.admit(b, Direction::Read, 4 * KIB)).unwrap();
    drop(p);
    let sa = q.class_stats(a).unwrap();
    assert!(sa.operations > 0);
}

struct NoWake;
impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn many_threads_admitting_at_once_neither_lose_nor_duplicate_permits() {
    // Blocking admissions from several threads, no executor at all.
    let timer = ThreadTimer::new();
    let q = AdmissionQueue::new(
        IoGroup::new(
            CostModel::from_rates(50_000, 1 << 30, 50_000, 1 << 30, &CostConfig::default())
                .unwrap(),
            false,
            timer.now(),
        ),
        timer,
    );
    let c = q.add_class(ClassConfig::new("c", 100)).unwrap();
    let done = Arc::new(Mutex::new(0u64));
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (q, done) = (q.clone(), done.clone());
            s.spawn(move || {
                for _ in 0..500 {
                    let p = block_on(q.admit(c, Direction::Read, 4 * KIB)).unwrap();
                    p.complete(4096);
                    *done.lock().unwrap() += 1;
                }
            });
        }
    });
    assert_eq!(*done.lock().unwrap(), 2000);
    let s = q.class_stats(c).unwrap();
    assert_eq!(s.operations, 2000);
    let st = q.stats();
    assert_eq!((st.in_flight, st.queued), (0, 0));
}
