//! Where a rebuild reports how far it got: the [`Progress`] trait (the launcher draws a progress
//! bar on a terminal) and [`LogProgress`], a log line every two seconds.

use std::time::{Duration, Instant};

use super::Report;

/// Where a rebuild reports how far it got (the launcher draws a progress bar on a terminal).
pub trait Progress: Send {
    /// `done` of `total` events replayed so far.
    fn update(&mut self, done: u64, total: u64);
    fn finish(&mut self, report: &Report);
    fn abandon(&mut self);
}

/// Progress as a log line every two seconds (servers, and wherever stderr is no terminal).
pub struct LogProgress {
    label: String,
    started: Instant,
    last_line: Instant,
}

impl LogProgress {
    pub fn new(label: &str) -> LogProgress {
        LogProgress {
            label: label.to_owned(),
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }
}

impl Progress for LogProgress {
    fn update(&mut self, done: u64, total: u64) {
        if self.last_line.elapsed() < Duration::from_secs(2) {
            return;
        }
        self.last_line = Instant::now();
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let eta = if rate > 0.0 {
            format!("{:.0}s", total.saturating_sub(done) as f64 / rate)
        } else {
            "?".into()
        };
        tracing::info!(
            views = self.label,
            done,
            total,
            events_per_s = rate.round(),
            eta,
            "rebuilding"
        );
    }

    fn finish(&mut self, report: &Report) {
        tracing::info!(
            views = self.label,
            events = report.events,
            seconds = report.seconds,
            events_per_s = report.events_per_s.round(),
            "rebuild done: views swapped"
        );
    }

    fn abandon(&mut self) {}
}
