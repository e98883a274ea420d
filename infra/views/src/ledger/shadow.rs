//! The shadow tables of a rebuild: creating them (tables first, SQLite's secondary indexes after
//! the replay), the atomic swap with the live tables, dropping what is left over.

use std::collections::BTreeSet;

use sqlx::AnyConnection;
use titok_adapters::store::{Dialect, ViewStore};
use titok_events::Topic;

use super::checkpoints::lock_group_checkpoints;
use super::rebuild_lease::release_rebuild;
use super::{in_list, BindAll};
use crate::{Tables, ViewTable};

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
