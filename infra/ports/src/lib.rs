//! # titok-ports
//!
//! The ports: small traits and the plain types they speak, with no database, broker, cache or HTTP
//! crate behind them. The roles (command API, query API, projectors) and the views crate program
//! against these; `titok-adapters` implements them; the launcher picks the adapters from its
//! configuration.
//!
//! | port | embedded adapter | production adapter |
//! |---|---|---|
//! | [`EventLog`] — append, consume, end offsets | `embedded_log`: SQLite file, group commit | `kafka_log`: rdkafka |
//! | [`Counters`] — count cache, chat-poll shortcut | `counters`: in-process maps | `redis_store`: Redis + Lua |
//! | [`progress::Positions`] — acked/applied positions | `progress`: in-process | `redis_store`: Redis hashes |
//! | [`BlobStore`] — uploads and covers | `blobs`: local directory | (same; a shared volume) |
//! | [`AccountStore`] — unique usernames, hashes | `accounts` on SQLite | `accounts` on MySQL |
//! | [`accounts::CommandKeys`] — idempotency keys of commands | `accounts` on SQLite | `accounts` on MySQL |
//! | [`limits::AttemptLimits`] — login quotas shared by instances | (in process, in the command API) | `redis_store`: Redis + Lua |
//!
//! The log port also says where a partition starts ([`EventLog::start_offsets`]) and whether its
//! configuration keeps every event ([`log::Retention`]); the positions port says when a shared
//! store lost them ([`progress::Positions::lost`], [`progress::PositionsUnknown`]).
//!
//! Plus the read-after-write rule over the positions port ([`progress::Consistency`]) and a
//! positive cache of existing ids ([`known`]), and a per-request tally of SQL statements
//! ([`statements`]). Port errors carry the adapter's own error as their
//! [`std::error::Error::source`], so logs show the cause (a sqlx or Redis error) and not a string.

pub mod accounts;
pub mod blobs;
pub mod counters;
pub mod known;
pub mod limits;
pub mod log;
pub mod progress;
pub mod statements;

pub use accounts::AccountStore;
pub use blobs::BlobStore;
pub use counters::Counters;
pub use log::{EventLog, LogError, LogRecord, Position};

/// An adapter's error, kept whole as the source of a port error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
