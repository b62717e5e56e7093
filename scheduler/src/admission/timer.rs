//! Clocks and timers for the admission drivers: a small trait, a plain-thread implementation
//! that works with any executor, and tokio's (feature `tokio`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex};
use std::task::Waker;
use std::time::Instant;

/// The clock and the alarm of an [`AdmissionQueue`](super::AdmissionQueue).
///
/// The queue reads `now` here (the core never reads a clock), and when requests wait for
/// tokens it asks for one wake-up at the time the bucket will cover them. Implement it over
/// your runtime's timer (a simulated clock in tests, a reactor's timer wheel); the thread and
/// tokio implementations below cover the common cases.
pub trait Timer: Send + Sync + 'static {
    /// The current time on this timer's clock.
    fn now(&self) -> Instant;

    /// Calls `waker.wake()` at `at` or soon after (at once if `at` has passed). Each call is
    /// one wake-up; the queue asks again if it still needs one.
    fn wake_at(&self, at: Instant, waker: Waker);
}

#[derive(Debug)]
struct Alarm {
    at: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Alarm {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Alarm {}
impl PartialOrd for Alarm {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Alarm {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Debug, Default)]
struct Alarms {
    heap: BinaryHeap<Reverse<Alarm>>,
    seq: u64,
    shutdown: bool,
}

#[derive(Debug, Default)]
struct ThreadTimerShared {
    alarms: Mutex<Alarms>,
    changed: Condvar,
}

/// A [`Timer`] on the system's monotonic clock, with one background thread that sleeps until
/// the earliest alarm. Works with any executor, or none.
///
/// The thread ends when the timer is dropped (it is not joined: the last reference may be
/// dropped on that very thread).
#[derive(Debug)]
pub struct ThreadTimer {
    shared: Arc<ThreadTimerShared>,
}

impl ThreadTimer {
    /// A timer and its thread.
    ///
    /// # Panics
    ///
    /// If the operating system cannot start a thread (as `std::thread::spawn`); use
    /// [`try_new`](Self::try_new) to get the error instead.
    pub fn new() -> Arc<ThreadTimer> {
        Self::try_new().expect("cannot start the timer thread")
    }

    /// A timer and its thread.
    ///
    /// # Errors
    ///
    /// The operating system's error when the thread cannot be started.
    pub fn try_new() -> std::io::Result<Arc<ThreadTimer>> {
        let shared = Arc::new(ThreadTimerShared::default());
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("scheduler-timer".into())
            .spawn(move || run_alarms(&worker))?;
        Ok(Arc::new(ThreadTimer { shared }))
    }
}

fn run_alarms(shared: &ThreadTimerShared) {
    let mut due = Vec::new();
    let mut alarms = shared.alarms.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if alarms.shutdown {
            return;
        }
        let now = Instant::now();
        while alarms.heap.peek().is_some_and(|Reverse(a)| a.at <= now) {
            if let Some(Reverse(a)) = alarms.heap.pop() {
                due.push(a.waker);
            }
        }
        if !due.is_empty() {
            // Wake outside the lock: a waker may run code that sets another alarm.
            drop(alarms);
            for w in due.drain(..) {
                w.wake();
            }
            alarms = shared.alarms.lock().unwrap_or_else(|p| p.into_inner());
            continue;
        }
        alarms = match alarms.heap.peek() {
            None => shared
                .changed
                .wait(alarms)
                .unwrap_or_else(|p| p.into_inner()),
            Some(Reverse(a)) => {
                let d = a.at.saturating_duration_since(now);
                shared
                    .changed
                    .wait_timeout(alarms, d)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
        };
    }
}

impl Timer for ThreadTimer {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wake_at(&self, at: Instant, waker: Waker) {
        let mut alarms = self.shared.alarms.lock().unwrap_or_else(|p| p.into_inner());
        alarms.seq += 1;
        let seq = alarms.seq;
        let earliest = alarms.heap.peek().is_none_or(|Reverse(a)| at < a.at);
        alarms.heap.push(Reverse(Alarm { at, seq, waker }));
        drop(alarms);
        if earliest {
            self.shared.changed.notify_one();
        }
    }
}

impl Drop for ThreadTimer {
    fn drop(&mut self) {
        let mut alarms = self.shared.alarms.lock().unwrap_or_else(|p| p.into_inner());
        alarms.shutdown = true;
        alarms.heap.clear();
        drop(alarms);
        self.shared.changed.notify_one();
    }
}

/// A [`Timer`] on tokio's clock (which may be paused and advanced in tests): each alarm is a
/// task sleeping on tokio's timer.
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub struct TokioTimer {
    handle: tokio::runtime::Handle,
}

#[cfg(feature = "tokio")]
impl TokioTimer {
    /// A timer on the runtime this is called from.
    ///
    /// # Errors
    ///
    /// tokio's error when called outside a runtime.
    pub fn current() -> Result<Arc<TokioTimer>, tokio::runtime::TryCurrentError> {
        Ok(Arc::new(TokioTimer {
            handle: tokio::runtime::Handle::try_current()?,
        }))
    }

    /// A timer on the runtime of `handle`.
    pub fn with_handle(handle: tokio::runtime::Handle) -> Arc<TokioTimer> {
        Arc::new(TokioTimer { handle })
    }
}

#[cfg(feature = "tokio")]
impl Timer for TokioTimer {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn wake_at(&self, at: Instant, waker: Waker) {
        let at = tokio::time::Instant::from_std(at);
        self.handle.spawn(async move {
            tokio::time::sleep_until(at).await;
            waker.wake();
        });
    }
}
