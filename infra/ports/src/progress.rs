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
//! `titok_adapters::progress::InProcessPositions` serves one process (the embedded default and `titok serve`); the Redis
//! adapter shares positions between split command, query and projector processes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use titok_events::Topic;

use crate::log::Position;

/// Positions could not be read or written; the source is the adapter's own error.
#[derive(Debug, thiserror::Error)]
#[error("positions unavailable: {0}")]
pub struct PositionsError(#[source] pub crate::BoxError);

/// The source of a [`PositionsError`] when the store answers but its positions cannot be trusted
/// (it lost data and the projectors have not recovered them yet): a read waits for the recovery
/// (within its bound) instead of skipping its wait.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PositionsUnknown(pub String);

impl PositionsError {
    /// Whether the positions are unknown for now (see [`PositionsUnknown`]).
    pub fn unknown(&self) -> bool {
        self.0.is::<PositionsUnknown>()
    }
}

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
    /// Like [`Positions::acked_ends`], waiting up to `timeout` while the positions are unknown
    /// ([`PositionsUnknown`]) instead of failing at once.
    async fn acked_ends_when_known(
        &self,
        topics: &[Topic],
        _timeout: Duration,
    ) -> Result<Vec<Position>, PositionsError> {
        self.acked_ends(topics).await
    }
    /// Whether the store may have forgotten positions (or counters) since they were last marked
    /// known: restarted, failed over, flushed. Until [`Positions::mark_known`], reading the
    /// acknowledged ends fails, so reads answer marked stale. Never for a store in this process.
    async fn lost(&self, _topics: &[Topic]) -> Result<bool, PositionsError> {
        Ok(false)
    }
    /// Make reads treat positions as unknown (a projector recovering them after a loss).
    async fn mark_unknown(&self, _topics: &[Topic]) -> Result<(), PositionsError> {
        Ok(())
    }
    /// Positions (and the counter cache) were rebuilt from the views and the log's end offsets:
    /// reads may trust them again, until the store loses data next time.
    async fn mark_known(&self, _topics: &[Topic]) -> Result<(), PositionsError> {
        Ok(())
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
        self.wait_for(topics).await.0
    }

    /// Like [`Consistency::wait`], also returning the acknowledged ends waited for (empty when
    /// positions could not be read), which a read replica must show before it may serve the read.
    pub async fn wait_for(&self, topics: &[Topic]) -> (Freshness, Vec<Position>) {
        let start = std::time::Instant::now();
        let mut ends = Vec::new();
        let waited = async {
            // Positions the store cannot vouch for (it lost data; the projectors are recovering
            // them from the log's end offsets) are waited for, not skipped.
            ends = self
                .positions
                .acked_ends_when_known(topics, self.timeout)
                .await?;
            let left = self.timeout.saturating_sub(start.elapsed());
            self.positions.wait_applied(&ends, left).await
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
        (freshness, ends)
    }
}
