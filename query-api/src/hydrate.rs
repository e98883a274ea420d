//! Turning view rows into Douyin objects: the concurrent, order-preserving join (DESIGN.md §6).
//!
//! For a page of videos the authors, the counters and the viewer's `is_favorite` / `is_follow` are
//! fetched **concurrently** (`tokio::try_join!`), each as **one batched** query over all ids, and
//! reassembled in the page's order. Never one round trip per video. Counters come from the counter
//! cache; misses fall back to SQL and refill the cache (version-guarded, see `titok_infra::counters`).

use std::collections::{HashMap, HashSet};

use titok_infra::counters::{CountersError, UserCounts, VideoCounts};
use titok_infra::http::ApiError;
use titok_views::stats::{select_in, user_stats, video_stats};

use crate::model::{User, Video};
use crate::QueryState;

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

pub const VIDEO_COLUMNS: &str = "id, author_id, title, play_path, cover_path, published_ms";

fn dedup(ids: impl IntoIterator<Item = i64>) -> Vec<i64> {
    let mut seen = HashSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}

/// Users in the order of `ids`, relative to `viewer`.
pub async fn users(
    state: &QueryState,
    viewer: Option<i64>,
    ids: &[i64],
) -> Result<Vec<User>, ApiError> {
    let unique = dedup(ids.iter().copied());
    let (names, counts, follows) = tokio::try_join!(
        user_names(state, &unique),
        user_counts(state, &unique),
        followed_by(state, viewer, &unique),
    )?;
    let avatar = format!("{}/static/avatar.png", state.public_url);
    let background = format!("{}/static/background.png", state.public_url);
    Ok(ids
        .iter()
        .map(|id| {
            let c = counts.get(id).copied().unwrap_or_default();
            User {
                id: *id,
                name: names.get(id).cloned().unwrap_or_default(),
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
    state: &QueryState,
    viewer: Option<i64>,
    rows: Vec<VideoRow>,
) -> Result<Vec<Video>, ApiError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let authors = dedup(rows.iter().map(|r| r.author_id));
    let (authors, counts, liked) = tokio::try_join!(
        users(state, viewer, &authors),
        video_counts(state, &ids),
        liked_by(state, viewer, &ids),
    )?;
    let authors: HashMap<i64, User> = authors.into_iter().map(|u| (u.id, u)).collect();
    Ok(rows
        .into_iter()
        .map(|r| {
            let c = counts.get(&r.id).copied().unwrap_or_default();
            Video {
                id: r.id,
                author: authors.get(&r.author_id).cloned().unwrap_or_default(),
                play_url: state.url(&r.play_path),
                cover_url: state.url(&r.cover_path),
                favorite_count: c.favorite_count,
                comment_count: c.comment_count,
                is_favorite: liked.contains(&r.id),
                title: r.title,
            }
        })
        .collect())
}

async fn user_names(state: &QueryState, ids: &[i64]) -> Result<HashMap<i64, String>, ApiError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, String)> = select_in("SELECT id, name FROM users WHERE id", ids)
        .build_query_as()
        .fetch_all(&state.store.read)
        .await?;
    Ok(rows.into_iter().collect())
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

async fn user_counts(
    state: &QueryState,
    ids: &[i64],
) -> Result<HashMap<i64, UserCounts>, ApiError> {
    let (mut out, missing) = split_hits(state.counters.users(ids).await, ids);
    if !missing.is_empty() {
        let rows: Vec<_> = user_stats(&state.store.read, &missing)
            .await?
            .into_iter()
            .collect();
        refilled(state.counters.put_users(&rows).await);
        out.extend(rows.into_iter().map(|(id, v)| (id, v.value)));
    }
    Ok(out)
}

async fn video_counts(
    state: &QueryState,
    ids: &[i64],
) -> Result<HashMap<i64, VideoCounts>, ApiError> {
    let (mut out, missing) = split_hits(state.counters.videos(ids).await, ids);
    if !missing.is_empty() {
        let rows: Vec<_> = video_stats(&state.store.read, &missing)
            .await?
            .into_iter()
            .collect();
        refilled(state.counters.put_videos(&rows).await);
        out.extend(rows.into_iter().map(|(id, v)| (id, v.value)));
    }
    Ok(out)
}

/// Which of `ids` the viewer follows.
async fn followed_by(
    state: &QueryState,
    viewer: Option<i64>,
    ids: &[i64],
) -> Result<HashSet<i64>, ApiError> {
    viewer_subset(
        state,
        "SELECT followee_id FROM follows WHERE follower_id = ",
        " AND followee_id IN (",
        viewer,
        ids,
    )
    .await
}

/// Which of `ids` the viewer liked.
async fn liked_by(
    state: &QueryState,
    viewer: Option<i64>,
    ids: &[i64],
) -> Result<HashSet<i64>, ApiError> {
    viewer_subset(
        state,
        "SELECT video_id FROM favorites WHERE user_id = ",
        " AND video_id IN (",
        viewer,
        ids,
    )
    .await
}

/// `<head> viewer <in_clause> ids…)`: the subset of `ids` in a relation with the viewer.
async fn viewer_subset(
    state: &QueryState,
    head: &str,
    in_clause: &str,
    viewer: Option<i64>,
    ids: &[i64],
) -> Result<HashSet<i64>, ApiError> {
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
    let rows: Vec<(i64,)> = qb.build_query_as().fetch_all(&state.store.read).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}
