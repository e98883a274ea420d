//! Parked events (`parked_events`, or a rebuild's own copy): records a projection could not
//! apply, with their reason.

use std::collections::HashSet;

use sqlx::{Any, AnyConnection, Executor};
use titok_adapters::store::ViewStore;
use titok_events::Topic;
use titok_ports::log::LogRecord;

use crate::Tables;

/// One parked record.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ParkedRow {
    pub projection: String,
    pub topic: String,
    #[sqlx(rename = "part")]
    pub partition: i64,
    #[sqlx(rename = "log_offset")]
    pub offset: i64,
    #[sqlx(rename = "event_key")]
    pub key: String,
    pub reason: String,
    pub payload: Vec<u8>,
    pub parked_ms: i64,
}

const PARKED_COLUMNS: &str =
    "projection, topic, part, log_offset, event_key, reason, payload, parked_ms";

/// Park a record with its reason (in the batch's transaction; `tables` says live or shadow).
pub async fn park(
    conn: &mut AnyConnection,
    tables: &Tables,
    projection: &str,
    rec: &LogRecord,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO {} ({PARKED_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        tables.parked_events()
    ))
    .bind(projection)
    .bind(rec.topic.name())
    .bind(i64::from(rec.partition))
    .bind(rec.offset)
    .bind(&rec.key)
    .bind(reason)
    .bind(&rec.payload)
    .bind(titok_ports::now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// The keys with parked records of a projection's topic (live set). `db` is a pool or a
/// transaction.
pub async fn parked_keys<'e>(
    db: impl Executor<'e, Database = Any>,
    projection: &str,
    topic: Topic,
) -> Result<HashSet<String>, sqlx::Error> {
    let keys: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT event_key FROM parked_events WHERE projection = ? AND topic = ?",
    )
    .bind(projection)
    .bind(topic.name())
    .fetch_all(db)
    .await?;
    Ok(keys.into_iter().map(|(k,)| k).collect())
}

/// Parked records, of one projection or all, in log order per partition.
pub async fn parked(
    store: &ViewStore,
    projection: Option<&str>,
) -> Result<Vec<ParkedRow>, sqlx::Error> {
    let rows: Vec<ParkedRow> = sqlx::query_as(&format!(
        "SELECT {PARKED_COLUMNS} FROM parked_events WHERE ? IS NULL OR projection = ? \
         ORDER BY projection, topic, part, log_offset"
    ))
    .bind(projection)
    .bind(projection)
    .fetch_all(&store.read)
    .await?;
    Ok(rows)
}

/// One key's parked records, oldest first.
pub async fn parked_of_key(
    conn: &mut AnyConnection,
    projection: &str,
    topic: Topic,
    key: &str,
) -> Result<Vec<ParkedRow>, sqlx::Error> {
    let rows: Vec<ParkedRow> = sqlx::query_as(&format!(
        "SELECT {PARKED_COLUMNS} FROM parked_events WHERE projection = ? AND topic = ? AND event_key = ? \
         ORDER BY part, log_offset"
    ))
    .bind(projection)
    .bind(topic.name())
    .bind(key)
    .fetch_all(conn)
    .await?;
    Ok(rows)
}

/// Remove a record from the parked set, or (with a reason) record why it still fails; the number
/// of rows changed.
pub async fn unpark<'e>(
    db: impl Executor<'e, Database = Any>,
    projection: &str,
    partition: i64,
    offset: i64,
    still_failing: Option<&str>,
) -> Result<u64, sqlx::Error> {
    let query = match still_failing {
        None => sqlx::query(
            "DELETE FROM parked_events WHERE projection = ? AND part = ? AND log_offset = ?",
        ),
        Some(reason) => sqlx::query(
            "UPDATE parked_events SET reason = ? WHERE projection = ? AND part = ? AND log_offset = ?",
        )
        .bind(reason),
    };
    let done = query
        .bind(projection)
        .bind(partition)
        .bind(offset)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}
