//! Checkpoints (`projection_offsets`): per projection and partition, the next offset to apply,
//! written in the same transaction as the batch's view rows (that is what makes each event take
//! effect exactly once).

use std::collections::HashMap;

use sqlx::AnyConnection;
use titok_adapters::store::{Dialect, ViewStore};
use titok_events::Topic;

use super::in_list;

/// Create the checkpoint rows of every partition (at offset 0) that do not exist yet, so that a
/// batch's transaction can lock them.
pub async fn ensure_checkpoints(
    store: &ViewStore,
    projection: &str,
    topic: Topic,
    partitions: u32,
) -> Result<(), sqlx::Error> {
    let ignore = store.dialect.insert_ignore();
    for partition in 0..partitions {
        sqlx::query(&format!(
            "{ignore} INTO projection_offsets (projection, topic, part, next_offset) VALUES (?, ?, ?, 0)"
        ))
        .bind(projection)
        .bind(topic.name())
        .bind(i64::from(partition))
        .execute(&store.write)
        .await?;
    }
    Ok(())
}

/// The stored `(partition, next offset)` checkpoints of a projection's topic.
pub async fn checkpoints(
    store: &ViewStore,
    projection: &str,
    topic: Topic,
) -> Result<Vec<(u32, i64)>, sqlx::Error> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT part, next_offset FROM projection_offsets WHERE projection = ? AND topic = ?",
    )
    .bind(projection)
    .bind(topic.name())
    .fetch_all(&store.write)
    .await?;
    Ok(partitions(rows))
}

/// Like [`checkpoints`], inside a batch's transaction, locking the rows (MySQL `FOR UPDATE`; on
/// SQLite the transaction already holds the write lock).
pub async fn lock_checkpoints(
    conn: &mut AnyConnection,
    dialect: Dialect,
    projection: &str,
    topic: Topic,
) -> Result<Vec<(u32, i64)>, sqlx::Error> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(&format!(
        "SELECT part, next_offset FROM projection_offsets WHERE projection = ? AND topic = ?{}",
        dialect.for_update()
    ))
    .bind(projection)
    .bind(topic.name())
    .fetch_all(conn)
    .await?;
    Ok(partitions(rows))
}

fn partitions(rows: Vec<(i64, i64)>) -> Vec<(u32, i64)> {
    rows.into_iter()
        .filter_map(|(p, o)| Some((u32::try_from(p).ok()?, o)))
        .collect()
}

/// Hold a projection's checkpoint rows for the rest of the transaction by writing them unchanged
/// (a write on both dialects: SQLite takes its write lock, MySQL the rows' locks), so that no
/// live batch of the projection runs meanwhile.
pub async fn hold_checkpoints(
    conn: &mut AnyConnection,
    projection: &str,
    topic: Topic,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projection_offsets SET next_offset = next_offset WHERE projection = ? AND topic = ?",
    )
    .bind(projection)
    .bind(topic.name())
    .execute(conn)
    .await?;
    Ok(())
}

/// Store a partition's new checkpoint (in the batch's transaction).
pub async fn set_checkpoint(
    conn: &mut AnyConnection,
    projection: &str,
    topic: Topic,
    partition: u32,
    next: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projection_offsets SET next_offset = ? WHERE projection = ? AND topic = ? AND part = ?",
    )
    .bind(next)
    .bind(projection)
    .bind(topic.name())
    .bind(i64::from(partition))
    .execute(conn)
    .await?;
    Ok(())
}

/// The checkpoints of several projections, locked: once a rebuild holds them, no live batch of
/// those projections is in flight. Keyed by `(projection, partition)`.
pub async fn lock_group_checkpoints(
    conn: &mut AnyConnection,
    dialect: Dialect,
    projections: &[&str],
) -> Result<HashMap<(String, u32), i64>, sqlx::Error> {
    let sql = format!(
        "SELECT projection, part, next_offset FROM projection_offsets WHERE projection IN ({}){}",
        in_list(projections),
        dialect.for_update()
    );
    let mut select = sqlx::query_as::<_, (String, i64, i64)>(&sql);
    for projection in projections {
        select = select.bind(*projection);
    }
    Ok(select
        .fetch_all(conn)
        .await?
        .into_iter()
        .filter_map(|(p, part, next)| Some(((p, u32::try_from(part).ok()?), next)))
        .collect())
}
