//! Reads of the views that both APIs need, and the join that turns view rows into Douyin objects.
//!
//! For a page of videos the authors, the counters and the viewer's `is_favorite` / `is_follow` are
//! fetched **concurrently** (`tokio::try_join!`), each as **one batched** query over all ids, and
//! reassembled in the page's order — never one round trip per video. Counters come from the
//! counter cache; misses fall back to SQL and refill the cache (version-guarded, see
//! `titok_ports::counters`).
//!
//! Facts that never change once a view holds them — a video's author, a user's name (there is no
//! rename and no delete of either) — are kept in a bounded in-process cache ([`Immutable`], moka):
//! a page of videos then skips the names query, and a like whose video was seen before skips both
//! the consistency wait and the author query.
//!
//! The command API uses the narrow part: [`Reader::video_author`] (and [`Reader::known_author`]),
//! [`Reader::comment_owner`] and [`Reader::user_object`]. None of these wait for the projections;
//! callers wait first (the consistency wait) and decide what a stale answer means for them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sqlx::AnyPool;
use titok_ports::counters::{Counters, CountersError, UserCounts, VideoCounts};

use crate::model::{Message, User, Video};
use crate::stats::{select_in, user_stats, video_stats};
use crate::ViewTable;

/// Most videos one feed page serves when a single millisecond holds more than a page.
pub const MAX_SAME_MS_PAGE: i64 = 4096;

/// A `videos` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VideoRow {
    pub id: i64,
    pub author_id: i64,
    pub title: String,
    pub play_path: String,
    pub cover_path: String,
    pub published_ms: i64,
}

/// The columns of [`VideoRow`], in order.
pub const VIDEO_COLUMNS: &str = "id, author_id, title, play_path, cover_path, published_ms";

/// The read side of the views: the read pool, the counter cache, the cache of immutable facts and
/// the base URL that media URLs are built on.
#[derive(Clone)]
pub struct Reader {
    pub pool: AnyPool,
    pub counters: Arc<dyn Counters>,
    /// Base of absolute play/cover/avatar URLs, without a trailing slash: the query API's own
    /// `/static` (the default), or a CDN / public bucket (`--media-url`).
    pub media_url: Arc<str>,
    pub immutable: Immutable,
}

/// Video authors and user names, which never change once written: a bounded cache (moka, TinyLFU
/// admission, least-recently-used eviction), filled from the rows every read fetches anyway.
#[derive(Clone)]
pub struct Immutable {
    authors: moka::sync::Cache<i64, i64>,
    names: moka::sync::Cache<i64, Arc<str>>,
}

impl Immutable {
    /// At most `entries` authors and `entries` names.
    pub fn with_capacity(entries: u64) -> Immutable {
        Immutable {
            authors: moka::sync::Cache::new(entries),
            names: moka::sync::Cache::new(entries),
        }
    }
}

impl Default for Immutable {
    /// A million of each (tens of MiB at most).
    fn default() -> Self {
        Immutable::with_capacity(1 << 20)
    }
}

fn dedup(ids: impl IntoIterator<Item = i64>) -> Vec<i64> {
    let mut seen = HashSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}

