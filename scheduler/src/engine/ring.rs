//! A per-shard submission/completion interface for callers that decide request by request
//! (the scheduler's I/O queue, io-tester's fibers), as opposed to the closed-loop jobs.
//!
//! Requests name a buffer slot of the ring's own arena, so the API is safe: the ring keeps the
//! memory alive, and dropping the ring first waits for every in-flight request.

use std::io;
use std::os::fd::RawFd;
use std::sync::mpsc;
use std::time::Instant;

use io_uring::{opcode, squeue, types, IoUring};

use super::buffer::BufferArena;
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
    /// plain read or write). At most [`MAX_IOVECS`]; `len` must split into 512-byte multiples.
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

/// Per-shard request interface over io_uring, or over worker threads when io_uring is
/// unavailable.
pub struct Ring {
    backend: Backend,
    bufs: std::sync::Arc<BufferArena>,
    files: Vec<RawFd>,
    in_flight: usize,
    /// When the last `submit_and_wait`/`reap` returned: the completion time of what it reaped.
    last_reap: Instant,
    /// `MAX_IOVECS` iovecs per slot for vectored requests, allocated on first use and never
    /// resized, so the kernel may read them until the request completes.
    iovecs: Vec<libc::iovec>,
}

// Not Send (the raw iovec pointers see to that): the io_uring is created single-issuer with
// deferred task-run (Linux 6.1+), which binds it to the thread that creates it. Create a Ring
// on the shard thread that uses it.

enum Backend {
    /// Completes every request at once without I/O (benchmarks of the queue's own cost).
    Null {
        done: std::collections::VecDeque<RingCompletion>,
    },
    Uring {
        ring: IoUring,
        fixed_files: bool,
        fixed_bufs: bool,
    },
    Threads {
        tx: Option<mpsc::Sender<(RingRequest, RawFd)>>,
        rx: mpsc::Receiver<RingCompletion>,
        /// Completions received while waiting, handed out by `reap`.
        ready: std::collections::VecDeque<RingCompletion>,
        workers: Vec<std::thread::JoinHandle<()>>,
    },
}

impl Ring {
    /// Creates a ring with `slots` buffer slots of `slot_size` bytes (random, incompressible
    /// contents) for requests on `files`; at most `slots` requests are in flight.
    ///
    /// The threads back end starts `slots` worker threads doing blocking `pread`/`pwrite`.
    pub fn new(
        kind: EngineKind,
        slots: usize,
        slot_size: usize,
        files: &[RawFd],
    ) -> Result<Ring, EngineError> {
        let slots = slots.max(1);
        let bufs = std::sync::Arc::new(
            BufferArena::new_random(slots, slot_size, 4096, super::rng::seed_for(slots)).ok_or(
                EngineError::Alloc {
                    bytes: slots * slot_size,
                },
            )?,
        );
        let backend = match kind {
            EngineKind::Uring => {
                let ring = build_ring(slots as u32)
                    .map_err(|source| EngineError::UringUnavailable { source })?;
                let fixed_files = ring.submitter().register_files(files).is_ok();
                // SAFETY: the arena is owned by this Ring (Arc) and outlives the io_uring, which
                // `Drop` tears down first after draining every request.
                let fixed_bufs = bufs.registrable(slot_size)
                    && unsafe { ring.submitter().register_buffers(&[bufs.iovec()]) }.is_ok();
                Backend::Uring {
                    ring,
                    fixed_files,
                    fixed_bufs,
                }
            }
            EngineKind::Threads => {
                let (tx, work_rx) = mpsc::channel::<(RingRequest, RawFd)>();
                let work_rx = std::sync::Arc::new(std::sync::Mutex::new(work_rx));
                let (done_tx, rx) = mpsc::channel();
                let workers = (0..slots)
                    .map(|_| {
                        let (work_rx, done_tx, bufs) =
                            (work_rx.clone(), done_tx.clone(), bufs.clone());
                        std::thread::spawn(move || loop {
                            let next = work_rx.lock().map(|r| r.recv());
                            let Ok(Ok((req, fd))) = next else { return };
                            let result = blocking_io(&bufs, &req, fd);
                            if done_tx
                                .send(RingCompletion {
                                    user_data: req.user_data,
                                    result,
                                })
                                .is_err()
                            {
                                return;
                            }
                        })
                    })
                    .collect();
                Backend::Threads {
                    tx: Some(tx),
                    rx,
                    ready: std::collections::VecDeque::with_capacity(slots),
                    workers,
                }
            }
        };
        Ok(Ring {
            backend,
            bufs,
            files: files.to_vec(),
            in_flight: 0,
            last_reap: Instant::now(),
            iovecs: Vec::new(),
        })
    }

