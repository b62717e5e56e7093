//! A per-shard submission/completion interface: the closed-loop jobs, the scheduler's I/O
//! queue and io-tester's fibers all submit through it.
//!
//! Requests name a buffer slot of the ring's own arena, so the API is safe: the ring keeps the
//! memory alive, dropping the ring first waits for every in-flight request, and the ring counts
//! the requests in flight on each slot (it sees every push and every completion), so it refuses
//! to write into a slot the kernel or a worker thread may be using ([`Ring::stamp`]).
//!
//! Under io_uring the kernel carries one `u64` per request: the ring hands it an index into a
//! small table of its own (the tag), which gives back the caller's `user_data` and the slot on
//! completion.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};

use super::buffer::{BufferArena, MIN_ALIGN};
use super::uring::build_ring;
use super::{Direction, EngineError, EngineKind};

/// One request for [`Ring::push`].
#[derive(Clone, Copy, Debug)]
pub struct RingRequest {
    /// Read or write.
    pub direction: Direction,
    /// Index into the files given to [`Ring::new`].
    pub file: usize,
    /// File offset, bytes (aligned to the file's DIO offset alignment).
    pub offset: u64,
    /// Buffer slot of the ring's arena.
    pub slot: usize,
    /// Byte offset inside the slot (for the parts of a split request).
    pub slot_offset: usize,
    /// Bytes to transfer; `slot_offset + len` must not exceed the slot size.
    pub len: u32,
    /// Returned with the completion.
    pub user_data: u64,
    /// `preadv2`/`pwritev2` flags, e.g. `libc::RWF_NOWAIT` (io_uring only; the threads back
    /// end ignores them, as its calls block by design).
    pub rw_flags: i32,
    /// Submit as `readv`/`writev` over this many equal pieces of the buffer (0 or 1: one
    /// plain read or write). At most [`MAX_IOVECS`]; `len` must split into 512-byte multiples,
    /// and the slot must have nothing else in flight (its iovec array is the slot's own).
    pub iovecs: u16,
}

/// Most pieces a vectored request may have.
pub const MAX_IOVECS: u16 = 64;

/// A completed request: its `user_data` and the kernel's result (bytes, or a negative errno).
#[derive(Clone, Copy, Debug)]
pub struct RingCompletion {
    /// As given in the request.
    pub user_data: u64,
    /// Bytes transferred, or `-errno`.
    pub result: i32,
}

/// How to build a [`Ring`] (see [`Ring::builder`]); [`Ring::new`] is the short form with the
/// defaults.
#[derive(Clone, Debug)]
pub struct RingBuilder {
    kind: EngineKind,
    slots: usize,
    slot_size: usize,
    files: Vec<RawFd>,
    buffer_align: usize,
    seed: Option<u64>,
}

impl RingBuilder {
    /// Buffer slots, which bound the requests in flight (default 1; 0 is taken as 1).
    pub fn slots(mut self, slots: usize) -> Self {
        self.slots = slots;
        self
    }

    /// Bytes per slot (default 4096).
    pub fn slot_size(mut self, bytes: usize) -> Self {
        self.slot_size = bytes;
        self
    }

    /// Files the requests may name, by index (default none).
    pub fn files(mut self, files: &[RawFd]) -> Self {
        self.files = files.to_vec();
        self
    }

    /// Memory alignment of the buffer slots, bytes: the files' DIO memory alignment (statx
    /// `stx_dio_mem_align`), raised to a power of two. Every slot starts at a multiple of it,
    /// and the buffers as a whole are aligned to at least 4096 (one page, so that a slot whose
    /// size is a multiple of a page never straddles an extra page; huge-page buffers to 2 MiB).
    /// Default 4096.
    pub fn buffer_align(mut self, bytes: usize) -> Self {
        self.buffer_align = bytes;
        self
    }

