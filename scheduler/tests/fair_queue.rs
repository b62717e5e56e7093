//! The fair queue (`shared/reference/scheduler.md` §5), driven directly: the reference's ratio
//! tests of §8 (capacity = 1000 × weight, forgiving factor 50 000, no disk token bucket), groups,
//! zero-capacity requests, bandwidth limits on a manual clock, and bookkeeping.
//!
//! Each test prints what it measured (`cargo test -- --nocapture` shows it).

use std::sync::Arc;

use proptest::prelude::*;
use scheduler::fair_queue::{
    bandwidth_bucket, ClassId, FairQueue, FairQueueConfig, GroupId, DEFAULT_FORGIVING_FACTOR,
};

const FORGIVING_FACTOR: u64 = 50_000;
const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const MS: u64 = 1_000_000;
/// A manual clock's origin (any would do; a non-zero one keeps the arithmetic honest).
const T0: u64 = 3 * 24 * 3_600 * 1_000_000_000;

/// The reference's test environment: a queue, classes, and a count of dispatches per class.
struct Env {
    q: FairQueue<usize>,
    classes: Vec<ClassId>,
    results: Vec<i64>,
}

impl Env {
    fn new() -> Self {
        Env {
            q: FairQueue::new(FairQueueConfig {
                forgiving_factor: FORGIVING_FACTOR,
            }),
            classes: Vec::new(),
            results: Vec::new(),
        }
    }

    fn class(&mut self, shares: u32, parent: Option<GroupId>) -> usize {
        self.classes.push(self.q.add_class(shares, parent));
        self.results.push(0);
        self.classes.len() - 1
    }

    /// Queues one request of capacity 1000 × weight for class index `i`.
    fn op(&mut self, i: usize, weight: u64) {
        self.q.push(self.classes[i], 1000 * weight, 0, i);
    }

    /// Dispatches `n` requests.
    fn tick(&mut self, n: usize) {
        for _ in 0..n {
            let (class, i, _) = self.q.pop(0).expect("a request is queued");
            assert_eq!(self.classes[i], class);
            self.results[i] += 1;
        }
    }

    fn reset(&mut self, i: usize) {
        self.results[i] = 0;
    }

    /// The reference's check (`verify` in Seastar's fair_queue_test.cc): with the ratios taken
    /// towards class 0, class i must get between `ratios[i] × (results[0] − error)` and
    /// `ratios[i] × (results[0] + error)` dispatches.
    fn verify(&self, name: &str, ratios: &[i64], error: i64) {
        println!("{name}: {:?}", self.results);
        for (i, &r) in ratios.iter().enumerate() {
            let (min, max) = (r * (self.results[0] - error), r * (self.results[0] + error));
            assert!(
                (min..=max).contains(&self.results[i]),
                "{name}: class {i} got {}, expected {min}..={max} (all: {:?})",
                self.results[i],
                self.results
            );
        }
    }
}

#[test]
fn equal_shares_two_classes() {
    let mut env = Env::new();
    let a = env.class(10, None);
    let b = env.class(10, None);
    for _ in 0..100 {
        env.op(a, 1);
        env.op(b, 1);
    }
    env.tick(100);
    env.verify("equal_2classes", &[1, 1], 1);
}

#[test]
fn equal_shares_four_classes() {
    let mut env = Env::new();
    let ids: Vec<usize> = (0..4).map(|_| env.class(10, None)).collect();
    for _ in 0..100 {
        for &i in &ids {
            env.op(i, 1);
        }
    }
    env.tick(200);
    env.verify("equal_4classes", &[1, 1, 1, 1], 1);
}

#[test]
fn different_shares() {
    let mut env = Env::new();
    let a = env.class(10, None);
    let b = env.class(20, None);
    for _ in 0..100 {
        env.op(a, 1);
        env.op(b, 1);
    }
    env.tick(100);
    env.verify("different_shares", &[1, 2], 1);
}

#[test]
fn different_weights() {
    // Equal shares, but a's requests cost twice as much: b gets twice the count.
    let mut env = Env::new();
    let a = env.class(10, None);
    let b = env.class(10, None);
    for _ in 0..100 {
        env.op(a, 2);
        env.op(b, 1);
    }
    env.tick(100);
    env.verify("different_weights", &[1, 2], 1);
}

