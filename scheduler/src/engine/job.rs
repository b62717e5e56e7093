//! What one shard runs (a closed-loop request stream) and what it measured.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::rng::Rng;
use crate::direction::Direction;

/// Where successive requests land.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// Back to back from `sequential_start`, wrapping to the region's start at its end.
    Sequential,
    /// Uniform multiples of the request size within the region (fio's `norandommap`).
    Random,
}

/// One shard's closed-loop job: keep `in_flight` requests outstanding for `ramp + measure`.
#[derive(Clone, Debug, Serialize)]
pub struct JobSpec {
    /// Read or write.
    pub direction: Direction,
    /// Sequential or random offsets.
    pub pattern: Pattern,
    /// Bytes per request; a multiple of the file's DIO offset alignment.
    pub request_size: u64,
    /// Requests kept in flight (queue depth) by this shard.
    pub in_flight: usize,
    /// First byte of the file region requests may touch.
    pub region_start: u64,
    /// Length of that region, bytes; at least `request_size`.
    pub region_len: u64,
    /// Offset of the first sequential request (ignored for random jobs).
    pub sequential_start: u64,
    /// Leading time whose completions are dropped (device and cache warm-up).
    #[serde(with = "secs_f64")]
    pub ramp: Duration,
    /// Time over which completions are counted.
    #[serde(with = "secs_f64")]
    pub measure: Duration,
    /// Paced (open-loop) issue rate, requests per second for this job: requests leave on a
    /// fixed schedule, at most `in_flight` outstanding (a request due while all are busy leaves
    /// as soon as one completes, so a stall is caught up, by at most one second's worth).
    /// `None`: closed loop, every completion is replaced at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
}

/// Completions in one whole second of the measured window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondSample {
    /// Completed requests.
    pub requests: u64,
    /// Completed bytes.
    pub bytes: u64,
}

/// What one shard measured.
#[derive(Clone, Debug)]
pub struct JobResult {
    /// Requests completed inside the measured window.
    pub requests: u64,
    /// Bytes completed inside the measured window.
    pub bytes: u64,
    /// Length of the measured window.
    pub measured: Duration,
    /// Requests completed during the ramp (dropped from every figure).
    pub ramp_requests: u64,
    /// One sample per whole second of the measured window (a trailing partial second is left
    /// out so every sample covers the same time).
    pub samples: Vec<SecondSample>,
    /// Completion latency of measured requests, nanoseconds (submission to reaping).
    pub latency_ns: Histogram<u64>,
    /// One past the highest byte written by this job (0 for reads): with `region_start`, the
    /// part of the file that now holds data.
    pub written_end: u64,
    /// Offset where a following sequential job should continue.
    pub next_offset: u64,
    /// CPU time (user + system) the shard's thread(s) spent in the job.
    pub cpu: Duration,
    /// Time the shard's thread(s) were ready to run but waited for a CPU (the scheduler's run
    /// queue, `/proc/thread-self/schedstat`; zero where the kernel does not keep it). With
    /// `cpu` close to the job's wall time, the job never waited for the disk.
    pub runqueue_wait: Duration,
    /// Requests submitted with a registered (fixed) buffer and file (io_uring only).
    pub registered: bool,
}

impl JobResult {
    /// Requests per second over the measured window (0 for an empty window).
    pub fn iops(&self) -> f64 {
        if self.measured.is_zero() {
            return 0.0;
        }
        self.requests as f64 / self.measured.as_secs_f64()
    }

    /// Bytes per second over the measured window (0 for an empty window).
    pub fn bandwidth(&self) -> f64 {
        if self.measured.is_zero() {
            return 0.0;
        }
        self.bytes as f64 / self.measured.as_secs_f64()
    }

    /// Keeps only the last `seconds` whole seconds as the measured window: earlier seconds'
    /// requests count as ramp (for a window chosen after the fact, e.g. the steady one).
    /// The latency histogram keeps every measured second. No-op when fewer are measured.
    pub fn keep_last(&mut self, seconds: usize) {
        if seconds >= self.samples.len() {
            return;
        }
        let dropped = self.samples.len() - seconds;
        let moved: u64 = self.samples[..dropped].iter().map(|s| s.requests).sum();
        self.samples.drain(..dropped);
        self.ramp_requests += moved;
        self.requests = self.samples.iter().map(|s| s.requests).sum();
        self.bytes = self.samples.iter().map(|s| s.bytes).sum();
        self.measured = Duration::from_secs(seconds as u64);
    }
}

