//! The repair of unpublished partitions: positions are published only for what an instance
//! applied and cached. Before a batch publishes a partition another instance advanced since this
//! one last published it, it makes sure that instance's cache refresh happened: if the published
//! position is behind the checkpoint (the other instance died between its commit and its
//! refresh), the records in between are read again from the log and the counters and
//! conversations they touch are refreshed from the views ([`Projection::repair`]; far behind —
//! positions lost — the whole cache is refilled). About once a second a projection does the same
//! for any partition left in that state for [`REPAIR_AFTER`], so reads do not wait for a dead
//! peer until the group rebalances (or forever, if it was scaled away).

use std::time::{Duration, Instant};

use titok_ports::log::{LogRecord, Position};
use titok_views::fold::{touched_by, Touched};
use titok_views::stats::{latest_messages_of, user_stats, video_stats};

use super::{Projection, READ_BACK};
use crate::folder::{decode_checked, BATCH};

/// How long a partition's published position may stay behind its checkpoint, with the checkpoint
/// not moving, before an idle projection repairs it (the instance that applied it died before its
/// cache refresh; a live one publishes within milliseconds).
const REPAIR_AFTER: Duration = Duration::from_secs(2);
/// A repair re-reads at most this many records per partition; more than that (positions lost
/// with Redis) refills the whole cache instead.
const REPAIR_MAX: i64 = 4 * BATCH as i64;

impl Projection {
    /// Partitions whose published position stayed behind their checkpoint for [`REPAIR_AFTER`]
    /// (checked about once a second) are repaired and published.
    pub(super) async fn repair_unpublished(&mut self) -> anyhow::Result<()> {
        if self
            .last_unpublished_check
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return Ok(());
        }
        self.last_unpublished_check = Some(Instant::now());
        let checkpoints = self.checkpoints().await?;
        let targets: Vec<Position> = checkpoints
            .iter()
            .enumerate()
            .map(|(partition, &offset)| Position {
                topic: self.topic,
                partition: partition as u32,
                offset,
            })
            .collect();
        let applied = self.deps.positions.applied_of(&targets).await?;
        let mut due = Vec::new();
        for (target, applied) in targets.iter().zip(applied) {
            if applied >= target.offset {
                self.unpublished.remove(&target.partition);
                continue;
            }
            match self.unpublished.get(&target.partition) {
                Some(&(at, since)) if at == target.offset => {
                    if since.elapsed() >= REPAIR_AFTER {
                        due.push((target.partition, target.offset));
                    }
                }
                _ => {
                    self.unpublished
                        .insert(target.partition, (target.offset, Instant::now()));
                }
            }
        }
        for (partition, upto) in due {
            self.repair(partition, upto).await?;
            self.unpublished.remove(&partition);
            self.published.insert(partition, upto);
        }
        Ok(())
    }

    /// Make sure the cache reflects `partition` up to `upto` (a checkpoint another instance
    /// committed), then publish `upto`: the records between the published position and `upto`
    /// are read again from the log and every counter row and conversation they may have touched
    /// is refreshed from the views (versioned writes: nothing moves back). Far behind (positions
    /// lost), the whole cache is refilled instead.
    pub(super) async fn repair(&self, partition: u32, upto: i64) -> anyhow::Result<()> {
        let target = Position {
            topic: self.topic,
            partition,
            offset: upto,
        };
        let applied = self
            .deps
            .positions
            .applied_of(&[target])
            .await?
            .first()
            .copied()
            .unwrap_or(0);
        if applied >= upto {
            return Ok(());
        }
        if upto - applied > REPAIR_MAX {
            crate::generations::refill_counters(&self.deps.store, self.deps.counters.as_ref())
                .await?;
        } else {
            let records = self.read_range(partition, applied, upto).await?;
            let mut touched = Touched::default();
            for rec in &records {
                if let Ok(event) = decode_checked(rec) {
                    touched_by(&event, &mut touched);
                }
            }
            let users: Vec<i64> = touched.users.iter().copied().collect();
            let videos: Vec<i64> = touched.videos.iter().copied().collect();
            let pairs: Vec<(i64, i64)> = touched.chats.iter().map(|(pair, _)| *pair).collect();
            let db = &self.deps.store.write;
            let mut user_rows = Vec::new();
            for chunk in users.chunks(READ_BACK) {
                user_rows.extend(user_stats(db, chunk).await?);
            }
            let mut video_rows = Vec::new();
            for chunk in videos.chunks(READ_BACK) {
                video_rows.extend(video_stats(db, chunk).await?);
            }
            let chats = latest_messages_of(db, &pairs).await?;
            let counters = &self.deps.counters;
            counters.put_users(&user_rows).await?;
            counters.put_videos(&video_rows).await?;
            for (pair, created) in chats {
                counters.put_chat_latest(pair, created).await?;
            }
        }
        tracing::info!(projection = self.name, partition, from = applied, to = upto,
            "another instance applied these records but did not publish them (it died between its commit and its cache refresh): cache refreshed, position published");
        metrics::counter!("titok_projector_repairs_total", "projection" => self.name).increment(1);
        self.deps
            .positions
            .record_applied(self.topic, partition, upto)
            .await?;
        Ok(())
    }

    /// The records `[from, to)` of one partition, read in a consumer group of this process's own.
    async fn read_range(
        &self,
        partition: u32,
        from: i64,
        to: i64,
    ) -> anyhow::Result<Vec<LogRecord>> {
        let ends = self.deps.log.end_offsets(&[self.topic]).await?;
        let mut start = vec![0_i64; self.deps.log.partitions(self.topic) as usize];
        for end in &ends {
            if let Some(slot) = start.get_mut(end.partition as usize) {
                *slot = end.offset;
            }
        }
        if let Some(slot) = start.get_mut(partition as usize) {
            *slot = from;
        }
        let group = format!(
            "{}.repair.{}.{}",
            self.deps.group_prefix,
            self.name,
            std::process::id()
        );
        let mut consumer = self.deps.log.consumer(&group, self.topic, start).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut records: Vec<LogRecord> = Vec::new();
        while records.last().map_or(from, |r| r.offset + 1) < to {
            anyhow::ensure!(
                Instant::now() < deadline,
                "cannot read {}/{partition} [{from}, {to}) again within 30 s",
                self.topic
            );
            for rec in consumer.poll(BATCH, Duration::from_millis(500)).await? {
                if rec.partition == partition && rec.offset >= from && rec.offset < to {
                    records.push(rec);
                }
            }
        }
        Ok(records)
    }
}
