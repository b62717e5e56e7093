//! The shared token bucket (`shared/reference/scheduler.md` §4): single-thread semantics with a
//! manual clock, wrap-around of the counters, and two threads sharing one bucket on the real
//! clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use scheduler::token_bucket::{
    SharedTokenBucket, MAX_LIMIT, MAX_RATE_PER_SEC, MAX_REPLENISH_DELTA_NS, NANOS_PER_SEC,
};

const MS: u64 = 1_000_000;
const HOUR: u64 = MAX_REPLENISH_DELTA_NS;
/// A manual clock's origin, far from zero (the bucket copes with zero too, see below).
const T0: u64 = 3 * 24 * HOUR;

/// 1000 tokens/s (one per ms), limit 100, threshold 10, replenished once at T0 (full).
fn full_bucket() -> SharedTokenBucket {
    let b = SharedTokenBucket::new(1000, 100, 10, T0);
    b.replenish(T0);
    b
}

#[test]
fn starts_full_after_first_replenish() {
    let b = SharedTokenBucket::new(1000, 100, 10, T0);
    assert_eq!(b.head(), 0);
    assert_eq!(b.tail(), 0);
    b.replenish(T0);
    assert_eq!(b.available(), 100);
    assert_eq!(b.head(), 100);
    // The same instant again adds nothing.
    b.replenish(T0);
    assert_eq!(b.available(), 100);
}

#[test]
fn starts_full_on_a_clock_starting_at_zero() {
    // The day-back start wraps below zero instead of saturating.
    let b = SharedTokenBucket::new(1000, 100, 10, 0);
    b.replenish(0);
    assert_eq!(b.available(), 100);
    b.grab(100);
    b.replenish(5 * MS);
    assert_eq!(b.available(), 0, "below threshold");
    b.replenish(10 * MS);
    assert_eq!(b.available(), 10);
    // A bucket created a little after zero fills too.
    let b = SharedTokenBucket::new(1000, 100, 10, 3 * MS);
    b.replenish(4 * MS);
    assert_eq!(b.available(), 100);
}

#[test]
fn accessors_report_clamped_parameters() {
    let b = SharedTokenBucket::new(1000, 100, 10, T0);
    assert_eq!(
        (b.rate_per_sec(), b.limit(), b.threshold()),
        (1000, 100, 10)
    );
    // Zero rate is taken as 1 token/s; zero threshold as 1; a threshold above the limit is
    // clamped to the limit.
    let b = SharedTokenBucket::new(0, 100, 0, T0);
    assert_eq!((b.rate_per_sec(), b.threshold()), (1, 1));
    let b = SharedTokenBucket::new(5, 100, 1000, T0);
    assert_eq!(b.threshold(), 100);
    // A zero-limit bucket never holds a token but stays usable.
    let b = SharedTokenBucket::new(5, 0, 0, T0);
    b.replenish(T0);
    assert_eq!((b.limit(), b.threshold(), b.available()), (0, 1, 0));
}

#[test]
fn grab_deficiency_refund() {
    let b = full_bucket();
    let p1 = b.grab(60);
    assert_eq!(p1, 60);
    assert_eq!(b.deficiency(p1), 0);
    assert_eq!(b.available(), 40);
    let p2 = b.grab(60);
    assert_eq!(p2, 120);
    assert_eq!(b.deficiency(p2), 20);
    assert_eq!(b.available(), 0);
    // Positions already passed stay covered.
    assert_eq!(b.deficiency(p1), 0);
    b.refund(15);
    assert_eq!(b.deficiency(p2), 5);
    // 5 ms later: 5 tokens, but the threshold is 10, so nothing yet.
    b.replenish(T0 + 5 * MS);
    assert_eq!(b.deficiency(p2), 5);
    // 10 ms after the start: 10 tokens arrive at once, covering p2 with 5 to spare.
    b.replenish(T0 + 10 * MS);
    assert_eq!(b.deficiency(p2), 0);
    assert_eq!(b.available(), 5);
    assert_eq!(b.tail(), 120);
    assert_eq!(b.head(), 125);
}

#[test]
fn replenish_below_threshold_does_nothing_but_time_accrues() {
    let b = full_bucket();
    b.grab(100);
    for ms in 1..10 {
        b.replenish(T0 + ms * MS);
        assert_eq!(b.available(), 0, "after {ms} ms");
    }
    // The skipped calls did not lose the time: at 10 ms all 10 tokens arrive.
    b.replenish(T0 + 10 * MS);
    assert_eq!(b.available(), 10);
}

#[test]
fn clock_going_backwards_is_ignored() {
    let b = full_bucket();
    b.grab(100);
    b.replenish(T0 + 50 * MS);
    assert_eq!(b.available(), 50);
    b.replenish(T0 + 20 * MS);
    assert_eq!(b.available(), 50);
    b.replenish(T0 + 60 * MS);
    assert_eq!(b.available(), 60);
}

