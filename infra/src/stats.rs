//! SQL for the counter rows (`user_stats`, `video_stats`), shared by the projectors (which bump them
//! and read them back inside their transaction) and the query API (which falls back to them when
//! the counter cache misses).

use std::collections::HashMap;

use sqlx::{Any, AnyConnection, QueryBuilder};

use crate::counters::{UserCounts, Versioned, VideoCounts};
use crate::store::Tables;

/// A counter column of `user_stats`. Column names come only from this enum, never from input.
#[derive(Debug, Clone, Copy)]
pub enum UserCounter {
    Follow,
    Follower,
    TotalFavorited,
    Work,
    Favorite,
}

impl UserCounter {
    fn column(self) -> &'static str {
        match self {
            UserCounter::Follow => "follow_count",
            UserCounter::Follower => "follower_count",
            UserCounter::TotalFavorited => "total_favorited",
            UserCounter::Work => "work_count",
            UserCounter::Favorite => "favorite_count",
        }
    }
}

/// A counter column of `video_stats`.
#[derive(Debug, Clone, Copy)]
pub enum VideoCounter {
    Favorite,
    Comment,
}

impl VideoCounter {
    fn column(self) -> &'static str {
        match self {
            VideoCounter::Favorite => "favorite_count",
            VideoCounter::Comment => "comment_count",
        }
    }
}

/// Add `delta` to one user counter (creating the row), bumping its version.
pub async fn bump_user(
    conn: &mut AnyConnection,
    tables: &Tables,
    user_id: i64,
    counter: UserCounter,
    delta: i64,
) -> Result<(), sqlx::Error> {
    bump(
        conn,
        tables,
        ("user_stats", "user_id"),
        user_id,
        counter.column(),
        delta,
    )
    .await
}

/// Add `delta` to one video counter (creating the row), bumping its version.
pub async fn bump_video(
    conn: &mut AnyConnection,
    tables: &Tables,
    video_id: i64,
    counter: VideoCounter,
    delta: i64,
) -> Result<(), sqlx::Error> {
    bump(
        conn,
        tables,
        ("video_stats", "video_id"),
        video_id,
        counter.column(),
        delta,
    )
    .await
}

/// `table.col += delta` for the row `key = id` (inserted if missing), `version += 1`.
/// Table and column names come from this module's enums only.
async fn bump(
    conn: &mut AnyConnection,
    tables: &Tables,
    (table, key): (&str, &str),
    id: i64,
    col: &str,
    delta: i64,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO {} ({key}, {col}, version) VALUES (?, ?, 1) {} {col} = {col} + {}, version = version + 1",
        tables.name(table),
        tables.dialect.on_conflict_update(key),
        tables.dialect.new_value(col),
    );
    sqlx::query(&sql).bind(id).bind(delta).execute(conn).await?;
    Ok(())
}

/// `<prefix> IN (ids…)` with bound ids, for batched lookups.
pub fn select_in<'a>(prefix: &'a str, ids: &[i64]) -> QueryBuilder<'a, Any> {
    let mut qb = QueryBuilder::new(prefix);
    qb.push(" IN (");
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(*id);
    }
    qb.push(")");
    qb
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
    let mut qb = select_in(
        "SELECT user_id, follow_count, follower_count, total_favorited, work_count, favorite_count, version \
         FROM user_stats WHERE user_id",
        ids,
    );
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
    let rows: Vec<UserStatsRow> = sqlx::query_as(
        "SELECT user_id, follow_count, follower_count, total_favorited, work_count, favorite_count, version \
         FROM user_stats WHERE user_id > ? ORDER BY user_id LIMIT ?",
    )
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
    let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT video_id, favorite_count, comment_count, version FROM video_stats \
         WHERE video_id > ? ORDER BY video_id LIMIT ?",
    )
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
    let mut qb = select_in(
        "SELECT video_id, favorite_count, comment_count, version FROM video_stats WHERE video_id",
        ids,
    );
    let rows: Vec<(i64, i64, i64, i64)> = qb.build_query_as().fetch_all(exec).await?;
    Ok(rows.into_iter().map(video_row).collect())
}