    /// Seed of the buffers' random contents (default: one that differs between runs).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Creates the ring. The threads back end starts `slots` worker threads doing blocking
    /// `pread`/`pwrite`.
    pub fn build(self) -> Result<Ring, EngineError> {
        let bufs = self.arena()?;
        let slots = bufs.count();
        let backend = match self.kind {
            EngineKind::Uring => {
                let ring = build_ring(slots as u32)
                    .map_err(|source| EngineError::UringUnavailable { source })?;
                let fixed_files = ring.submitter().register_files(&self.files).is_ok();
                // SAFETY: the arena is owned by this Ring (Arc) and outlives the io_uring: `Drop`
                // drains every request, then the `backend` field (the io_uring) is dropped before
                // the `bufs` field.
                let fixed_bufs = bufs.registrable(self.slot_size)
                    && unsafe { ring.submitter().register_buffers(&[bufs.iovec()]) }.is_ok();
                Backend::Uring {
                    ring,
                    fixed_files,
                    fixed_bufs,
                    tags: Tags::new(slots),
                }
            }
            EngineKind::Threads => thread_pool(&bufs)?,
        };
        Ok(Ring::with(backend, bufs, self.files))
    }

    /// A ring whose requests are performed with blocking `pread`/`pwrite` on the calling
    /// thread, inside [`Ring::submit_and_wait`]: the threads engine of the closed-loop jobs,
    /// which run one such ring of one slot per thread, so that a completion is seen and the
    /// next request issued without a hand-over between threads.
    pub(crate) fn build_blocking(self) -> Result<Ring, EngineError> {
        let bufs = self.arena()?;
        let backend = Backend::Blocking {
            pending: Vec::with_capacity(bufs.count()),
            ready: Vec::with_capacity(bufs.count()),
        };
        Ok(Ring::with(backend, bufs, self.files))
    }

    fn arena(&self) -> Result<Arc<BufferArena>, EngineError> {
        let slots = self.slots.max(1);
        if self.slot_size == 0 || u32::try_from(slots).is_err() {
            return Err(EngineError::InvalidJob(format!(
                "a ring needs slots of at least one byte and fewer than 2^32 of them, not {slots} \
                 of {} bytes",
                self.slot_size
            )));
        }
        let seed = self.seed.unwrap_or_else(|| super::rng::seed_for(slots));
        BufferArena::new_random(slots, self.slot_size, self.buffer_align, seed)
            .map(Arc::new)
            .ok_or(EngineError::Alloc {
                bytes: slots.saturating_mul(self.slot_size),
            })
    }
}

/// Per-shard request interface over io_uring, or over worker threads when io_uring is
/// unavailable.
pub struct Ring {
    // Declared before `bufs`: the io_uring (with the arena registered) goes first.
    backend: Backend,
    bufs: Arc<BufferArena>,
    files: Vec<RawFd>,
    in_flight: usize,
    /// Requests in flight per slot: pushed and not yet reaped. While a slot's count is not
    /// zero, the kernel or a worker thread may access its memory.
    busy: Vec<u32>,
    /// The time given to the last `reap_at` (or read by `reap`).
    last_reap: Instant,
    /// `MAX_IOVECS` iovecs per slot for vectored requests, allocated on first use and never
    /// resized, so the kernel may read them until the request completes.
    iovecs: Vec<libc::iovec>,
}

// Not Send (the raw iovec pointers see to that): the io_uring is created single-issuer with
// deferred task-run (Linux 6.1+), which binds it to the thread that creates it. Create a Ring
// on the shard thread that uses it. Not Sync either, so `stamp` (&self) never runs beside a
// `push` or `reap` (&mut self) of the same ring.

/// A completion inside the ring: the caller's part and the slot it frees.
#[derive(Clone, Copy, Debug)]
struct Done {
    user_data: u64,
    result: i32,
    slot: u32,
}

// One per ring, never moved on the request path: the io_uring's size does not matter.
#[allow(clippy::large_enum_variant)]
enum Backend {
    /// Completes every request at once without I/O (benchmarks of the queue's own cost).
    Null { done: VecDeque<Done> },
    Uring {
        ring: IoUring,
        fixed_files: bool,
        fixed_bufs: bool,
        tags: Tags,
    },
    Threads {
        tx: Option<mpsc::Sender<(RingRequest, RawFd)>>,
        rx: mpsc::Receiver<Done>,
        /// Completions received while waiting, handed out by `reap`.
        ready: VecDeque<Done>,
        workers: Vec<std::thread::JoinHandle<()>>,
    },
    /// Blocking calls on the calling thread, made by `submit_and_wait`.
    Blocking {
        pending: Vec<(RingRequest, RawFd)>,
        ready: Vec<Done>,
    },
}