/// Offset generator shared by both engines.
pub(crate) struct Stream {
    pattern: Pattern,
    size: u64,
    region_start: u64,
    slots: u64,
    next_index: u64,
    rng: Rng,
}

impl Stream {
    pub(crate) fn new(job: &JobSpec, seed: u64) -> Self {
        let slots = (job.region_len / job.request_size).max(1);
        let first = job.sequential_start.saturating_sub(job.region_start) / job.request_size;
        Stream {
            pattern: job.pattern,
            size: job.request_size,
            region_start: job.region_start,
            slots,
            next_index: first % slots,
            rng: Rng::new(seed),
        }
    }

    /// Offset of the next request.
    #[inline]
    pub(crate) fn next_offset(&mut self) -> u64 {
        let index = match self.pattern {
            Pattern::Sequential => {
                let i = self.next_index;
                self.next_index = if i + 1 == self.slots { 0 } else { i + 1 };
                i
            }
            Pattern::Random => self.rng.below(self.slots),
        };
        self.region_start + index * self.size
    }

    /// Where the next sequential request would start.
    pub(crate) fn cursor(&self) -> u64 {
        self.region_start + self.next_index * self.size
    }
}

/// A duration in whole nanoseconds (saturating at about 584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Where a reap time falls in a job: nanoseconds since its start, and its place in the ramp,
/// the measured window (which whole second) or after it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Moment {
    /// Nanoseconds since the job's start.
    pub(crate) ns: u64,
    window: Window,
}

#[derive(Clone, Copy, Debug)]
enum Window {
    Ramp,
    Second(usize),
    After,
}

/// Accumulates completions into the ramp / measured window / per-second samples.
pub(crate) struct Recorder {
    start: Instant,
    ramp_end: Instant,
    end: Instant,
    /// `ramp_end` and `end` in nanoseconds since `start`.
    ramp_ns: u64,
    end_ns: u64,
    size: u64,
    pub(crate) requests: u64,
    pub(crate) ramp_requests: u64,
    /// Completions per whole second of the measured window so far: grows with the run (up to
    /// the second of the latest completion), never sized from the window's nominal length.
    per_second: Vec<SecondSample>,
    hist: Histogram<u64>,
    written_end: u64,
    /// Every completion seen, ramp and drain included (for `Live`).
    seen: u64,
    /// The window was ended early by `cut`.
    cut: bool,
}

impl Recorder {
    pub(crate) fn new(job: &JobSpec, start: Instant) -> Self {
        Recorder {
            start,
            ramp_end: start + job.ramp,
            end: start + job.ramp + job.measure,
            ramp_ns: nanos(job.ramp),
            end_ns: nanos(job.ramp + job.measure),
            size: job.request_size,
            requests: 0,
            ramp_requests: 0,
            per_second: Vec::new(),
            hist: super::latency_histogram(),
            written_end: 0,
            seen: 0,
            cut: false,
        }
    }

    /// Ends the measured window at `now` if it is still open: later completions are not
    /// counted, and `finish` keeps only the whole seconds measured (the partial last one would
    /// bias the rate).
    pub(crate) fn cut(&mut self, now: Instant) {
        if now < self.end {
            self.end = now.max(self.ramp_end);
            self.end_ns = self.ns(self.end);
            self.cut = true;
        }
    }

    /// Completions seen so far, ramp included.
    pub(crate) fn seen(&self) -> u64 {
        self.seen
    }

    /// The time at which submission stops.
    pub(crate) fn end(&self) -> Instant {
        self.end
    }

    /// Nanoseconds from the job's start to `t` (0 before it).
    #[inline]
    pub(crate) fn ns(&self, t: Instant) -> u64 {
        nanos(t.saturating_duration_since(self.start))
    }

    /// Where `now` falls in the job, for every completion reaped at `now` (worked out once per
    /// batch rather than per request, from one clock difference: the window's bounds are whole
    /// nanoseconds after the start, so this is exact).
    #[inline]
    pub(crate) fn moment(&self, now: Instant) -> Moment {
        let ns = self.ns(now);
        let window = if ns < self.ramp_ns {
            Window::Ramp
        } else if ns >= self.end_ns {
            Window::After
        } else {
            Window::Second(((ns - self.ramp_ns) / 1_000_000_000) as usize)
        };
        Moment { ns, window }
    }

