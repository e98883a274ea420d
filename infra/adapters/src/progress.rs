//! [`InProcessPositions`]: the one-process adapter of the [`Positions`] port (the embedded default
//! and the all-in-one server), with a notifier so waits wake the moment a projection advances.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use titok_events::Topic;
use titok_ports::log::Position;
use titok_ports::progress::{Positions, PositionsError};
use tokio::sync::Notify;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