/// The requests the kernel holds, by tag (the `user_data` io_uring carries): the caller's
/// `user_data` and the slot. Tags are reused through a free list, so the table stays as large
/// as the most requests ever in flight at once.
struct Tags {
    entries: Vec<Tagged>,
    free: Vec<u32>,
}

#[derive(Clone, Copy)]
struct Tagged {
    user_data: u64,
    /// [`Tags::FREE`] while the tag is not in flight.
    slot: u32,
}

impl Tags {
    const FREE: u32 = u32::MAX;

    fn new(capacity: usize) -> Tags {
        let free = Tagged {
            user_data: 0,
            slot: Tags::FREE,
        };
        Tags {
            entries: vec![free; capacity],
            free: (0..capacity as u32).rev().collect(),
        }
    }

    /// A tag for a request on `slot` (which is below `u32::MAX`: the ring has fewer slots).
    #[inline]
    fn take(&mut self, user_data: u64, slot: u32) -> Option<u64> {
        let tag = match self.free.pop() {
            Some(t) => t,
            None => {
                let t = u32::try_from(self.entries.len())
                    .ok()
                    .filter(|&t| t != Tags::FREE)?;
                self.entries.push(Tagged {
                    user_data: 0,
                    slot: Tags::FREE,
                });
                t
            }
        };
        self.entries[tag as usize] = Tagged { user_data, slot };
        Some(u64::from(tag))
    }

    /// The request behind `tag`, which is free again; `None` for a tag not in flight.
    #[inline]
    fn release(&mut self, tag: u64) -> Option<Tagged> {
        let e = self.entries.get_mut(usize::try_from(tag).ok()?)?;
        if e.slot == Tags::FREE {
            return None;
        }
        let t = *e;
        e.slot = Tags::FREE;
        self.free.push(tag as u32);
        Some(t)
    }
}

/// The threads back end: one worker per slot, fed through a channel.
fn thread_pool(bufs: &Arc<BufferArena>) -> Result<Backend, EngineError> {
    let slots = bufs.count();
    let (tx, work_rx) = mpsc::channel::<(RingRequest, RawFd)>();
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, rx) = mpsc::channel();
    let mut workers = Vec::with_capacity(slots);
    for _ in 0..slots {
        let (work_rx, done_tx, bufs) = (work_rx.clone(), done_tx.clone(), bufs.clone());
        let worker = std::thread::Builder::new()
            .name("ring-worker".into())
            .spawn(move || loop {
                let next = work_rx.lock().map(|r| r.recv());
                let Ok(Ok((req, fd))) = next else { return };
                let result = blocking_io(&bufs, &req, fd);
                let done = Done {
                    user_data: req.user_data,
                    result,
                    slot: req.slot as u32,
                };
                if done_tx.send(done).is_err() {
                    return;
                }
            })
            .map_err(|source| EngineError::Thread { source })?;
        workers.push(worker);
    }
    Ok(Backend::Threads {
        tx: Some(tx),
        rx,
        ready: VecDeque::with_capacity(slots),
        workers,
    })
}

impl Ring {
    /// Creates a ring with `slots` buffer slots of `slot_size` bytes (random, incompressible
    /// contents, 4096-byte aligned) for requests on `files`; at most `slots` requests are in
    /// flight. [`Ring::builder`] sets the alignment and the seed too.
    ///
    /// The threads back end starts `slots` worker threads doing blocking `pread`/`pwrite`.
    pub fn new(
        kind: EngineKind,
        slots: usize,
        slot_size: usize,
        files: &[RawFd],
    ) -> Result<Ring, EngineError> {
        Ring::builder(kind)
            .slots(slots)
            .slot_size(slot_size)
            .files(files)
            .build()
    }

