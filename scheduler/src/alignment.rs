//! Request alignment tracing: how well each request lines up with the device.
//!
//! For every traced request an [`AlignmentTracer`] records
//! - the **file-offset alignment**: the largest power of two (512 B .. 1 MiB, plus the edge
//!   buckets `<512B` and `>=1MiB`) dividing the request's file offset;
//! - the **physical placement**, from a cached extent map (FIEMAP, see
//!   `engine::fiemap`): the disk offset of the request's first byte (extent physical offset
//!   plus the partition start), bucketed the same way; whether any piece of the request starts
//!   or ends off a physical-block boundary (a write there costs the device a
//!   read-modify-write); whether it spans more than one extent; on md RAID, whether a piece
//!   crosses a chunk boundary.
//!
//! This module is pure logic: it never touches a file. The caller owns the descriptor and
//! refreshes the map through a closure (see [`AlignmentTracer::record_with`]), so the math can
//! be tested with synthetic extents.
//!
//! # Cost
//!
//! Recording is a sampling countdown, a `trailing_zeros`, a binary search over the extent map
//! and a few integer operations per extent piece: no allocation, no syscall. Requests the map
//! cannot place (a file that grew, a hole that was written) are parked in a fixed buffer of
//! [`PENDING`] entries and resolved together by one refresh of just their file range, so an
//! append job costs one FIEMAP ioctl per [`PENDING`] traced requests. `sample_every > 1`
//! traces one request in that many; the report says so (`sampled`).
//!
//! # Limits
//!
//! - Writes are placed after they complete (the map is only known then; with delayed
//!   allocation only after writeback, which O_DIRECT does not use).
//! - On copy-on-write filesystems (btrfs, reflinked XFS files) an overwrite moves data; the
//!   cached map then describes where the data was when it was last refreshed.
//! - Reads of unwritten (preallocated) extents are placed although the kernel serves them as
//!   zeros without device I/O; reads of holes are `unmapped`.
//! - The partition start is only added for a filesystem directly on a partition; stacked
//!   devices other than md (dm, md under dm) do not map linearly and are judged as if at
//!   offset 0.

use std::io;
use std::time::Instant;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::topology::{BlockDevice, DeviceKind, Topology};

/// Extent flag: the last extent of the file.
pub const FIEMAP_EXTENT_LAST: u32 = 0x1;
/// Extent flag: the data location is unknown (physical is meaningless).
pub const FIEMAP_EXTENT_UNKNOWN: u32 = 0x2;
/// Extent flag: delayed allocation, not yet placed (also sets UNKNOWN).
pub const FIEMAP_EXTENT_DELALLOC: u32 = 0x4;
/// Extent flag: the data is encoded (e.g. compressed); file offsets do not map linearly.
pub const FIEMAP_EXTENT_ENCODED: u32 = 0x8;
/// Extent flag: the data is encrypted by the filesystem (also sets ENCODED).
pub const FIEMAP_EXTENT_DATA_ENCRYPTED: u32 = 0x80;
/// Extent flag: extent offsets may not be block aligned.
pub const FIEMAP_EXTENT_NOT_ALIGNED: u32 = 0x100;
/// Extent flag: the data lives inside a metadata block (also sets NOT_ALIGNED).
pub const FIEMAP_EXTENT_DATA_INLINE: u32 = 0x200;
/// Extent flag: several files' tails packed in one block (also sets NOT_ALIGNED).
pub const FIEMAP_EXTENT_DATA_TAIL: u32 = 0x400;
/// Extent flag: allocated but unwritten (preallocated; reads return zeros).
pub const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;
/// Extent flag: the filesystem merged blocks into this extent for reporting.
pub const FIEMAP_EXTENT_MERGED: u32 = 0x1000;
/// Extent flag: the space is shared with other files (reflink, snapshot).
pub const FIEMAP_EXTENT_SHARED: u32 = 0x2000;

/// Flags under which an extent's `physical` does not say where the request's bytes go.
const NO_PLACE: u32 = FIEMAP_EXTENT_UNKNOWN
    | FIEMAP_EXTENT_DELALLOC
    | FIEMAP_EXTENT_ENCODED
    | FIEMAP_EXTENT_DATA_INLINE
    | FIEMAP_EXTENT_DATA_TAIL;

