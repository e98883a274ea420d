//! Reads of the counter rows (`user_stats`, `video_stats`), shared by the projections (which read
//! back what they bumped, inside their transaction, for the counter cache), the rebuild (which
//! walks them to refill the cache) and the query API (which falls back to them when the cache
//! misses). The batch fold ([`crate::fold`]) writes them.

use std::collections::HashMap;

use sqlx::{Any, QueryBuilder};
use titok_ports::counters::{UserCounts, Versioned, VideoCounts};

use crate::ViewTable;

const USER_COLUMNS: &str =
    "user_id, follow_count, follower_count, total_favorited, work_count, favorite_count, version";
const VIDEO_COLUMNS: &str = "video_id, favorite_count, comment_count, version";

/// `<prefix> IN (ids…)` with bound ids, for batched lookups.
pub fn select_in<'a>(prefix: &'a str, ids: &[i64]) -> QueryBuilder<'a, Any> {
    let mut qb = QueryBuilder::new(prefix);
    push_in(&mut qb, ids);
    qb
}

/// ` IN (?, ?, …)` over `ids`, bound, at the end of `qb`.
pub(crate) fn push_in(qb: &mut QueryBuilder<'_, Any>, ids: &[i64]) {
    qb.push(" IN (");
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(*id);
    }
    qb.push(")");
}

type UserStatsRow = (i64, i64, i64, i64, i64, i64, i64);

/// Versioned user counters of `ids` that have a row (absent ids have all-zero counters).
pub async fn user_stats<'e, E>(
    exec: E,
    ids: &[i64],
) -> Result<HashMap<i64, Versioned<UserCounts>>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let prefix = format!(
        "SELECT {USER_COLUMNS} FROM {} WHERE user_id",
        ViewTable::UserStats
    );
    let mut qb = select_in(&prefix, ids);
    let rows: Vec<UserStatsRow> = qb.build_query_as().fetch_all(exec).await?;
    Ok(rows.into_iter().map(user_row).collect())
}

fn user_row(
    (id, follow, follower, total_fav, work, fav, version): UserStatsRow,
) -> (i64, Versioned<UserCounts>) {
    let value = UserCounts {
        follow_count: follow,
        follower_count: follower,
        total_favorited: total_fav,
        work_count: work,
        favorite_count: fav,
    };
    (id, Versioned { version, value })
}

fn video_row((id, fav, comments, version): (i64, i64, i64, i64)) -> (i64, Versioned<VideoCounts>) {
    let value = VideoCounts {
        favorite_count: fav,
        comment_count: comments,
    };
    (id, Versioned { version, value })
}

/// Up to `limit` user counter rows with ids above `after`, in id order (for walking the table).
pub async fn user_stats_page<'e, E>(
    exec: E,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, Versioned<UserCounts>)>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let rows: Vec<UserStatsRow> = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM {} WHERE user_id > ? ORDER BY user_id LIMIT ?",
        ViewTable::UserStats
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(exec)
    .await?;
    Ok(rows.into_iter().map(user_row).collect())
}

/// Up to `limit` video counter rows with ids above `after`, in id order.
pub async fn video_stats_page<'e, E>(
    exec: E,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, Versioned<VideoCounts>)>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(&format!(
        "SELECT {VIDEO_COLUMNS} FROM {} WHERE video_id > ? ORDER BY video_id LIMIT ?",
        ViewTable::VideoStats
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(exec)
    .await?;
    Ok(rows.into_iter().map(video_row).collect())
}

/// Versioned video counters of `ids` that have a row.
pub async fn video_stats<'e, E>(
    exec: E,
    ids: &[i64],
) -> Result<HashMap<i64, Versioned<VideoCounts>>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let prefix = format!(
        "SELECT {VIDEO_COLUMNS} FROM {} WHERE video_id",
        ViewTable::VideoStats
    );
    let mut qb = select_in(&prefix, ids);
    let rows: Vec<(i64, i64, i64, i64)> = qb.build_query_as().fetch_all(exec).await?;
    Ok(rows.into_iter().map(video_row).collect())
}

/// The `create_time` of the newest message of each of `pairs` that has one.
pub async fn latest_messages_of<'e, E>(
    exec: E,
    pairs: &[(i64, i64)],
) -> Result<Vec<((i64, i64), i64)>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any> + Copy,
{
    let mut found = Vec::with_capacity(pairs.len());
    for &(lo, hi) in pairs {
        let row: Option<(i64,)> = sqlx::query_as(&format!(
            "SELECT created_ms FROM {} WHERE pair_lo = ? AND pair_hi = ?",
            ViewTable::LatestMessages
        ))
        .bind(lo)
        .bind(hi)
        .fetch_optional(exec)
        .await?;
        if let Some((created,)) = row {
            found.push(((lo, hi), created));
        }
    }
    Ok(found)
}

/// Up to `limit` conversations after `after` (in `(pair_lo, pair_hi)` order) with the
/// `create_time` of their newest message: the chat-poll shortcut's refill.
pub async fn latest_messages_page<'e, E>(
    exec: E,
    after: (i64, i64),
    limit: i64,
) -> Result<Vec<((i64, i64), i64)>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(&format!(
        "SELECT pair_lo, pair_hi, created_ms FROM {} \
         WHERE pair_lo > ? OR (pair_lo = ? AND pair_hi > ?) ORDER BY pair_lo, pair_hi LIMIT ?",
        ViewTable::LatestMessages
    ))
    .bind(after.0)
    .bind(after.0)
    .bind(after.1)
    .bind(limit)
    .fetch_all(exec)
    .await?;
    Ok(rows.into_iter().map(|(lo, hi, t)| ((lo, hi), t)).collect())
}
