//! The projections' bookkeeping in the read store, beside the views it describes:
//!
//! - **checkpoints** (`projection_offsets`): per projection and partition, the next offset to
//!   apply, written in the same transaction as the batch's view rows (that is what makes each
//!   event take effect exactly once);
//! - **projection meta** (`projection_meta`): the view version a projection was built at, a
//!   generation that a rebuild or a parked retry bumps (every process refills its counter cache
//!   when the sum changes), the pause lease a rebuild holds while it swaps tables, and the rebuild
//!   lease that keeps a second rebuild of the same group from starting;
//! - **parked events** (`parked_events`, or a rebuild's own copy): records a projection could not
//!   apply, with their reason;
//! - **shadow tables** of a rebuild: creating them (tables first, SQLite's secondary indexes after
//!   the replay), the atomic swap with the live tables, dropping what is left over.
//!
//! The projectors call these; no other crate writes these tables.
//!
//! **Size.** Over 450 lines, the five concerns listed above; issue 24 splits it along them.

use std::collections::{BTreeSet, HashMap, HashSet};

use sqlx::{Any, AnyConnection, Executor};
use titok_adapters::store::{Dialect, ViewStore};
use titok_events::Topic;
use titok_ports::log::LogRecord;

use crate::{Tables, ViewTable};

// ---------------------------------------------------------------------------------------------
// Checkpoints

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

fn in_list(items: &[&str]) -> String {
    vec!["?"; items.len()].join(", ")
}

// ---------------------------------------------------------------------------------------------
// Projection meta: version, generation, pause lease

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

/// Bind every item of a list, in order (for an `IN (?, …)` made by [`in_list`]).
trait BindAll<'q> {
    fn bind_all(self, items: &'q [&'q str]) -> Self;
}

impl<'q> BindAll<'q> for sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    fn bind_all(self, items: &'q [&'q str]) -> Self {
        items.iter().fold(self, |q, item| q.bind(*item))
    }
}

impl<'q, O> BindAll<'q> for sqlx::query::QueryAs<'q, Any, O, sqlx::any::AnyArguments<'q>> {
    fn bind_all(self, items: &'q [&'q str]) -> Self {
        items.iter().fold(self, |q, item| q.bind(*item))
    }
}

// ---------------------------------------------------------------------------------------------
// Parked events

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

// ---------------------------------------------------------------------------------------------
// A rebuild's shadow tables

/// Which of a table's DDL statements to run: on SQLite the secondary indexes are statements of
/// their own, and a rebuild creates them after the replay (one sorted build instead of an index
/// insert per row); MySQL declares them inside `CREATE TABLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    All,
    Tables,
    Indexes,
}

/// Create `bases` in the set `tables` (current DDL from `titok-schemas`).
pub async fn create_tables(
    store: &ViewStore,
    tables: &Tables,
    bases: &BTreeSet<ViewTable>,
    parts: Parts,
) -> Result<(), sqlx::Error> {
    for &base in bases {
        let statements = base.create(tables.dialect == Dialect::MySql, &tables.name(base));
        for (i, statement) in statements.iter().enumerate() {
            let wanted = match parts {
                Parts::All => true,
                Parts::Tables => i == 0,
                Parts::Indexes => i > 0,
            };
            if wanted {
                sqlx::query(statement).execute(&store.write).await?;
            }
        }
    }
    Ok(())
}

/// An empty parked-events table for a shadow set (the rebuild parks into it).
pub async fn create_parked(store: &ViewStore, tables: &Tables) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "CREATE TABLE {} AS SELECT * FROM parked_events WHERE 1 = 0",
        tables.parked_events()
    ))
    .execute(&store.write)
    .await?;
    Ok(())
}

/// Drop `bases` and the parked-events table of a set, where they exist.
pub async fn drop_tables(
    store: &ViewStore,
    tables: &Tables,
    bases: &BTreeSet<ViewTable>,
) -> Result<(), sqlx::Error> {
    let names = bases
        .iter()
        .map(|base| tables.name(*base))
        .chain(std::iter::once(tables.parked_events()));
    for name in names {
        sqlx::query(&format!("DROP TABLE IF EXISTS {name}"))
            .execute(&store.write)
            .await?;
    }
    Ok(())
}

