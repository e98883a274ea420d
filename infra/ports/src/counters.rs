//! The `Counters` port: a cache of the counters the SQL views hold, plus the chat-poll shortcut.
//!
//! **How the cache stays exactly equal to SQL.** Every counter row in SQL carries a `version` that
//! the projector bumps in the same transaction as the change. After commit, the projector writes the
//! *absolute* values it read inside that transaction, with their version; a cache entry is replaced
//! only by a newer version. A query that misses fills the entry from SQL through the same guarded
//! write. So whatever the interleaving — redelivery, two projector instances, a fill racing a
//! projector — the entry can only move forward to a committed SQL state, never back, and never by
//! a delta applied twice. (The chat shortcut is a `max`, which has the same property.)

use std::time::Duration;

use async_trait::async_trait;

/// A user's counters, as served in the `User` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserCounts {
    pub follow_count: i64,
    pub follower_count: i64,
    pub total_favorited: i64,
    pub work_count: i64,
    pub favorite_count: i64,
}

/// A video's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VideoCounts {
    pub favorite_count: i64,
    pub comment_count: i64,
}

/// A value with the SQL row version it was read at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versioned<T> {
    pub version: i64,
    pub value: T,
}

/// The cache could not be read or written; the source is the adapter's own error.
#[derive(Debug, thiserror::Error)]
#[error("counter cache unavailable: {0}")]
pub struct CountersError(#[source] pub crate::BoxError);

#[async_trait]
pub trait Counters: Send + Sync + 'static {
    /// Cached user counters, `None` where the cache has no entry.
    async fn users(&self, ids: &[i64]) -> Result<Vec<Option<UserCounts>>, CountersError>;
    async fn videos(&self, ids: &[i64]) -> Result<Vec<Option<VideoCounts>>, CountersError>;
    /// Store each entry unless the cache already holds the same or a newer version.
    async fn put_users(&self, rows: &[(i64, Versioned<UserCounts>)]) -> Result<(), CountersError>;
    async fn put_videos(&self, rows: &[(i64, Versioned<VideoCounts>)])
        -> Result<(), CountersError>;
    /// `create_time` of a conversation's newest message (0 = none), if cached.
    async fn chat_latest(&self, pair: (i64, i64)) -> Result<Option<i64>, CountersError>;
    /// Raise a conversation's newest-message time to at least `created_ms`.
    async fn put_chat_latest(&self, pair: (i64, i64), created_ms: i64)
        -> Result<(), CountersError>;
    /// Drop every entry (they fill again from SQL). After a rebuild replaced the views, so that
    /// ids only the replaced — damaged — tables had are not served from the cache any more.
    async fn clear(&self) -> Result<(), CountersError>;
    /// Whether the entries outlive this process (Redis). Then a crash between a batch's commit
    /// and its cache refresh can leave entries behind SQL, and a projector refills the cache from
    /// the views before it publishes any position.
    fn outlives_process(&self) -> bool {
        false
    }
}

/// Idle conversations' shortcut entries are dropped after this long without a poll or message.
pub const CHAT_IDLE_EXPIRY: Duration = Duration::from_secs(30 * 60);