    /// A builder for a ring of `kind`: one 4096-byte slot, no files, 4096-byte alignment.
    pub fn builder(kind: EngineKind) -> RingBuilder {
        RingBuilder {
            kind,
            slots: 1,
            slot_size: 4096,
            files: Vec::new(),
            buffer_align: MIN_ALIGN,
            seed: None,
        }
    }

    /// A ring whose requests complete at once with their full length, without any I/O or
    /// syscall: for measuring what the scheduler itself costs per request.
    pub fn null(slots: usize, slot_size: usize, files: usize) -> Result<Ring, EngineError> {
        let bufs = Ring::builder(EngineKind::Threads)
            .slots(slots)
            .slot_size(slot_size)
            .seed(1)
            .arena()?;
        let backend = Backend::Null {
            done: VecDeque::with_capacity(bufs.count() * 2),
        };
        Ok(Ring::with(backend, bufs, vec![-1; files.max(1)]))
    }

    fn with(backend: Backend, bufs: Arc<BufferArena>, files: Vec<RawFd>) -> Ring {
        Ring {
            backend,
            busy: vec![0; bufs.count()],
            bufs,
            files,
            in_flight: 0,
            last_reap: Instant::now(),
            iovecs: Vec::new(),
        }
    }

    /// Slots in the arena (the in-flight bound).
    pub fn slots(&self) -> usize {
        self.bufs.count()
    }

    /// Bytes per slot.
    pub fn slot_size(&self) -> usize {
        self.bufs.slot_size()
    }

    /// Memory alignment of the buffers as a whole, bytes (at least 4096, and at least what
    /// [`RingBuilder::buffer_align`] asked, which every slot meets).
    pub fn buffer_align(&self) -> usize {
        self.bufs.align()
    }

    /// Requests pushed and not yet reaped.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Requests pushed on `slot` and not yet reaped (0 for a slot out of range).
    pub fn slot_in_flight(&self, slot: usize) -> usize {
        self.busy.get(slot).map_or(0, |&n| n as usize)
    }

    /// Files the ring was created with.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Whether requests go out with a registered file and registered buffers (io_uring, when
    /// the kernel took both; buffers for requests over 64 KiB only when huge pages back them,
    /// so that such requests reach the disk whole).
    pub fn registered(&self) -> bool {
        matches!(
            self.backend,
            Backend::Uring {
                fixed_files: true,
                fixed_bufs: true,
                ..
            }
        )
    }

    /// Makes a write slot's data unique: stamps `(sequence, offset)` into the first 16 bytes of
    /// every 4 KiB block of `slot`, so neither compression nor deduplication in the device can
    /// flatter a write (the rest stays random).
    ///
    /// Errors: [`EngineError::SlotBusy`] while a request on `slot` is in flight (pushed and not
    /// yet reaped: the kernel or a worker thread may be using the memory), `InvalidJob` for a
    /// slot out of range. Nothing is written then.
    pub fn stamp(&self, slot: usize, sequence: u64, offset: u64) -> Result<(), EngineError> {
        match self.busy.get(slot) {
            None => Err(EngineError::InvalidJob(format!(
                "slot {slot} is outside the ring's {} slots",
                self.busy.len()
            ))),
            Some(&n) if n > 0 => Err(EngineError::SlotBusy {
                slot,
                in_flight: n as usize,
            }),
            Some(_) => {
                // SAFETY: no request on `slot` is in flight: `busy[slot]` counts every push on
                // it and drops only when its completion is reaped, i.e. after the kernel (a CQE)
                // or the worker thread (its completion message) finished with the memory. The
                // Ring is not Sync, so no push can start on this ring while `&self` is borrowed
                // here, and the arena is the Ring's own, so no other user reaches this slot.
                unsafe { self.bufs.stamp(slot, sequence, offset) };
                Ok(())
            }
        }
    }