    /// Records one completed request of `self.size` bytes at `offset`, submitted `submitted_ns`
    /// after the job's start (see [`Recorder::ns`]) and reaped at `at`. The latency is the
    /// difference of the two in whole nanoseconds, as `at - submitted` would give.
    #[inline]
    pub(crate) fn complete_at(&mut self, at: Moment, submitted_ns: u64, offset: u64, write: bool) {
        self.seen += 1;
        if write {
            self.written_end = self.written_end.max(offset + self.size);
        }
        let second = match at.window {
            Window::Ramp => {
                self.ramp_requests += 1;
                return;
            }
            Window::After => return,
            Window::Second(s) => s,
        };
        self.requests += 1;
        if second >= self.per_second.len() {
            self.per_second.resize(second + 1, SecondSample::default());
        }
        let s = &mut self.per_second[second];
        s.requests += 1;
        s.bytes += self.size;
        let ns = at.ns.saturating_sub(submitted_ns);
        self.hist.saturating_record(ns.max(1));
    }

    /// Records one completed request of `self.size` bytes at `offset`, submitted at `submitted`
    /// and reaped at `now`.
    #[cfg(test)]
    pub(crate) fn complete(&mut self, submitted: Instant, now: Instant, offset: u64, write: bool) {
        let at = self.moment(now);
        self.complete_at(at, self.ns(submitted), offset, write);
    }

    /// Adds another recorder's counts (the threads engine keeps one per worker).
    pub(crate) fn merge(&mut self, other: &Recorder) {
        self.requests += other.requests;
        self.ramp_requests += other.ramp_requests;
        if other.per_second.len() > self.per_second.len() {
            self.per_second
                .resize(other.per_second.len(), SecondSample::default());
        }
        for (a, b) in self.per_second.iter_mut().zip(&other.per_second) {
            a.requests += b.requests;
            a.bytes += b.bytes;
        }
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.written_end = self.written_end.max(other.written_end);
        self.seen += other.seen;
        // Workers cut a request apart: the earliest end bounds the whole seconds kept.
        self.end = self.end.min(other.end);
        self.end_ns = self.end_ns.min(other.end_ns);
        self.cut |= other.cut;
    }

    pub(crate) fn finish(
        self,
        job: &JobSpec,
        next_offset: u64,
        cpu: Duration,
        registered: bool,
    ) -> JobResult {
        let mut samples = self.per_second;
        let _ = self.start;
        // Every whole second of the window gets a sample, those without completions too.
        let (requests, measured) = if self.cut {
            let whole = (self.end - self.ramp_end).as_secs();
            samples.resize(whole as usize, SecondSample::default());
            let kept: u64 = samples.iter().map(|s| s.requests).sum();
            (kept, Duration::from_secs(whole))
        } else {
            samples.resize(job.measure.as_secs() as usize, SecondSample::default());
            (self.requests, job.measure)
        };
        JobResult {
            requests,
            bytes: requests * self.size,
            measured,
            ramp_requests: self.ramp_requests,
            samples,
            latency_ns: self.hist,
            written_end: self.written_end,
            next_offset,
            cpu,
            runqueue_wait: Duration::ZERO,
            registered,
        }
    }
}

mod secs_f64 {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(pattern: Pattern) -> JobSpec {
        JobSpec {
            direction: Direction::Read,
            pattern,
            request_size: 4096,
            in_flight: 1,
            region_start: 8192,
            region_len: 4 * 4096 + 100,
            sequential_start: 8192 + 2 * 4096,
            ramp: Duration::ZERO,
            measure: Duration::from_secs(1),
            rate: None,
        }
    }

    #[test]
    fn sequential_wraps_inside_region() {
        let mut s = Stream::new(&job(Pattern::Sequential), 1);
        let offs: Vec<u64> = (0..5).map(|_| s.next_offset()).collect();
        assert_eq!(offs, vec![16384, 20480, 8192, 12288, 16384]);
        assert_eq!(s.cursor(), 20480);
    }

    #[test]
    fn random_stays_aligned_inside_region() {
        let mut s = Stream::new(&job(Pattern::Random), 3);
        for _ in 0..1000 {
            let o = s.next_offset();
            assert!(o >= 8192 && o + 4096 <= 8192 + 4 * 4096 + 100);
            assert_eq!(o % 4096, 0);
        }
    }