#[test]
fn dominant_queue() {
    // As the reference's test_fair_queue_dominant_queue: b runs 100 requests alone, then a and
    // b queue 20 each. b's accumulated (10 000) is far past the forgiven start of the newcomer
    // a (last_accumulated 9 900 − 50 000/10 = 4 900), so the next 20 all go to a while it
    // catches up (it could take 51 before b's turn).
    let mut env = Env::new();
    let a = env.class(10, None);
    let b = env.class(10, None);
    for _ in 0..100 {
        env.op(b, 1);
    }
    env.tick(100);
    env.reset(b);
    for _ in 0..20 {
        env.op(a, 1);
        env.op(b, 1);
    }
    env.tick(20);
    env.verify("dominant_queue", &[1, 0], 0);
    assert_eq!(env.results, [20, 0]);
}

#[test]
fn forgiveness_is_bounded() {
    // b runs 1000 requests alone (accumulated 100 000); a newcomer a is forgiven
    // forgiving_factor / shares = 5 000 units = 50 requests of 100, no more: it leads b by
    // about 50 (51 counting the tie at equal keys), then they alternate.
    let mut env = Env::new();
    let a = env.class(10, None);
    let b = env.class(10, None);
    for _ in 0..1000 {
        env.op(b, 1);
    }
    env.tick(1000);
    env.reset(b);
    for _ in 0..200 {
        env.op(a, 1);
        env.op(b, 1);
    }
    // How many a gets before b's first turn.
    let mut streak = 0;
    loop {
        let (class, _, _) = env.q.pop(0).unwrap();
        if class != env.classes[a] {
            break;
        }
        streak += 1;
    }
    env.results[b] = 1;
    env.results[a] = streak;
    env.tick(150);
    println!(
        "forgiveness: newcomer ran {streak} before the old class, then {:?}",
        env.results
    );
    assert!(
        (50..=52).contains(&streak),
        "newcomer's credit {streak} requests"
    );
    let lead = env.results[a] - env.results[b];
    assert!(
        (48..=53).contains(&lead),
        "lead {lead} after 151 more dispatches"
    );
}

#[test]
fn forgiveness_default_is_five_ms() {
    let q: FairQueue<()> = FairQueue::new(FairQueueConfig::default());
    assert_eq!(q.config().forgiving_factor, DEFAULT_FORGIVING_FACTOR);
    assert_eq!(DEFAULT_FORGIVING_FACTOR, 5 * (1 << 24));
}

#[test]
fn swapping_shares_mid_run_ends_even() {
    // As the reference's test_fair_queue_update_shares.
    let mut env = Env::new();
    let a = env.class(20, None);
    let b = env.class(10, None);
    for _ in 0..500 {
        env.op(a, 1);
        env.op(b, 1);
    }
    env.tick(250);
    println!("update_shares: after 250 with 20:10 {:?}", env.results);
    env.q.set_shares(env.classes[a], 10);
    env.q.set_shares(env.classes[b], 20);
    assert_eq!(env.q.shares(env.classes[b]), 20);
    env.tick(250);
    env.verify("update_shares", &[1, 1], 2);
}

#[test]
fn zero_shares_are_one() {
    let mut q: FairQueue<()> = FairQueue::new(FairQueueConfig::default());
    let c = q.add_class(0, None);
    assert_eq!(q.shares(c), 1);
    q.set_shares(c, 0);
    assert_eq!(q.shares(c), 1);
    let g = q.add_group(0, None);
    q.set_group_shares(g, 0);
    let d = q.add_class(1, Some(g));
    q.push(c, 10, 0, ());
    q.push(d, 10, 0, ());
    assert!(q.pop(0).is_some() && q.pop(0).is_some() && q.pop(0).is_none());
}

#[test]
fn two_groups_one_to_three() {
    // Groups with shares 1 and 3; inside the first, classes 1:3; inside the second, 1:1.
    // Expected split: 1/16, 3/16, 3/8, 3/8 = 1:3:6:6 of 1600 dispatches.
    let mut env = Env::new();
    let g1 = env.q.add_group(1, None);
    let g3 = env.q.add_group(3, None);
    let a = env.class(10, Some(g1));
    let b = env.class(30, Some(g1));
    let c = env.class(20, Some(g3));
    let d = env.class(20, Some(g3));
    for _ in 0..2000 {
        for i in [a, b, c, d] {
            env.op(i, 1);
        }
    }
    env.tick(1600);
    env.verify("groups_1_3", &[1, 3, 6, 6], 2);
}

