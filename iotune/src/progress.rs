//! Progress on stderr: a bar per phase on a terminal, one plain line per phase otherwise.
//! The reference's "Measuring ..." lines stay on stdout, untouched, for scripts.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress display for one run.
pub struct Progress {
    terminal: bool,
}

/// One phase's bar (or nothing, off a terminal).
pub struct PhaseProgress {
    bar: Option<ProgressBar>,
    total: Duration,
}

impl Progress {
    /// Bars when stderr is a terminal.
    pub fn new() -> Progress {
        Progress {
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Starts a phase expected to take `total`.
    pub fn phase(&self, name: &str, total: Duration) -> PhaseProgress {
        let bar = self.terminal.then(|| {
            let bar = ProgressBar::new((total.as_millis() as u64).max(1));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>28} [{bar:30}] {elapsed_precise}/{msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(name.to_string());
            bar.set_message(format!("{:.0}s", total.as_secs_f64()));
            bar
        });
        PhaseProgress { bar, total }
    }
}

impl PhaseProgress {
    /// Moves the bar to `elapsed`.
    pub fn tick(&mut self, elapsed: Duration) {
        if let Some(b) = &self.bar {
            b.set_position(elapsed.min(self.total).as_millis() as u64);
        }
    }

    /// Clears the bar and prints `line` on stderr, on a terminal or not.
    pub fn finish_with_line(self, line: &str) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
        eprintln!("iotune: {line}");
    }

    /// Clears the bar; off a terminal, prints `summary` as one line on stderr.
    pub fn finish(self, summary: &str) {
        match self.bar {
            Some(b) => b.finish_and_clear(),
            None => eprintln!("iotune: {summary}"),
        }
    }
}