    /// A ring whose requests complete at once with their full length, without any I/O or
    /// syscall: for measuring what the scheduler itself costs per request.
    pub fn null(slots: usize, slot_size: usize, files: usize) -> Result<Ring, EngineError> {
        let slots = slots.max(1);
        let bufs = std::sync::Arc::new(BufferArena::new_random(slots, slot_size, 4096, 1).ok_or(
            EngineError::Alloc {
                bytes: slots * slot_size,
            },
        )?);
        Ok(Ring {
            backend: Backend::Null {
                done: std::collections::VecDeque::with_capacity(slots * 2),
            },
            bufs,
            files: vec![-1; files.max(1)],
            in_flight: 0,
            last_reap: Instant::now(),
            iovecs: Vec::new(),
        })
    }

    /// Slots in the arena (the in-flight bound).
    pub fn slots(&self) -> usize {
        self.bufs.count()
    }

    /// Bytes per slot.
    pub fn slot_size(&self) -> usize {
        self.bufs.slot_size()
    }

    /// Requests pushed and not yet reaped.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Files the ring was created with.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Makes a write slot's data unique (see [`BufferArena::stamp`]).
    ///
    /// # Safety
    ///
    /// No request using `slot` may be in flight: the kernel or a worker thread of the
    /// threads back end could be reading or writing it at the same time.
    pub unsafe fn stamp(&self, slot: usize, sequence: u64, offset: u64) {
        // SAFETY: forwarded to the caller.
        unsafe { self.bufs.stamp(slot, sequence, offset) }
    }

