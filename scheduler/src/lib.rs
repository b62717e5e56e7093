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
//! The math modules never import the engine; only the engine touches the kernel.
#![deny(unsafe_code)]

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