/// The set the live tables are renamed to by [`swap`] (`<prefix>old_<table>`), for dropping.
pub fn replaced(shadow: &Tables) -> Tables {
    Tables::shadow(shadow.dialect, &format!("{}old_", shadow.prefix()))
}

async fn table_exists(store: &ViewStore, name: &str) -> Result<bool, sqlx::Error> {
    let sql = match store.dialect {
        Dialect::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
        Dialect::MySql => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
        }
    };
    let (n,): (i64,) = sqlx::query_as(sql)
        .bind(name)
        .fetch_one(&store.write)
        .await?;
    Ok(n > 0)
}

/// A projection's checkpoint after a rebuild.
#[derive(Debug, Clone)]
pub struct Checkpoint<'a> {
    pub projection: &'a str,
    pub topic: Topic,
    pub partition: u32,
    pub next: i64,
}

/// Why a swap did not happen; the live views are untouched.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// Under the locked checkpoint rows, the leases or the live checkpoints were not what the
    /// shadow caught up to.
    #[error("not swapping: {0}")]
    Moved(String),
}

/// What a swap records besides the tables: the rebuilt projections' checkpoints and their
/// `(projection, version)`.
#[derive(Debug, Clone, Default)]
pub struct SwapRecord<'a> {
    pub checkpoints: Vec<Checkpoint<'a>>,
    pub views: Vec<(&'a str, i64)>,
    /// The rebuild lease's holder, released with the swap.
    pub rebuild_by: &'a str,
}