/// One extent of a file's mapping, as FIEMAP reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extent {
    /// File offset of the extent's first byte, bytes.
    pub logical: u64,
    /// Offset of that byte on the filesystem's block device, bytes (not including a partition
    /// start: FIEMAP reports offsets within the device the filesystem sits on).
    pub physical: u64,
    /// Length, bytes.
    pub length: u64,
    /// `FIEMAP_EXTENT_*` flags.
    pub flags: u32,
}

impl Extent {
    /// File offset one past the extent's last byte, bytes (saturating).
    pub fn end(&self) -> u64 {
        self.logical.saturating_add(self.length)
    }
    /// The file's last extent ([`FIEMAP_EXTENT_LAST`]).
    pub fn is_last(&self) -> bool {
        self.flags & FIEMAP_EXTENT_LAST != 0
    }
    /// The location is unknown ([`FIEMAP_EXTENT_UNKNOWN`]).
    pub fn is_unknown(&self) -> bool {
        self.flags & FIEMAP_EXTENT_UNKNOWN != 0
    }
    /// Delayed allocation, not yet placed ([`FIEMAP_EXTENT_DELALLOC`]).
    pub fn is_delalloc(&self) -> bool {
        self.flags & FIEMAP_EXTENT_DELALLOC != 0
    }
    /// Encoded (compressed, encrypted) data ([`FIEMAP_EXTENT_ENCODED`]).
    pub fn is_encoded(&self) -> bool {
        self.flags & FIEMAP_EXTENT_ENCODED != 0
    }
    /// Allocated but not written ([`FIEMAP_EXTENT_UNWRITTEN`]).
    pub fn is_unwritten(&self) -> bool {
        self.flags & FIEMAP_EXTENT_UNWRITTEN != 0
    }
    /// Data stored inline in metadata ([`FIEMAP_EXTENT_DATA_INLINE`]).
    pub fn is_inline(&self) -> bool {
        self.flags & FIEMAP_EXTENT_DATA_INLINE != 0
    }
    /// Space shared with other files ([`FIEMAP_EXTENT_SHARED`]).
    pub fn is_shared(&self) -> bool {
        self.flags & FIEMAP_EXTENT_SHARED != 0
    }
    /// Whether `physical` places the extent's bytes linearly on the device: false for
    /// unknown, delayed, encoded, inline and tail-packed extents. Unwritten extents count as
    /// placed.
    pub fn has_physical(&self) -> bool {
        self.flags & NO_PLACE == 0
    }
}

/// Smallest alignment with a bucket of its own, bytes.
pub const MIN_ALIGNMENT: u64 = 512;
/// Alignment of the top bucket (`>=1MiB`), bytes.
pub const MAX_ALIGNMENT: u64 = 1 << 20;
/// Number of buckets: `<512B`, the powers of two 512 B .. 512 KiB, and `>=1MiB`.
pub const BUCKETS: usize = 13;
/// Requests parked for one extent-map refresh (see [`AlignmentTracer::record_with`]).
pub const PENDING: usize = 64;
/// Most refresh batches skipped after refreshes that placed less than half their requests.
const MAX_BACKOFF: u32 = 256;

const LABELS: [&str; BUCKETS] = [
    "<512B", "512B", "1KiB", "2KiB", "4KiB", "8KiB", "16KiB", "32KiB", "64KiB", "128KiB", "256KiB",
    "512KiB", ">=1MiB",
];

/// Bucket of `offset` (bytes): 0 when it is not a multiple of 512, 1 for 512-aligned (but not
/// 1024), ..., 12 for a multiple of 1 MiB (including 0).
#[inline]
pub fn bucket_index(offset: u64) -> usize {
    let tz = offset.trailing_zeros(); // 64 for 0
    if tz < MIN_ALIGNMENT.trailing_zeros() {
        0
    } else {
        (tz.min(MAX_ALIGNMENT.trailing_zeros()) - MIN_ALIGNMENT.trailing_zeros() + 1) as usize
    }
}