    #[test]
    fn moments_fall_on_exact_nanosecond_bounds() {
        let mut j = job(Pattern::Random);
        j.ramp = Duration::from_millis(300);
        j.measure = Duration::from_secs(3);
        let t0 = Instant::now();
        let mut r = Recorder::new(&j, t0);
        let ns = Duration::from_nanos;
        let ramp_end = t0 + j.ramp;
        let at = |r: &Recorder, t: Instant| {
            let m = r.moment(t);
            assert_eq!(m.ns, (t - t0).as_nanos() as u64);
            match m.window {
                Window::Ramp => -1,
                Window::Second(s) => s as i64,
                Window::After => -2,
            }
        };
        assert_eq!(at(&r, t0), -1);
        assert_eq!(at(&r, ramp_end - ns(1)), -1);
        assert_eq!(at(&r, ramp_end), 0);
        assert_eq!(at(&r, ramp_end + ns(999_999_999)), 0);
        assert_eq!(at(&r, ramp_end + ns(1_000_000_000)), 1);
        assert_eq!(at(&r, ramp_end + ns(2_999_999_999)), 2);
        assert_eq!(at(&r, ramp_end + ns(3_000_000_000)), -2);
        // An early end moves the upper bound to the nanosecond.
        r.cut(ramp_end + ns(1_500_000_123));
        assert_eq!(at(&r, ramp_end + ns(1_500_000_122)), 1);
        assert_eq!(at(&r, ramp_end + ns(1_500_000_123)), -2);
        // Latency is the nanosecond difference, as `now - submitted`.
        let (sub, now) = (ramp_end + ns(17), ramp_end + ns(1_234_567));
        let m = r.moment(now);
        r.complete_at(m, r.ns(sub), 0, false);
        assert_eq!(r.hist.len(), 1);
        assert!(r
            .hist
            .equivalent(r.hist.max(), (now - sub).as_nanos() as u64));
    }

    /// Issue 9: sample storage grows with the run, not with its nominal length (a window of
    /// 10^9 s reached 6 GB in 6 s; 10^10 s tried to allocate 112 GB at once).
    #[test]
    fn samples_grow_with_the_run_not_its_nominal_length() {
        let mut j = job(Pattern::Random);
        j.measure = Duration::from_secs(300 * 86_400);
        let t0 = Instant::now();
        let mut r = Recorder::new(&j, t0);
        assert!(
            r.per_second.capacity() < 1024,
            "{}",
            r.per_second.capacity()
        );
        r.complete(t0, t0 + Duration::from_millis(2500), 0, false);
        assert_eq!(r.per_second.len(), 3);
        assert!(r.per_second.capacity() < 1024);
        // A window cut after 4 s keeps 4 samples, the silent last one included.
        r.cut(t0 + Duration::from_millis(4200));
        let res = r.finish(&j, 0, Duration::ZERO, false);
        assert_eq!(res.measured, Duration::from_secs(4));
        let requests: Vec<u64> = res.samples.iter().map(|s| s.requests).collect();
        assert_eq!(requests, [0, 0, 1, 0]);
    }

    #[test]
    fn samples_cover_the_whole_window_and_merge() {
        let mut j = job(Pattern::Random);
        j.measure = Duration::from_secs(3);
        let t0 = Instant::now();
        let (mut a, mut b) = (Recorder::new(&j, t0), Recorder::new(&j, t0));
        a.complete(t0, t0 + Duration::from_millis(100), 0, false);
        b.complete(t0, t0 + Duration::from_millis(1100), 0, false);
        b.complete(t0, t0 + Duration::from_millis(1200), 0, false);
        a.merge(&b);
        let res = a.finish(&j, 0, Duration::ZERO, false);
        let requests: Vec<u64> = res.samples.iter().map(|s| s.requests).collect();
        assert_eq!(requests, [1, 2, 0]);
        assert_eq!(res.requests, 3);
    }

    #[test]
    fn recorder_drops_ramp_and_tail() {
        let mut j = job(Pattern::Sequential);
        j.ramp = Duration::from_secs(1);
        j.measure = Duration::from_secs(2);
        let t0 = Instant::now();
        let mut r = Recorder::new(&j, t0);
        r.complete(t0, t0 + Duration::from_millis(500), 0, true);
        r.complete(t0, t0 + Duration::from_millis(1500), 4096, true);
        r.complete(t0, t0 + Duration::from_millis(2500), 0, true);
        r.complete(t0, t0 + Duration::from_millis(2600), 0, true);
        r.complete(t0, t0 + Duration::from_millis(3100), 0, true);
        let res = r.finish(&j, 0, Duration::ZERO, false);
        assert_eq!(res.ramp_requests, 1);
        assert_eq!(res.requests, 3);
        assert_eq!(
            res.samples,
            vec![
                SecondSample {
                    requests: 1,
                    bytes: 4096
                },
                SecondSample {
                    requests: 2,
                    bytes: 8192
                }
            ]
        );
        assert_eq!(res.written_end, 8192);
        assert!((res.iops() - 1.5).abs() < 1e-9);
    }
}