/// Put a rebuild's shadow tables in place of the live ones:
/// 1. raise the shadow counter rows' versions above every live version (the version-guarded
///    counter cache then accepts the rebuilt values and refuses stale writes racing the swap);
/// 2. rename the live tables to [`replaced`] and the shadow tables to the live names in one
///    atomic step (one SQLite transaction; one MySQL `RENAME TABLE`);
/// 3. move the checkpoints to the shadow's positions, replace the projections' parked events with
///    the shadow's, record the view versions, bump the generations and release the pause lease,
///    in one transaction (the same one as the renames on SQLite).
///
/// Before the renames, that transaction locks the live checkpoint rows and checks that the
/// rebuild still holds its leases (rebuild and pause) and that the live checkpoints are exactly
/// where the shadow caught up to ([`SwapError::Moved`] otherwise: a pause that expired let the
/// live projections fold on, and a swap would lose what they folded). On MySQL, whose DDL commits
/// implicitly, the renames run on a second connection while the first holds those row locks, so
/// no live batch commits between the check and the bookkeeping.
pub async fn swap(
    store: &ViewStore,
    shadow: &Tables,
    bases: &BTreeSet<ViewTable>,
    record: &SwapRecord<'_>,
) -> Result<(), SwapError> {
    let live = Tables::live(store.dialect);
    let old = replaced(shadow);
    for counters in [ViewTable::UserStats, ViewTable::VideoStats] {
        if bases.contains(&counters) && table_exists(store, &live.name(counters)).await? {
            let (max,): (i64,) = sqlx::query_as(&format!(
                "SELECT COALESCE(MAX(version), 0) FROM {}",
                live.name(counters)
            ))
            .fetch_one(&store.write)
            .await?;
            sqlx::query(&format!(
                "UPDATE {} SET version = version + ?",
                shadow.name(counters)
            ))
            .bind(max + 1)
            .execute(&store.write)
            .await?;
        }
    }
    let mut present = Vec::new();
    for base in bases {
        present.push((*base, table_exists(store, &live.name(*base)).await?));
    }
    match store.dialect {
        Dialect::Sqlite => {
            let mut tx = store.begin_write().await?;
            verify_swap(&mut tx, store.dialect, record).await?;
            for (base, exists) in &present {
                if *exists {
                    sqlx::query(&format!(
                        "ALTER TABLE {} RENAME TO {}",
                        live.name(*base),
                        old.name(*base)
                    ))
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(&format!(
                    "ALTER TABLE {} RENAME TO {}",
                    shadow.name(*base),
                    live.name(*base)
                ))
                .execute(&mut *tx)
                .await?;
            }
            record_swap(&mut tx, shadow, record).await?;
            tx.commit().await?;
        }
        Dialect::MySql => {
            // DDL commits implicitly in MySQL, so the swap is its own atomic statement; the live
            // projections stay paused by the lease until the bookkeeping below commits. Should
            // this process die in between, the lease expires and the live projections re-fold
            // from their older checkpoints, which the idempotent folds absorb.
            let renames: Vec<String> = present
                .iter()
                .flat_map(|(base, exists)| {
                    let to_old =
                        exists.then(|| format!("{} TO {}", live.name(*base), old.name(*base)));
                    to_old.into_iter().chain(std::iter::once(format!(
                        "{} TO {}",
                        shadow.name(*base),
                        live.name(*base)
                    )))
                })
                .collect();
            let mut tx = store.begin_write().await?;
            verify_swap(&mut tx, store.dialect, record).await?;
            // Not `tx`: the RENAME would commit it and release the checkpoint locks.
            let mut ddl = store.write.acquire().await?;
            sqlx::query(&format!("RENAME TABLE {}", renames.join(", ")))
                .execute(&mut *ddl)
                .await?;
            drop(ddl);
            record_swap(&mut tx, shadow, record).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Inside the swap's transaction: lock the live checkpoints of the rebuilt projections and check
/// the leases and the checkpoints (see [`swap`]).
async fn verify_swap(
    conn: &mut AnyConnection,
    dialect: Dialect,
    record: &SwapRecord<'_>,
) -> Result<(), SwapError> {
    let projections: Vec<&str> = record.views.iter().map(|(p, _)| *p).collect();
    let live = lock_group_checkpoints(conn, dialect, &projections).await?;
    for c in &record.checkpoints {
        let at = live
            .get(&(c.projection.to_owned(), c.partition))
            .copied()
            .unwrap_or(0);
        if at != c.next {
            return Err(SwapError::Moved(format!(
                "the live {} projection is at {}/{}@{at}, the rebuilt views at @{} (the live \
                 projections folded on: the pause lease expired)",
                c.projection, c.topic, c.partition, c.next
            )));
        }
    }
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(&format!(
        "SELECT projection, rebuild_by, rebuild_until_ms, paused_until_ms FROM projection_meta \
         WHERE projection IN ({}){}",
        in_list(&projections),
        dialect.for_update()
    ))
    .bind_all(&projections)
    .fetch_all(&mut *conn)
    .await?;
    let now = titok_ports::now_ms();
    for projection in &projections {
        let Some((_, by, rebuild_until, paused_until)) = rows.iter().find(|r| r.0 == *projection)
        else {
            return Err(SwapError::Moved(format!("{projection} has no meta row")));
        };
        if by != record.rebuild_by || *rebuild_until <= now {
            return Err(SwapError::Moved(format!(
                "this rebuild no longer holds the rebuild lease of {projection} (held by {by:?})"
            )));
        }
        if *paused_until <= now {
            return Err(SwapError::Moved(format!(
                "the pause lease of {projection} expired {} ms ago",
                now - paused_until
            )));
        }
    }
    Ok(())
}

async fn record_swap(
    conn: &mut AnyConnection,
    shadow: &Tables,
    record: &SwapRecord<'_>,
) -> Result<(), sqlx::Error> {
    let dialect = shadow.dialect;
    for c in &record.checkpoints {
        sqlx::query(&format!(
            "INSERT INTO projection_offsets (projection, topic, part, next_offset) VALUES (?, ?, ?, ?) {} next_offset = {}",
            dialect.on_conflict_update("projection, topic, part"),
            dialect.new_value("next_offset")
        ))
        .bind(c.projection)
        .bind(c.topic.name())
        .bind(i64::from(c.partition))
        .bind(c.next)
        .execute(&mut *conn)
        .await?;
    }
    for (projection, version) in &record.views {
        sqlx::query("DELETE FROM parked_events WHERE projection = ?")
            .bind(*projection)
            .execute(&mut *conn)
            .await?;
        sqlx::query(&format!(
            "INSERT INTO projection_meta (projection, version, generation, paused_until_ms) VALUES (?, ?, 1, 0) \
             {} version = {}, generation = generation + 1, paused_until_ms = 0",
            dialect.on_conflict_update("projection"),
            dialect.new_value("version")
        ))
        .bind(*projection)
        .bind(*version)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(&format!(
        "INSERT INTO parked_events SELECT * FROM {}",
        shadow.parked_events()
    ))
    .execute(&mut *conn)
    .await?;
    let projections: Vec<&str> = record.views.iter().map(|(p, _)| *p).collect();
    release_rebuild(&mut *conn, &projections, record.rebuild_by).await?;
    Ok(())
}
