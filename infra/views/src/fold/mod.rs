//! The batch fold: a batch of events (one projection's poll, a rebuild's replay step, a parked
//! key's retry) becomes the **net effect** on the view tables, written in a few statements.
//!
//! 1. **Load** (`load`) — one query per table (chunked) reads the rows the rules depend on.
//! 2. **Apply** (`rules`) — the domain rules run in memory, event by event in log order.
//! 3. **Write** (`write`) — per table one multi-row upsert of the rows that differ from what was
//!    loaded and one multi-row delete of the rows that went away, in few statements.
//!
//! The statements are built once per table set (`sql`: [`FoldSql`]); everything public is
//! re-exported here.
//!
//! Everything happens on the caller's connection, inside its transaction: the caller commits the
//! checkpoints with it, which is what makes every event take effect exactly once.
//!
//! **Once by event id, too.** A keyed retry whose first attempt's outcome was unknown re-appends
//! the very same event (same id) at the log's end, after anything the user did in between. Like,
//! comment and follow events are therefore remembered by id (`applied_events`, in the same
//! transaction) and a second copy is skipped — so the retry does not bring back a deleted comment
//! or undo an unlike or unfollow made meanwhile (`crate::applied`). Ids are kept for 48 h of
//! event time (twice the idempotency keys' 24 hours), pruned as the fold moves on; messages,
//! videos and registrations need no memory (their own ids dedupe them, and nothing undoes them).

use std::collections::HashSet;

use sqlx::AnyConnection;
use titok_events::Envelope;

mod load;
mod rules;
mod sql;
mod write;

use rules::Batch;
pub use rules::{touched_by, unstorable, COLUMN_CHARS};
pub use sql::FoldSql;
pub(crate) use sql::{LOOKUP_KEYS, MAX_ROWS};

/// What a batch touched, so the runtime can refresh the counter cache after commit.
#[derive(Debug, Default)]
pub struct Touched {
    pub users: HashSet<i64>,
    pub videos: HashSet<i64>,
    /// Conversations and the `create_time` of their newest message.
    pub chats: Vec<((i64, i64), i64)>,
    /// `occurred_at` (epoch ms) of the newest event folded, for the lag metric.
    pub newest_event_ms: Option<i64>,
}

/// Fold `events` (in log order) into the tables of `sql`, on the caller's transaction.
pub async fn fold_batch(
    conn: &mut AnyConnection,
    sql: &FoldSql,
    events: &[Envelope],
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let kept = sql.skip_applied(conn, events).await?;
    let events = kept.as_deref().unwrap_or(events);
    let mut batch = Batch::load(conn, sql, events).await?;
    for event in events {
        batch.apply(event, touched);
    }
    batch.write(conn, sql).await
}
