//! Log positions for the read-after-write wait: a read waits, per partition it reads, until the
//! projections applied everything acknowledged before it began.
//!
//! The command side records, after each append, the acknowledged end of the partition it wrote
//! (`offset + 1`). Projections record, per (topic, partition), the next offset they have applied —
//! *after* their transaction committed and the counter cache was refreshed. A read snapshots the
//! acknowledged ends of the topics its answer depends on and waits until the projections have
//! applied up to them: everything whose reply was sent before the read arrived is below those ends,
//! so the read sees it, for every user the write touches. The wait is bounded; past it the reply is
//! served and marked stale.
//!
//! [`InProcessPositions`] serves one process (the embedded default and `titok serve`); the Redis
//! adapter shares positions between split command, query and projector processes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use titok_events::Topic;
use tokio::sync::Notify;

use crate::log::Position;

#[derive(Debug, thiserror::Error)]
#[error("positions unavailable: {0}")]
pub struct PositionsError(pub String);

#[async_trait]
pub trait Positions: Send + Sync + 'static {
    /// Record acknowledged ends (`offset` = the next offset after an acknowledged event).
    async fn record_acked(&self, ends: &[Position]) -> Result<(), PositionsError>;
    /// The acknowledged ends of every known partition of `topics`.
    async fn acked_ends(&self, topics: &[Topic]) -> Result<Vec<Position>, PositionsError>;
    /// Record that a projection applied `topic/partition` up to (not including) `next`.
    async fn record_applied(
        &self,
        topic: Topic,
        partition: u32,
        next: i64,
    ) -> Result<(), PositionsError>;
    /// The applied next offset of each target's partition (0 where nothing is applied).
    async fn applied_of(&self, targets: &[Position]) -> Result<Vec<i64>, PositionsError>;
    /// Wait until every target end is applied; `Ok(false)` if `timeout` passed first.
    async fn wait_applied(
        &self,
        targets: &[Position],
        timeout: Duration,
    ) -> Result<bool, PositionsError>;
}

type Map = HashMap<(Topic, u32), i64>;

/// Positions of one process, with a notifier so waits wake the moment a projection advances.
#[derive(Default)]
pub struct InProcessPositions {
    acked: Mutex<Map>,
    applied: Mutex<Map>,
    changed: Notify,
}

fn lock(map: &Mutex<Map>) -> MutexGuard<'_, Map> {
    match map.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn raise(map: &Mutex<Map>, topic: Topic, partition: u32, value: i64) {
    let mut map = lock(map);
    let entry = map.entry((topic, partition)).or_insert(0);
    *entry = (*entry).max(value);
}

impl InProcessPositions {
    /// The next offset to apply in `topic/partition`.
    pub fn applied(&self, topic: Topic, partition: u32) -> i64 {
        lock(&self.applied)
            .get(&(topic, partition))
            .copied()
            .unwrap_or(0)
    }

    fn reached(&self, targets: &[Position]) -> bool {
        targets
            .iter()
            .all(|t| self.applied(t.topic, t.partition) >= t.offset)
    }
}

#[async_trait]
impl Positions for InProcessPositions {
    async fn record_acked(&self, ends: &[Position]) -> Result<(), PositionsError> {
        for end in ends {
            raise(&self.acked, end.topic, end.partition, end.offset);
        }
        Ok(())
    }

    async fn acked_ends(&self, topics: &[Topic]) -> Result<Vec<Position>, PositionsError> {
        let acked = lock(&self.acked);
        Ok(acked
            .iter()
            .filter(|((topic, _), _)| topics.contains(topic))
            .map(|(&(topic, partition), &offset)| Position {
                topic,
                partition,
                offset,
            })
            .collect())
    }

    async fn record_applied(
        &self,
        topic: Topic,
        partition: u32,
        next: i64,
    ) -> Result<(), PositionsError> {
        raise(&self.applied, topic, partition, next);
        self.changed.notify_waiters();
        Ok(())
    }

    async fn applied_of(&self, targets: &[Position]) -> Result<Vec<i64>, PositionsError> {
        Ok(targets
            .iter()
            .map(|t| self.applied(t.topic, t.partition))
            .collect())
    }

    async fn wait_applied(
        &self,
        targets: &[Position],
        timeout: Duration,
    ) -> Result<bool, PositionsError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if self.reached(targets) {
                return Ok(true);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(self.reached(targets));
            }
        }
    }
}

/// Whether an answer reflects every write acknowledged before the read began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// The wait timed out (or positions could not be read): served anyway, marked with a header.
    Stale,
}

/// The wait both APIs use before reading views.
#[derive(Clone)]
pub struct Consistency {
    pub positions: Arc<dyn Positions>,
    pub timeout: Duration,
}

impl Consistency {
    /// Wait until the views fed by `topics` reflect everything acknowledged so far.
    pub async fn wait(&self, topics: &[Topic]) -> Freshness {
        let start = std::time::Instant::now();
        let waited = async {
            let targets = self.positions.acked_ends(topics).await?;
            self.positions.wait_applied(&targets, self.timeout).await
        };
        let freshness = match waited.await {
            Ok(true) => Freshness::Fresh,
            Ok(false) => {
                tracing::warn!(?topics, "consistency wait timed out; answering stale");
                Freshness::Stale
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read positions; answering possibly stale");
                Freshness::Stale
            }
        };
        metrics::counter!("titok_consistency_waits_total").increment(1);
        metrics::histogram!("titok_consistency_wait_seconds").record(start.elapsed().as_secs_f64());
        if freshness == Freshness::Stale {
            metrics::counter!("titok_consistency_stale_total").increment(1);
        }
        freshness
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wait_returns_when_the_projection_catches_up_or_times_out() {
        let positions = Arc::new(InProcessPositions::default());
        let end = Position {
            topic: Topic::Users,
            partition: 0,
            offset: 3,
        };
        positions.record_acked(&[end]).await.expect("ack");
        let targets = positions.acked_ends(&[Topic::Users]).await.expect("ends");
        assert_eq!(targets, vec![end]);
        assert!(
            !positions
                .wait_applied(&targets, Duration::from_millis(50))
                .await
                .expect("wait"),
            "nothing applied yet"
        );

        let p = positions.clone();
        let waiter =
            tokio::spawn(async move { p.wait_applied(&targets, Duration::from_secs(2)).await });
        tokio::task::yield_now().await;
        positions
            .record_applied(Topic::Users, 0, 2)
            .await
            .expect("apply");
        positions
            .record_applied(Topic::Users, 0, 3)
            .await
            .expect("apply");
        assert!(
            waiter.await.expect("join").expect("wait"),
            "caught up before the deadline"
        );
        positions
            .record_applied(Topic::Users, 0, 1)
            .await
            .expect("apply");
        assert_eq!(
            positions.applied(Topic::Users, 0),
            3,
            "positions never move back"
        );
        assert!(positions
            .acked_ends(&[Topic::Videos])
            .await
            .expect("ends")
            .is_empty());
    }
}