/// Label of bucket `i` ("<512B", "512B", "1KiB", ..., "512KiB", ">=1MiB"); panics past
/// [`BUCKETS`].
pub fn bucket_label(i: usize) -> &'static str {
    LABELS[i]
}

/// Alignment a bucket stands for, bytes: 1 for `<512B`, else its power of two (1 MiB for the
/// top bucket); panics past [`BUCKETS`].
pub fn bucket_alignment(i: usize) -> u64 {
    assert!(i < BUCKETS);
    if i == 0 {
        1
    } else {
        MIN_ALIGNMENT << (i - 1)
    }
}

/// Request counts per alignment bucket. Serialized as a map from bucket label to count, in
/// increasing alignment, empty buckets left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distribution {
    /// Count per bucket, indexed as [`bucket_index`].
    pub counts: [u64; BUCKETS],
}

impl Distribution {
    /// Counts `offset` (bytes) in its bucket.
    #[inline]
    pub fn add(&mut self, offset: u64) {
        self.counts[bucket_index(offset)] += 1;
    }
    /// Number of offsets counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
    /// Number of offsets that are multiples of `align` (bytes, a power of two), at bucket
    /// granularity: `align <= 1` counts every offset, `1 < align <= 512` the 512-aligned
    /// ones, above that the buckets from `align`'s up (1 MiB and more share the top bucket).
    pub fn count_aligned_to(&self, align: u64) -> u64 {
        if align <= 1 {
            return self.total();
        }
        let from = bucket_index(align.max(MIN_ALIGNMENT));
        self.counts[from..].iter().sum()
    }
    /// [`Self::count_aligned_to`] as a fraction of [`Self::total`]; `None` when empty.
    pub fn share_aligned_to(&self, align: u64) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| self.count_aligned_to(align) as f64 / total as f64)
    }
    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &Distribution) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
    }
    /// Non-empty buckets as (label, count), in increasing alignment.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        LABELS
            .iter()
            .zip(self.counts.iter())
            .filter(|(_, &c)| c > 0)
            .map(|(&l, &c)| (l, c))
    }
}

impl Serialize for Distribution {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (label, count) in self.iter() {
            map.serialize_entry(label, &count)?;
        }
        map.end()
    }
}

/// The physical-start distribution plus the requests that could not be placed. Serialized as
/// one map: the bucket labels, then `unmapped`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhysicalStarts {
    /// Disk offsets of the placed requests' first bytes, bucketed.
    pub starts: Distribution,
    /// Requests the extent map could not place wholly: holes, unknown or delayed
    /// extents, no FIEMAP on the filesystem.
    pub unmapped: u64,
}

impl Serialize for PhysicalStarts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (label, count) in self.starts.iter() {
            map.serialize_entry(label, &count)?;
        }
        map.serialize_entry("unmapped", &self.unmapped)?;
        map.end()
    }
}

/// What requests are judged against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlignmentParams {
    /// Filesystem block size (`statfs` `f_bsize`), bytes.
    pub fs_block_size: u64,
    /// Device logical block size (the O_DIRECT unit), bytes.
    pub logical_block_size: u64,
    /// Physical block size requests are judged against, bytes, after any override (drives
    /// misreport it: 512e drives may claim 512). A power of two.
    pub physical_block_size: u64,
    /// Physical block size the device reported, bytes (equal to `physical_block_size` unless
    /// overridden).
    pub device_physical_block_size: u64,
    /// md RAID chunk size, bytes, when the filesystem sits on md (or a partition of one).
    pub md_chunk_size: Option<u64>,
    /// Added to FIEMAP physical offsets to get offsets on the whole disk (or md array), bytes:
    /// the partition start for a filesystem on a partition, else 0.
    pub partition_start: u64,
    /// Trace one request in this many (1 = every request; 0 is read as 1).
    pub sample_every: u32,
}

