//! Rebuilding views from the log without taking reads down (views are folds of the log, never
//! migrated in place). The start-up check of projection versions, which calls it for stale views,
//! is [`crate::version_check`] (re-exported here as [`prepare`] and [`StaleViews`]); how far a
//! rebuild got is reported through [`Progress`] (module `progress`).
//!
//! A rebuild of a group of projections (see [`crate::catalog`]):
//! 1. creates shadow copies of the group's tables (`r<ms>_<table>`, current DDL) and folds the
//!    topics into them from offset 0, in consumer groups of its own that commit nothing (live
//!    projections keep consuming and the query API keeps reading the live tables);
//! 2. once within `pause_within` (default [`SWAP_WITHIN`]) events of the log's end, takes the group's pause lease
//!    (`projection_meta.paused_until_ms`; live projections hold their batch while it is set, and a
//!    crashed rebuild's lease expires), waits for in-flight live batches by locking their
//!    checkpoints, and folds the shadow up to the live checkpoints;
//! 3. raises the shadow counter rows' versions above every live version (so the version-guarded
//!    counter cache accepts the rebuilt values and refuses stale writes racing the swap), swaps the
//!    tables in one atomic step (one SQLite transaction; one MySQL `RENAME TABLE`), moves the
//!    checkpoints to the shadow's positions, replaces the group's parked events, records the view
//!    version, bumps the generation and releases the lease — all in one transaction;
//! 4. drops the old tables and replaces the counter cache's entries with the new tables' (every
//!    projector process does the same when it sees the generation change), so ids that only the
//!    old — damaged — tables had leave the cache.
//!
//! The pause lease is renewed while the rebuild works (with the rebuild lease), and the swap's own
//! transaction checks, under the locked checkpoint rows, that both leases are still this
//! rebuild's and that the live checkpoints are where the shadow caught up to — a rebuild that
//! stalled past its lease aborts instead of swapping in views that lack what the live projections
//! folded meanwhile. A log that no longer holds offset 0, or has a hole, fails the rebuild
//! ([`crate::continuity`]); nothing is swapped.
//!
//! Nothing the fold does has side effects beyond the view tables, so replay suppresses nothing
//! today; the cache refresh and position publishing of live batches are skipped during replay.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use titok_adapters::store::ViewStore;
use titok_ports::log::LogConsumer;
use titok_views::fold::Touched;
use titok_views::ledger::{self, Checkpoint, Parts, SwapRecord};
use titok_views::Tables;

use crate::catalog::{self, View};
use crate::continuity::{check_start, LogGap};
use crate::deps::ProjectorDeps;
use crate::faults::fault;
use crate::folder::{Folder, BATCH};

mod progress;

pub use progress::{LogProgress, Progress};

/// By default the rebuild pauses the live projections once the shadow is this close to the log's
/// end (`titok rebuild --pause-within`).
pub const SWAP_WITHIN: i64 = 2000;
/// How long the pause lease lasts unless renewed (it is, with the rebuild lease, while the
/// rebuild works); the final catch-up must finish within half of it.
const LEASE: Duration = Duration::from_secs(60);

/// The pause lease, shortened by the fault point `rebuild::pause_lease_ms` in tests.
fn pause_lease() -> Duration {
    fault("rebuild::pause_lease_ms")
        .and_then(|ms| ms.parse().ok())
        .map_or(LEASE, Duration::from_millis)
}
/// How long a rebuild lease lasts unless renewed; a running rebuild renews it every third of that,
/// so a crashed rebuild's group can be rebuilt again this long after it died.
pub const REBUILD_LEASE: Duration = Duration::from_secs(30);

/// Another rebuild of the same group is running (it holds the group's rebuild lease).
#[derive(Debug, thiserror::Error)]
#[error(
    "views {views} are being rebuilt by another `titok rebuild` ({holder}); its lease runs until \
     {until} and is renewed while it works: wait for it to finish (or, if it died, for its lease to \
     expire {secs} s after it stopped)",
    secs = REBUILD_LEASE.as_secs()
)]
pub struct RebuildBusy {
    pub views: String,
    pub holder: String,
    pub until: String,
}

/// How a rebuild went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub views: Vec<&'static str>,
    pub events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
}

