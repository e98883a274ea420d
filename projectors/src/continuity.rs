//! The log must be whole where a fold reads it.
//!
//! Our topics are written without transactions or compaction, so a partition's offsets are
//! contiguous from 0. A fold that finds the log's first offset above where it must start (events
//! expired by a broker's retention, `DeleteRecords`, rows removed from the embedded file), a hole
//! between its checkpoint and the next record, or the log ending below its checkpoint (a topic
//! recreated, a tail lost to an unclean leader election) would silently build views without those
//! events. Instead the live projection stops ([`Halts`]: a log line, the metric
//! `titok_projection_halted`, `/readyz` 503 with the reason), a rebuild refuses to swap, and
//! `titok tap --from-beginning` fails.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use titok_events::Topic;
use titok_ports::log::{EventLog, Position};

/// Where the log is not whole for a fold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogGap {
    #[error(
        "events {topic}/{partition} offsets {from}..{to} are gone from the event log (a broker's \
         retention, deleted records, or rows removed from the embedded log): a fold starting at \
         {from} would silently lack them. Restore the log (or the views from a backup taken at or \
         after offset {to}); nothing is folded meanwhile"
    )]
    Expired {
        topic: Topic,
        partition: u32,
        from: i64,
        to: i64,
    },
    #[error(
        "the event log skips {topic}/{partition} from offset {from} to {to} (records missing in \
         the middle of the partition); nothing after the hole is folded"
    )]
    Hole {
        topic: Topic,
        partition: u32,
        from: i64,
        to: i64,
    },
    #[error(
        "the views applied {topic}/{partition} up to offset {from}, but the event log ends at \
         {to}: the topic was recreated or lost its tail (unclean leader election?); new events \
         there would be taken for applied ones, so nothing is folded"
    )]
    Behind {
        topic: Topic,
        partition: u32,
        from: i64,
        to: i64,
    },
}

/// Check that a fold can start at `next[p]` on every partition of `topic`: the log still holds
/// `next[p]` (its first offset is at or below it) and reaches it (its end is at or above it).
///
/// Brokers misreport both, so a gap counts only when it stays: the first and last offsets are
/// asked again, up to five times over two seconds, keeping the lowest first and the highest end
/// seen, and a first offset still above `next[p]` is then checked by asking for the record at
/// `next[p]`. Seen with tansu: low watermarks above offsets it still serves (two producers in the
/// scaled topology; once `titok rebuild` was refused on a healthy `favorites/0`), a partition
/// ending at 0 right after the titok processes restarted while it served the record at 0, and a
/// record past its end served (so an end cannot be confirmed by asking for a record).
pub async fn check_start(log: &dyn EventLog, topic: Topic, next: &[i64]) -> anyhow::Result<()> {
    let mut starts = log.start_offsets(&[topic]).await?;
    let mut ends = log.end_offsets(&[topic]).await?;
    for _ in 0..4 {
        if judge_start(topic, next, &starts, &ends).is_ok() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        keep(&mut starts, log.start_offsets(&[topic]).await?, i64::min);
        keep(&mut ends, log.end_offsets(&[topic]).await?, i64::max);
    }
    // A first offset still above the fold's start: the records decide (one probe per
    // partition; on Kafka a probe is a client of its own).
    for start in &mut starts {
        let at = next.get(start.partition as usize).copied().unwrap_or(0);
        if start.offset > at && log.holds(topic, start.partition, at).await? {
            tracing::warn!(%topic, partition = start.partition, reported = start.offset, at,
                "the log reports a first offset above one it still serves; going by the records");
            start.offset = at;
        }
    }
    Ok(judge_start(topic, next, &starts, &ends)?)
}

/// Fold a fresh answer into what was seen, partition by partition, with `pick`.
fn keep(seen: &mut [Position], again: Vec<Position>, pick: fn(i64, i64) -> i64) {
    for position in seen {
        if let Some(fresh) = again.iter().find(|p| p.partition == position.partition) {
            position.offset = pick(position.offset, fresh.offset);
        }
    }
}

fn judge_start(
    topic: Topic,
    next: &[i64],
    starts: &[Position],
    ends: &[Position],
) -> Result<(), LogGap> {
    for (partition, &at) in next.iter().enumerate() {
        let partition = partition as u32;
        let of = |positions: &[Position]| {
            positions
                .iter()
                .find(|p| p.partition == partition)
                .map(|p| p.offset)
        };
        if let Some(first) = of(starts) {
            if first > at {
                return Err(LogGap::Expired {
                    topic,
                    partition,
                    from: at,
                    to: first,
                });
            }
        }
        if let Some(end) = of(ends) {
            if end < at {
                return Err(LogGap::Behind {
                    topic,
                    partition,
                    from: at,
                    to: end,
                });
            }
        }
    }
    Ok(())
}

/// The projections of this process that stopped on a [`LogGap`], with the reason.
#[derive(Clone, Default)]
pub struct Halts(Arc<Mutex<BTreeMap<&'static str, String>>>);

impl Halts {
    pub fn halt(&self, projection: &'static str, reason: String) {
        metrics::gauge!("titok_projection_halted", "projection" => projection).set(1.0);
        self.lock().insert(projection, reason);
    }

    pub fn clear(&self, projection: &'static str) {
        if self.lock().remove(projection).is_some() {
            metrics::gauge!("titok_projection_halted", "projection" => projection).set(0.0);
        }
    }

    /// `(projection, reason)` of every halted projection.
    pub fn all(&self) -> Vec<(&'static str, String)> {
        self.lock().iter().map(|(p, r)| (*p, r.clone())).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, String>> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: u32, offset: i64) -> Position {
        Position {
            topic: Topic::Favorites,
            partition,
            offset,
        }
    }

    #[test]
    fn a_fold_must_start_where_the_log_holds_its_checkpoint() {
        let t = Topic::Favorites;
        let ends = [at(0, 10), at(1, 10)];
        assert_eq!(
            judge_start(t, &[0, 4], &[at(0, 0), at(1, 0)], &ends),
            Ok(())
        );
        assert_eq!(
            judge_start(t, &[0, 4], &[at(0, 0), at(1, 5)], &ends),
            Err(LogGap::Expired {
                topic: t,
                partition: 1,
                from: 4,
                to: 5
            })
        );
        // Starting exactly at the first held offset is fine.
        assert_eq!(
            judge_start(t, &[0, 5], &[at(0, 0), at(1, 5)], &ends),
            Ok(())
        );
        assert_eq!(
            judge_start(t, &[11, 0], &[at(0, 0), at(1, 0)], &ends),
            Err(LogGap::Behind {
                topic: t,
                partition: 0,
                from: 11,
                to: 10
            })
        );
    }
}