    /// Queues a request for the next submit. Errors: `InvalidJob` for a slot, range or file
    /// out of bounds, or for a vectored request on a slot that has requests in flight;
    /// `Submit` when the submission queue is full and cannot be flushed.
    ///
    /// Several requests may use one slot (the parts of a split request); the ring does not
    /// check that their byte ranges differ — overlapping ones only make the data meaningless.
    #[inline(always)]
    pub fn push(&mut self, req: RingRequest) -> Result<(), EngineError> {
        // One iovec array per slot: a vectored request must own its slot (offset 0).
        let bad_iov = req.iovecs > MAX_IOVECS
            || (req.iovecs > 1
                && (req.slot_offset != 0
                    || req.len as usize % (req.iovecs as usize * 512) != 0
                    || self.busy.get(req.slot).is_some_and(|&n| n > 0)));
        if bad_iov
            || req.slot >= self.busy.len()
            || req.slot_offset.saturating_add(req.len as usize) > self.bufs.slot_size()
            || req.file >= self.files.len()
        {
            return Err(EngineError::InvalidJob(format!(
                "request {req:?} is outside the ring's slots or files, or its iovecs do not split it \
                 into 512-byte pieces from slot offset 0 of an idle slot (at most {MAX_IOVECS})"
            )));
        }
        let busy = self.busy[req.slot]
            .checked_add(1)
            .ok_or_else(|| EngineError::InvalidJob("too many requests on one slot".into()))?;
        let fd = self.files[req.file];
        // Bounds checked above: slot < busy.len() <= u32::MAX.
        let slot = req.slot as u32;
        match &mut self.backend {
            Backend::Null { done } => done.push_back(Done {
                user_data: req.user_data,
                result: req.len as i32,
                slot,
            }),
            Backend::Uring {
                ring,
                fixed_files,
                fixed_bufs,
                tags,
            } => {
                let files = (*fixed_files, *fixed_bufs);
                push_uring(ring, files, tags, &self.bufs, &mut self.iovecs, req, fd)?;
            }
            Backend::Threads { tx, .. } => {
                let sent = tx.as_ref().is_some_and(|tx| tx.send((req, fd)).is_ok());
                if !sent {
                    return Err(EngineError::InvalidJob("worker threads are gone".into()));
                }
            }
            Backend::Blocking { pending, .. } => pending.push((req, fd)),
        }
        self.busy[req.slot] = busy;
        self.in_flight += 1;
        Ok(())
    }

    /// Submits what was pushed and waits until at least `want` completions are available
    /// (0: do not wait). One `io_uring_enter` per call.
    #[inline(always)]
    pub fn submit_and_wait(&mut self, want: usize) -> Result<(), EngineError> {
        self.submit_and_wait_timeout(want, None)
    }

    /// As [`Ring::submit_and_wait`], but returns after `timeout` even if fewer completions
    /// arrived (io_uring's extended-argument wait, Linux 5.11+; older kernels wait without a
    /// timeout).
    #[inline(always)]
    pub fn submit_and_wait_timeout(
        &mut self,
        want: usize,
        timeout: Option<Duration>,
    ) -> Result<(), EngineError> {
        if let Backend::Blocking { pending, ready } = &mut self.backend {
            // Completion order is unspecified, as with the other back ends.
            while let Some((req, fd)) = pending.pop() {
                ready.push(Done {
                    user_data: req.user_data,
                    result: blocking_io(&self.bufs, &req, fd),
                    slot: req.slot as u32,
                });
            }
            return Ok(());
        }
        self.wait(want, timeout)
    }

