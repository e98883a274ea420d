//! The projection runtime: consume a topic in batches, fold, checkpoint, publish positions.
//!
//! One loop per projection. Each round takes up to [`BATCH`] records (the next batch is fetched from
//! the log while the previous one is folded and committed), then in **one** transaction:
//! locks the projection's checkpoint rows, skips records below them (already applied — by this
//! instance before a crash, or by another instance before a rebalance), folds the rest, stores the
//! new checkpoints, and reads back the absolute counter values it touched. After the commit it
//! refreshes the counter cache, publishes the applied positions (the consistency wait watches them)
//! and tells the log consumer (Kafka commits its group offsets; they are only a hint where to
//! resume — the SQL checkpoint decides what is applied). A crash anywhere before the commit replays
//! the batch; after it, nothing repeats. So each event takes effect exactly once, with any number of
//! instances and redeliveries.
//!
//! A record that cannot be decoded is parked with its reason, and so is every later record of the
//! same key (per-key order must hold); the rest of the partition flows on.
//!
//! **The log must be whole** ([`crate::continuity`]): a projection whose checkpoint the log no
//! longer holds, or that meets a hole between its checkpoint and the next record, stops (and says
//! so in `/readyz`) instead of folding on.
//!
//! **Positions are published only for what this instance applied and cached.** A batch publishes
//! the partitions it folded; one that another instance advanced but did not publish (it died
//! between its commit and its cache refresh) is repaired first (module `repair`, which also
//! repairs such partitions about once a second). The consumer's stall watch (rejoining a group
//! that keeps partitions away) is the module `stall`; this file is the batch loop.
//!
//! While a rebuild swaps tables it holds a pause lease on the projection (`projection_meta`); the
//! loop keeps its batch and retries until the lease is gone. A task per process watches the
//! rebuild generations and refills the counter cache from the new tables after a swap.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use titok_events::Topic;
use titok_ports::counters::{CountersError, UserCounts, Versioned, VideoCounts};
use titok_ports::log::{LogConsumer, LogRecord};
use titok_views::fold::Touched;
use titok_views::stats::{user_stats, video_stats};
use titok_views::{ledger, Tables};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::continuity::{check_start, LogGap};
use crate::deps::ProjectorDeps;
use crate::folder::{projection_name, Folder, BATCH};

mod repair;
mod stall;

use stall::{StallWatch, FRESH_GROUP_AFTER, STALL_AFTER};

/// Counter rows read back per query after a batch.
const READ_BACK: usize = 5_000;

/// Start one projection loop per topic; each stops after its current batch once `shutdown` is true.
///
/// A shared counter cache (Redis) is first refilled from the views: a process killed between a
/// batch's commit and its cache refresh left those entries behind SQL, and the checkpoints say
/// the batch is applied, so no later batch would correct them. The refill runs before any
/// position is published, so no read can see the views ahead of the cache.
pub async fn spawn_all(
    deps: ProjectorDeps,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    // The checkpoints are read before the refill, so the refill covers everything they say is
    // applied, and only then published.
    let mut projections = Vec::new();
    for topic in Topic::ALL {
        projections.push(Projection::load(deps.clone(), topic, shutdown.clone()).await?);
    }
    if deps.positions.lost(&Topic::ALL).await.unwrap_or(false) {
        // A store that lost data (or a fresh one): the recovery refills the cache too, so the
        // watch does not do it a second time.
        crate::generations::recover_positions(&deps).await?;
    } else if deps.counters.outlives_process() {
        crate::generations::refill_counters(&deps.store, deps.counters.as_ref()).await?;
    }
    let mut handles = Vec::new();
    for mut projection in projections {
        projection.publish_loaded().await?;
        handles.push(tokio::spawn(projection.run(shutdown.clone())));
    }
    handles.push(tokio::spawn(crate::generations::watch_generations(
        deps, shutdown,
    )));
    Ok(handles)
}

struct Projection {
    topic: Topic,
    deps: ProjectorDeps,
    folder: Folder,
    name: &'static str,
    shutdown: watch::Receiver<bool>,
    /// Per partition, the applied position this process published last (or loaded at start).
    published: BTreeMap<u32, i64>,
    /// Partitions whose published position was behind the checkpoint at the last idle check:
    /// `(checkpoint, since)`.
    unpublished: BTreeMap<u32, (i64, Instant)>,
    last_unpublished_check: Option<Instant>,
    /// A hole met once: met again right after reconnecting, the projection halts.
    hole: Option<(u32, i64)>,
}