    /// Queues a request for the next submit. The caller must not reuse `req.slot`'s byte range
    /// until its completion is reaped. Errors: `InvalidJob` for a slot, range or file out of
    /// bounds; `Submit` when the submission queue is full.
    pub fn push(&mut self, req: RingRequest) -> Result<(), EngineError> {
        // One iovec array per slot: a vectored request must own its slot (offset 0).
        let bad_iov = req.iovecs > MAX_IOVECS
            || (req.iovecs > 1
                && (req.slot_offset != 0 || req.len as usize % (req.iovecs as usize * 512) != 0));
        if bad_iov
            || req.slot >= self.bufs.count()
            || req.slot_offset + req.len as usize > self.bufs.slot_size()
            || req.file >= self.files.len()
        {
            return Err(EngineError::InvalidJob(format!(
                "request {req:?} is outside the ring's slots or files, or its iovecs do not split it \
                 into 512-byte pieces from slot offset 0 (at most {MAX_IOVECS})"
            )));
        }
        let fd = self.files[req.file];
        match &mut self.backend {
            Backend::Null { done } => done.push_back(RingCompletion {
                user_data: req.user_data,
                result: req.len as i32,
            }),
            Backend::Uring {
                ring,
                fixed_files,
                fixed_bufs,
            } => {
                // SAFETY: bounds checked above, so the pointer stays inside slot `req.slot`.
                let ptr = unsafe { self.bufs.slot_ptr(req.slot).add(req.slot_offset) };
                let entry = if req.iovecs > 1 {
                    if self.iovecs.is_empty() {
                        let empty = libc::iovec {
                            iov_base: std::ptr::null_mut(),
                            iov_len: 0,
                        };
                        self.iovecs = vec![empty; self.bufs.count() * MAX_IOVECS as usize];
                    }
                    let n = req.iovecs as usize;
                    let piece = req.len as usize / n;
                    let iov = &mut self.iovecs[req.slot * MAX_IOVECS as usize..][..n];
                    for (i, v) in iov.iter_mut().enumerate() {
                        // SAFETY: i * piece < len, inside the slot (checked above).
                        *v = libc::iovec {
                            iov_base: unsafe { ptr.add(i * piece) }.cast(),
                            iov_len: piece,
                        };
                    }
                    let target = |e: squeue::Entry| e.user_data(req.user_data);
                    let (iov_ptr, n) = (iov.as_ptr(), n as u32);
                    match (req.direction, *fixed_files) {
                        (Direction::Read, true) => target(
                            opcode::Readv::new(types::Fixed(req.file as u32), iov_ptr, n)
                                .offset(req.offset)
                                .rw_flags(req.rw_flags)
                                .build(),
                        ),
                        (Direction::Read, false) => target(
                            opcode::Readv::new(types::Fd(fd), iov_ptr, n)
                                .offset(req.offset)
                                .rw_flags(req.rw_flags)
                                .build(),
                        ),
                        (Direction::Write, true) => target(
                            opcode::Writev::new(types::Fixed(req.file as u32), iov_ptr, n)
                                .offset(req.offset)
                                .rw_flags(req.rw_flags)
                                .build(),
                        ),
                        (Direction::Write, false) => target(
                            opcode::Writev::new(types::Fd(fd), iov_ptr, n)
                                .offset(req.offset)
                                .rw_flags(req.rw_flags)
                                .build(),
                        ),
                    }
                } else {
                    sqe(req, fd, ptr, *fixed_files, *fixed_bufs)
                };
                let mut sq = ring.submission();
                // SAFETY: the buffer belongs to the arena, which lives until every request has
                // completed (Drop drains first).
                if unsafe { sq.push(&entry) }.is_err() {
                    drop(sq);
                    ring.submit()
                        .map_err(|source| EngineError::Submit { source })?;
                    // SAFETY: as above.
                    unsafe { ring.submission().push(&entry) }.map_err(|_| EngineError::Submit {
                        source: io::Error::from_raw_os_error(libc::EBUSY),
                    })?;
                }
            }
            Backend::Threads { tx, .. } => {
                let tx = tx.as_ref().expect("sender lives until drop");
                tx.send((req, fd))
                    .map_err(|_| EngineError::InvalidJob("worker threads are gone".into()))?;
            }
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Submits what was pushed and waits until at least `want` completions are available
    /// (0: do not wait). One `io_uring_enter` per call.
    pub fn submit_and_wait(&mut self, want: usize) -> Result<(), EngineError> {
        self.submit_and_wait_timeout(want, None)
    }

    /// As [`Ring::submit_and_wait`], but returns after `timeout` even if fewer completions
    /// arrived (io_uring's extended-argument wait, Linux 5.11+; older kernels wait without a
    /// timeout).
    pub fn submit_and_wait_timeout(
        &mut self,
        want: usize,
        timeout: Option<std::time::Duration>,
    ) -> Result<(), EngineError> {
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
            Backend::Null { .. } => Ok(()),
        }
    }

    /// Calls `f` for every available completion and returns how many there were.
    pub fn reap(&mut self, mut f: impl FnMut(RingCompletion)) -> usize {
        let mut n = 0;
        match &mut self.backend {
            Backend::Null { done } => {
                while let Some(c) = done.pop_front() {
                    f(c);
                    n += 1;
                }
            }
            Backend::Uring { ring, .. } => {
                for cqe in ring.completion() {
                    f(RingCompletion {
                        user_data: cqe.user_data(),
                        result: cqe.result(),
                    });
                    n += 1;
                }
            }
            Backend::Threads { rx, ready, .. } => {
                while let Some(c) = ready.pop_front() {
                    f(c);
                    n += 1;
                }
                while let Ok(c) = rx.try_recv() {
                    f(c);
                    n += 1;
                }
            }
        }
        self.in_flight -= n;
        self.last_reap = Instant::now();
        n
    }

    /// When the last reap returned (one clock read per batch, as the closed-loop engine does).
    pub fn last_reap(&self) -> Instant {
        self.last_reap
    }
}

/// The submission entry for `req` on descriptor `fd` (or registered file `req.file`) with the
/// buffer at `ptr`.
pub(crate) fn sqe(
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

fn blocking_io(bufs: &BufferArena, req: &RingRequest, fd: RawFd) -> i32 {
    // SAFETY: `push` checked the range is inside the slot, and the caller does not touch the
    // slot until this completion is reaped.
    let n = unsafe {
        let ptr = bufs.slot_ptr(req.slot).add(req.slot_offset);
        if req.iovecs > 1 {
            let n = req.iovecs as usize;
            let piece = req.len as usize / n;
            let mut iov = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MAX_IOVECS as usize];
            for (i, v) in iov.iter_mut().take(n).enumerate() {
                *v = libc::iovec {
                    iov_base: ptr.add(i * piece).cast(),
                    iov_len: piece,
                };
            }
            let r = match req.direction {
                Direction::Read => {
                    libc::preadv(fd, iov.as_ptr(), n as i32, req.offset as libc::off_t)
                }
                Direction::Write => {
                    libc::pwritev(fd, iov.as_ptr(), n as i32, req.offset as libc::off_t)
                }
            };
            return if r < 0 {
                -io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO)
            } else {
                r as i32
            };
        }
        match req.direction {
            Direction::Read => {
                libc::pread(fd, ptr.cast(), req.len as usize, req.offset as libc::off_t)
            }
            Direction::Write => {
                libc::pwrite(fd, ptr.cast(), req.len as usize, req.offset as libc::off_t)
            }
        }
    };
    if n < 0 {
        -io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        n as i32
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
