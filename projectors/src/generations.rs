//! Generations: a rebuild's swap or a parked-event retry changes the views under the counter cache
//! and bumps the projection's generation in `projection_meta`; every projector process watches the
//! generations and replaces its cache's entries with the views' when they change.
//!
//! The same watch recovers what a shared store forgot ([`recover_positions`]): when Redis
//! restarted (even from an older snapshot), failed over or was flushed, its counters, chat-poll
//! entries and positions may be older than the views. Reads then answer marked stale (the
//! positions say they are unknown) until a projector has refilled the cache from the views,
//! raised the acknowledged ends to the log's own end offsets (every write acknowledged before is
//! below them, recorded or not), and published the checkpoints.

use std::time::Duration;

use titok_adapters::store::ViewStore;
use titok_events::Topic;
use titok_ports::counters::Counters;
use titok_views::ledger;
use titok_views::stats::{latest_messages_page, user_stats_page, video_stats_page};
use tokio::sync::watch;

use crate::deps::ProjectorDeps;

/// Empty the cache, then refill it from the views: after a swap, entries of ids that only the
/// replaced tables had must go (a refill alone would leave them).
pub async fn replace_counters(store: &ViewStore, counters: &dyn Counters) -> anyhow::Result<()> {
    counters.clear().await?;
    refill_counters(store, counters).await
}

/// Write every counter row of the views into the cache (versioned, so only newer values land), and
/// each conversation's newest message time for the chat-poll shortcut.
pub async fn refill_counters(store: &ViewStore, counters: &dyn Counters) -> anyhow::Result<()> {
    const PAGE: i64 = 1000;
    let mut after = i64::MIN;
    loop {
        let rows = user_stats_page(&store.read, after, PAGE).await?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        counters.put_users(&rows).await?;
    }
    let mut after = i64::MIN;
    loop {
        let rows = video_stats_page(&store.read, after, PAGE).await?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        counters.put_videos(&rows).await?;
    }
    // The chat-poll shortcut's newest message per conversation (it only moves forward).
    let mut after = (i64::MIN, i64::MIN);
    loop {
        let rows = latest_messages_page(&store.read, after, PAGE).await?;
        let Some(&(pair, _)) = rows.last() else {
            break;
        };
        after = pair;
        for (pair, created) in rows {
            counters.put_chat_latest(pair, created).await?;
        }
    }
    Ok(())
}

/// After the shared store lost data: mark the positions unknown, read the checkpoints, refill
/// the counter cache from the views, raise the acknowledged ends to the log's end offsets,
/// publish the checkpoints, and mark the positions known again.
pub async fn recover_positions(deps: &ProjectorDeps) -> anyhow::Result<()> {
    let positions = deps.positions.as_ref();
    positions.mark_unknown(&Topic::ALL).await?;
    // Read before the refill, so the refill covers everything they say is applied.
    let mut checkpoints = Vec::new();
    for view in &crate::catalog::VIEWS {
        checkpoints.push((
            view.topic,
            ledger::checkpoints(&deps.store, view.projection, view.topic).await?,
        ));
    }
    refill_counters(&deps.store, deps.counters.as_ref()).await?;
    let ends = deps.log.end_offsets(&Topic::ALL).await?;
    positions.record_acked(&ends).await?;
    for (topic, rows) in checkpoints {
        for (partition, offset) in rows {
            positions.record_applied(topic, partition, offset).await?;
        }
    }
    positions.mark_known(&Topic::ALL).await?;
    Ok(())
}

/// Refill this process's counter cache whenever a rebuild (in any process) swapped tables, and
/// recover the shared positions and cache whenever the store lost data.
pub(crate) async fn watch_generations(deps: ProjectorDeps, mut shutdown: watch::Receiver<bool>) {
    let mut seen: Option<i64> = None;
    while !*shutdown.borrow() {
        match deps.positions.lost(&Topic::ALL).await {
            Ok(false) => {}
            Ok(true) => {
                tracing::warn!("the shared store lost positions or counters (restarted, failed over or flushed): recovering them from the views and the log");
                metrics::counter!("titok_store_recoveries_total").increment(1);
                match recover_positions(&deps).await {
                    Ok(()) => tracing::info!("positions and counter cache recovered"),
                    Err(err) => {
                        tracing::warn!(error = %err, "recovering positions failed; retrying")
                    }
                }
            }
            Err(err) => tracing::debug!(error = %err, "cannot check the shared store"),
        }
        match ledger::generation_sum(&deps.store).await {
            Ok(generation) => {
                if seen.is_some_and(|s| s != generation) {
                    match replace_counters(&deps.store, deps.counters.as_ref()).await {
                        Ok(()) => {
                            tracing::info!(
                                generation,
                                "views rebuilt or parked events retried: counter cache refilled"
                            );
                            seen = Some(generation);
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "counter cache refill after a rebuild failed; retrying")
                        }
                    }
                } else {
                    seen = Some(generation);
                }
            }
            Err(err) => tracing::debug!(error = %err, "cannot read view generations"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = shutdown.changed() => {}
        }
    }
}
