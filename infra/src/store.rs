//! SQLite databases of the embedded default: opening them with the right durability, migrating, and
//! the read store's two pools (many readers, one writer).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

/// How hard a database must hold on to a commit.
#[derive(Debug, Clone, Copy)]
pub enum Durability {
    /// fsync on every commit: the event log and accounts (acknowledged means on disk).
    Full,
    /// WAL with `synchronous=NORMAL`: survives a killed process; a power cut may roll back the last
    /// commits, which is fine for views because their checkpoints roll back with them.
    Normal,
}

/// Connection options for a SQLite file with WAL, a busy timeout and foreign keys off.
pub fn sqlite_options(
    path: &Path,
    durability: Durability,
) -> Result<SqliteConnectOptions, sqlx::Error> {
    let sync = match durability {
        Durability::Full => SqliteSynchronous::Full,
        Durability::Normal => SqliteSynchronous::Normal,
    };
    Ok(
        SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .busy_timeout(Duration::from_secs(10)),
    )
}

/// Open (creating and migrating) a SQLite database as a pool of `max` connections.
pub async fn open_sqlite(
    path: &Path,
    durability: Durability,
    max: u32,
    migrator: &Migrator,
) -> Result<SqlitePool, sqlx::Error> {
    let pool = SqlitePoolOptions::new()
        .max_connections(max)
        .connect_with(sqlite_options(path, durability)?)
        .await?;
    migrator.run(&pool).await?;
    Ok(pool)
}

/// The read store: views, checkpoints and parked events in one database so they commit together.
#[derive(Clone, Debug)]
pub struct ViewStore {
    /// For queries (many connections, WAL readers never block the writer).
    pub read: SqlitePool,
    /// For projectors: one connection, so projection transactions queue instead of failing busy.
    pub write: SqlitePool,
}

impl ViewStore {
    pub async fn open_sqlite(path: &Path) -> Result<ViewStore, sqlx::Error> {
        let write = open_sqlite(path, Durability::Normal, 1, &titok_schemas::SQLITE_VIEWS).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(sqlite_options(path, Durability::Normal)?.read_only(true))
            .await?;
        Ok(ViewStore { read, write })
    }
}