#[test]
fn tokens_above_limit_are_lost() {
    let b = full_bucket();
    b.replenish(T0 + 10_000 * MS);
    assert_eq!(b.available(), 100);
    b.grab(100);
    // 250 ms produce 250 tokens; only 100 fit.
    b.replenish(T0 + 10_250 * MS);
    assert_eq!(b.available(), 100);
    // The limit is counted from the tail: with 30 reserved beyond the head, room is 130.
    b.grab(130);
    assert_eq!(b.deficiency(b.tail()), 30);
    b.replenish(T0 + 20_000 * MS);
    assert_eq!(b.deficiency(b.tail()), 0);
    assert_eq!(b.available(), 100);
}

#[test]
fn one_hour_clamp() {
    // Limit far above an hour's worth, so only the clamp bounds the refill.
    let rate = 1000;
    let b = SharedTokenBucket::new(rate, 1 << 40, 1, T0);
    b.replenish(T0);
    assert_eq!(
        b.available(),
        rate * 3600,
        "first replenish: one hour's worth"
    );
    b.grab(rate * 3600);
    b.replenish(T0 + 2 * HOUR);
    assert_eq!(b.available(), rate * 3600, "two idle hours count as one");
    b.grab(rate * 3600);
    // The clamp dropped the second hour: the clock restarts at T0 + 2 h.
    b.replenish(T0 + 2 * HOUR + 1_000 * MS);
    assert_eq!(b.available(), rate);
}

#[test]
fn rate_clamp_keeps_arithmetic_in_range() {
    let b = SharedTokenBucket::new(u64::MAX, u64::MAX, u64::MAX, T0);
    assert_eq!(b.rate_per_sec(), MAX_RATE_PER_SEC);
    assert_eq!(b.limit(), MAX_LIMIT);
    assert!(b.rate_per_sec().checked_mul(3600).unwrap() <= u64::MAX / 2);
    b.replenish(T0);
    assert_eq!(b.available(), MAX_LIMIT);
    // Drain and refill repeatedly at extreme rates and times; debug overflow checks are on.
    for step in 1..=50u64 {
        let p = b.grab(MAX_LIMIT);
        b.replenish(T0 + step * 7 * HOUR / 3);
        assert_eq!(b.deficiency(p), 0, "step {step}");
    }
    // Clock readings near u64::MAX, one nanosecond apart, stay sane.
    let b = SharedTokenBucket::new(u64::MAX, 1 << 40, 1, u64::MAX - 10);
    b.replenish(u64::MAX - 10);
    b.replenish(u64::MAX);
    assert!(b.available() <= 1 << 40);
}

#[test]
fn rate_is_exact_under_frequent_replenish() {
    // Threshold 1 and a replenish every 0.7 token's worth of time: the carried remainder keeps
    // the delivered total exact (the reference's rounding would lose or win up to half a token
    // per call).
    let b = SharedTokenBucket::new(1000, 1 << 30, 1, T0);
    b.replenish(T0);
    b.grab(b.available());
    let mut delivered = 0;
    let mut now = T0;
    for _ in 0..100_000 {
        now += 700_000; // 0.7 ms
        b.replenish(now);
        let a = b.available();
        b.grab(a);
        delivered += a;
    }
    // 70 s at 1000 tokens/s.
    assert!((69_999..=70_000).contains(&delivered), "{delivered}");
}

