//! Steady-state detection for `--sustained`: watch a running phase's completions second by
//! second and end it once the last `window` seconds show no trend beyond the accuracy (the
//! reference measures fixed windows and so can report a peak a disk does not sustain: a cache
//! filling, a cloud disk's burst budget draining). Like fio's `ss=iops_slope`: the least-squares
//! drift across the window (see `stats::Trend`) must stay within the accuracy.

use std::time::Duration;

use crate::stats::Trend;

/// Per-second completion counts of a running phase, from the engine's progress ticks.
pub struct SteadyMonitor {
    ramp: Duration,
    window: usize,
    accuracy: f64,
    /// (time, completions) at the first tick of each whole second after the ramp; ticks come
    /// about every 100 ms, so rates are taken over the actual time between marks.
    marks: Vec<(Duration, u64)>,
    reached_after: Option<usize>,
}

/// How long past the window's last whole second the phase ends (ticks are 100 ms apart).
const FINISH_MARGIN: Duration = Duration::from_millis(150);

impl SteadyMonitor {
    /// `window`: whole seconds that must be steady (at least 3); `accuracy`: largest drift
    /// across them, as a fraction (0.03 = 3%).
    pub fn new(ramp: Duration, window: usize, accuracy: f64) -> SteadyMonitor {
        SteadyMonitor {
            ramp,
            window: window.max(3),
            accuracy,
            marks: Vec::new(),
            reached_after: None,
        }
    }

    /// Feeds one progress tick (time since the phase started, completions so far); returns
    /// true once the last `window` seconds are steady (the caller then ends the phase).
    pub fn tick(&mut self, elapsed: Duration, completed: u64) -> bool {
        if let Some(after) = self.reached_after {
            return elapsed >= self.finish_at(after + self.window);
        }
        if elapsed < self.ramp + Duration::from_secs(self.marks.len() as u64) {
            return false;
        }
        self.marks.push((elapsed, completed));
        let seconds = self.marks.len() - 1;
        if seconds < self.window {
            return false;
        }
        let last: Vec<u64> = self.marks[seconds - self.window..]
            .windows(2)
            .map(|w| {
                let dt = (w[1].0 - w[0].0).as_secs_f64();
                ((w[1].1 - w[0].1) as f64 / dt).round() as u64
            })
            .collect();
        // Stricter than the warning's test: noise that hides a trend must not end the phase,
        // so any drift beyond the accuracy keeps it running (bounded by --sustained-max).
        if Trend::of(&last).drift.abs() > self.accuracy {
            return false;
        }
        self.reached_after = Some(seconds - self.window);
        elapsed >= self.finish_at(seconds)
    }

    /// When to end a phase whose window closes `seconds` after the ramp: a little past that
    /// whole second, since the shards started a moment after the clock these ticks use and must
    /// have measured every second of the window.
    fn finish_at(&self, seconds: usize) -> Duration {
        self.ramp + Duration::from_secs(seconds as u64) + FINISH_MARGIN
    }

    /// Seconds measured before the steady window began, once it was found.
    pub fn reached_after(&self) -> Option<usize> {
        self.reached_after
    }

    /// The steady window's length, seconds.
    pub fn window(&self) -> usize {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds per-second counts as ticks every 100 ms; returns the second at which it stopped.
    fn feed(m: &mut SteadyMonitor, per_second: &[u64]) -> Option<usize> {
        let mut done = 0u64;
        for (s, &n) in per_second.iter().enumerate() {
            for tenth in 1..=10u64 {
                done += n / 10;
                let t = m.ramp + Duration::from_millis(s as u64 * 1000 + tenth * 100);
                if m.tick(t, done) {
                    return Some(s + 1);
                }
            }
        }
        None
    }

    #[test]
    fn stops_once_the_window_is_steady() {
        // A cache filling: 2000/s falling to a 1000/s plateau.
        let series = [
            2000, 1800, 1600, 1400, 1200, 1000, 1000, 1000, 1000, 1000, 1000,
        ];
        let mut m = SteadyMonitor::new(Duration::from_secs(1), 5, 0.03);
        let at = feed(&mut m, &series).expect("steady once the plateau fills the window");
        assert!(at >= 10, "stopped at {at} s, inside the fall");
        assert!(m.reached_after().unwrap() >= 5);
        assert_eq!(m.window(), 5);
    }

    #[test]
    fn never_steady_while_falling() {
        let series: Vec<u64> = (0..30).map(|i| 3000 - i * 50).collect();
        let mut m = SteadyMonitor::new(Duration::ZERO, 5, 0.03);
        assert_eq!(feed(&mut m, &series), None);
        assert_eq!(m.reached_after(), None);
    }

    #[test]
    fn a_flat_start_is_steady_after_one_window() {
        let mut m = SteadyMonitor::new(Duration::from_secs(2), 4, 0.03);
        // Steady at 4 s; the phase ends 150 ms later, in the fifth second.
        assert_eq!(feed(&mut m, &[500; 10]), Some(5));
        assert_eq!(m.reached_after(), Some(0));
    }
}
