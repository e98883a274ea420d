//! # titok-schemas
//!
//! The SQL migrations of titok-plus, embedded into the binary at compile time. One directory per
//! database and dialect, one change per file, never edited once released:
//!
//! - `sqlite/log/` — the embedded event log (topics, partitions, offsets).
//! - `sqlite/accounts/` — the command side's small synchronous store.
//! - `sqlite/views/` — the projection checkpoints, parked events and projection versions, in the
//!   same database as the read models so they commit together. The read-model tables themselves
//!   are not migrated: [`views`] holds their current DDL and the projectors create and rebuild
//!   them (migration 0002 handed them over).
//! - `mysql/` — the same accounts and views tables in one MySQL/MariaDB database (one migration
//!   history per database, so one directory).
//!
//! Both dialects have the same tables, columns and indexes; column names avoid MySQL reserved words
//! so the queries can be shared.

pub mod views;

use sqlx::migrate::Migrator;

/// Migrations of the embedded event log database.
pub static SQLITE_LOG: Migrator = sqlx::migrate!("sqlite/log");
/// Migrations of the command-side accounts database (SQLite).
pub static SQLITE_ACCOUNTS: Migrator = sqlx::migrate!("sqlite/accounts");
/// Migrations of the read-model database (SQLite).
pub static SQLITE_VIEWS: Migrator = sqlx::migrate!("sqlite/views");
/// Migrations of the accounts and read-model tables (MySQL 8 / MariaDB).
pub static MYSQL: Migrator = sqlx::migrate!("./mysql");
