//! The ioinfo document: one struct, written as YAML by hand (fixed key order, as the reference's
//! yaml-cpp emitter writes it) or as JSON through serde.

use std::fmt::Write as _;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use scheduler::cost_model::{Capacity, CostModel};
use scheduler::Direction;

/// Everything `ioinfo` prints (see `shared/reference/io-tester.md`, "ioinfo").
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Longest read sent in one piece, bytes.
    pub disk_read_max_length: u64,
    /// Longest write sent in one piece, bytes.
    pub disk_write_max_length: u64,
    /// st_dev of the directory (glibc `makedev` encoding, e.g. 8:1 is 2049).
    pub device: u64,
    /// The latency goal the queue uses, milliseconds: the token bucket's limit over its rate
    /// (above the configured goal when a 64 KiB request costs more; as the reference prints).
    pub io_latency_goal_ms: f64,
    /// The queue's integers.
    pub io_queue: IoQueue,
    /// The fair queue and token bucket.
    pub fair_queue: FairQueue,
}

/// The `io_queue` section.
#[derive(Debug, Clone, Serialize)]
pub struct IoQueue {
    /// 1 for a configured queue, 0 for the unconfigured placeholder.
    pub id: u32,
    /// Read requests per second of one IO group, times 128.
    pub req_count_rate: u64,
    /// Read 512-byte blocks per second of one IO group, times 128.
    pub blocks_count_rate: u64,
    /// Write/read request cost ratio, times 128.
    pub disk_req_write_to_read_multiplier: u64,
    /// Write/read block cost ratio, times 128.
    pub disk_blocks_write_to_read_multiplier: u64,
}

/// The `fair_queue` section.
#[derive(Debug, Clone, Serialize)]
pub struct FairQueue {
    /// Cost of each power-of-two request size, capacity units (2^-24 ms).
    pub capacities: Capacities,
    /// Most one shard grabs at once, capacity units.
    pub per_tick_grab_threshold: u64,
    /// The shared token bucket.
    pub token_bucket: TokenBucket,
}

/// Request size (bytes) → read and write capacity, in increasing size order; serialized as a
/// map keyed by the size.
#[derive(Debug, Clone)]
pub struct Capacities(pub Vec<(u64, ReadWrite)>);

/// The capacity of one request size in each direction.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ReadWrite {
    /// Cost of a read, capacity units.
    pub read: Capacity,
    /// Cost of a write, capacity units.
    pub write: Capacity,
}

/// The `token_bucket` section.
#[derive(Debug, Clone, Serialize)]
pub struct TokenBucket {
    /// Depth, capacity units.
    pub limit: u64,
    /// Refill rate, capacity units per millisecond.
    pub rate: u64,
    /// Smallest replenishment, capacity units.
    pub threshold: u64,
}

impl Serialize for Capacities {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (len, rw) in &self.0 {
            map.serialize_entry(len, rw)?;
        }
        map.end()
    }
}

impl Report {
    /// The report for `model`, listing capacities for every power of two from 512 to
    /// `max_reqsize` bytes.
    pub fn new(model: &CostModel, device: u64, max_reqsize: u64) -> Report {
        let mut capacities = Vec::new();
        let mut len: u64 = 512;
        while len <= max_reqsize {
            capacities.push((
                len,
                ReadWrite {
                    read: model.capacity(Direction::Read, len),
                    write: model.capacity(Direction::Write, len),
                },
            ));
            match len.checked_mul(2) {
                Some(next) => len = next,
                None => break,
            }
        }
        Report {
            disk_read_max_length: model.max_request_len(Direction::Read),
            disk_write_max_length: model.max_request_len(Direction::Write),
            device,
            io_latency_goal_ms: model.effective_latency_goal_ms(),
            io_queue: IoQueue {
                id: u32::from(model.configured()),
                req_count_rate: model.req_count_rate(),
                blocks_count_rate: model.blocks_count_rate(),
                disk_req_write_to_read_multiplier: model.write_req_mult(),
                disk_blocks_write_to_read_multiplier: model.write_blocks_mult(),
            },
            fair_queue: FairQueue {
                capacities: Capacities(capacities),
                per_tick_grab_threshold: model.per_tick_grab_threshold(),
                token_bucket: TokenBucket {
                    limit: model.limit(),
                    rate: model.rate_per_ms(),
                    threshold: model.threshold(),
                },
            },
        }
    }

