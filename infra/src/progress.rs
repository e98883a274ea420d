//! Projection progress and the read-after-write wait (DESIGN.md §7, "per partition").
//!
//! Projectors publish, per (topic, partition), the next offset they have applied *after* their
//! transaction committed and the counter cache was updated. A read snapshots the log's acknowledged
//! end offsets for the topics its answer depends on, and waits until the projections have applied
//! up to them. Everything whose reply was sent before the read arrived is below those ends, so the
//! read sees it — for every user the write touches, with no change to clients. The wait is bounded;
//! past it the reply is served and marked stale.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use titok_events::Topic;
use tokio::sync::Notify;

use crate::log::{EventLog, Position};

/// Applied positions of all projections in this process.
#[derive(Default)]
pub struct Progress {
    applied: Mutex<HashMap<(Topic, u32), i64>>,
    changed: Notify,
}

impl Progress {
    /// Record that `topic/partition` is applied up to (not including) `next_offset`.
    pub fn advance(&self, topic: Topic, partition: u32, next_offset: i64) {
        {
            let mut applied = match self.applied.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let entry = applied.entry((topic, partition)).or_insert(0);
            *entry = (*entry).max(next_offset);
        }
        self.changed.notify_waiters();
    }

    /// The next offset to apply in `topic/partition`.
    pub fn applied(&self, topic: Topic, partition: u32) -> i64 {
        let applied = match self.applied.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        applied.get(&(topic, partition)).copied().unwrap_or(0)
    }

    fn reached(&self, targets: &[Position]) -> bool {
        targets
            .iter()
            .all(|t| self.applied(t.topic, t.partition) >= t.offset)
    }

    /// Wait until every target (an end offset) is applied; `false` if `timeout` passed first.
    pub async fn wait_for(&self, targets: &[Position], timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if self.reached(targets) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.reached(targets);
            }
        }
    }
}

/// Whether an answer reflects every write acknowledged before the read began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// The wait timed out (or the log could not be asked): served anyway, marked with a header.
    Stale,
}

/// The wait both APIs use before reading views.
#[derive(Clone)]
pub struct Consistency {
    pub log: Arc<dyn EventLog>,
    pub progress: Arc<Progress>,
    pub timeout: Duration,
}

impl Consistency {
    /// Wait until the views fed by `topics` reflect everything acknowledged so far.
    pub async fn wait(&self, topics: &[Topic]) -> Freshness {
        let targets = match self.log.end_offsets(topics).await {
            Ok(t) => t,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read log end offsets; answering possibly stale");
                return Freshness::Stale;
            }
        };
        if self.progress.wait_for(&targets, self.timeout).await {
            Freshness::Fresh
        } else {
            tracing::warn!(?topics, "consistency wait timed out; answering stale");
            Freshness::Stale
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wait_returns_when_the_projection_catches_up_or_times_out() {
        let progress = Arc::new(Progress::default());
        let target = [Position {
            topic: Topic::Users,
            partition: 0,
            offset: 3,
        }];
        assert!(
            !progress.wait_for(&target, Duration::from_millis(50)).await,
            "nothing applied yet"
        );

        let p = progress.clone();
        let waiter = tokio::spawn(async move { p.wait_for(&target, Duration::from_secs(2)).await });
        tokio::task::yield_now().await;
        progress.advance(Topic::Users, 0, 2);
        progress.advance(Topic::Users, 0, 3);
        assert!(waiter.await.expect("join"), "caught up before the deadline");
        progress.advance(Topic::Users, 0, 1);
        assert_eq!(
            progress.applied(Topic::Users, 0),
            3,
            "progress never moves back"
        );
    }
}