impl AlignmentParams {
    /// Parameters for a filesystem described by `topology`: its `fs_block_size`,
    /// `logical_block_size()`, `physical_block_size()` unless `physical_override` (bytes) is
    /// given, the md chunk size when the device is md or a partition of md, and the partition
    /// start when the device is a partition.
    pub fn from_topology(
        topology: &Topology,
        physical_override: Option<u64>,
        sample_every: u32,
    ) -> AlignmentParams {
        let device_physical = topology.physical_block_size();
        let device = topology.device.as_ref();
        AlignmentParams {
            fs_block_size: topology.fs_block_size,
            logical_block_size: topology.logical_block_size(),
            physical_block_size: physical_override.unwrap_or(device_physical),
            device_physical_block_size: device_physical,
            md_chunk_size: device.and_then(md_chunk),
            partition_start: device
                .filter(|d| d.kind == DeviceKind::Partition)
                .and_then(|d| d.start_bytes)
                .unwrap_or(0),
            sample_every: sample_every.max(1),
        }
    }

    /// The smallest `sample_every` that keeps tracing within `budget` (a fraction, e.g. 0.02)
    /// of the time of `expected_iops` requests per second on one thread, when tracing one
    /// request costs `cost_per_trace_ns` nanoseconds: `ceil(iops × cost / (budget × 1e9))`, at
    /// least 1. (`record` measures about 20–100 ns here, depending on the map's size.)
    pub fn sample_every_for(expected_iops: f64, cost_per_trace_ns: f64, budget: f64) -> u32 {
        // (The 1e-9 keeps float noise in exact ratios from rounding up a whole step.)
        let n = (expected_iops * cost_per_trace_ns / (budget * 1e9) - 1e-9).ceil();
        if n.is_nan() || n <= 1.0 {
            if budget <= 0.0 && expected_iops > 0.0 {
                return u32::MAX;
            }
            1
        } else if n >= f64::from(u32::MAX) {
            u32::MAX
        } else {
            n as u32
        }
    }

    /// Checks that the block sizes are non-zero powers of two and the chunk size non-zero.
    ///
    /// # Errors
    ///
    /// [`AlignmentError::InvalidParams`] naming the offending field.
    pub fn validate(&self) -> Result<(), AlignmentError> {
        for (name, v) in [
            ("physical_block_size", self.physical_block_size),
            ("logical_block_size", self.logical_block_size),
        ] {
            if !v.is_power_of_two() {
                return Err(AlignmentError::InvalidParams(format!(
                    "{name} must be a power of two, got {v}"
                )));
            }
        }
        if self.md_chunk_size == Some(0) {
            return Err(AlignmentError::InvalidParams(
                "md_chunk_size must not be 0".into(),
            ));
        }
        Ok(())
    }
}

fn md_chunk(device: &BlockDevice) -> Option<u64> {
    match &device.kind {
        DeviceKind::Md { chunk_size, .. } if *chunk_size > 0 => Some(*chunk_size),
        DeviceKind::Partition => device.parent.as_deref().and_then(md_chunk),
        _ => None,
    }
}

/// Errors of the tracer.
#[derive(Debug, thiserror::Error)]
pub enum AlignmentError {
    /// A parameter is out of range.
    #[error("invalid alignment-tracing parameters: {0}")]
    InvalidParams(String),
}

/// Raw counters of a tracer; mergeable across the tracers of one job (one per file or shard).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlignmentCounts {
    /// Requests offered to the tracer.
    pub requests_seen: u64,
    /// Requests traced (after sampling).
    pub requests_traced: u64,
    /// File-offset alignment of the traced requests.
    pub file_offset: Distribution,
    /// Disk-offset alignment of the placed requests, and the unplaced count.
    pub physical_start: PhysicalStarts,
    /// Placed requests with a piece starting or ending off a physical-block boundary.
    pub rmw: u64,
    /// Placed requests spanning more than one extent.
    pub multi_extent: u64,
    /// Placed requests with a piece crossing an md chunk boundary (0 when not md).
    pub md_chunk_crossing: u64,
    /// Extent-map refreshes done through [`AlignmentTracer::record_with`] / `flush`.
    pub refreshes: u64,
    /// Time spent in those refreshes, nanoseconds.
    pub refresh_nanos: u64,
    /// The first refresh error (then no more refreshes are tried).
    pub mapping_error: Option<String>,
}

