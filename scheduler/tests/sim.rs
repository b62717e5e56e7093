//! The core against an instant device on a simulated clock (`scheduler::sim`): the machinery
//! (bucket, threshold, per-shard grabbing, IO groups, splitting) delivers what the cost model
//! allows. The seed's 8.5 GB/s plateau was exactly such a shortfall.

use scheduler::sim::{simulate, DiskRates, SimConfig};
use scheduler::Direction;

const KIB: u64 = 1024;

/// A large array: 40 GB/s reads, 20 GB/s writes, 4M read / 2.5M write IOPS.
const ARRAY: DiskRates = DiskRates {
    read_iops: 4_000_000,
    read_bandwidth: 40_000_000_000,
    write_iops: 2_500_000,
    write_bandwidth: 20_000_000_000,
    duplex: false,
};

fn check(rates: &DiskRates, shards: u32, groups: u32, sizes: &[u64], at_least: f64) {
    let cfg = SimConfig {
        shards,
        io_groups: groups,
        ..SimConfig::default()
    };
    for direction in [Direction::Read, Direction::Write] {
        for &len in sizes {
            let p = simulate(rates, &cfg, direction, len).unwrap();
            println!(
                "{shards} shards, {groups} group(s), {direction} {len} B: delivered {:.0} IOPS \
                 ({:.3} GB/s) of {:.0} allowed: {:.4}",
                p.delivered_iops,
                p.delivered_bandwidth / 1e9,
                p.model_iops,
                p.ratio
            );
            assert!(
                p.ratio >= at_least && p.ratio <= 1.01,
                "{shards} shards, {groups} groups, {direction} {len} B: ratio {}",
                p.ratio
            );
        }
    }
}

#[test]
fn a_large_array_with_192_shards_in_one_group_gets_what_the_model_allows() {
    check(&ARRAY, 192, 1, &[4 * KIB, 128 * KIB], 0.99);
}

#[test]
fn a_large_array_with_192_shards_in_several_groups_gets_what_the_model_allows() {
    for groups in [2, 4, 8] {
        check(&ARRAY, 192, groups, &[4 * KIB, 128 * KIB], 0.99);
    }
}

#[test]
fn a_slow_disk_gets_what_the_model_allows() {
    let slow = DiskRates {
        read_iops: 200,
        read_bandwidth: 200 << 20,
        write_iops: 150,
        write_bandwidth: 100 << 20,
        duplex: false,
    };
    check(&slow, 4, 1, &[4 * KIB, 128 * KIB], 0.99);
}

#[test]
fn a_disk_with_faster_writes_than_reads_gets_what_the_model_allows() {
    let rates = DiskRates {
        read_iops: 500_000,
        read_bandwidth: 2_000_000_000,
        write_iops: 900_000,
        write_bandwidth: 4_000_000_000,
        duplex: false,
    };
    check(&rates, 16, 1, &[4 * KIB, 128 * KIB], 0.99);
    check(&rates, 16, 2, &[4 * KIB, 128 * KIB], 0.99);
}

#[test]
fn every_size_from_512_bytes_to_the_maximum_length_and_beyond() {
    let sizes: Vec<u64> = (9..=24).map(|s| 1u64 << s).collect();
    check(&ARRAY, 8, 1, &sizes, 0.99);
}

#[test]
fn a_duplex_disk_gets_each_direction_in_full() {
    let rates = DiskRates {
        duplex: true,
        ..ARRAY
    };
    check(&rates, 24, 1, &[4 * KIB, 128 * KIB], 0.99);
}