    /// [`Ring::submit_and_wait_timeout`] for the back ends that wait.
    fn wait(&mut self, want: usize, timeout: Option<Duration>) -> Result<(), EngineError> {
        let want = want.min(self.in_flight);
        match &mut self.backend {
            Backend::Uring { ring, .. } => loop {
                let res = match timeout {
                    // The timed wait needs IORING_FEAT_EXT_ARG (Linux 5.11); older kernels wait
                    // for the completion without a timeout.
                    Some(t) if want > 0 && ring.params().is_feature_ext_arg() => {
                        let ts = types::Timespec::new()
                            .sec(t.as_secs())
                            .nsec(t.subsec_nanos());
                        let args = types::SubmitArgs::new().timespec(&ts);
                        ring.submitter().submit_with_args(want, &args)
                    }
                    // With deferred task-run (Linux 6.1+), completions are only posted by an
                    // enter with GETEVENTS: ask for it even when not waiting.
                    // SAFETY: no argument is passed; the flag only asks the kernel to run
                    // pending completion work.
                    _ if want == 0 => unsafe {
                        let to_submit = ring.submission().len() as u32;
                        ring.submitter().enter::<libc::sigset_t>(
                            to_submit, 0, 1, /* IORING_ENTER_GETEVENTS */
                            None,
                        )
                    },
                    _ => ring.submit_and_wait(want),
                };
                match res {
                    Ok(_) => return Ok(()),
                    Err(e) if e.raw_os_error() == Some(libc::ETIME) => return Ok(()),
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
                        ) =>
                    {
                        if !ring.completion().is_empty() || timeout.is_some() {
                            return Ok(());
                        }
                    }
                    Err(source) => return Err(EngineError::Submit { source }),
                }
            },
            Backend::Threads { rx, ready, .. } => {
                let deadline = timeout.map(|t| Instant::now() + t);
                while ready.len() < want {
                    let got = match deadline {
                        None => rx.recv().map_err(|_| ()),
                        Some(d) => rx
                            .recv_timeout(d.saturating_duration_since(Instant::now()))
                            .map_err(|_| ()),
                    };
                    match got {
                        Ok(c) => ready.push_back(c),
                        Err(()) => break,
                    }
                }
                Ok(())
            }
            Backend::Null { .. } | Backend::Blocking { .. } => Ok(()),
        }
    }

    /// Calls `f` for every available completion and returns how many there were. Reads the
    /// clock once (see [`Ring::last_reap`]).
    pub fn reap(&mut self, f: impl FnMut(RingCompletion)) -> usize {
        self.reap_at(Instant::now(), f)
    }

    /// As [`Ring::reap`], with `now` (read by the caller just before) as the reap time: for
    /// callers that already read the clock for the batch.
    #[inline(always)]
    pub fn reap_at(&mut self, now: Instant, mut f: impl FnMut(RingCompletion)) -> usize {
        let busy = &mut self.busy;
        let mut n = 0;
        let mut done = |d: Done| {
            if let Some(b) = busy.get_mut(d.slot as usize) {
                *b = b.saturating_sub(1);
            }
            n += 1;
            f(RingCompletion {
                user_data: d.user_data,
                result: d.result,
            });
        };
        match &mut self.backend {
            Backend::Null { done: q } => {
                while let Some(d) = q.pop_front() {
                    done(d);
                }
            }
            Backend::Uring { ring, tags, .. } => {
                for cqe in ring.completion() {
                    // Every CQE carries a tag of ours; anything else is skipped.
                    if let Some(t) = tags.release(cqe.user_data()) {
                        done(Done {
                            user_data: t.user_data,
                            result: cqe.result(),
                            slot: t.slot,
                        });
                    }
                }
            }
            Backend::Threads { rx, ready, .. } => {
                while let Some(d) = ready.pop_front() {
                    done(d);
                }
                while let Ok(d) = rx.try_recv() {
                    done(d);
                }
            }
            Backend::Blocking { ready, .. } => {
                while let Some(d) = ready.pop() {
                    done(d);
                }
            }
        }
        self.in_flight -= n;
        self.last_reap = now;
        n
    }

    /// When the last reap happened: the time given to [`Ring::reap_at`], or read by
    /// [`Ring::reap`] before it handed out the completions (the completion time of what it
    /// reaped, one clock read per batch).
    pub fn last_reap(&self) -> Instant {
        self.last_reap
    }
}