impl AlignmentCounts {
    /// Adds `other`'s counters (keeps the first mapping error).
    pub fn merge(&mut self, other: &AlignmentCounts) {
        self.requests_seen += other.requests_seen;
        self.requests_traced += other.requests_traced;
        self.file_offset.merge(&other.file_offset);
        self.physical_start
            .starts
            .merge(&other.physical_start.starts);
        self.physical_start.unmapped += other.physical_start.unmapped;
        self.rmw += other.rmw;
        self.multi_extent += other.multi_extent;
        self.md_chunk_crossing += other.md_chunk_crossing;
        self.refreshes += other.refreshes;
        self.refresh_nanos += other.refresh_nanos;
        if self.mapping_error.is_none() {
            self.mapping_error.clone_from(&other.mapping_error);
        }
    }

    /// Requests placed on the device.
    pub fn mapped(&self) -> u64 {
        self.physical_start.starts.total()
    }
}

/// Flags that do not keep two neighbouring extents apart.
const MERGE_IGNORED: u32 = FIEMAP_EXTENT_LAST | FIEMAP_EXTENT_MERGED;

/// Merges neighbours of a sorted map that are contiguous in the file and on the device and
/// carry the same flags (but for [`MERGE_IGNORED`]).
fn coalesce(extents: &mut Vec<Extent>) {
    extents.dedup_by(|next, prev| {
        let contiguous = prev.end() == next.logical
            && prev.physical.checked_add(prev.length) == Some(next.physical)
            && prev.flags & !MERGE_IGNORED == next.flags & !MERGE_IGNORED
            && prev.has_physical();
        if contiguous {
            prev.length += next.length;
            prev.flags = (prev.flags & !FIEMAP_EXTENT_LAST) | (next.flags & FIEMAP_EXTENT_LAST);
        }
        contiguous
    });
}

/// Where one request landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Disk offset of the first byte (partition start included), bytes.
    pub disk_start: u64,
    /// Number of extents the request spans.
    pub extents: u32,
    /// Some piece starts or ends off a physical-block boundary.
    pub rmw: bool,
    /// Some piece crosses an md chunk boundary.
    pub chunk_crossing: bool,
}

/// Traces the alignment of one file's requests. See the module docs.
#[derive(Debug)]
pub struct AlignmentTracer {
    params: AlignmentParams,
    physical_mask: u64,
    extents: Vec<Extent>,
    counts: AlignmentCounts,
    countdown: u32,
    pending: [(u64, u64); PENDING],
    pending_len: usize,
    backoff: u32,
    skip: u64,
    mapping_disabled: bool,
}

impl AlignmentTracer {
    /// A tracer with an empty extent map.
    ///
    /// # Errors
    ///
    /// Those of [`AlignmentParams::validate`].
    pub fn new(mut params: AlignmentParams) -> Result<AlignmentTracer, AlignmentError> {
        params.validate()?;
        params.sample_every = params.sample_every.max(1);
        Ok(AlignmentTracer {
            physical_mask: params.physical_block_size - 1,
            params,
            extents: Vec::new(),
            counts: AlignmentCounts::default(),
            countdown: 1,
            pending: [(0, 0); PENDING],
            pending_len: 0,
            backoff: 0,
            skip: 0,
            mapping_disabled: false,
        })
    }

    /// The parameters judged against.
    pub fn params(&self) -> &AlignmentParams {
        &self.params
    }

    /// The counters so far (requests parked for a refresh not yet included; call
    /// [`Self::flush`] first).
    pub fn counts(&self) -> &AlignmentCounts {
        &self.counts
    }

    /// The cached extent map, sorted by file offset.
    pub fn extents(&self) -> &[Extent] {
        &self.extents
    }

    /// Replaces the cached map (sorted here by file offset; extents must not overlap).
    /// Neighbours contiguous in the file and on the device, with the same flags, are merged
    /// (see [`Self::splice_extents`]).
    pub fn set_extents(&mut self, mut extents: Vec<Extent>) {
        extents.sort_unstable_by_key(|e| e.logical);
        coalesce(&mut extents);
        self.extents = extents;
    }