#[test]
fn nested_groups_and_mixed_levels() {
    // Root: class x (shares 1) and group g (shares 1); g: class y (1) and group h (1);
    // h: classes z1, z2 (1 each). Expected: z1 1/8, z2 1/8, y 1/4, x 1/2.
    let mut env = Env::new();
    let g = env.q.add_group(1, None);
    let h = env.q.add_group(1, Some(g));
    let z1 = env.class(1, Some(h));
    let z2 = env.class(1, Some(h));
    let y = env.class(1, Some(g));
    let x = env.class(1, None);
    for _ in 0..1000 {
        for i in [x, y, z1, z2] {
            env.op(i, 1);
        }
    }
    env.tick(1600);
    env.verify("nested", &[1, 1, 2, 4], 2);
}

#[test]
fn group_waking_from_idle_is_forgiven_at_most_its_factor() {
    // A top-level class runs alone; a group (shares 10) wakes with one class. The group gets
    // at most forgiving_factor / 10 = 5 000 units = 50 requests of lead.
    let mut env = Env::new();
    let x = env.class(10, None);
    let g = env.q.add_group(10, None);
    let y = env.class(1, Some(g));
    for _ in 0..1000 {
        env.op(x, 1);
    }
    env.tick(1000);
    env.reset(x);
    for _ in 0..300 {
        env.op(x, 1);
        env.op(y, 1);
    }
    env.tick(250);
    let lead = env.results[y] - env.results[x];
    println!("group forgiveness: {:?}, lead {lead}", env.results);
    assert!((48..=53).contains(&lead), "lead {lead}");
}

#[test]
fn zero_capacity_is_round_robin_by_count() {
    // Shares do not matter when every request costs 0: each dispatch charges at least 1.
    let mut q: FairQueue<usize> = FairQueue::new(FairQueueConfig {
        forgiving_factor: FORGIVING_FACTOR,
    });
    let classes: Vec<ClassId> = [1, 10, 1000]
        .iter()
        .map(|&s| q.add_class(s, None))
        .collect();
    for (i, &class) in classes.iter().enumerate() {
        for _ in 0..100 {
            q.push(class, 0, 0, i);
        }
    }
    assert_eq!(q.queued_capacity(), 0);
    let mut counts = [0; 3];
    for round in 0..100 {
        let mut seen = [false; 3];
        for _ in 0..3 {
            let (_, i, cap) = q.pop(0).unwrap();
            assert_eq!(cap, 0);
            assert!(!seen[i], "round {round}: class {i} twice");
            seen[i] = true;
            counts[i] += 1;
        }
    }
    println!("zero capacity: {counts:?}");
    assert!(q.is_empty());
}

/// Shares and weights per class, run backlogged for `n` dispatches; returns counts.
fn run_backlogged(q: &mut FairQueue<usize>, classes: &[(ClassId, u64)], n: usize) -> Vec<f64> {
    for (i, &(c, w)) in classes.iter().enumerate() {
        for _ in 0..4 {
            q.push(c, 1000 * w, 0, i);
        }
    }
    let mut counts = vec![0f64; classes.len()];
    for _ in 0..n {
        let (_, i, _) = q.pop(0).unwrap();
        counts[i] += 1.0;
        q.push(classes[i].0, 1000 * classes[i].1, 0, i);
    }
    counts
}