/// The group's projections, for messages.
pub(crate) fn names(group: &[&View]) -> String {
    group
        .iter()
        .map(|v| v.projection)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One topic being replayed into shadow tables.
struct Stream {
    view: &'static View,
    folder: Folder,
    consumer: Box<dyn LogConsumer>,
    /// Next offset to fold, per partition.
    next: Vec<i64>,
    /// The next batch, fetched while the previous one was folded.
    ahead: Option<Vec<titok_ports::log::LogRecord>>,
}

impl Stream {
    /// Poll once and fold the records in `[next, limit)` in one transaction; returns how many.
    async fn step(
        &mut self,
        store: &ViewStore,
        limit: Option<&[i64]>,
        wait: Duration,
    ) -> anyhow::Result<u64> {
        let batch = match self.ahead.take() {
            Some(batch) if !batch.is_empty() => batch,
            _ => self.consumer.poll(BATCH, wait).await?,
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let mut next = self.next.clone();
        let mut touched = Touched::default();
        let mut parked = HashSet::new();
        let mut fresh = Vec::with_capacity(batch.len());
        for rec in &batch {
            let p = rec.partition as usize;
            let Some(slot) = next.get_mut(p) else {
                continue;
            };
            if rec.offset < *slot || limit.is_some_and(|l| rec.offset >= l[p]) {
                continue;
            }
            if rec.offset > *slot {
                return Err(LogGap::Hole {
                    topic: rec.topic,
                    partition: rec.partition,
                    from: *slot,
                    to: rec.offset,
                }
                .into());
            }
            *slot = rec.offset + 1;
            fresh.push(rec);
        }
        let folded = fresh.len() as u64;
        let folder = &self.folder;
        let fold = async {
            let mut tx = store.begin_write().await?;
            folder
                .fold_records(&mut tx, &fresh, &mut touched, &mut parked)
                .await?;
            tx.commit().await?;
            anyhow::Ok(())
        };
        // Read the next batch from the log while this one is folded.
        let (folded_ok, ahead) = tokio::join!(fold, self.consumer.poll(BATCH, Duration::ZERO));
        folded_ok?;
        self.ahead = Some(ahead?);
        self.next = next;
        self.folder.parked_keys.extend(parked);
        Ok(folded)
    }
}

fn projections(group: &[&View]) -> Vec<&'static str> {
    group.iter().map(|v| v.projection).collect()
}

/// Rebuild one group of projections (see the module docs). Holds the group's rebuild lease while
/// it runs: a second rebuild of the group fails with [`RebuildBusy`].
pub async fn rebuild(
    deps: &ProjectorDeps,
    group: &[&'static View],
    pause_within: i64,
    progress: &mut dyn Progress,
) -> anyhow::Result<Report> {
    let store = &deps.store;
    let prefix = format!("r{}_", titok_ports::now_ms());
    let shadow = Tables::shadow(store.dialect, &prefix);
    let bases = catalog::tables_of(group);
    let started = Instant::now();
    let names_of = projections(group);
    let holder = format!(
        "pid {} started {} ({prefix})",
        std::process::id(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let lease_end = || titok_ports::now_ms() + REBUILD_LEASE.as_millis() as i64;
    if let Some(lease) = ledger::claim_rebuild(store, &names_of, &holder, lease_end()).await? {
        return Err(RebuildBusy {
            views: names(group),
            holder: lease.holder,
            until: chrono::DateTime::from_timestamp_millis(lease.until_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default(),
        }
        .into());
    }
    // Set once the pause lease is taken: from then on the renewal extends it too.
    let paused = Arc::new(AtomicBool::new(false));
    let lease = pause_lease();
    let renewal = tokio::spawn({
        let (store, names_of, holder) = (store.clone(), names_of.clone(), holder.clone());
        let paused = paused.clone();
        async move {
            loop {
                tokio::time::sleep((REBUILD_LEASE / 3).min(lease / 3)).await;
                if fault("rebuild::stop_renewing").is_some() {
                    continue; // a test's stalled rebuild: no renewal reaches the database
                }
                let until = titok_ports::now_ms() + REBUILD_LEASE.as_millis() as i64;
                match ledger::renew_rebuild(&store.write, &names_of, &holder, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(%holder, "this rebuild lost its lease");
                        return;
                    }
                    Err(err) => tracing::warn!(error = %err, "cannot renew the rebuild lease"),
                }
                if paused.load(Ordering::SeqCst) {
                    let until = titok_ports::now_ms() + lease.as_millis() as i64;
                    match ledger::renew_pause(&store.write, &names_of, &holder, until).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(%holder,
                            "the pause lease expired before it was renewed: this rebuild will not swap"),
                        Err(err) => tracing::warn!(error = %err, "cannot renew the pause lease"),
                    }
                }
            }
        }
    });
    let outcome = async {
        ledger::create_tables(store, &shadow, &bases, Parts::Tables).await?;
        ledger::create_parked(store, &shadow).await?;
        let mut streams = Vec::new();
        for view in group {
            let partitions = deps.log.partitions(view.topic) as usize;
            // A fold from offset 0 of a log that no longer holds offset 0 would swap in views
            // lacking everything it lost.
            check_start(deps.log.as_ref(), view.topic, &vec![0; partitions]).await?;
            let consumer_group =
                format!("{}.rebuild.{prefix}{}", deps.group_prefix, view.projection);
            streams.push(Stream {
                view,
                folder: Folder::new(view.topic, shadow.clone()),
                consumer: deps
                    .log
                    .consumer(&consumer_group, view.topic, vec![0; partitions])
                    .await?,
                next: vec![0; partitions],
                ahead: None,
            });
        }
        let events = replay(deps, &mut streams, pause_within, progress).await?;
        ledger::create_tables(store, &shadow, &bases, Parts::Indexes).await?;
        paused.store(true, Ordering::SeqCst);
        let events = events + pause_and_catch_up(deps, group, &mut streams, lease).await?;
        let record = SwapRecord {
            checkpoints: streams
                .iter()
                .flat_map(|s| {
                    s.next
                        .iter()
                        .enumerate()
                        .map(|(partition, &next)| Checkpoint {
                            projection: s.view.projection,
                            topic: s.view.topic,
                            partition: partition as u32,
                            next,
                        })
                })
                .collect(),
            views: group.iter().map(|v| (v.projection, v.version)).collect(),
            rebuild_by: &holder,
        };
        anyhow::ensure!(
            ledger::renew_rebuild(&store.write, &names_of, &holder, lease_end()).await?,
            "this rebuild lost its lease (it stalled longer than {REBUILD_LEASE:?}); not swapping"
        );
        if let Some(ms) = fault("rebuild::before_swap_ms").and_then(|ms| ms.parse().ok()) {
            tracing::warn!(ms, "fault point: the rebuild stalls before its swap");
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        ledger::swap(store, &shadow, &bases, &record).await?;
        anyhow::Ok(events)
    }
    .await;
    renewal.abort();
    let events = match outcome {
        Ok(events) => events,
        Err(err) => {
            // Leave the live views as they were: release the leases, drop the shadow. A rebuild
            // that lost its lease leaves the pause alone: it belongs to the one that took over.
            if ledger::renew_rebuild(&store.write, &names_of, &holder, lease_end())
                .await
                .unwrap_or(false)
            {
                let _ = ledger::set_pause(store, &projections(group), 0).await;
                let _ = ledger::release_rebuild(&store.write, &names_of, &holder).await;
            }
            let _ = ledger::drop_tables(store, &shadow, &bases).await;
            progress.abandon();
            return Err(err.context("rebuild failed; the live views are unchanged"));
        }
    };
    ledger::drop_tables(store, &ledger::replaced(&shadow), &bases).await?;
    ledger::drop_tables(store, &shadow, &BTreeSet::new()).await?;
    crate::generations::replace_counters(store, deps.counters.as_ref()).await?;
    let seconds = started.elapsed().as_secs_f64();
    let report = Report {
        views: group.iter().map(|v| v.projection).collect(),
        events,
        seconds,
        events_per_s: events as f64 / seconds.max(1e-9),
    };
    progress.finish(&report);
    Ok(report)
}

/// Fold from offset 0 until within `pause_within` events of the log's end.
async fn replay(
    deps: &ProjectorDeps,
    streams: &mut [Stream],
    pause_within: i64,
    progress: &mut dyn Progress,
) -> anyhow::Result<u64> {
    let topics: Vec<_> = streams.iter().map(|s| s.view.topic).collect();
    let mut events = 0;
    loop {
        let ends = deps.log.end_offsets(&topics).await?;
        let end_of = |s: &Stream, p: usize| {
            ends.iter()
                .find(|e| e.topic == s.view.topic && e.partition as usize == p)
                .map_or(0, |e| e.offset)
        };
        let total: i64 = ends.iter().map(|e| e.offset).sum();
        let done: i64 = streams.iter().map(|s| s.next.iter().sum::<i64>()).sum();
        progress.update(done.max(0) as u64, total.max(done) as u64);
        if total - done <= pause_within {
            return Ok(events);
        }
        for s in streams.iter_mut() {
            let behind = (0..s.next.len()).any(|p| s.next[p] < end_of(s, p));
            if behind {
                events += s
                    .step(&deps.store, None, Duration::from_millis(200))
                    .await?;
            }
        }
    }
}

/// Take the lease, wait out in-flight live batches, fold the shadow up to the live checkpoints.
async fn pause_and_catch_up(
    deps: &ProjectorDeps,
    group: &[&'static View],
    streams: &mut [Stream],
    lease: Duration,
) -> anyhow::Result<u64> {
    let store = &deps.store;
    let until = titok_ports::now_ms() + lease.as_millis() as i64;
    ledger::set_pause(store, &projections(group), until).await?;
    // Live batches lock their checkpoint rows: once we hold them, none is in flight, and every
    // later one sees the lease.
    let mut tx = store.begin_write().await?;
    let live = ledger::lock_group_checkpoints(&mut tx, store.dialect, &projections(group)).await?;
    tx.commit().await?;
    let deadline = Instant::now() + lease / 2;
    let mut events = 0;
    for s in streams.iter_mut() {
        let limit: Vec<i64> = (0..s.next.len())
            .map(|p| {
                live.get(&(s.view.projection.to_owned(), p as u32))
                    .copied()
                    .unwrap_or(0)
            })
            .collect();
        while (0..limit.len()).any(|p| s.next[p] < limit[p]) {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the final catch-up of {} did not finish within {:?}",
                s.view.projection,
                lease / 2
            );
            events += s
                .step(store, Some(&limit), Duration::from_millis(200))
                .await?;
        }
    }
    Ok(events)
}