    /// Puts `fresh` — what FIEMAP returned for the file range `[start, start + len)` (bytes) —
    /// into the cached map. Cached extents overlapping that range or `fresh` are cut back to
    /// their parts outside it; `fresh` may hold extents straddling the range's edges whole
    /// (ext4) or trimmed to it (XFS). Neighbours contiguous in the file and on the device with
    /// the same flags (but for [`FIEMAP_EXTENT_LAST`] and [`FIEMAP_EXTENT_MERGED`]) are
    /// then merged, so a map built piecewise equals one fetched whole and "spans more than one
    /// extent" means "meets a discontinuity on the device". Allocates; meant for refreshes,
    /// not per request.
    pub fn splice_extents(&mut self, start: u64, len: u64, mut fresh: Vec<Extent>) {
        fresh.sort_unstable_by_key(|e| e.logical);
        let end = start.saturating_add(len);
        let lo = fresh.first().map_or(start, |e| e.logical.min(start));
        let hi = fresh.last().map_or(end, |e| e.end().max(end));
        let a = self.extents.partition_point(|e| e.end() <= lo);
        let b = self.extents.partition_point(|e| e.logical < hi).max(a);
        let mut replacement = Vec::with_capacity(fresh.len() + 2);
        if a < b {
            let first = self.extents[a];
            if first.logical < lo {
                replacement.push(Extent {
                    length: lo - first.logical,
                    flags: first.flags & !FIEMAP_EXTENT_LAST,
                    ..first
                });
            }
        }
        replacement.append(&mut fresh);
        if a < b {
            let last = self.extents[b - 1];
            if last.end() > hi {
                let cut = hi - last.logical;
                replacement.push(Extent {
                    logical: hi,
                    physical: last.physical.saturating_add(cut),
                    length: last.end() - hi,
                    flags: last.flags,
                });
            }
        }
        let inserted = replacement.len();
        self.extents.splice(a..b, replacement);
        // Merge only around what changed: the window from the extent before to the one after.
        let w0 = a.saturating_sub(1);
        let w1 = (a + inserted + 1).min(self.extents.len());
        if w1 > w0 + 1 {
            let mut window: Vec<Extent> = self.extents[w0..w1].to_vec();
            coalesce(&mut window);
            self.extents.splice(w0..w1, window);
        }
    }

    /// Whether the cached map cannot place `[file_offset, file_offset + len)` wholly: the
    /// range runs past the map's end, into a hole, or into an unknown, delayed or encoded
    /// extent. A refresh may then help (after the write completed; for delayed allocation
    /// only after writeback).
    pub fn needs_refresh(&self, file_offset: u64, len: u64) -> bool {
        self.place(file_offset, len).is_none()
    }

    /// Where the cached map puts `[file_offset, file_offset + len)`, or `None` if it cannot
    /// place every byte (see [`Self::needs_refresh`]; `len == 0` is never placed).
    /// A binary search plus a few integer operations per extent spanned.
    #[inline]
    pub fn place(&self, file_offset: u64, len: u64) -> Option<Placement> {
        let end = file_offset.checked_add(len)?;
        if len == 0 {
            return None;
        }
        let mut i = self.extents.partition_point(|e| e.logical <= file_offset);
        i = i.checked_sub(1)?;
        let mut pos = file_offset;
        let mut placement = Placement {
            disk_start: 0,
            extents: 0,
            rmw: false,
            chunk_crossing: false,
        };
        while pos < end {
            let e = self.extents.get(i)?;
            if e.logical > pos || e.end() <= pos || !e.has_physical() {
                return None;
            }
            let piece_end = end.min(e.end());
            let ds = self
                .params
                .partition_start
                .checked_add(e.physical)?
                .checked_add(pos - e.logical)?;
            let de = ds.checked_add(piece_end - pos)?;
            if placement.extents == 0 {
                placement.disk_start = ds;
            }
            placement.rmw |= (ds | de) & self.physical_mask != 0;
            if let Some(chunk) = self.params.md_chunk_size {
                placement.chunk_crossing |= ds / chunk != (de - 1) / chunk;
            }
            placement.extents += 1;
            pos = piece_end;
            i += 1;
        }
        Some(placement)
    }

