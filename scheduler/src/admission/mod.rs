//! Async admission: the scheduler in front of an engine that does its own I/O.
//!
//! An [`AdmissionQueue`] is one shard's [`IoQueue`] behind a mutex, driven by futures:
//! [`admit`](AdmissionQueue::admit) returns a future that resolves to a [`Permit`] when the
//! class may send a request of that direction and length to the disk (its cost is covered by
//! the IO group's token bucket and the fair queue picked it by shares). The engine then does
//! the I/O any way it likes — its own io_uring, `pread` in a thread pool, tokio-uring,
//! glommio — and drops the permit, or reports the result with [`Permit::complete`], when the
//! I/O completed: that is what the statistics and the flow-ratio backpressure count.
//!
//! It works on any executor: waiting futures are woken through their wakers, and when
//! requests wait for tokens the queue arms one alarm on a [`Timer`] (a plain thread:
//! [`ThreadTimer`]; tokio: `TokioTimer` with the `tokio` feature) for the time the bucket
//! will cover them, instead of polling.
//!
//! The timer's precision matters only while the disk is idle and requests wait for tokens
//! (every completion also lets out what the tokens allow): the bucket holds the latency
//! goal's worth of disk time, and tokens that accrue beyond it while nobody looks are lost.
//! A timer that wakes later than the goal therefore costs throughput. [`ThreadTimer`] wakes
//! within tens of microseconds; tokio's timer ticks in milliseconds, so with `TokioTimer` use
//! a latency goal of 2 ms or more (or a `ThreadTimer`, which works under tokio too).
//!
//! A request longer than the model's maximum length is split by the core; its permit is
//! granted once every part has been let out (the engine still does one I/O).
//!
//! Dropping an [`Admit`] future before it resolves withdraws the request (parts already let
//! out are reported as cancelled).

mod timer;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

#[cfg(feature = "tokio")]
pub use timer::TokioTimer;
pub use timer::{ThreadTimer, Timer};

use crate::io_queue::{
    BandwidthLimit, ClassConfig, ClassId, ClassStats, GroupId, IoGroup, IoQueue, IoRequest, PartId,
    QueueError, QueueStats, RequestId,
};
use crate::Direction;

/// `errno` ECANCELED (Linux), reported for parts let out to a future that was dropped.
const ECANCELED: i64 = 125;

/// Shortest alarm interval: an estimate that says "now" while nothing can go out must not
/// make the timer spin.
const MIN_ALARM: Duration = Duration::from_micros(1);

/// The parts of a request that have been let out: (part, offset in the request, length).
#[derive(Debug, Default)]
enum Parts {
    #[default]
    None,
    One(PartId, u64),
    /// Only split requests allocate.
    Many(Vec<(PartId, u64)>),
}

impl Parts {
    fn push(&mut self, part: PartId, len: u64) {
        *self = match std::mem::take(self) {
            Parts::None => Parts::One(part, len),
            Parts::One(p, l) => Parts::Many(vec![(p, l), (part, len)]),
            Parts::Many(mut v) => {
                v.push((part, len));
                Parts::Many(v)
            }
        };
    }

    fn for_each(&self, mut f: impl FnMut(PartId, u64)) {
        match self {
            Parts::None => {}
            Parts::One(p, l) => f(*p, *l),
            Parts::Many(v) => v.iter().for_each(|&(p, l)| f(p, l)),
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Parts::None)
    }
}

/// The core's token for each request of this driver.
#[derive(Debug, Default)]
struct Waiter {
    waker: Option<Waker>,
    parts: Parts,
    dispatched: u32,
    admitted: bool,
}

#[derive(Debug)]
struct State {
    queue: IoQueue<Waiter>,
    /// The alarm set on the timer, if any.
    armed: Option<Instant>,
    /// Wakers to call once the lock is released (reused buffer).
    wake: Vec<Waker>,
}

