//! Projection meta (`projection_meta`): the view version a projection was built at, a generation
//! that a rebuild or a parked retry bumps (every process refills its counter cache when the sum
//! changes), and the pause lease a rebuild holds while it swaps tables.

use std::collections::HashMap;

use sqlx::{Any, AnyConnection, Executor};
use titok_adapters::store::{Dialect, ViewStore};

use super::in_list;

/// Stored `(version, generation)` per projection.
pub async fn versions(store: &ViewStore) -> Result<HashMap<String, (i64, i64)>, sqlx::Error> {
    let rows: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT projection, version, generation FROM projection_meta")
            .fetch_all(&store.write)
            .await?;
    Ok(rows.into_iter().map(|(p, v, g)| (p, (v, g))).collect())
}

/// Record a projection whose tables were just created empty, at `version` (no-op if recorded).
pub async fn register(
    store: &ViewStore,
    projection: &str,
    version: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "{} INTO projection_meta (projection, version, generation, paused_until_ms) VALUES (?, ?, 0, 0)",
        store.dialect.insert_ignore()
    ))
    .bind(projection)
    .bind(version)
    .execute(&store.write)
    .await?;
    Ok(())
}

/// The sum of every projection's generation: it changes whenever any view was swapped by a
/// rebuild or changed by a parked retry.
pub async fn generation_sum(store: &ViewStore) -> Result<i64, sqlx::Error> {
    // Summed here: MySQL's SUM() is a DECIMAL, which sqlx's Any driver cannot decode.
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT generation FROM projection_meta")
        .fetch_all(&store.read)
        .await?;
    Ok(rows.iter().map(|(g,)| g).sum())
}

/// Bump a projection's generation: every process refills its counter cache from the views.
/// `db` is a pool or a transaction.
pub async fn bump_generation<'e>(
    db: impl Executor<'e, Database = Any>,
    projection: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE projection_meta SET generation = generation + 1 WHERE projection = ?")
        .bind(projection)
        .execute(db)
        .await?;
    Ok(())
}

/// The pause lease's end (ms since the epoch; 0 = none), read and locked inside a batch's
/// transaction; `None` if the projection has no meta row.
pub async fn paused_until(
    conn: &mut AnyConnection,
    dialect: Dialect,
    projection: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let paused: Option<(i64,)> = sqlx::query_as(&format!(
        "SELECT paused_until_ms FROM projection_meta WHERE projection = ?{}",
        dialect.for_update()
    ))
    .bind(projection)
    .fetch_optional(conn)
    .await?;
    Ok(paused.map(|(until,)| until))
}

/// Set (or, with 0, release) the pause lease of several projections.
pub async fn set_pause(
    store: &ViewStore,
    projections: &[&str],
    until_ms: i64,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "UPDATE projection_meta SET paused_until_ms = ? WHERE projection IN ({})",
        in_list(projections)
    );
    let mut pause = sqlx::query(&sql).bind(until_ms);
    for projection in projections {
        pause = pause.bind(*projection);
    }
    pause.execute(&store.write).await?;
    Ok(())
}
