//! The join that turns view rows into Douyin objects ([`User`], [`Video`]), relative to a viewer.
//!
//! For a page of videos the authors' names, the counters and the viewer's `is_favorite` /
//! `is_follow` are fetched **concurrently** (`tokio::try_join!`), each **batched** over all ids
//! (`is_favorite` and `is_follow` together in one query), and reassembled in the page's order —
//! never one round trip per video. Counters come from the
//! counter cache; misses fall back to SQL and refill the cache (version-guarded, see
//! `titok_ports::counters`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use titok_ports::counters::{CountersError, UserCounts, VideoCounts};

use crate::model::{User, Video};
use crate::stats::{push_in, select_in, user_stats, video_stats};
use crate::ViewTable;

use super::{Reader, Stamp, VideoJson, VideoRow};

/// The images every `User` object shows (one URL each, built once per list of users).
struct Images {
    avatar: String,
    background: String,
}

/// The `User` object of one user.
fn user(id: i64, name: Option<&Arc<str>>, c: UserCounts, is_follow: bool, images: &Images) -> User {
    User {
        id,
        name: name.map(|n| n.to_string()).unwrap_or_default(),
        follow_count: c.follow_count,
        follower_count: c.follower_count,
        is_follow,
        avatar: images.avatar.clone(),
        background_image: images.background.clone(),
        signature: String::new(),
        total_favorited: c.total_favorited,
        work_count: c.work_count,
        favorite_count: c.favorite_count,
    }
}

fn dedup(ids: impl IntoIterator<Item = i64>) -> Vec<i64> {
    let mut seen = HashSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}