impl Reader {
    /// The absolute URL of a blob path (`videos/1.mp4` → `{media_url}/videos/1.mp4`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.media_url, path.trim_start_matches('/'))
    }

    /// The author of a video, if this process has seen the video (no query, no wait needed: a
    /// video's author never changes).
    pub fn known_author(&self, video_id: i64) -> Option<i64> {
        self.immutable.authors.get(&video_id)
    }

    /// The author of a video, if the video exists in the view.
    /// Reads the view (callers check [`Reader::known_author`] first) and remembers the answer.
    pub async fn video_author(&self, video_id: i64) -> Result<Option<i64>, sqlx::Error> {
        let row: Option<(i64,)> = sqlx::query_as(&format!(
            "SELECT author_id FROM {} WHERE id = ?",
            ViewTable::Videos
        ))
        .bind(video_id)
        .fetch_optional(&self.pool)
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
        .fetch_optional(&self.pool)
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
        .fetch_all(&self.pool)
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
        .fetch_all(&self.pool)
        .await
    }

    /// A user's videos, newest first.
    pub async fn published_by(&self, user_id: i64) -> Result<Vec<VideoRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {VIDEO_COLUMNS} FROM {} WHERE author_id = ? ORDER BY published_ms DESC, id DESC",
            ViewTable::Videos
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
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
        .fetch_all(&self.pool)
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
        .fetch_all(&self.pool)
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
        .fetch_all(&self.pool)
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
        .fetch_all(&self.pool)
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
        .fetch_optional(&self.pool)
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
        .fetch_all(&self.pool)
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

    /// The `User` object of `user_id` as seen by themselves.
    pub async fn user_object(&self, user_id: i64) -> Result<User, sqlx::Error> {
        Ok(self
            .users(Some(user_id), &[user_id])
            .await?
            .pop()
            .unwrap_or_default())
    }

    /// Users in the order of `ids`, relative to `viewer`.
    pub async fn users(&self, viewer: Option<i64>, ids: &[i64]) -> Result<Vec<User>, sqlx::Error> {
        let unique = dedup(ids.iter().copied());
        let (names, counts, follows) = tokio::try_join!(
            self.user_names(&unique),
            self.user_counts(&unique),
            self.followed_by(viewer, &unique),
        )?;
        let avatar = self.url("avatar.png");
        let background = self.url("background.png");
        Ok(ids
            .iter()
            .map(|id| {
                let c = counts.get(id).copied().unwrap_or_default();
                User {
                    id: *id,
                    name: names.get(id).map(|n| n.to_string()).unwrap_or_default(),
                    follow_count: c.follow_count,
                    follower_count: c.follower_count,
                    is_follow: follows.contains(id),
                    avatar: avatar.clone(),
                    background_image: background.clone(),
                    signature: String::new(),
                    total_favorited: c.total_favorited,
                    work_count: c.work_count,
                    favorite_count: c.favorite_count,
                }
            })
            .collect())
    }

    /// Videos in the order of `rows`, relative to `viewer`.
    pub async fn videos(
        &self,
        viewer: Option<i64>,
        rows: Vec<VideoRow>,
    ) -> Result<Vec<Video>, sqlx::Error> {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        for r in &rows {
            // Known authors are the common case on a hot feed: a read, not a write, per row.
            if !self.immutable.authors.contains_key(&r.id) {
                self.immutable.authors.insert(r.id, r.author_id);
            }
        }
        let authors = dedup(rows.iter().map(|r| r.author_id));
        let (authors, counts, liked) = tokio::try_join!(
            self.users(viewer, &authors),
            self.video_counts(&ids),
            self.liked_by(viewer, &ids),
        )?;
        let authors: HashMap<i64, User> = authors.into_iter().map(|u| (u.id, u)).collect();
        Ok(rows
            .into_iter()
            .map(|r| {
                let c = counts.get(&r.id).copied().unwrap_or_default();
                Video {
                    id: r.id,
                    author: authors.get(&r.author_id).cloned().unwrap_or_default(),
                    play_url: self.url(&r.play_path),
                    cover_url: self.url(&r.cover_path),
                    favorite_count: c.favorite_count,
                    comment_count: c.comment_count,
                    is_favorite: liked.contains(&r.id),
                    title: r.title,
                }
            })
            .collect())
    }

    /// Names from the cache; the misses in one query (and into the cache).
    async fn user_names(&self, ids: &[i64]) -> Result<HashMap<i64, Arc<str>>, sqlx::Error> {
        let mut names = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.immutable.names.get(id) {
                Some(name) => {
                    names.insert(*id, name);
                }
                None => missing.push(*id),
            }
        }
        if missing.is_empty() {
            return Ok(names);
        }
        let prefix = format!("SELECT id, name FROM {} WHERE id", ViewTable::Users);
        let rows: Vec<(i64, String)> = select_in(&prefix, &missing)
            .build_query_as()
            .fetch_all(&self.pool)
            .await?;
        for (id, name) in rows {
            let name: Arc<str> = name.into();
            self.immutable.names.insert(id, name.clone());
            names.insert(id, name);
        }
        Ok(names)
    }

    async fn user_counts(&self, ids: &[i64]) -> Result<HashMap<i64, UserCounts>, sqlx::Error> {
        let (mut out, missing) = split_hits(self.counters.users(ids).await, ids);
        if !missing.is_empty() {
            let rows: Vec<_> = user_stats(&self.pool, &missing)
                .await?
                .into_iter()
                .collect();
            refilled(self.counters.put_users(&rows).await);
            out.extend(rows.into_iter().map(|(id, v)| (id, v.value)));
        }
        Ok(out)
    }

    async fn video_counts(&self, ids: &[i64]) -> Result<HashMap<i64, VideoCounts>, sqlx::Error> {
        let (mut out, missing) = split_hits(self.counters.videos(ids).await, ids);
        if !missing.is_empty() {
            let rows: Vec<_> = video_stats(&self.pool, &missing)
                .await?
                .into_iter()
                .collect();
            refilled(self.counters.put_videos(&rows).await);
            out.extend(rows.into_iter().map(|(id, v)| (id, v.value)));
        }
        Ok(out)
    }

    /// Which of `ids` the viewer follows.
    async fn followed_by(
        &self,
        viewer: Option<i64>,
        ids: &[i64],
    ) -> Result<HashSet<i64>, sqlx::Error> {
        let head = format!(
            "SELECT followee_id FROM {} WHERE follower_id = ",
            ViewTable::Follows
        );
        self.viewer_subset(&head, " AND followee_id IN (", viewer, ids)
            .await
    }

    /// Which of `ids` the viewer liked.
    async fn liked_by(
        &self,
        viewer: Option<i64>,
        ids: &[i64],
    ) -> Result<HashSet<i64>, sqlx::Error> {
        let head = format!(
            "SELECT video_id FROM {} WHERE user_id = ",
            ViewTable::Favorites
        );
        self.viewer_subset(&head, " AND video_id IN (", viewer, ids)
            .await
    }

    /// `<head> viewer <in_clause> ids…)`: the subset of `ids` in a relation with the viewer.
    async fn viewer_subset(
        &self,
        head: &str,
        in_clause: &str,
        viewer: Option<i64>,
        ids: &[i64],
    ) -> Result<HashSet<i64>, sqlx::Error> {
        let Some(viewer) = viewer else {
            return Ok(HashSet::new());
        };
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let mut qb = sqlx::QueryBuilder::new(head);
        qb.push_bind(viewer).push(in_clause);
        let mut sep = qb.separated(", ");
        for id in ids {
            sep.push_bind(*id);
        }
        qb.push(")");
        let rows: Vec<(i64,)> = qb.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}

/// Cache hits by id, and the ids that missed. An unavailable cache counts as all misses: the
/// answer then comes from SQL, so reads keep working while Redis is down.
fn split_hits<T: Copy>(
    cached: Result<Vec<Option<T>>, CountersError>,
    ids: &[i64],
) -> (HashMap<i64, T>, Vec<i64>) {
    let cached = cached.unwrap_or_else(|err| {
        tracing::warn!(error = %err, "counter cache unavailable; reading counters from SQL");
        vec![None; ids.len()]
    });
    let mut hits = HashMap::new();
    let mut missing = Vec::new();
    for (id, hit) in ids.iter().zip(cached) {
        match hit {
            Some(c) => {
                hits.insert(*id, c);
            }
            None => missing.push(*id),
        }
    }
    (hits, missing)
}

/// Refill the cache after a miss; failing to is harmless (the next read misses again).
fn refilled(result: Result<(), CountersError>) {
    if let Err(err) = result {
        tracing::warn!(error = %err, "cannot refill the counter cache");
    }
}