#[test]
fn wrap_around_near_u64_max() {
    let start = u64::MAX - 1000;
    let b = SharedTokenBucket::with_counters(1000, 100, 10, T0, start);
    assert_eq!((b.head(), b.tail(), b.available()), (start, start, 0));
    b.replenish(T0);
    assert_eq!(b.available(), 100);
    // 1000 rounds of 7 tokens: the counters cross u64::MAX after ~143 rounds.
    let mut now = T0;
    let mut crossed = false;
    for round in 0..1000u64 {
        let p = b.grab(7);
        crossed |= p < start;
        let d = b.deficiency(p);
        assert!(d <= 7, "round {round}: deficiency {d}");
        if d > 0 {
            // Advance the clock exactly as far as the deficiency needs (at least the threshold).
            now += d.max(10) * MS;
            b.replenish(now);
            assert_eq!(b.deficiency(p), 0, "round {round}");
        }
        assert!(b.available() <= 100);
    }
    assert!(crossed, "the counters never wrapped");
    assert_eq!(b.tail(), start.wrapping_add(7000));
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// The bucket matches an unbounded model (i128 counters) for any op sequence starting near
    /// the wrap-around point.
    #[test]
    fn matches_model(
        start in prop_oneof![Just(u64::MAX - 1000), Just(0u64), any::<u64>()],
        ops in proptest::collection::vec((0u8..3, 0u64..300), 1..200),
    ) {
        let (rate, limit, threshold) = (1000u64, 500u64, 20u64);
        let b = SharedTokenBucket::with_counters(rate, limit, threshold, T0, start);
        let (mut head, mut tail) = (0i128, 0i128);
        let mut last = T0 - 24 * HOUR;
        let mut now = T0;
        for (op, n) in ops {
            match op {
                0 => {
                    let p = b.grab(n);
                    tail += i128::from(n);
                    prop_assert_eq!(p, start.wrapping_add(tail as u64));
                    prop_assert_eq!(b.deficiency(p) as i128, (tail - head).max(0));
                }
                1 => {
                    b.refund(n);
                    head += i128::from(n);
                }
                _ => {
                    now += n * MS / 3;
                    let delta = (now - last).min(HOUR);
                    let extra = i128::from(rate) * i128::from(delta) / 1_000_000_000;
                    if extra >= i128::from(threshold) {
                        let used = if now - last >= HOUR {
                            now - last
                        } else {
                            (extra as u64 * 1_000_000_000).div_ceil(rate)
                        };
                        last += used;
                        head += extra.min((tail + i128::from(limit) - head).max(0));
                    }
                    b.replenish(now);
                }
            }
            prop_assert_eq!(b.head(), start.wrapping_add(head as u64));
            prop_assert_eq!(b.available() as i128, (head - tail).max(0));
        }
    }
}

fn now_ns(origin: Instant) -> u64 {
    origin.elapsed().as_nanos() as u64
}

#[test]
fn two_threads_share_the_rate() {
    // 1e6 tokens/s in grabs of 1000 (1 ms each, 1000 grabs/s); a 100 ms deep bucket absorbs
    // scheduling hiccups of a loaded VM without losing tokens; threshold = one grab.
    //
    // Waiting threads sleep for the time their deficiency needs rather than spin: a thread
    // that sleeps is woken promptly even on a loaded 2-core VM, while a spinning one competes
    // with every other process for its time slice, and each slice it loses goes to the other
    // thread (the bucket serves reservations in order; it cannot give a thread tokens it never
    // asked for).
    const RATE: u64 = 1_000_000;
    const N: u64 = 1000;
    const LIMIT: u64 = 100_000;
    const RUN: Duration = Duration::from_secs(1);
    let origin = Instant::now();
    let bucket = Arc::new(SharedTokenBucket::new(RATE, LIMIT, N, now_ns(origin)));
    // Fill, then empty the bucket so that the measurement starts from zero tokens.
    bucket.replenish(now_ns(origin));
    bucket.grab(bucket.available());
    let t0 = now_ns(origin);
    let deadline = t0 + RUN.as_nanos() as u64;

    let workers: Vec<_> = (0..2)
        .map(|_| {
            let bucket = Arc::clone(&bucket);
            std::thread::spawn(move || {
                let mut granted = 0u64;
                let mut last_done = t0;
                loop {
                    let now = now_ns(origin);
                    if now >= deadline {
                        break;
                    }
                    bucket.replenish(now);
                    let pos = bucket.grab(N);
                    loop {
                        bucket.replenish(now_ns(origin));
                        let missing = bucket.deficiency(pos);
                        if missing == 0 {
                            break;
                        }
                        // Time the missing tokens take at the configured rate.
                        std::thread::sleep(Duration::from_nanos(missing * NANOS_PER_SEC / RATE));
                    }
                    last_done = now_ns(origin);
                    granted += N;
                }
                (granted, last_done)
            })
        })
        .collect();
    let results: Vec<(u64, u64)> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let total: u64 = results.iter().map(|r| r.0).sum();
    let end = results.iter().map(|r| r.1).max().unwrap();
    let elapsed_s = (end - t0) as f64 / NANOS_PER_SEC as f64;
    let measured = total as f64 / elapsed_s;
    let shares: Vec<f64> = results.iter().map(|r| r.0 as f64 / total as f64).collect();
    println!(
        "two threads: {total} tokens in {elapsed_s:.4} s = {measured:.0} tokens/s \
         (configured {RATE}, error {:+.3}%); per thread {:?} = {:.4} / {:.4}",
        (measured / RATE as f64 - 1.0) * 100.0,
        results.iter().map(|r| r.0).collect::<Vec<_>>(),
        shares[0],
        shares[1],
    );
    assert!(
        (measured / RATE as f64 - 1.0).abs() <= 0.01,
        "rate {measured} not within 1% of {RATE}"
    );
    for s in shares {
        assert!(
            (s - 0.5).abs() <= 0.025,
            "thread share {s} not within 5% of half"
        );
    }
}
