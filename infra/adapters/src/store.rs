//! SQL databases: the embedded default's SQLite files and production's MySQL, behind sqlx's `Any`
//! driver so the views, accounts and projections share one set of queries. Where the dialects
//! differ (upserts, `INSERT IGNORE`, `FOR UPDATE`), [`Dialect`] supplies the right words.

use std::path::Path;
use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AnyPool, ConnectOptions, Executor, SqlitePool};

/// How hard a SQLite database must hold on to a commit.
#[derive(Debug, Clone, Copy)]
pub enum Durability {
    /// fsync on every commit: the event log and accounts (acknowledged means on disk).
    Full,
    /// WAL with `synchronous=NORMAL`: survives a killed process; a power cut may roll back the last
    /// commits, which is fine for views because their checkpoints roll back with them.
    Normal,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// The SQL dialect of a database, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    MySql,
}

impl Dialect {
    /// `INSERT` that skips rows whose key exists.
    pub fn insert_ignore(self) -> &'static str {
        match self {
            Dialect::Sqlite => "INSERT OR IGNORE",
            Dialect::MySql => "INSERT IGNORE",
        }
    }

    /// The clause before the assignments of an upsert on the primary key `key`.
    pub fn on_conflict_update(self, key: &str) -> String {
        match self {
            Dialect::Sqlite => format!("ON CONFLICT({key}) DO UPDATE SET"),
            Dialect::MySql => "ON DUPLICATE KEY UPDATE".to_owned(),
        }
    }

    /// The value of `column` in the row being inserted, inside an upsert's assignments.
    pub fn new_value(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("excluded.{column}"),
            Dialect::MySql => format!("VALUES({column})"),
        }
    }

    /// Row locking for a read inside a transaction (SQLite locks the whole database anyway).
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::MySql => " FOR UPDATE",
        }
    }
}

fn install_drivers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(sqlx::any::install_default_drivers);
}

/// Connection options for a SQLite file with WAL, a busy timeout and the given durability.
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

/// Open (creating and migrating) a SQLite database as a native pool (the embedded log uses this).
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

/// Keep a connection coming back to the pool only if no transaction is open on it. After a failed
/// COMMIT (SQLite's SQLITE_FULL on a full disk rolls back by itself), sqlx's own rollback fails and
/// its transaction depth stays at 1; the next `BEGIN IMMEDIATE` on that connection then always
/// failed (the projections stopped for good after a disk-full episode). Closing it gives the pool a
/// fresh connection instead.
fn close_if_in_transaction(
    conn: &mut sqlx::AnyConnection,
    _: sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        use sqlx::Connection;
        if conn.is_in_transaction() {
            // A dropped transaction's ROLLBACK may still be queued (SQLite runs it on the
            // connection's worker): let it run, then judge. Free when no transaction is open.
            conn.ping().await?;
        }
        let clean = !conn.is_in_transaction();
        if !clean {
            tracing::warn!("closing a database connection left inside a failed transaction");
        }
        Ok(clean)
    })
}

/// SQLite's page cache per connection, KiB: 64 MiB for writers, 16 MiB for readers, or
/// `TITOK_SQLITE_CACHE_KIB` for both (an operator's memory budget; the soak uses it to tell the
/// caches' growth from anything else).
fn sqlite_cache_kib(read_only: bool) -> i64 {
    std::env::var("TITOK_SQLITE_CACHE_KIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|kib: &i64| *kib > 0)
        .unwrap_or(if read_only { 16 * 1024 } else { 64 * 1024 })
}

/// A SQLite file as an `Any` pool with WAL, the durability's `synchronous`, and a busy timeout.
async fn sqlite_any(
    path: &Path,
    durability: Durability,
    max: u32,
    read_only: bool,
) -> Result<AnyPool, sqlx::Error> {
    install_drivers();
    let mode = if read_only { "ro" } else { "rwc" };
    let options = AnyConnectOptions::from_str(&format!("sqlite://{}?mode={mode}", path.display()))?;
    let sync = durability.pragma();
    AnyPoolOptions::new()
        .max_connections(max)
        .after_release(close_if_in_transaction)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                // SQLite's default page cache is 2 MiB: a rebuild's shadow tables beside the live
                // ones no longer fit and every miss becomes a read syscall.
                let cache_kib = sqlite_cache_kib(read_only);
                conn.execute(format!("PRAGMA cache_size = -{cache_kib}").as_str())
                    .await?;
                if !read_only {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute(format!("PRAGMA synchronous = {sync}").as_str())
                        .await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
}

/// A MySQL/MariaDB database as an `Any` pool, creating the database (utf8mb4) if it is missing.
pub async fn mysql_any(url: &str, max: u32) -> Result<AnyPool, sqlx::Error> {
    install_drivers();
    let options = sqlx::mysql::MySqlConnectOptions::from_str(url)?;
    if let Some(database) = options.get_database().map(str::to_owned) {
        let mut server = options.clone().database("").connect().await?;
        let create = format!(
            "CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
            database.replace('`', "")
        );
        server.execute(create.as_str()).await?;
    }
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(5))
        .after_release(close_if_in_transaction)
        .connect(url)
        .await
}

/// A pool on a MySQL read replica: never creates or migrates anything (the primary does, and
/// replication brings it), connects lazily (a replica that is down at start-up is skipped until
/// it answers) and gives up on a connection within a second.
pub fn mysql_replica(url: &str, max: u32) -> Result<AnyPool, sqlx::Error> {
    install_drivers();
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(1))
        .after_release(close_if_in_transaction)
        .connect_lazy(url)
}

