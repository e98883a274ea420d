//! The row reads of the views, one query each: a video's author, a comment's owner, a feed page,
//! a user's published and liked videos, a video's comments, follow lists, friends with their
//! conversation's newest message, a conversation's messages. None waits for the projections.

use std::sync::Arc;

use crate::model::Message;
use crate::ViewTable;

use super::Reader;

/// Most videos one feed page serves when a single millisecond holds more than a page.
pub const MAX_SAME_MS_PAGE: i64 = 4096;

/// A `videos` row (its strings shared: the feed index hands out clones of its rows).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VideoRow {
    pub id: i64,
    pub author_id: i64,
    #[sqlx(try_from = "String")]
    pub title: Arc<str>,
    #[sqlx(try_from = "String")]
    pub play_path: Arc<str>,
    #[sqlx(try_from = "String")]
    pub cover_path: Arc<str>,
    pub published_ms: i64,
}

/// The columns of [`VideoRow`], in order.
pub const VIDEO_COLUMNS: &str = "id, author_id, title, play_path, cover_path, published_ms";

impl Reader {
    /// The author of a video, if the video exists in the view.
    /// Reads the view (callers check [`Reader::known_author`] first) and remembers the answer.
    pub async fn video_author(&self, video_id: i64) -> Result<Option<i64>, sqlx::Error> {
        let row: Option<(i64,)> = sqlx::query_as(&format!(
            "SELECT author_id FROM {} WHERE id = ?",
            ViewTable::Videos
        ))
        .bind(video_id)
        .fetch_optional(self.sql())
        .await?;
        if let Some((author,)) = row {
            self.immutable.authors.insert(video_id, author);
        }
        Ok(row.map(|(author,)| author))
    }

