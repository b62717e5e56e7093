//! # scheduler
//!
//! The library behind iotune-rs: what a storage engine links to drive a fast disk.
//!
//! - [`io_properties`]: the `io-properties.yaml` contract with Seastar (liberal reader,
//!   byte-exact writer).
//! - [`topology`]: directory → mountpoint → block device tree → leaf disks, from sysfs.
//! - [`engine`]: per-shard I/O threads with their own io_uring (or a blocking-thread fallback),
//!   O_DIRECT, aligned incompressible buffers, latency histograms.
//! - [`cost_model`], [`token_bucket`], [`fair_queue`]: the scheduling math (no I/O), following
//!   Seastar's io_queue / fair_queue / shared_token_bucket semantics
//!   (`shared/reference/scheduler.md`).
//!
//! - [`io_queue`]: the per-shard queue a storage engine uses: costs requests, orders them by
//!   shares, dispatches them within the shared token bucket, submits them through the engine.
//!
//! The math modules never import the engine; only the engine touches the kernel.
//!
//! Units: sizes and offsets are bytes, bandwidth bytes/s, IOPS requests/s, capacities
//! 2^-24 ms of whole-disk time ([`cost_model::Capacity`]).
//!
//! # Example
//!
//! A storage engine sharing one disk between two priority classes, 400 and 100 shares, on
//! the model of an io-properties file:
//!
//! ```
//! use scheduler::cost_model::{CostConfig, CostModel};
//! use scheduler::engine::{EngineKind, Ring, TestFile};
//! use scheduler::io_properties::IoProperties;
//! use scheduler::io_queue::{IoGroup, IoQueue};
//! use scheduler::Direction;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let yaml = "disks:\n  - mountpoint: /\n    read_iops: 20000\n    read_bandwidth: 200M\n    write_iops: 10000\n    write_bandwidth: 100M\n";
//! let (props, _warnings) = IoProperties::parse(yaml, "<inline>")?;
//! // One group per disk, shared by every shard; here a single shard.
//! let group = IoGroup::from_properties(&props.disks[0], &CostConfig::default())?;
//!
//! // The shard's engine: a ring with 8 buffer slots of 64 KiB on one O_DIRECT file.
//! let dir = tempfile::tempdir()?;
//! let file = TestFile::create_unlinked(dir.path(), 1 << 20)?;
//! let kind = if scheduler::engine::probe_uring().is_ok() { EngineKind::Uring } else { EngineKind::Threads };
//! let mut queue = IoQueue::new(group, Ring::new(kind, 8, 64 << 10, &[file.fd()])?);
//! let queries = queue.register_class("queries", 400, None, None);
//! let compaction = queue.register_class("compaction", 100, None, None);
//!
//! // Writes first (slot i, file offset i x 64 KiB), then reads them back.
//! for slot in 0..8u64 {
//!     let class = if slot % 2 == 0 { queries } else { compaction };
//!     queue.queue(class, Direction::Write, 0, slot << 16, 64 << 10, slot as usize, slot)?;
//! }
//! let mut done = 0;
//! while queue.pending() > 0 {
//!     done += queue.poll(true, |c| assert_eq!(c.result, 64 << 10))?;
//! }
//! queue.queue(queries, Direction::Read, 0, 0, 64 << 10, 0, 100)?;
//! while queue.pending() > 0 {
//!     done += queue.poll(true, |c| assert_eq!((c.user_data, c.result), (100, 64 << 10)))?;
//! }
//! assert_eq!(done, 9);
//! let stats = queue.class_stats(queries);
//! assert_eq!(stats.operations, 5);
//! assert!(stats.consumption > 0.0); // seconds of whole-disk time the class used
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod alignment;
pub mod cost_model;
pub mod direction;
#[allow(unsafe_code)]
pub mod engine;
pub mod fair_queue;
pub mod io_properties;
pub mod io_queue;
pub mod token_bucket;
pub mod topology;

pub use direction::Direction;