/// [`Ring::push`] for io_uring, after the checks: takes a tag, builds the entry and queues it
/// (flushing the submission queue when it is full).
#[inline(always)]
fn push_uring(
    ring: &mut IoUring,
    (fixed_files, fixed_bufs): (bool, bool),
    tags: &mut Tags,
    bufs: &BufferArena,
    iovecs: &mut Vec<libc::iovec>,
    req: RingRequest,
    fd: RawFd,
) -> Result<(), EngineError> {
    let busy = || EngineError::Submit {
        source: io::Error::from_raw_os_error(libc::EBUSY),
    };
    let tag = tags.take(req.user_data, req.slot as u32).ok_or_else(busy)?;
    // The kernel carries the tag; the completion gives the caller's user_data back.
    let kreq = RingRequest {
        user_data: tag,
        ..req
    };
    let ptr = bufs.slot_ptr(req.slot);
    // SAFETY: `push` checked slot_offset + len <= slot size, so the pointer stays in the slot.
    let ptr = unsafe { ptr.add(req.slot_offset) };
    let entry = if req.iovecs > 1 {
        if iovecs.is_empty() {
            let empty = libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            };
            *iovecs = vec![empty; bufs.count() * MAX_IOVECS as usize];
        }
        let iov = &mut iovecs[req.slot * MAX_IOVECS as usize..][..req.iovecs as usize];
        vectored(kreq, fd, ptr, iov, fixed_files)
    } else {
        sqe(kreq, fd, ptr, fixed_files, fixed_bufs)
    };
    // SAFETY: the buffer (and the slot's iovecs) belong to the ring, which lives until every
    // request has completed (Drop drains first); `push` counts the slot busy, so it is not
    // stamped meanwhile.
    if unsafe { ring.submission().push(&entry) }.is_ok() {
        return Ok(());
    }
    // The submission queue is full: hand it to the kernel and try again.
    let flushed = ring
        .submit()
        .map_err(|source| EngineError::Submit { source })
        // SAFETY: as above.
        .and_then(|_| unsafe { ring.submission().push(&entry) }.map_err(|_| busy()));
    if flushed.is_err() {
        tags.release(tag);
    }
    flushed
}

/// The `readv`/`writev` entry for `req` over `iov.len()` equal pieces of the buffer at `ptr`,
/// filling `iov` (which must stay untouched until the request completes).
fn vectored(
    req: RingRequest,
    fd: RawFd,
    ptr: *mut u8,
    iov: &mut [libc::iovec],
    fixed_files: bool,
) -> squeue::Entry {
    let n = iov.len();
    let piece = req.len as usize / n;
    for (i, v) in iov.iter_mut().enumerate() {
        // SAFETY: i * piece < len, inside the slot (checked by `push`).
        *v = libc::iovec {
            iov_base: unsafe { ptr.add(i * piece) }.cast(),
            iov_len: piece,
        };
    }
    let (iov_ptr, n) = (iov.as_ptr(), n as u32);
    let e = match (req.direction, fixed_files) {
        (Direction::Read, true) => opcode::Readv::new(types::Fixed(req.file as u32), iov_ptr, n)
            .offset(req.offset)
            .rw_flags(req.rw_flags)
            .build(),
        (Direction::Read, false) => opcode::Readv::new(types::Fd(fd), iov_ptr, n)
            .offset(req.offset)
            .rw_flags(req.rw_flags)
            .build(),
        (Direction::Write, true) => opcode::Writev::new(types::Fixed(req.file as u32), iov_ptr, n)
            .offset(req.offset)
            .rw_flags(req.rw_flags)
            .build(),
        (Direction::Write, false) => opcode::Writev::new(types::Fd(fd), iov_ptr, n)
            .offset(req.offset)
            .rw_flags(req.rw_flags)
            .build(),
    };
    e.user_data(req.user_data)
}