fn check_split(name: &str, counts: &[f64], expected_weights: &[f64]) -> Result<(), TestCaseError> {
    let n: f64 = counts.iter().sum();
    let total: f64 = expected_weights.iter().sum();
    let measured: Vec<f64> = counts.iter().map(|c| c / n).collect();
    let expected: Vec<f64> = expected_weights.iter().map(|w| w / total).collect();
    println!("{name}: measured {measured:.4?} expected {expected:.4?}");
    for (m, e) in measured.iter().zip(&expected) {
        prop_assert!(
            (m - e).abs() <= 0.05 * e,
            "{}: {:?} vs {:?}",
            name,
            measured,
            expected
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random shares 1..=5 and weights 1..=5: class i's count is proportional to
    /// shares_i / weight_i, within 5%.
    #[test]
    fn random_shares_and_weights(
        classes in proptest::collection::vec((1u32..=5, 1u64..=5), 2..=4),
    ) {
        let mut q = FairQueue::new(FairQueueConfig { forgiving_factor: FORGIVING_FACTOR });
        let ids: Vec<(ClassId, u64)> =
            classes.iter().map(|&(s, w)| (q.add_class(s, None), w)).collect();
        let counts = run_backlogged(&mut q, &ids, 20_000);
        let expected: Vec<f64> = classes.iter().map(|&(s, w)| s as f64 / w as f64).collect();
        check_split(&format!("random {classes:?}"), &counts, &expected)?;
    }

    /// The same inside two groups with random shares: a class's expected count is
    /// (group share × class share within the group) / weight.
    #[test]
    fn random_grouped(
        groups in proptest::collection::vec(
            (1u32..=5, proptest::collection::vec((1u32..=5, 1u64..=5), 1..=3)),
            2..=3,
        ),
    ) {
        let mut q = FairQueue::new(FairQueueConfig { forgiving_factor: FORGIVING_FACTOR });
        let group_total: f64 = groups.iter().map(|g| g.0 as f64).sum();
        let mut ids = Vec::new();
        let mut expected = Vec::new();
        for (gs, members) in &groups {
            let g = q.add_group(*gs, None);
            let member_total: f64 = members.iter().map(|m| m.0 as f64).sum();
            for &(s, w) in members {
                ids.push((q.add_class(s, Some(g)), w));
                expected.push(*gs as f64 / group_total * s as f64 / member_total / w as f64);
            }
        }
        let counts = run_backlogged(&mut q, &ids, 40_000);
        check_split(&format!("grouped {groups:?}"), &counts, &expected)?;
    }
}

/// Drives classes on a manual clock: every 100 µs the "disk" takes up to `per_step` requests.
/// Each class is kept backlogged with requests of `bytes` bytes and `capacity` units.
/// Returns bytes dispatched per class.
fn run_clocked(
    q: &mut FairQueue<usize>,
    classes: &[ClassId],
    capacity: u64,
    bytes: u64,
    per_step: usize,
    seconds: u64,
) -> Vec<u64> {
    for (i, &c) in classes.iter().enumerate() {
        for _ in 0..4 {
            q.push(c, capacity, bytes, i);
        }
    }
    let mut out = vec![0u64; classes.len()];
    let step = MS / 10;
    let mut now = T0;
    while now < T0 + seconds * 1000 * MS {
        for _ in 0..per_step {
            let Some((class, cap)) = q.peek(now) else {
                break;
            };
            let (popped, i, popped_cap) = q.pop(now).unwrap();
            assert_eq!(
                (popped, popped_cap),
                (class, cap),
                "pop returned what peek named"
            );
            out[i] += bytes;
            q.push(classes[i], capacity, bytes, i);
        }
        now += step;
    }
    out
}

#[test]
fn bandwidth_limited_class_and_unlimited_class() {
    // L is limited to 100 MiB/s; U is not. The "disk" could do 8 × 128 KiB per 100 µs
    // (10 GiB/s). Over 2 s, L may get at most 115% of 200 MiB (it starts with a full 10 MiB
    // bucket) and U takes the rest.
    let limit = 100 * MIB;
    let mut q = FairQueue::new(FairQueueConfig {
        forgiving_factor: FORGIVING_FACTOR,
    });
    let l = q.add_class(10, None);
    let u = q.add_class(10, None);
    q.set_class_bandwidth(l, Some(Arc::new(bandwidth_bucket(limit, T0))));
    let bytes = run_clocked(&mut q, &[l, u], 1000, 128 * KIB, 8, 2);
    let l_rate = bytes[0] as f64 / 2.0;
    let u_rate = bytes[1] as f64 / 2.0;
    println!(
        "bandwidth: limited class {:.1} MiB/s = {:.3} × its 100 MiB/s limit; unlimited {:.1} MiB/s",
        l_rate / MIB as f64,
        l_rate / limit as f64,
        u_rate / MIB as f64
    );
    assert!(l_rate <= 1.15 * limit as f64);
    assert!(
        l_rate >= 0.95 * limit as f64,
        "the limited class is starved"
    );
    // The disk did 80 000 requests per second in all; U got everything L did not.
    let all = 2 * 10_000 * 8 * 128 * KIB;
    assert_eq!(bytes[0] + bytes[1], all);
}

#[test]
fn bandwidth_limited_group_keeps_inner_shares() {
    // §8: shares 400:100 inside a 100 MiB/s group give a bandwidth ratio in [3.95, 4.05].
    let limit = 100 * MIB;
    let mut q = FairQueue::new(FairQueueConfig::default());
    let g = q.add_group(100, None);
    q.set_group_bandwidth(g, Some(Arc::new(bandwidth_bucket(limit, T0))));
    let a = q.add_class(400, Some(g));
    let b = q.add_class(100, Some(g));
    let bytes = run_clocked(&mut q, &[a, b], 1_000_000, 128 * KIB, 8, 4);
    let ratio = bytes[0] as f64 / bytes[1] as f64;
    let group_rate = (bytes[0] + bytes[1]) as f64 / 4.0;
    println!(
        "group bandwidth: {:.1} MiB/s = {:.3} × limit; inner ratio {ratio:.4}",
        group_rate / MIB as f64,
        group_rate / limit as f64
    );
    assert!((3.95..=4.05).contains(&ratio), "ratio {ratio}");
    assert!(group_rate <= 1.15 * limit as f64 && group_rate >= 0.95 * limit as f64);
}

#[test]
fn bandwidth_bucket_shared_by_two_shards() {
    // One 100 MiB/s bucket shared by the same class on two shards' queues: the limit holds
    // for both together.
    let limit = 100 * MIB;
    let bucket = Arc::new(bandwidth_bucket(limit, T0));
    let mut shards: Vec<(FairQueue<usize>, ClassId)> = (0..2)
        .map(|_| {
            let mut q = FairQueue::new(FairQueueConfig::default());
            let c = q.add_class(100, None);
            q.set_class_bandwidth(c, Some(Arc::clone(&bucket)));
            for _ in 0..4 {
                q.push(c, 1000, 128 * KIB, 0);
            }
            (q, c)
        })
        .collect();
    let mut bytes = [0u64; 2];
    let mut now = T0;
    while now < T0 + 2000 * MS {
        for (s, (q, c)) in shards.iter_mut().enumerate() {
            for _ in 0..8 {
                if q.pop(now).is_none() {
                    break;
                }
                bytes[s] += 128 * KIB;
                q.push(*c, 1000, 128 * KIB, 0);
            }
        }
        now += MS / 10;
    }
    let rate = (bytes[0] + bytes[1]) as f64 / 2.0;
    println!(
        "shared bandwidth: shards {:.1} + {:.1} MiB/s = {:.3} × limit",
        bytes[0] as f64 / 2.0 / MIB as f64,
        bytes[1] as f64 / 2.0 / MIB as f64,
        rate / limit as f64
    );
    assert!(rate <= 1.15 * limit as f64 && rate >= 0.95 * limit as f64);
}

#[test]
fn throttled_class_is_skipped_until_replenished() {
    let mut q = FairQueue::new(FairQueueConfig::default());
    let l = q.add_class(100, None);
    let u = q.add_class(100, None);
    // 1 MiB/s = 2048 blocks/s; the bucket holds 10 MiB.
    q.set_class_bandwidth(l, Some(Arc::new(bandwidth_bucket(MIB, T0))));
    // One request overdraws the full bucket by 1 MiB.
    q.push(l, 1000, 11 * MIB, "big");
    q.push(l, 1000, 512, "small");
    assert_eq!(q.pop(T0).map(|r| r.1), Some("big"));
    assert!(q.is_throttled(l));
    assert_eq!(q.peek(T0), None, "throttled work is not offered");
    assert_eq!(q.len(), 1);
    q.push(u, 7, 0, "other");
    assert_eq!(q.peek(T0), Some((u, 7)));
    assert_eq!(q.pop(T0).map(|r| r.1), Some("other"));
    // Half a second later the overdraw is half paid: still throttled.
    assert_eq!(q.peek(T0 + 500 * MS), None);
    // After a whole second it is paid and the class comes back.
    assert_eq!(q.peek(T0 + 1000 * MS), Some((l, 1000)));
    assert!(!q.is_throttled(l));
    assert_eq!(q.pop(T0 + 1000 * MS).map(|r| r.1), Some("small"));
    assert!(q.is_empty());
    // Plugging back is not an activation.
    assert_eq!(q.activations(l), 1);
}

#[test]
fn removing_a_limit_unthrottles_at_once() {
    let mut q = FairQueue::new(FairQueueConfig::default());
    let l = q.add_class(100, None);
    let g = q.add_group(100, None);
    let m = q.add_class(100, Some(g));
    q.set_class_bandwidth(l, Some(Arc::new(bandwidth_bucket(MIB, T0))));
    q.set_group_bandwidth(g, Some(Arc::new(bandwidth_bucket(MIB, T0))));
    for _ in 0..2 {
        q.push(l, 1, 11 * MIB, 0);
        q.push(m, 1, 11 * MIB, 1);
    }
    assert!(q.pop(T0).is_some() && q.pop(T0).is_some());
    assert_eq!(q.peek(T0), None);
    q.set_class_bandwidth(l, None);
    assert_eq!(q.peek(T0), Some((l, 1)));
    q.set_group_bandwidth(g, None);
    let mut got = vec![q.pop(T0).unwrap().1, q.pop(T0).unwrap().1];
    got.sort();
    assert_eq!(got, [0, 1]);
}

#[test]
fn peek_matches_pop_and_bookkeeping() {
    let mut q = FairQueue::new(FairQueueConfig::default());
    let a = q.add_class(100, None);
    let b = q.add_class(300, None);
    assert!(q.is_empty() && q.peek(0).is_none() && q.pop(0).is_none());
    for i in 0..10u64 {
        q.push(a, 100 + i, 0, i);
        q.push(b, 200 + i, 0, 100 + i);
    }
    assert_eq!((q.len(), q.class_len(a), q.class_len(b)), (20, 10, 10));
    assert_eq!(
        q.queued_capacity(),
        (100..110).sum::<u64>() + (200..210).sum::<u64>()
    );
    assert_eq!((q.activations(a), q.activations(b)), (1, 1));
    let mut capacity = q.queued_capacity();
    let mut order = Vec::new();
    while let Some((class, cap)) = q.peek(0) {
        let (popped, item, popped_cap) = q.pop(0).unwrap();
        assert_eq!((popped, popped_cap), (class, cap));
        capacity -= cap;
        assert_eq!(q.queued_capacity(), capacity);
        order.push(item);
    }
    // Each class's requests come out in FIFO order.
    let a_items: Vec<u64> = order.iter().copied().filter(|&i| i < 100).collect();
    assert_eq!(a_items, (0..10).collect::<Vec<_>>());
    assert!(q.is_empty() && q.queued_capacity() == 0);
    q.push(a, 1, 0, 0);
    q.push(a, 1, 0, 0);
    assert_eq!(q.activations(a), 2);
}

#[test]
fn huge_capacities_renormalise_without_overflow() {
    // Charges of 2^62 and 2^62 / 3 reach 2^63 within a few dispatches; the queue renormalises
    // and keeps the 1:3 split.
    let mut q = FairQueue::new(FairQueueConfig::default());
    let a = q.add_class(1, None);
    let b = q.add_class(3, None);
    let cap = 1u64 << 62;
    let mut counts = [0u32; 2];
    for _ in 0..8 {
        q.push(a, cap, 0, 0usize);
        q.push(b, cap, 0, 1usize);
    }
    assert_eq!(q.queued_capacity(), u64::MAX, "the sum saturates");
    for _ in 0..4000 {
        let (_, i, _) = q.pop(0).unwrap();
        counts[i] += 1;
        q.push([a, b][i], cap, 0, i);
        assert!(q.accumulated(a) < 1 << 63 && q.accumulated(b) < 1 << 63);
    }
    println!("huge capacities: {counts:?}");
    assert!(
        (counts[1] as i64 - 3 * counts[0] as i64).abs() <= 3,
        "{counts:?}"
    );
    // The largest capacity is accepted too (its charge is capped).
    q.push(a, u64::MAX, u64::MAX, 0);
    let mut drained = 0;
    while q.pop(0).is_some() {
        drained += 1;
    }
    assert_eq!(drained, 17);
    assert_eq!(q.queued_capacity(), 0);
}
