//! The rebuild lease (`rebuild_by`, `rebuild_until_ms` of `projection_meta`): it keeps a second
//! rebuild of the same group from starting, and while a rebuild holds it, it may extend its pause
//! lease.

use sqlx::{Any, Executor};
use titok_adapters::store::ViewStore;

use super::{in_list, BindAll};

/// Who holds a group's rebuild lease, and until when (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildLease {
    pub holder: String,
    pub until_ms: i64,
}

/// Take the rebuild lease of `projections` for `holder` until `until_ms`, all or nothing: when
/// another holder's lease on any of them has not expired, nothing changes and that lease is
/// returned. Projections without a meta row get one at version 0 (built by nothing yet).
pub async fn claim_rebuild(
    store: &ViewStore,
    projections: &[&str],
    holder: &str,
    until_ms: i64,
) -> Result<Option<RebuildLease>, sqlx::Error> {
    let mut tx = store.begin_write().await?;
    // Lock every row of the group and judge in Rust: a WHERE on the lease columns would, under
    // READ COMMITTED, leave unlocked the rows it filtered out.
    let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT rebuild_by, rebuild_until_ms FROM projection_meta WHERE projection IN ({}){}",
        in_list(projections),
        store.dialect.for_update()
    ))
    .bind_all(projections)
    .fetch_all(&mut *tx)
    .await?;
    let now = titok_ports::now_ms();
    if let Some((holder, until_ms)) = rows
        .into_iter()
        .find(|(by, until)| *until > now && by != holder)
    {
        tx.rollback().await?;
        return Ok(Some(RebuildLease { holder, until_ms }));
    }
    for projection in projections {
        sqlx::query(&format!(
            "INSERT INTO projection_meta (projection, version, generation, paused_until_ms, rebuild_by, rebuild_until_ms) \
             VALUES (?, 0, 0, 0, ?, ?) {} rebuild_by = {}, rebuild_until_ms = {}",
            store.dialect.on_conflict_update("projection"),
            store.dialect.new_value("rebuild_by"),
            store.dialect.new_value("rebuild_until_ms")
        ))
        .bind(*projection)
        .bind(holder)
        .bind(until_ms)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(None)
}

/// Extend `holder`'s rebuild lease; false when it no longer holds it on every projection.
pub async fn renew_rebuild<'e>(
    executor: impl Executor<'e, Database = Any>,
    projections: &[&str],
    holder: &str,
    until_ms: i64,
) -> Result<bool, sqlx::Error> {
    extend(
        executor,
        "rebuild_until_ms",
        projections,
        holder,
        until_ms,
        i64::MIN,
    )
    .await
}

/// Extend the pause lease of `projections` to `until_ms` while `holder` holds their rebuild lease
/// and the pause has not expired (an expired pause let the live projections move on: extending it
/// then would only hide that from the swap's check). False when it was not extended everywhere.
pub async fn renew_pause<'e>(
    executor: impl Executor<'e, Database = Any>,
    projections: &[&str],
    holder: &str,
    until_ms: i64,
) -> Result<bool, sqlx::Error> {
    let now = titok_ports::now_ms();
    extend(
        executor,
        "paused_until_ms",
        projections,
        holder,
        until_ms,
        now,
    )
    .await
}

/// Set lease column `column` to `until_ms` on `projections` held by `holder` whose current value
/// is above `above`; whether every projection's row was extended.
async fn extend<'e>(
    executor: impl Executor<'e, Database = Any>,
    column: &str,
    projections: &[&str],
    holder: &str,
    until_ms: i64,
    above: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(&format!(
        "UPDATE projection_meta SET {column} = ? WHERE projection IN ({}) AND rebuild_by = ? \
         AND {column} > ?",
        in_list(projections)
    ))
    .bind(until_ms)
    .bind_all(projections)
    .bind(holder)
    .bind(above)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == projections.len() as u64)
}

/// Release `holder`'s rebuild lease (what another holder took is left alone).
pub async fn release_rebuild<'e>(
    executor: impl Executor<'e, Database = Any>,
    projections: &[&str],
    holder: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "UPDATE projection_meta SET rebuild_by = '', rebuild_until_ms = 0 \
         WHERE projection IN ({}) AND rebuild_by = ?",
        in_list(projections)
    ))
    .bind_all(projections)
    .bind(holder)
    .execute(executor)
    .await?;
    Ok(())
}
