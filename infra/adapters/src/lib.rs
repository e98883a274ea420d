//! # titok-adapters
//!
//! The implementations of the `titok-ports` traits, one module per engine, and the SQL pools the
//! views crate writes through. Nothing above the launcher picks an adapter: the launcher opens them
//! from its configuration and hands the roles trait objects.
//!
//! | module | implements | on |
//! |---|---|---|
//! | [`embedded_log`] | `EventLog` | a SQLite file, group commit (the embedded default) |
//! | [`kafka_log`] | `EventLog` | Kafka (rdkafka; tested on tansu) |
//! | [`counters`] | `Counters` | in-process maps |
//! | [`progress`] | `Positions` | in-process, with a notifier |
//! | [`redis_store`] | `Counters`, `Positions`, `AttemptLimits` | Redis or a Redis Cluster: hashes and single-key Lua scripts |
//! | [`accounts`] | `AccountStore`, `CommandKeys` | SQLite or MySQL through sqlx `Any` |
//! | [`blobs`] | `BlobStore` | a local directory |
//! | [`store`] | — | the SQL pools: the views' `ViewStore`, opening and migrating SQLite/MySQL, lazy pools on MySQL read replicas |

pub mod accounts;
pub mod blobs;
pub mod counters;
pub mod embedded_log;
pub mod kafka_log;
pub mod progress;
pub mod redis_store;
pub mod store;
