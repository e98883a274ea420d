//! Parked events (`titok parked list|retry|drop`).
//!
//! A projection parks a record it cannot apply — undecodable, of an unknown type or version, or
//! breaking an invariant of its event type — together with every later record of the same key,
//! so that per-key order holds and the rest of the partition flows on (see [`crate::runtime`]).
//!
//! [`retry`] applies a key's parked records again, oldest first, after the cause was fixed (a
//! binary that decodes the new version, a corrected producer): each record that now applies is
//! folded and removed; the first that still fails stays parked with its new reason, and so does
//! everything after it. It runs while the live projections run: it holds the projection's
//! checkpoint rows while it folds (live batches wait for them), and the live projections reload
//! their set of parked keys inside every batch while any is parked, so a released key flows again
//! from the next batch on. Afterwards it bumps the projection's generation, which makes every
//! process refill its counter cache from the views.
//!
//! [`drop_event`] removes one parked record for good (a record that will never apply, such as
//! garbage from a foreign producer), so that a retry can release the records behind it.

use serde::Serialize;
use titok_adapters::store::ViewStore;
use titok_events::Topic;
use titok_ports::log::LogRecord;
use titok_views::fold::{fold_batch, FoldSql, Touched};
use titok_views::ledger::{self, ParkedRow};
use titok_views::Tables;

use crate::folder::{decode_checked, projection_name};

/// One parked record, as `titok parked list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ParkedEvent {
    pub projection: String,
    pub topic: String,
    pub partition: i64,
    pub offset: i64,
    pub key: String,
    pub reason: String,
    pub parked_ms: i64,
    /// The record's `type` and `version` when its bytes are JSON with those fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The record's bytes, as text (lossy).
    pub payload: String,
}

/// What [`retry`] did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RetryReport {
    /// Records folded and removed from the parked set.
    pub applied: usize,
    /// Records still parked (the first of each key with its new reason).
    pub still_parked: usize,
    /// Keys with nothing parked any more: their new records flow again.
    pub keys_released: usize,
}

fn to_event(row: ParkedRow) -> ParkedEvent {
    let event_type = serde_json::from_slice::<serde_json::Value>(&row.payload)
        .ok()
        .and_then(|v| {
            Some(format!(
                "{} v{}",
                v["type"].as_str()?,
                v["version"].as_i64()?
            ))
        });
    ParkedEvent {
        payload: String::from_utf8_lossy(&row.payload).into_owned(),
        event_type,
        projection: row.projection,
        topic: row.topic,
        partition: row.partition,
        offset: row.offset,
        key: row.key,
        reason: row.reason,
        parked_ms: row.parked_ms,
    }
}

/// Parked records, of one projection or all, oldest first per key.
pub async fn list(store: &ViewStore, projection: Option<&str>) -> anyhow::Result<Vec<ParkedEvent>> {
    let rows = ledger::parked(store, projection).await?;
    Ok(rows.into_iter().map(to_event).collect())
}

/// Remove one parked record for good; `false` if there is no such record.
pub async fn drop_event(
    store: &ViewStore,
    projection: &str,
    partition: i64,
    offset: i64,
) -> anyhow::Result<bool> {
    Ok(ledger::unpark(&store.write, projection, partition, offset, None).await? > 0)
}

/// Apply parked records again (of one projection or all; of one key or all), oldest first per key.
pub async fn retry(
    store: &ViewStore,
    projection: Option<&str>,
    key: Option<&str>,
) -> anyhow::Result<RetryReport> {
    let mut report = RetryReport::default();
    for topic in Topic::ALL {
        let name = projection_name(topic);
        if projection.is_some_and(|p| p != name) {
            continue;
        }
        let keys = ledger::parked_keys(&store.read, name, topic).await?;
        for k in keys {
            if key.is_some_and(|wanted| wanted != k) {
                continue;
            }
            retry_key(store, topic, &k, &mut report).await?;
        }
    }
    Ok(report)
}

async fn retry_key(
    store: &ViewStore,
    topic: Topic,
    key: &str,
    report: &mut RetryReport,
) -> anyhow::Result<()> {
    let name = projection_name(topic);
    let mut tx = store.begin_write().await?;
    // Hold the checkpoints, so no live batch of this projection runs meanwhile.
    ledger::hold_checkpoints(&mut tx, name, topic).await?;
    let rows = ledger::parked_of_key(&mut tx, name, topic, key).await?;
    let sql = FoldSql::new(Tables::live(store.dialect));
    let mut touched = Touched::default();
    let mut events = Vec::new();
    let mut remaining = rows.len();
    for row in rows {
        let (partition, offset) = (row.partition, row.offset);
        let rec = LogRecord {
            topic,
            partition: partition as u32,
            offset,
            key: row.key,
            payload: row.payload,
        };
        match decode_checked(&rec) {
            Ok(event) => {
                events.push(event);
                ledger::unpark(&mut *tx, name, partition, offset, None).await?;
                report.applied += 1;
                remaining -= 1;
            }
            Err(reason) => {
                ledger::unpark(&mut *tx, name, partition, offset, Some(&reason)).await?;
                break;
            }
        }
    }
    // The key's records in order up to the first that still fails, as one batch.
    fold_batch(&mut tx, &sql, &events, &mut touched).await?;
    report.still_parked += remaining;
    if remaining == 0 {
        report.keys_released += 1;
    }
    // Only a key that applied something changes the views (`report.applied` counts every key).
    if !events.is_empty() {
        ledger::bump_generation(&mut *tx, name).await?;
    }
    tx.commit().await?;
    Ok(())
}