/// The submission entry for `req` on descriptor `fd` (or registered file `req.file`) with the
/// buffer at `ptr`.
#[inline(always)]
fn sqe(
    req: RingRequest,
    fd: RawFd,
    ptr: *mut u8,
    fixed_files: bool,
    fixed_bufs: bool,
) -> squeue::Entry {
    let (len, off) = (req.len, req.offset);
    let fixed = types::Fixed(req.file as u32);
    let plain = types::Fd(fd);
    let flags = req.rw_flags;
    macro_rules! op {
        ($op:ident, $fd:expr, fixed) => {
            opcode::$op::new($fd, ptr, len, 0)
                .offset(off)
                .rw_flags(flags)
                .build()
        };
        ($op:ident, $fd:expr) => {
            opcode::$op::new($fd, ptr, len)
                .offset(off)
                .rw_flags(flags)
                .build()
        };
    }
    let e = match (req.direction, fixed_files, fixed_bufs) {
        (Direction::Read, true, true) => op!(ReadFixed, fixed, fixed),
        (Direction::Read, true, false) => op!(Read, fixed),
        (Direction::Read, false, true) => op!(ReadFixed, plain, fixed),
        (Direction::Read, false, false) => op!(Read, plain),
        (Direction::Write, true, true) => op!(WriteFixed, fixed, fixed),
        (Direction::Write, true, false) => op!(Write, fixed),
        (Direction::Write, false, true) => op!(WriteFixed, plain, fixed),
        (Direction::Write, false, false) => op!(Write, plain),
    };
    e.user_data(req.user_data)
}

/// Performs `req` on `fd` with a blocking call, retried when a signal interrupts it; returns
/// the bytes transferred or `-errno`.
#[inline(always)]
fn blocking_io(bufs: &BufferArena, req: &RingRequest, fd: RawFd) -> i32 {
    // SAFETY: `push` checked slot_offset + len <= slot size, so the range lies in the slot.
    let ptr = unsafe { bufs.slot_ptr(req.slot).add(req.slot_offset) };
    let (len, offset) = (req.len as usize, req.offset as libc::off_t);
    if req.iovecs > 1 {
        return blocking_vectored(ptr, req, fd);
    }
    retry_interrupted(|| {
        // SAFETY: ptr..ptr + len lies in the slot (above), which the ring counts busy until this
        // completion is reaped, so nothing else writes it meanwhile; the arena outlives the call.
        unsafe {
            match req.direction {
                Direction::Read => libc::pread(fd, ptr.cast(), len, offset),
                Direction::Write => libc::pwrite(fd, ptr.cast(), len, offset),
            }
        }
    })
}

/// [`blocking_io`] for a vectored request: `req.iovecs` equal pieces from `ptr`.
#[inline(never)]
fn blocking_vectored(ptr: *mut u8, req: &RingRequest, fd: RawFd) -> i32 {
    let n = (req.iovecs as usize).min(MAX_IOVECS as usize);
    let piece = req.len as usize / n;
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_IOVECS as usize];
    for (i, v) in iov.iter_mut().take(n).enumerate() {
        // SAFETY: i * piece < len, and ptr..ptr + len lies in the slot (checked by `push`).
        let p = unsafe { ptr.add(i * piece) };
        *v = libc::iovec {
            iov_base: p.cast(),
            iov_len: piece,
        };
    }
    let offset = req.offset as libc::off_t;
    retry_interrupted(|| {
        // SAFETY: the iovecs point into the slot, busy until this completion is reaped (as in
        // `blocking_io`); `iov` lives across the call.
        unsafe {
            match req.direction {
                Direction::Read => libc::preadv(fd, iov.as_ptr(), n as i32, offset),
                Direction::Write => libc::pwritev(fd, iov.as_ptr(), n as i32, offset),
            }
        }
    })
}

/// Runs a syscall until a signal does not interrupt it: bytes transferred or `-errno`.
#[inline]
fn retry_interrupted(mut call: impl FnMut() -> isize) -> i32 {
    loop {
        let r = call();
        if r >= 0 {
            return r as i32;
        }
        let errno = io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        if errno != libc::EINTR {
            return -errno;
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Wait for every in-flight request, so no DMA can target the arena after it is freed.
        while self.in_flight > 0 {
            if self.submit_and_wait(1).is_err() {
                // The ring is broken; leak the arena rather than free memory still in use.
                std::mem::forget(self.bufs.clone());
                break;
            }
            self.reap(|_| {});
        }
        if let Backend::Threads { tx, workers, .. } = &mut self.backend {
            tx.take();
            for w in workers.drain(..) {
                let _ = w.join();
            }
        }
    }
}