    #[inline]
    fn take_sample(&mut self) -> bool {
        self.counts.requests_seen += 1;
        self.countdown -= 1;
        if self.countdown == 0 {
            self.countdown = self.params.sample_every;
            true
        } else {
            false
        }
    }

    #[inline]
    fn account(&mut self, p: Placement) {
        let c = &mut self.counts;
        c.physical_start.starts.add(p.disk_start);
        c.rmw += u64::from(p.rmw);
        c.multi_extent += u64::from(p.extents > 1);
        c.md_chunk_crossing += u64::from(p.chunk_crossing);
    }

    #[inline]
    fn resolve(&mut self, file_offset: u64, len: u64) {
        match self.place(file_offset, len) {
            Some(p) => self.account(p),
            None => self.counts.physical_start.unmapped += 1,
        }
    }

    /// Traces a request of `len` bytes at `file_offset` (subject to sampling) with the cached
    /// map as it is: what it cannot place counts as `unmapped`. For writes, call after
    /// completion. No allocation, no syscall.
    #[inline]
    pub fn record(&mut self, file_offset: u64, len: u64) {
        if !self.take_sample() {
            return;
        }
        self.counts.requests_traced += 1;
        self.counts.file_offset.add(file_offset);
        self.resolve(file_offset, len);
    }

    /// Traces a request like [`Self::record`], refreshing the map when it cannot place it:
    /// the request is parked, and once [`PENDING`] are parked, `refresh(start, len)` is called
    /// once for the file range covering them all (it should return the file's extents
    /// overlapping that range, e.g. `engine::fiemap::extents_in(fd, start, len, false)`), the
    /// map is spliced and the parked requests are placed (or counted `unmapped`).
    ///
    /// A refresh error disables further refreshes and is reported (`mapping_error`). When a
    /// refresh places fewer than half of its requests (reads of holes), the next
    /// unplaceable requests are counted `unmapped` without parking, for an exponentially
    /// growing number of batches, so a sparse file cannot make the tracer refresh often.
    /// Call [`Self::flush`] before reporting.
    #[inline]
    pub fn record_with<F>(&mut self, file_offset: u64, len: u64, refresh: F)
    where
        F: FnOnce(u64, u64) -> io::Result<Vec<Extent>>,
    {
        if !self.take_sample() {
            return;
        }
        self.counts.requests_traced += 1;
        self.counts.file_offset.add(file_offset);
        if let Some(p) = self.place(file_offset, len) {
            self.account(p);
            return;
        }
        if self.mapping_disabled || self.skip > 0 || len == 0 {
            self.skip = self.skip.saturating_sub(1);
            self.counts.physical_start.unmapped += 1;
            return;
        }
        self.pending[self.pending_len] = (file_offset, len);
        self.pending_len += 1;
        if self.pending_len == PENDING {
            self.refresh_pending(refresh);
        }
    }

    /// Refreshes the map for the parked requests (if any) and places them.
    pub fn flush<F>(&mut self, refresh: F)
    where
        F: FnOnce(u64, u64) -> io::Result<Vec<Extent>>,
    {
        if self.pending_len > 0 {
            self.refresh_pending(refresh);
        }
    }

    #[cold]
    fn refresh_pending<F>(&mut self, refresh: F)
    where
        F: FnOnce(u64, u64) -> io::Result<Vec<Extent>>,
    {
        let parked = self.pending_len;
        let lo = self.pending[..parked]
            .iter()
            .map(|p| p.0)
            .min()
            .unwrap_or(0);
        let hi = self.pending[..parked]
            .iter()
            .map(|p| p.0.saturating_add(p.1))
            .max()
            .unwrap_or(0);
        let started = Instant::now();
        match refresh(lo, hi - lo) {
            Ok(fresh) => self.splice_extents(lo, hi - lo, fresh),
            Err(e) => {
                self.counts.mapping_error = Some(e.to_string());
                self.mapping_disabled = true;
            }
        }
        self.counts.refreshes += 1;
        self.counts.refresh_nanos += started.elapsed().as_nanos() as u64;
        let before = self.counts.physical_start.unmapped;
        for k in 0..parked {
            let (off, len) = self.pending[k];
            self.resolve(off, len);
        }
        self.pending_len = 0;
        let failed = (self.counts.physical_start.unmapped - before) as usize;
        if failed * 2 > parked {
            self.backoff = (self.backoff * 2).clamp(1, MAX_BACKOFF);
            self.skip = u64::from(self.backoff) * PENDING as u64;
        } else {
            self.backoff = 0;
        }
    }