impl Reader {
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
        Ok(self.assemble_users(ids, &names, &counts, &follows))
    }

    /// `User` objects in the order of `ids`, from their names, counters and whether the viewer
    /// follows them.
    fn assemble_users(
        &self,
        ids: &[i64],
        names: &HashMap<i64, Arc<str>>,
        counts: &HashMap<i64, UserCounts>,
        follows: &HashSet<i64>,
    ) -> Vec<User> {
        let images = self.images();
        ids.iter()
            .map(|id| {
                let counts = counts.get(id).copied().unwrap_or_default();
                user(*id, names.get(id), counts, follows.contains(id), &images)
            })
            .collect()
    }

    /// The URLs of the avatar and background image every user shows.
    fn images(&self) -> Images {
        Images {
            avatar: self.url("avatar.png"),
            background: self.url("background.png"),
        }
    }

    /// Videos in the order of `rows`, relative to `viewer`: each from the render cache when it
    /// was served before from the same facts, counters and viewer bits (see [`RenderCache`]),
    /// else built and serialised.
    ///
    /// [`RenderCache`]: super::RenderCache
    pub async fn videos(
        &self,
        viewer: Option<i64>,
        rows: Vec<VideoRow>,
    ) -> Result<Vec<VideoJson>, sqlx::Error> {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        for r in &rows {
            // Known authors are the common case on a hot feed: a read, not a write, per row.
            if !self.immutable.authors.contains_key(&r.id) {
                self.immutable.authors.insert(r.id, r.author_id);
            }
        }
        let authors = dedup(rows.iter().map(|r| r.author_id));
        // The viewer's likes of the videos and follows of their authors: one query.
        let (names, author_counts, counts, (liked, follows)) = tokio::try_join!(
            self.user_names(&authors),
            self.user_counts(&authors),
            self.video_counts(&ids),
            self.viewer_relations(viewer, &ids, &authors),
        )?;
        let stamps = rows.into_iter().map(|row| Stamp {
            author_name: names.get(&row.author_id).cloned(),
            author: author_counts
                .get(&row.author_id)
                .copied()
                .unwrap_or_default(),
            is_follow: follows.contains(&row.author_id),
            counts: counts.get(&row.id).copied().unwrap_or_default(),
            is_favorite: liked.contains(&row.id),
            row,
        });
        Ok(self.rendered.videos(stamps, |stamp| self.video(stamp)))
    }

    /// The `Video` object a stamp describes.
    fn video(&self, s: &Stamp) -> Video {
        let r = &s.row;
        Video {
            id: r.id,
            author: user(
                r.author_id,
                s.author_name.as_ref(),
                s.author,
                s.is_follow,
                &self.images(),
            ),
            play_url: self.url(&r.play_path),
            cover_url: self.url(&r.cover_path),
            favorite_count: s.counts.favorite_count,
            comment_count: s.counts.comment_count,
            is_favorite: s.is_favorite,
            title: r.title.to_string(),
        }
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
            .fetch_all(self.sql())
            .await?;
        for (id, name) in rows {
            let name: Arc<str> = name.into();
            self.immutable.names.insert(id, name.clone());
            names.insert(id, name);
        }
        Ok(names)
    }

    /// Users' counters: the counter cache, misses from SQL (and back into the cache).
    pub async fn user_counts(&self, ids: &[i64]) -> Result<HashMap<i64, UserCounts>, sqlx::Error> {
        let (mut out, missing) = split_hits(self.counters.users(ids).await, ids);
        if !missing.is_empty() {
            let rows: Vec<_> = user_stats(self.sql(), &missing)
                .await?
                .into_iter()
                .collect();
            refilled(self.counters.put_users(&rows).await);
            out.extend(rows.into_iter().map(|(id, v)| (id, v.value)));
        }
        Ok(out)
    }

    /// Videos' counters: the counter cache, misses from SQL (and back into the cache).
    pub async fn video_counts(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, VideoCounts>, sqlx::Error> {
        let (mut out, missing) = split_hits(self.counters.videos(ids).await, ids);
        if !missing.is_empty() {
            let rows: Vec<_> = video_stats(self.sql(), &missing)
                .await?
                .into_iter()
                .collect();
            refilled(self.counters.put_videos(&rows).await);
            out.extend(rows.into_iter().map(|(id, v)| (id, v.value)));
        }
        Ok(out)
    }

    /// Which of `ids` the viewer follows. Nobody follows themselves (the command API refuses it),
    /// so the viewer's own id needs no query: a user's own page (`/douyin/user/` without
    /// `user_id`, the most common call) runs none for `is_follow`.
    async fn followed_by(
        &self,
        viewer: Option<i64>,
        ids: &[i64],
    ) -> Result<HashSet<i64>, sqlx::Error> {
        let others: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| Some(*id) != viewer)
            .collect();
        let head = format!(
            "SELECT followee_id FROM {} WHERE follower_id = ",
            ViewTable::Follows
        );
        self.viewer_subset(&head, " AND followee_id", viewer, &others)
            .await
    }

    /// Which of `videos` the viewer liked and which of `authors` they follow, in one query.
    async fn viewer_relations(
        &self,
        viewer: Option<i64>,
        videos: &[i64],
        authors: &[i64],
    ) -> Result<(HashSet<i64>, HashSet<i64>), sqlx::Error> {
        let (mut liked, mut follows) = (HashSet::new(), HashSet::new());
        let Some(viewer) = viewer else {
            return Ok((liked, follows));
        };
        if videos.is_empty() || authors.is_empty() {
            return Ok((liked, follows));
        }
        let mut qb = sqlx::QueryBuilder::new(format!(
            "SELECT 0, video_id FROM {} WHERE user_id = ",
            ViewTable::Favorites
        ));
        qb.push_bind(viewer).push(" AND video_id");
        push_in(&mut qb, videos);
        qb.push(format!(
            " UNION ALL SELECT 1, followee_id FROM {} WHERE follower_id = ",
            ViewTable::Follows
        ));
        qb.push_bind(viewer).push(" AND followee_id");
        push_in(&mut qb, authors);
        let rows: Vec<(i64, i64)> = qb.build_query_as().fetch_all(self.sql()).await?;
        for (which, id) in rows {
            if which == 0 {
                liked.insert(id);
            } else {
                follows.insert(id);
            }
        }
        Ok((liked, follows))
    }

    /// `<head> viewer <column> IN (ids…)`: the subset of `ids` in a relation with the viewer.
    async fn viewer_subset(
        &self,
        head: &str,
        column: &str,
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
        qb.push_bind(viewer).push(column);
        push_in(&mut qb, ids);
        let rows: Vec<(i64,)> = qb.build_query_as().fetch_all(self.sql()).await?;
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