/// The read store: views, checkpoints and parked events in one database so they commit together.
#[derive(Clone, Debug)]
pub struct ViewStore {
    /// For queries.
    pub read: AnyPool,
    /// For projectors. On SQLite one connection, so projection transactions queue instead of
    /// failing busy; on MySQL a small pool shared by the projections.
    pub write: AnyPool,
    pub dialect: Dialect,
}

impl ViewStore {
    /// A transaction on the write pool that holds the write lock from its first statement. On
    /// SQLite a deferred transaction that reads first and writes later fails at once with
    /// `SQLITE_BUSY_SNAPSHOT` when another process (a `titok rebuild`, `titok parked`) committed
    /// in between; `BEGIN IMMEDIATE` waits for the lock instead (busy timeout). MySQL locks rows.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await,
            Dialect::MySql => self.write.begin().await,
        }
    }

    /// The embedded read store in a SQLite file.
    pub async fn open_sqlite(path: &Path) -> Result<ViewStore, sqlx::Error> {
        let write = sqlite_any(path, Durability::Normal, 1, false).await?;
        titok_schemas::SQLITE_VIEWS.run(&write).await?;
        let read = sqlite_any(path, Durability::Normal, 8, true).await?;
        Ok(ViewStore {
            read,
            write,
            dialect: Dialect::Sqlite,
        })
    }

    /// The read store on an already-migrated MySQL pool (see [`migrate_mysql`]).
    pub fn mysql(pool: AnyPool) -> ViewStore {
        ViewStore {
            read: pool.clone(),
            write: pool,
            dialect: Dialect::MySql,
        }
    }
}

/// Open a SQLite file as an `Any` pool for the command-side accounts (fsync on commit).
pub async fn sqlite_accounts(path: &Path) -> Result<AnyPool, sqlx::Error> {
    let pool = sqlite_any(path, Durability::Full, 4, false).await?;
    titok_schemas::SQLITE_ACCOUNTS.run(&pool).await?;
    Ok(pool)
}

/// Apply the MySQL migrations (accounts and views share one database and one history).
///
/// Instances that start together (every role of a scaled deployment) migrate one at a time under
/// a named lock of their own: sqlx's migration lock (`GET_LOCK(…, -1)`, result unchecked) did not
/// keep two instances starting on a fresh MariaDB database from applying the same migration twice
/// (`Duplicate entry '1' for key 'PRIMARY'`).
pub async fn migrate_mysql(pool: &AnyPool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let (locked,): (Option<i64>,) =
        sqlx::query_as("SELECT GET_LOCK(CONCAT('titok-migrate-', DATABASE()), 120)")
            .fetch_one(&mut *conn)
            .await?;
    if locked != Some(1) {
        return Err(sqlx::Error::Protocol(
            "another instance held the migration lock for 120 s".into(),
        ));
    }
    let migrated = titok_schemas::MYSQL.run(&mut *conn).await;
    let released = sqlx::query("SELECT RELEASE_LOCK(CONCAT('titok-migrate-', DATABASE()))")
        .execute(&mut *conn)
        .await;
    migrated?;
    released?;
    Ok(())
}

/// Report a SQL pool's size and idle connections (sampled when `/metrics` is scraped).
pub fn record_pool(name: &'static str, pool: &sqlx::AnyPool) {
    metrics::gauge!("titok_db_pool_connections", "pool" => name).set(f64::from(pool.size()));
    metrics::gauge!("titok_db_pool_idle", "pool" => name).set(pool.num_idle() as f64);
}
