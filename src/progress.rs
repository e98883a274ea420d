//! Rebuild progress for people: an indicatif bar when stderr is a terminal, else the projectors'
//! log line every two seconds.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use titok_projectors::rebuild::{LogProgress, Progress, Report};

/// The progress reporter for a rebuild of `label` (the views' names).
pub fn for_rebuild(label: &str) -> Box<dyn Progress> {
    if !std::io::stderr().is_terminal() {
        return Box::new(LogProgress::new(label));
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:40.cyan/blue}] {pos}/{len} events {per_sec} ETA {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(format!("rebuild {label}"));
    Box::new(Bar {
        bar,
        done: LogProgress::new(label),
    })
}

struct Bar {
    bar: ProgressBar,
    /// For the closing log line.
    done: LogProgress,
}

impl Progress for Bar {
    fn update(&mut self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
    }

    fn finish(&mut self, report: &Report) {
        self.bar.finish_and_clear();
        self.done.finish(report);
    }

    fn abandon(&mut self) {
        self.bar.abandon();
    }
}
