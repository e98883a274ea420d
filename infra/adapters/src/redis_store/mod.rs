//! The Redis adapters: [`RedisCounters`] (the counter cache and the chat-poll shortcut),
//! [`RedisPositions`] (acknowledged and applied log positions shared by split processes) and
//! [`RedisAttempts`] (login quotas shared by several command APIs).
//!
//! - `conn`: one Redis or a Redis Cluster ([`connect`], [`RedisConn`]) and the time bound on
//!   every call;
//! - `counters`: [`RedisCounters`];
//! - `positions`: [`RedisPositions`], with the Redis incarnation they were last recovered on;
//! - `attempts`: [`RedisAttempts`] (GCRA).
//!
//! Exactness rests on the same rule as the in-process cache (see `titok_ports::counters`): entries are
//! absolute values with the SQL row version they were read at, written by a Lua script that
//! replaces an entry only with a newer version; positions and chat times only ever rise (`max`).
//! So redelivery, crashes and several projector instances cannot make Redis drift from SQL.
//!
//! Every call is bounded by a short timeout; callers treat errors as "cache unavailable" and fall
//! back to SQL, so a query API keeps answering while Redis is down and uses it again once back.

mod attempts;
mod conn;
mod counters;
mod positions;

pub use attempts::RedisAttempts;
pub use conn::{cluster_nodes, connect, RedisConn, CLUSTER_SCHEME};
pub use counters::RedisCounters;
pub use positions::RedisPositions;