struct Shared {
    state: Mutex<State>,
    timer: Arc<dyn Timer>,
    /// Runs the dispatcher when an alarm rings (holds a `Weak` to this).
    alarm: Waker,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// The waker an alarm calls: dispatch what the tokens now cover.
struct AlarmWake(Weak<Shared>);

impl Wake for AlarmWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shared) = self.0.upgrade() {
            let now = shared.timer.now();
            let mut state = shared.lock();
            if state.armed.is_some_and(|at| at <= now) {
                state.armed = None;
            }
            shared.pump(state, now);
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock (in a waker, say) leaves the state consistent: every
        // mutation of it completes before anything foreign is called.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets out what the tokens allow, marks the requests whose every part went out as
    /// admitted, arms the alarm for the rest, then (unlocked) wakes the admitted.
    fn pump(&self, mut state: MutexGuard<'_, State>, now: Instant) {
        let State { queue, wake, armed } = &mut *state;
        while let Some(d) = queue.poll_dispatch(now) {
            let w = d.token;
            w.parts.push(d.part, d.len);
            w.dispatched += 1;
            if w.dispatched == d.parts {
                w.admitted = true;
                if let Some(k) = w.waker.take() {
                    wake.push(k);
                }
            }
        }
        if queue.queued() > 0 {
            if let Some(at) = queue.next_dispatch_at(now) {
                let at = at.max(now + MIN_ALARM);
                if armed.is_none_or(|a| at < a) {
                    *armed = Some(at);
                    self.timer.wake_at(at, self.alarm.clone());
                }
            }
        }
        if wake.is_empty() {
            return;
        }
        let mut wake = std::mem::take(wake);
        drop(state);
        for k in wake.drain(..) {
            k.wake();
        }
        // Give the buffer back for the next pump.
        let mut state = self.lock();
        if state.wake.capacity() == 0 {
            state.wake = wake;
        }
    }
}

/// One shard's queue for engines that do their own I/O (see the module docs). Cheap to
/// clone (all clones are the same queue); `Send` and `Sync`.
#[derive(Clone, Debug)]
pub struct AdmissionQueue {
    shared: Arc<Shared>,
}

impl AdmissionQueue {
    /// A queue under `group` (shared by the shards of one disk) on `timer`'s clock.
    pub fn new(group: Arc<IoGroup>, timer: Arc<dyn Timer>) -> AdmissionQueue {
        let shared = Arc::new_cyclic(|me: &Weak<Shared>| Shared {
            state: Mutex::new(State {
                queue: IoQueue::new(group),
                armed: None,
                wake: Vec::new(),
            }),
            timer,
            alarm: Waker::from(Arc::new(AlarmWake(me.clone()))),
        });
        AdmissionQueue { shared }
    }

    /// Adds a priority class (see [`IoQueue::add_class`]).
    ///
    /// # Errors
    ///
    /// As [`IoQueue::add_class`].
    pub fn add_class(&self, cfg: ClassConfig) -> Result<ClassId, QueueError> {
        self.shared.lock().queue.add_class(cfg)
    }

    /// Adds a class group (see [`IoQueue::add_group`]).
    ///
    /// # Errors
    ///
    /// As [`IoQueue::add_group`].
    pub fn add_group(
        &self,
        shares: u32,
        parent: Option<GroupId>,
        bandwidth: Option<BandwidthLimit>,
    ) -> Result<GroupId, QueueError> {
        self.shared
            .lock()
            .queue
            .add_group(shares, parent, bandwidth)
    }

    /// Changes a class's shares.
    ///
    /// # Errors
    ///
    /// As [`IoQueue::set_shares`].
    pub fn set_shares(&self, class: ClassId, shares: u32) -> Result<(), QueueError> {
        self.shared.lock().queue.set_shares(class, shares)
    }

    /// Waits until `class` may send a `len`-byte request in `direction` to the disk. The
    /// future resolves to a [`Permit`]; do the I/O, then drop the permit or call
    /// [`Permit::complete`].
    ///
    /// The future resolves to an error for another queue's class, a zero length, or a length
    /// beyond the core's split limit ([`QueueError`]).
    pub fn admit(&self, class: ClassId, direction: Direction, len: u64) -> Admit {
        Admit {
            shared: self.shared.clone(),
            state: AdmitState::New {
                class,
                direction,
                len,
            },
        }
    }

    /// Statistics of a class.
    ///
    /// # Errors
    ///
    /// [`QueueError::ForeignClass`] for another queue's class.
    pub fn class_stats(&self, class: ClassId) -> Result<ClassStats, QueueError> {
        self.shared.lock().queue.class_stats(class)
    }