    /// `(video, author)` of a comment, if it exists in the view.
    pub async fn comment_owner(&self, comment_id: i64) -> Result<Option<(i64, i64)>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT video_id, user_id FROM {} WHERE id = ?",
            ViewTable::Comments
        ))
        .bind(comment_id)
        .fetch_optional(self.sql())
        .await
    }

    /// Up to `limit` videos published before `before_ms`, newest first (ties: larger id first).
    /// A millisecond shared by more than `limit` videos is served whole up to
    /// [`MAX_SAME_MS_PAGE`] (beyond that the rest of the millisecond is skipped).
    ///
    /// The next page asks for videos published strictly before this page's earliest time, so a
    /// page never ends inside a millisecond that the next older video shares (it would skip the
    /// rest of that millisecond): such a page stops before that millisecond, and when every video
    /// of the page shares one millisecond, that millisecond is served whole, over `limit` if it
    /// must (at most 4,096 ids exist per millisecond).
    pub async fn feed_page(
        &self,
        before_ms: i64,
        limit: i64,
    ) -> Result<Vec<VideoRow>, sqlx::Error> {
        let mut rows: Vec<VideoRow> = sqlx::query_as(&format!(
            "SELECT {VIDEO_COLUMNS} FROM {} WHERE published_ms < ? \
             ORDER BY published_ms DESC, id DESC LIMIT ?",
            ViewTable::Videos
        ))
        .bind(before_ms)
        .bind(limit + 1)
        .fetch_all(self.sql())
        .await?;
        if rows.len() as i64 <= limit {
            return Ok(rows);
        }
        let Some(next) = rows.pop() else {
            return Ok(rows);
        };
        let edge = rows.last().map_or(next.published_ms, |r| r.published_ms);
        if next.published_ms != edge {
            return Ok(rows);
        }
        rows.retain(|r| r.published_ms != edge);
        if !rows.is_empty() {
            return Ok(rows);
        }
        sqlx::query_as(&format!(
            "SELECT {VIDEO_COLUMNS} FROM {} WHERE published_ms = ? ORDER BY id DESC LIMIT ?",
            ViewTable::Videos
        ))
        .bind(edge)
        .bind(MAX_SAME_MS_PAGE)
        .fetch_all(self.sql())
        .await
    }

    /// A user's videos, newest first.
    pub async fn published_by(&self, user_id: i64) -> Result<Vec<VideoRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {VIDEO_COLUMNS} FROM {} WHERE author_id = ? ORDER BY published_ms DESC, id DESC",
            ViewTable::Videos
        ))
        .bind(user_id)
        .fetch_all(self.sql())
        .await
    }

    /// The videos a user liked, most recently liked first.
    pub async fn liked_videos(&self, user_id: i64) -> Result<Vec<VideoRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT v.id, v.author_id, v.title, v.play_path, v.cover_path, v.published_ms \
             FROM {} f JOIN {} v ON v.id = f.video_id \
             WHERE f.user_id = ? ORDER BY f.liked_ms DESC, v.id DESC",
            ViewTable::Favorites,
            ViewTable::Videos
        ))
        .bind(user_id)
        .fetch_all(self.sql())
        .await
    }

    /// A video's comments, newest first: `(id, author, content, created_ms)`.
    pub async fn comments_of(
        &self,
        video_id: i64,
    ) -> Result<Vec<(i64, i64, String, i64)>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT id, user_id, content, created_ms FROM {} WHERE video_id = ? ORDER BY id DESC",
            ViewTable::Comments
        ))
        .bind(video_id)
        .fetch_all(self.sql())
        .await
    }

    /// Whom a user follows (`followers == false`) or who follows them, most recent first.
    pub async fn relations_of(
        &self,
        user_id: i64,
        followers: bool,
    ) -> Result<Vec<i64>, sqlx::Error> {
        let (want, by) = if followers {
            ("follower_id", "followee_id")
        } else {
            ("followee_id", "follower_id")
        };
        let ids: Vec<(i64,)> = sqlx::query_as(&format!(
            "SELECT {want} FROM {} WHERE {by} = ? ORDER BY created_ms DESC, {want} DESC",
            ViewTable::Follows
        ))
        .bind(user_id)
        .fetch_all(self.sql())
        .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// A user's friends, most recent first, each with the content and sender of the newest
    /// message of their conversation.
    pub async fn friends_of(
        &self,
        user_id: i64,
    ) -> Result<Vec<(i64, Option<String>, Option<i64>)>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT f.friend_id, lm.content, lm.from_user_id FROM {} f \
             LEFT JOIN {} lm \
               ON lm.pair_lo = CASE WHEN f.user_id < f.friend_id THEN f.user_id ELSE f.friend_id END \
              AND lm.pair_hi = CASE WHEN f.user_id < f.friend_id THEN f.friend_id ELSE f.user_id END \
             WHERE f.user_id = ? ORDER BY f.since_ms DESC, f.friend_id DESC",
            ViewTable::Friends,
            ViewTable::LatestMessages
        ))
        .bind(user_id)
        .fetch_all(self.sql())
        .await
    }

    /// `create_time` of a conversation's newest message (0 when there is none).
    pub async fn chat_latest(&self, (lo, hi): (i64, i64)) -> Result<i64, sqlx::Error> {
        let row: Option<(i64,)> = sqlx::query_as(&format!(
            "SELECT created_ms FROM {} WHERE pair_lo = ? AND pair_hi = ?",
            ViewTable::LatestMessages
        ))
        .bind(lo)
        .bind(hi)
        .fetch_optional(self.sql())
        .await?;
        Ok(row.map_or(0, |(t,)| t))
    }

    /// A conversation's messages newer than `after_ms`, oldest first.
    pub async fn messages_after(
        &self,
        (lo, hi): (i64, i64),
        after_ms: i64,
    ) -> Result<Vec<Message>, sqlx::Error> {
        let rows: Vec<(i64, i64, i64, String, i64)> = sqlx::query_as(&format!(
            "SELECT id, from_user_id, to_user_id, content, created_ms FROM {} \
             WHERE pair_lo = ? AND pair_hi = ? AND created_ms > ? ORDER BY created_ms, id",
            ViewTable::Messages
        ))
        .bind(lo)
        .bind(hi)
        .bind(after_ms)
        .fetch_all(self.sql())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, from_user_id, to_user_id, content, create_time)| Message {
                    id,
                    to_user_id,
                    from_user_id,
                    content,
                    create_time,
                },
            )
            .collect())
    }
}

/// Ids looked up per query by [`media_paths`].
const MEDIA_LOOKUP: usize = 500;

/// The play and cover paths of those of `ids` that are in the videos view (the sweep for
/// orphaned uploads keeps exactly these objects).
pub async fn media_paths(
    pool: &sqlx::AnyPool,
    ids: &[i64],
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let select = format!(
        "SELECT play_path, cover_path FROM {} WHERE id",
        ViewTable::Videos
    );
    let mut paths = std::collections::HashSet::new();
    for chunk in ids.chunks(MEDIA_LOOKUP) {
        let rows: Vec<(String, String)> = crate::stats::select_in(&select, chunk)
            .build_query_as()
            .fetch_all(pool)
            .await?;
        for (play, cover) in rows {
            paths.insert(play);
            paths.insert(cover);
        }
    }
    Ok(paths)
}