    /// The YAML document: `---`, the keys in the reference's order, `...`; trailing newline.
    pub fn to_yaml(&self) -> String {
        let mut out = String::from("---\n");
        // `fmt::Write` on a String never fails.
        let _ = writeln!(out, "disk_read_max_length: {}", self.disk_read_max_length);
        let _ = writeln!(out, "disk_write_max_length: {}", self.disk_write_max_length);
        let _ = writeln!(out, "device: {}", self.device);
        let _ = writeln!(out, "io_latency_goal_ms: {}", self.io_latency_goal_ms);
        let q = &self.io_queue;
        out.push_str("io_queue:\n");
        let _ = writeln!(out, "  id: {}", q.id);
        let _ = writeln!(out, "  req_count_rate: {}", q.req_count_rate);
        let _ = writeln!(out, "  blocks_count_rate: {}", q.blocks_count_rate);
        let _ = writeln!(
            out,
            "  disk_req_write_to_read_multiplier: {}",
            q.disk_req_write_to_read_multiplier
        );
        let _ = writeln!(
            out,
            "  disk_blocks_write_to_read_multiplier: {}",
            q.disk_blocks_write_to_read_multiplier
        );
        let f = &self.fair_queue;
        out.push_str("fair_queue:\n");
        if f.capacities.0.is_empty() {
            out.push_str("  capacities: {}\n");
        } else {
            out.push_str("  capacities:\n");
        }
        for (len, rw) in &f.capacities.0 {
            let _ = writeln!(out, "    {len}:");
            let _ = writeln!(out, "      read: {}", rw.read);
            let _ = writeln!(out, "      write: {}", rw.write);
        }
        let _ = writeln!(
            out,
            "  per_tick_grab_threshold: {}",
            f.per_tick_grab_threshold
        );
        out.push_str("  token_bucket:\n");
        let _ = writeln!(out, "    limit: {}", f.token_bucket.limit);
        let _ = writeln!(out, "    rate: {}", f.token_bucket.rate);
        let _ = writeln!(out, "    threshold: {}", f.token_bucket.threshold);
        out.push_str("...\n");
        out
    }

    /// The same content as pretty JSON, with a trailing newline.
    pub fn to_json(&self) -> serde_json::Result<String> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scheduler::cost_model::CostConfig;

    #[test]
    fn unconfigured_yaml() {
        let model = CostModel::unconfigured(&CostConfig::default());
        let yaml = Report::new(&model, 2049, 1024).to_yaml();
        let want = "---\ndisk_read_max_length: 16777216\ndisk_write_max_length: 16777216\n\
                    device: 2049\nio_latency_goal_ms: 0.75\nio_queue:\n  id: 0\n  \
                    req_count_rate: 18446744073709551615\n  \
                    blocks_count_rate: 18446744073709551615\n  \
                    disk_req_write_to_read_multiplier: 128\n  \
                    disk_blocks_write_to_read_multiplier: 128\nfair_queue:\n  capacities:\n    \
                    512:\n      read: 0\n      write: 0\n    1024:\n      read: 0\n      \
                    write: 0\n  per_tick_grab_threshold: 12582912\n  token_bucket:\n    \
                    limit: 12582912\n    rate: 16777216\n    threshold: 1\n...\n";
        assert_eq!(yaml, want);
    }

    #[test]
    fn json_keeps_the_order_and_size_keys() {
        let model = CostModel::unconfigured(&CostConfig::default());
        let json = Report::new(&model, 1, 2048).to_json().unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["fair_queue"]["capacities"]["2048"]["write"], 0);
        assert!(json.find("\"512\"").unwrap() < json.find("\"2048\"").unwrap());
        assert!(json.find("disk_read_max_length").unwrap() < json.find("fair_queue").unwrap());
    }
}
