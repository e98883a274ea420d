//! The stall watch of a projection's consumer. Partitions behind the acknowledged end of the log
//! whose checkpoint has not moved for [`STALL_AFTER`], while the consumer polled nothing, are
//! consumed by nobody (on some brokers a consumer-group member killed mid-rebalance keeps its
//! partitions): the batch loop rejoins the group, and after [`FRESH_GROUP_AFTER`] rejoins without
//! progress consumes in a fresh one (`Projection::connect`).

use std::time::Duration;

use super::Projection;

/// How long a partition may stay behind the log without its checkpoint moving, while this
/// projection's consumer polls nothing, before the consumer rejoins its group.
pub(super) const STALL_AFTER: Duration = Duration::from_secs(15);
/// Rejoins in a row without progress after which a projection consumes in a fresh consumer group.
/// Found with a network stall longer than the session timeout between the projector and tansu:
/// the group stayed wedged (a new member of it was never given the partition) until the process
/// restarted, while a consumer of another group read everything. Group offsets are only a hint
/// (the SQL checkpoints decide), and two groups reading one partition still apply each event
/// once (the checkpoint rows are locked), so a fresh group is safe; it costs only duplicate reads
/// if other instances stay in the old group.
pub(super) const FRESH_GROUP_AFTER: u32 = 2;

/// The checkpoints at the last stall check.
#[derive(Default)]
pub(super) struct StallWatch {
    checked: Option<std::time::Instant>,
    seen: Vec<i64>,
}

impl StallWatch {
    pub(super) fn due(&self) -> bool {
        self.checked.is_none_or(|at| at.elapsed() >= STALL_AFTER)
    }
}

impl Projection {
    /// Partitions that are behind the acknowledged end and whose checkpoint did not move since the
    /// previous check ([`STALL_AFTER`] ago), seen while this consumer had nothing to poll.
    pub(super) async fn stalled_partitions(&self, stall: &mut StallWatch) -> Option<Vec<u32>> {
        let ends = self.deps.positions.acked_ends(&[self.topic]).await.ok()?;
        let applied = self.checkpoints().await.ok()?;
        let previous = std::mem::replace(&mut stall.seen, applied.clone());
        stall.checked = Some(std::time::Instant::now());
        let stuck: Vec<u32> = ends
            .iter()
            .filter(|end| {
                let at = applied.get(end.partition as usize).copied().unwrap_or(0);
                end.offset > at && previous.get(end.partition as usize) == Some(&at)
            })
            .map(|end| end.partition)
            .collect();
        (!stuck.is_empty()).then_some(stuck)
    }
}
