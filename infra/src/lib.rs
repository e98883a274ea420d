//! # titok-infra
//!
//! Ports and their adapters. Each port is a small trait; the embedded implementation lives next to it
//! and the production one (Kafka, MySQL, Redis) plugs into the same trait.
//!
//! | port | embedded adapter | production adapter |
//! |---|---|---|
//! | [`EventLog`] — append, consume, end offsets | [`embedded_log`]: SQLite file, group commit | [`kafka_log`]: rdkafka |
//! | read store — views + checkpoints | [`store`]: SQLite through sqlx `Any` | [`store`]: MySQL through sqlx `Any` |
//! | [`Counters`] — count cache, chat-poll shortcut | [`counters`]: in-process maps | [`redis_store`]: Redis + Lua |
//! | [`progress::Positions`] — acked/applied positions | [`progress`]: in-process | [`redis_store`]: Redis hashes |
//! | [`BlobStore`] — uploads and covers | [`blobs`]: local directory | (same; a shared volume) |
//! | accounts — unique usernames, hashes | [`accounts`] on SQLite | [`accounts`] on MySQL |
//!
//! Plus what both APIs share: [`progress`] (projection positions and the read-after-write wait),
//! [`auth`] (argon2id hashes, signed expiring tokens) and [`http`] (the Douyin envelope, the error
//! enum, lenient parameter parsing).

pub mod accounts;
pub mod auth;
pub mod blobs;
pub mod counters;
pub mod embedded_log;
pub mod http;
pub mod kafka_log;
pub mod known;
pub mod log;
pub mod openapi;
pub mod progress;
pub mod redis_store;
pub mod store;
pub mod telemetry;

pub use blobs::BlobStore;
pub use counters::Counters;
pub use log::{EventLog, LogError, LogRecord, Position};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
