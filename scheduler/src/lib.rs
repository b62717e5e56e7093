//! # scheduler
//!
//! Seastar's I/O scheduler for storage engines in Rust: share a disk between priority classes
//! by shares while keeping in-disk latency near a goal, on the disk model iotune measures.
//!
//! What to depend on for what:
//!
//! - **A storage engine** (`default-features = false`): the sans-I/O core and what it needs,
//!   with no io-uring, libc or nix in the dependency tree and no OS-specific code.
//!   - [`io_properties`]: the `io-properties.yaml` contract with Seastar (liberal reader,
//!     byte-exact writer).
//!   - [`cost_model`], [`token_bucket`], [`fair_queue`]: the scheduling math, following
//!     Seastar's io_queue / fair_queue / shared_token_bucket (`shared/reference/scheduler.md`).
//!   - [`io_queue`]: the per-shard queue — a deterministic core that takes `now` from its
//!     caller, treats requests as the caller's tokens, and tells what may be dispatched now
//!     and when to ask again. No I/O, no threads, no clock reads.
//!   - [`admission`]: drivers for engines that do their own I/O (own io_uring, `pread` in a
//!     thread pool, tokio-uring, glommio): a future that resolves to a permit when a request
//!     may go to the disk, on any executor; timers through a small trait (a plain thread, or
//!     tokio with the `tokio` feature).
//!   - [`sim`]: the core driven against an instant device on a simulated clock: what the
//!     scheduler lets through, per shard count, IO groups and request size.
//! - **The measurement harness** (feature `harness`, on by default; Linux): what iotune,
//!   io-tester and ioinfo measure with.
//!   - `engine`: per-shard I/O threads with their own io_uring (or a blocking-thread
//!     fallback), O_DIRECT, aligned incompressible buffers, latency histograms.
//!   - `ring_queue`: the queue driven over the engine's ring (io-tester's fibers).
//!   - `topology`: directory → mountpoint → block devices → leaf disks, from sysfs.
//!   - `alignment`: where requests land on the disk (FIEMAP), read-modify-write shares.
//!   - `atomic_file`: the one atomic file writer (io-properties, reports).
//!
//! The math modules never import the engine; only the harness touches the kernel.
//!
//! Units: sizes and offsets are bytes, bandwidth bytes/s, IOPS requests/s, capacities
//! 2^-24 ms of whole-disk time ([`cost_model::Capacity`]).
//!
//! # Example
//!
//! A storage engine sharing one disk between two priority classes, 400 and 100 shares, on
//! the model of an io-properties file, doing its own I/O behind admission permits (here on a
//! tiny executor; any executor works, see `examples/storage_engine.rs` for tokio and real
//! O_DIRECT files):
//!
//! ```
//! use std::time::Instant;
//! use scheduler::admission::{AdmissionQueue, ThreadTimer};
//! use scheduler::cost_model::CostConfig;
//! use scheduler::io_properties::IoProperties;
//! use scheduler::io_queue::{ClassConfig, IoGroup};
//! use scheduler::Direction;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let yaml = "disks:\n  - mountpoint: /\n    read_iops: 20000\n    read_bandwidth: 200M\n    write_iops: 10000\n    write_bandwidth: 100M\n";
//! let (props, _warnings) = IoProperties::parse(yaml, "<inline>")?;
//! // One group per disk, shared by every shard; here a single shard.
//! let group = IoGroup::from_properties(&props.disks[0], &CostConfig::default(), Instant::now())?;
//! let shard = AdmissionQueue::new(group, ThreadTimer::new());
//! let queries = shard.add_class(ClassConfig::new("queries", 400))?;
//! let compaction = shard.add_class(ClassConfig::new("compaction", 100))?;
//!
//! // In the engine: wait for the permit, do the I/O any way you like, then report it.
//! let permit = block_on(shard.admit(queries, Direction::Read, 4096))?;
//! let bytes_read = 4096; // pread(fd, buf, 4096, offset) here
//! permit.complete(bytes_read);
//! let permit = block_on(shard.admit(compaction, Direction::Write, 128 << 10))?;
//! drop(permit); // dropping reports success
//!
//! let stats = shard.class_stats(queries)?;
//! assert_eq!(stats.operations, 1);
//! assert!(stats.consumption > 0.0); // seconds of whole-disk time the class used
//! # Ok(())
//! # }
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     use std::task::{Context, Poll, Wake, Waker};
//! #     struct T(std::thread::Thread);
//! #     impl Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
//! #     let waker = Waker::from(std::sync::Arc::new(T(std::thread::current())));
//! #     let mut f = std::pin::pin!(f);
//! #     loop {
//! #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) { return v; }
//! #         std::thread::park();
//! #     }
//! # }
//! ```
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod admission;
pub mod cost_model;
pub mod direction;
pub mod fair_queue;
pub mod io_properties;
pub mod io_queue;
pub mod sim;
pub mod token_bucket;
pub mod yaml;

#[cfg(feature = "harness")]
pub mod alignment;
#[cfg(feature = "harness")]
pub mod atomic_file;
#[cfg(feature = "harness")]
#[allow(unsafe_code)]
pub mod engine;
#[cfg(feature = "harness")]
pub mod ring_queue;
#[cfg(feature = "harness")]
pub mod topology;

pub use direction::Direction;