    /// Statistics of the queue.
    pub fn stats(&self) -> QueueStats {
        self.shared.lock().queue.stats()
    }

    /// The IO group.
    pub fn group(&self) -> Arc<IoGroup> {
        self.shared.lock().queue.group().clone()
    }
}

#[derive(Debug)]
enum AdmitState {
    New {
        class: ClassId,
        direction: Direction,
        len: u64,
    },
    Queued {
        request: RequestId,
        direction: Direction,
        len: u64,
    },
    Done,
}

/// The future of [`AdmissionQueue::admit`].
#[derive(Debug)]
#[must_use = "a request is queued only when the future is polled"]
pub struct Admit {
    shared: Arc<Shared>,
    state: AdmitState,
}

impl Future for Admit {
    type Output = Result<Permit, QueueError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let now = this.shared.timer.now();
        let mut state = this.shared.lock();
        match this.state {
            AdmitState::New {
                class,
                direction,
                len,
            } => {
                let req = IoRequest {
                    class,
                    direction,
                    len,
                    token: Waiter {
                        waker: Some(cx.waker().clone()),
                        ..Waiter::default()
                    },
                };
                match state.queue.queue(req, now) {
                    Ok(request) => {
                        this.state = AdmitState::Queued {
                            request,
                            direction,
                            len,
                        };
                    }
                    Err(rejected) => {
                        this.state = AdmitState::Done;
                        return Poll::Ready(Err(rejected.error));
                    }
                }
                // Let out what the tokens allow, this request included if it is first.
                this.shared.pump(state, now);
                state = this.shared.lock();
            }
            AdmitState::Queued { .. } => {}
            // Polled after it resolved: nothing more will happen.
            AdmitState::Done => return Poll::Pending,
        }
        let AdmitState::Queued {
            request,
            direction,
            len,
        } = this.state
        else {
            return Poll::Pending;
        };
        let Ok(w) = state.queue.token_mut(request) else {
            this.state = AdmitState::Done;
            return Poll::Ready(Err(QueueError::UnknownRequest(request)));
        };
        if !w.admitted {
            match &w.waker {
                Some(k) if k.will_wake(cx.waker()) => {}
                _ => w.waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        let parts = std::mem::take(&mut w.parts);
        drop(state);
        this.state = AdmitState::Done;
        Poll::Ready(Ok(Permit {
            shared: this.shared.clone(),
            parts,
            direction,
            len,
            done: false,
        }))
    }
}

impl Drop for Admit {
    fn drop(&mut self) {
        let AdmitState::Queued { request, .. } = self.state else {
            return;
        };
        let now = self.shared.timer.now();
        let mut state = self.shared.lock();
        let parts = match state.queue.token_mut(request) {
            Ok(w) => std::mem::take(&mut w.parts),
            Err(_) => return,
        };
        // Parts not let out never will be; those let out did no I/O.
        let _ = state.queue.cancel(request);
        parts.for_each(|part, _| {
            let _ = state.queue.complete(part, -ECANCELED, now);
        });
        self.shared.pump(state, now);
    }
}

/// Leave to send one request to the disk, from [`AdmissionQueue::admit`]. Report the result
/// with [`complete`](Self::complete), or drop it (which reports the full length).
#[derive(Debug)]
#[must_use = "dropping the permit at once reports the request as done"]
pub struct Permit {
    shared: Arc<Shared>,
    parts: Parts,
    direction: Direction,
    len: u64,
    done: bool,
}

impl Permit {
    /// The request's length, bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: requests have at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Read or write.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Reports the I/O done: `result` bytes transferred, or a negative errno.
    pub fn complete(mut self, result: i64) {
        self.finish(result);
    }

    fn finish(&mut self, result: i64) {
        if self.done || self.parts.is_empty() {
            self.done = true;
            return;
        }
        self.done = true;
        let now = self.shared.timer.now();
        let mut state = self.shared.lock();
        // Parts in order of their offsets: bytes fill them front to back.
        let mut left = result;
        self.parts.for_each(|part, len| {
            let r = if left < 0 {
                left
            } else {
                let r = left.min(len as i64);
                left -= r;
                r
            };
            let _ = state.queue.complete(part, r, now);
        });
        self.shared.pump(state, now);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.finish(self.len as i64);
    }
}