    /// Adds another tracer's counters to this one's (e.g. the shards of one job).
    pub fn merge(&mut self, other: &AlignmentTracer) {
        self.counts.merge(&other.counts);
    }

    /// The report so far (parked requests not included; call [`Self::flush`] first).
    pub fn report(&self) -> AlignmentReport {
        AlignmentReport::new(&self.params, &self.counts)
    }
}

/// The `alignment:` section of a job's output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlignmentReport {
    /// One request in this many was traced (1 = every request).
    pub sampled: u32,
    /// Requests the job issued while traced.
    pub requests_seen: u64,
    /// Requests traced.
    pub requests_traced: u64,
    /// Filesystem block size judged against, bytes.
    pub fs_block_size: u64,
    /// Device logical block size, bytes.
    pub logical_block_size: u64,
    /// Physical block size judged against (after any override), bytes.
    pub physical_block_size: u64,
    /// Physical block size the device reported, bytes.
    pub device_physical_block_size: u64,
    /// md chunk size, bytes (md only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md_chunk_size: Option<u64>,
    /// Partition start added to FIEMAP offsets, bytes.
    pub partition_start: u64,
    /// Largest power of two dividing each traced request's file offset: label → count.
    pub file_offset: Distribution,
    /// Largest power of two dividing each placed request's disk offset: label → count, plus
    /// `unmapped`.
    pub physical_start: PhysicalStarts,
    /// Fraction of placed requests with a piece starting or ending off a physical-block
    /// boundary (these cost read-modify-write); `None` when none was placed.
    pub rmw_share: Option<f64>,
    /// Fraction of placed requests spanning more than one extent; `None` when none was placed.
    pub multi_extent_share: Option<f64>,
    /// Fraction of placed requests crossing an md chunk boundary; `None` unless on md with
    /// placed requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md_chunk_crossing_share: Option<f64>,
    /// Extent-map refreshes (one per batch of parked requests; each may take several FIEMAP
    /// calls).
    pub refreshes: u64,
    /// Time spent refreshing the map, seconds.
    pub refresh_time_sec: f64,
    /// Why requests could not be placed at all (e.g. no FIEMAP on tmpfs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping_error: Option<String>,
}

impl AlignmentReport {
    /// The report for `counts` judged against `params`.
    pub fn new(params: &AlignmentParams, counts: &AlignmentCounts) -> AlignmentReport {
        let mapped = counts.mapped();
        let share = |n: u64| (mapped > 0).then(|| n as f64 / mapped as f64);
        AlignmentReport {
            sampled: params.sample_every.max(1),
            requests_seen: counts.requests_seen,
            requests_traced: counts.requests_traced,
            fs_block_size: params.fs_block_size,
            logical_block_size: params.logical_block_size,
            physical_block_size: params.physical_block_size,
            device_physical_block_size: params.device_physical_block_size,
            md_chunk_size: params.md_chunk_size,
            partition_start: params.partition_start,
            file_offset: counts.file_offset.clone(),
            physical_start: counts.physical_start.clone(),
            rmw_share: share(counts.rmw),
            multi_extent_share: share(counts.multi_extent),
            md_chunk_crossing_share: params
                .md_chunk_size
                .and_then(|_| share(counts.md_chunk_crossing)),
            refreshes: counts.refreshes,
            refresh_time_sec: counts.refresh_nanos as f64 * 1e-9,
            mapping_error: counts.mapping_error.clone(),
        }
    }
}
