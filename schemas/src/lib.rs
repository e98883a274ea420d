//! # titok-schemas
//!
//! The SQL migrations of titok-plus, embedded into the binary at compile time. One directory per
//! database, one change per file, never edited once applied:
//!
//! - `sqlite/log/` — the embedded event log (topics, partitions, offsets).
//! - `sqlite/accounts/` — the command side's small synchronous store (unique usernames, hashes).
//! - `sqlite/views/` — the read models the projectors write and the query API reads, with the
//!   projection checkpoints and parked events kept in the same database so they commit together.

use sqlx::migrate::Migrator;

/// Migrations of the embedded event log database.
pub static SQLITE_LOG: Migrator = sqlx::migrate!("sqlite/log");
/// Migrations of the command-side accounts database.
pub static SQLITE_ACCOUNTS: Migrator = sqlx::migrate!("sqlite/accounts");
/// Migrations of the read-model database.
pub static SQLITE_VIEWS: Migrator = sqlx::migrate!("sqlite/views");