impl Projection {
    async fn load(
        deps: ProjectorDeps,
        topic: Topic,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Projection, sqlx::Error> {
        let name = projection_name(topic);
        // Checkpoint rows exist for every partition, so the apply transaction can lock them.
        ledger::ensure_checkpoints(&deps.store, name, topic, deps.log.partitions(topic)).await?;
        let mut folder = Folder::new(topic, Tables::live(deps.store.dialect));
        folder.parked_keys = ledger::parked_keys(&deps.store.write, name, topic).await?;
        let published = ledger::checkpoints(&deps.store, name, topic)
            .await?
            .into_iter()
            .collect();
        Ok(Projection {
            name,
            topic,
            deps,
            folder,
            shutdown,
            published,
            unpublished: BTreeMap::new(),
            last_unpublished_check: None,
            hole: None,
        })
    }

    /// Publish the checkpoints read at load time (the cache was refilled since).
    async fn publish_loaded(&mut self) -> anyhow::Result<()> {
        for (&partition, &offset) in &self.published {
            self.deps
                .positions
                .record_applied(self.topic, partition, offset)
                .await?;
        }
        Ok(())
    }

    /// The stored checkpoints, one per partition.
    async fn checkpoints(&self) -> anyhow::Result<Vec<i64>> {
        let mut next = vec![0_i64; self.deps.log.partitions(self.topic) as usize];
        let rows = ledger::checkpoints(&self.deps.store, self.name, self.topic).await?;
        for (partition, offset) in rows {
            if let Some(slot) = next.get_mut(partition as usize) {
                *slot = offset;
            }
        }
        Ok(next)
    }

    /// A consumer from the stored checkpoints, once the log is known to hold them. After
    /// [`FRESH_GROUP_AFTER`] rejoins in a row that did not get the projection moving, in a
    /// consumer group of its own (see `run`).
    async fn connect(&self, stuck_rejoins: u32) -> anyhow::Result<Box<dyn LogConsumer>> {
        let start = self.checkpoints().await?;
        check_start(self.deps.log.as_ref(), self.topic, &start).await?;
        tracing::info!(projection = self.name, positions = ?start, "projection consuming");
        let mut group = format!("{}.{}", self.deps.group_prefix, self.name);
        if stuck_rejoins >= FRESH_GROUP_AFTER {
            // One fallback group per process (not a new one at every rejoin).
            group = format!("{group}.fresh{}", std::process::id());
            tracing::warn!(projection = self.name, %group,
                "rejoining did not help: the broker keeps this group's partitions away; consuming in a fresh group");
        }
        Ok(self.deps.log.consumer(&group, self.topic, start).await?)
    }

    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(50);
        let mut consumer: Option<Box<dyn LogConsumer>> = None;
        let mut stall = StallWatch::default();
        // Rejoins since the projection last applied a batch.
        let mut stuck_rejoins = 0_u32;
        // The next batch, fetched while the previous one was folded and committed.
        let mut ahead: Option<Vec<LogRecord>> = None;
        while !*shutdown.borrow() {
            let round = async {
                let source = match consumer.as_mut() {
                    Some(c) => c,
                    None => consumer.insert(self.connect(stuck_rejoins).await?),
                };
                let batch = match ahead.take() {
                    Some(batch) if !batch.is_empty() => batch,
                    _ => tokio::select! {
                        batch = source.poll(BATCH, Duration::from_millis(500)) => batch?,
                        _ = shutdown.changed() => return Ok(false),
                    },
                };
                if batch.is_empty() {
                    return Ok(true);
                }
                // Fold and commit this batch while the log hands over what arrived meanwhile
                // (without waiting for more): one core reads the log, the other writes the views.
                let folding = async {
                    loop {
                        if let Some(applied) = self.apply(&batch).await? {
                            break anyhow::Ok(applied);
                        }
                        // A rebuild is swapping this projection's tables: hold the batch.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                };
                let (applied, next) = tokio::join!(folding, source.poll(BATCH, Duration::ZERO));
                let applied = applied?;
                source.commit(&applied).await?;
                ahead = Some(next?);
                anyhow::Ok(false)
            };
            match round.await {
                Ok(idle) => {
                    backoff = Duration::from_millis(50);
                    if !idle {
                        stuck_rejoins = 0;
                        self.hole = None;
                        self.deps.halts.clear(self.name);
                    }
                    // About once a second (the check limits itself), busy or idle: a dead
                    // peer's partitions must not wait for a rebalance to be published.
                    if self.deps.counters.outlives_process() {
                        if let Err(err) = self.repair_unpublished().await {
                            tracing::warn!(projection = self.name, error = %err, "cannot repair positions left unpublished");
                        }
                    }
                    if idle && stall.due() {
                        if let Some(partitions) = self.stalled_partitions(&mut stall).await {
                            // Nobody is consuming them: on some brokers a consumer-group member
                            // killed mid-rebalance keeps its partitions. Rejoining forces a new
                            // assignment without it.
                            tracing::warn!(projection = self.name, ?partitions, after = ?STALL_AFTER,
                                "partitions behind the log and not moving; rejoining the consumer group");
                            metrics::counter!("titok_projector_rejoins_total", "projection" => self.name)
                                .increment(1);
                            consumer = None;
                            ahead = None;
                            stuck_rejoins += 1;
                        }
                    }
                }
                Err(err) if err.downcast_ref::<LogGap>().is_some() => {
                    consumer = None;
                    ahead = None;
                    let gap = err.downcast_ref::<LogGap>().cloned();
                    if let Some(LogGap::Hole {
                        partition, from, ..
                    }) = gap
                    {
                        if self.hole != Some((partition, from)) {
                            // This consumer may have been ahead of the checkpoint (a checkpoint
                            // moved back): read again from the checkpoints before judging.
                            self.hole = Some((partition, from));
                            tracing::warn!(projection = self.name, error = %err, "records skipped; reading again from the checkpoints");
                            continue;
                        }
                    }
                    tracing::error!(projection = self.name, error = %err,
                        "projection halted: the event log is not whole where it must read");
                    self.deps.halts.halt(self.name, err.to_string());
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(err) => {
                    // Start over from the stored checkpoints: nothing is skipped, repeats are ignored.
                    consumer = None;
                    ahead = None;
                    tracing::warn!(projection = self.name, error = %err, ?backoff, "projection round failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        tracing::info!(projection = self.name, "projection stopped");
    }

    /// Fold one batch; returns the `(partition, next offset)` pairs now applied, or `None` (and
    /// changes nothing) while a rebuild holds the projection's pause lease.
    async fn apply(&mut self, batch: &[LogRecord]) -> anyhow::Result<Option<Vec<(u32, i64)>>> {
        let dialect = self.deps.store.dialect;
        let mut tx = self.deps.store.begin_write().await?;
        let stored = ledger::lock_checkpoints(&mut tx, dialect, self.name, self.topic).await?;
        let paused = ledger::paused_until(&mut tx, dialect, self.name).await?;
        if paused.is_some_and(|until| until > titok_ports::now_ms()) {
            tx.rollback().await?;
            return Ok(None);
        }
        if !self.folder.parked_keys.is_empty() {
            // `titok parked retry|drop` may have released keys (it holds the checkpoint rows
            // while it works, so this read sees its result).
            self.folder.parked_keys = ledger::parked_keys(&mut *tx, self.name, self.topic).await?;
        }
        let stored: BTreeMap<u32, i64> = stored.into_iter().collect();
        let mut next = stored.clone();
        let mut touched = Touched::default();
        let mut advanced = BTreeMap::new();
        let mut parked = HashSet::new();
        let mut fresh = Vec::with_capacity(batch.len());
        for rec in batch {
            let slot = next.entry(rec.partition).or_insert(0);
            if rec.offset < *slot {
                continue; // applied before (redelivery, or another instance before a rebalance)
            }
            if rec.offset > *slot {
                // Offsets are contiguous: records between the checkpoint and this one were
                // never delivered. Fold nothing of the batch.
                let gap = LogGap::Hole {
                    topic: self.topic,
                    partition: rec.partition,
                    from: *slot,
                    to: rec.offset,
                };
                tx.rollback().await?;
                return Err(gap.into());
            }
            *slot = rec.offset + 1;
            advanced.insert(rec.partition, rec.offset + 1);
            fresh.push(rec);
        }
        self.folder
            .fold_records(&mut tx, &fresh, &mut touched, &mut parked)
            .await?;
        for (&partition, &offset) in &advanced {
            ledger::set_checkpoint(&mut tx, self.name, self.topic, partition, offset).await?;
        }
        let users: Vec<i64> = touched.users.iter().copied().collect();
        let videos: Vec<i64> = touched.videos.iter().copied().collect();
        let mut user_rows = Vec::with_capacity(users.len());
        for chunk in users.chunks(READ_BACK) {
            user_rows.extend(user_stats(&mut *tx, chunk).await?);
        }
        let mut video_rows = Vec::with_capacity(videos.len());
        for chunk in videos.chunks(READ_BACK) {
            video_rows.extend(video_stats(&mut *tx, chunk).await?);
        }
        tx.commit().await?;
        if crate::faults::fault("projector::crash_after_commit").as_deref() == Some(self.name) {
            tracing::error!(
                projection = self.name,
                "fault point: dying between a batch's commit and its cache refresh"
            );
            std::process::abort();
        }

        if !parked.is_empty() {
            metrics::counter!("titok_parked_events_total", "projection" => self.name)
                .increment(parked.len() as u64);
        }
        self.folder.parked_keys.extend(parked);
        if !self
            .refresh_cache(&user_rows, &video_rows, &touched.chats)
            .await
        {
            // Shutting down with the cache behind the views: publish nothing.
            return Ok(Some(next.into_iter().collect()));
        }
        // Publish what this batch applied and cached, and nothing of partitions it did not fold:
        // another instance may own them, and its cache refresh may not have happened.
        for (&partition, &offset) in &advanced {
            let before = stored.get(&partition).copied().unwrap_or(0);
            if self.published.get(&partition).copied().unwrap_or(0) < before {
                // Another instance applied this partition since this one last published it.
                self.repair(partition, before).await?;
            }
            self.deps
                .positions
                .record_applied(self.topic, partition, offset)
                .await?;
            self.published.insert(partition, offset);
            metrics::gauge!("titok_projector_applied_offset", "projection" => self.name, "partition" => partition.to_string())
                .set(offset as f64);
        }
        self.report_lag(&next, batch.len(), touched.newest_event_ms)
            .await;
        Ok(Some(next.into_iter().collect()))
    }

    /// Batch size, lag in events (acknowledged but not applied) and in seconds (age of the newest
    /// event just applied).
    async fn report_lag(
        &self,
        next: &BTreeMap<u32, i64>,
        batch: usize,
        newest_event_ms: Option<i64>,
    ) {
        metrics::histogram!("titok_projector_batch_size", "projection" => self.name)
            .record(batch as f64);
        if let Some(ms) = newest_event_ms {
            let age = (titok_ports::now_ms() - ms).max(0) as f64 / 1000.0;
            metrics::gauge!("titok_projector_lag_seconds", "projection" => self.name).set(age);
        }
        if let Ok(ends) = self.deps.positions.acked_ends(&[self.topic]).await {
            let behind: i64 = ends
                .iter()
                .map(|end| (end.offset - next.get(&end.partition).copied().unwrap_or(0)).max(0))
                .sum();
            metrics::gauge!("titok_projector_lag_events", "projection" => self.name)
                .set(behind as f64);
        }
    }

    /// Write the committed absolute values into the counter cache, retrying until it accepts them:
    /// positions are published only afterwards, so no read sees the view ahead of the cache.
    /// While the cache is down a shutdown ends the retries (false): the projection's generation is
    /// bumped so that the other projector processes refill their caches from the views.
    async fn refresh_cache(
        &self,
        users: &[(i64, Versioned<UserCounts>)],
        videos: &[(i64, Versioned<VideoCounts>)],
        chats: &[((i64, i64), i64)],
    ) -> bool {
        let counters = &self.deps.counters;
        let mut delay = Duration::from_millis(50);
        let mut stop = self.shutdown.clone();
        loop {
            let result = async {
                counters.put_users(users).await?;
                counters.put_videos(videos).await?;
                for (pair, created) in chats {
                    counters.put_chat_latest(*pair, *created).await?;
                }
                Ok::<_, CountersError>(())
            }
            .await;
            let Err(err) = result else { return true };
            if *stop.borrow() {
                tracing::warn!(projection = self.name, error = %err,
                    "shutting down with the counter cache not refreshed; bumping the generation so other processes refill it");
                let bump = ledger::bump_generation(&self.deps.store.write, self.name).await;
                if let Err(e) = bump {
                    tracing::warn!(projection = self.name, error = %e, "cannot bump the generation");
                }
                return false;
            }
            tracing::warn!(projection = self.name, error = %err, "counter cache refresh failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                Ok(()) = stop.changed() => {}
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}
