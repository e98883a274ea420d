//! Feed, user info, and the video, comment and relation lists.

use axum::extract::State;
use titok_events::Topic;
use titok_infra::http::{ApiError, Params, Reply};

use crate::hydrate::{self, VideoRow, VIDEO_COLUMNS};
use crate::model::*;
use crate::{answer, normalize_ms, QueryState, CONTENT_TOPICS};

/// Feed page size (api-contract.md row 1).
pub const FEED_PAGE: i64 = 30;

/// Row 1: ≤ 30 videos published before `latest_time`, newest first; `next_time` = the page's
/// earliest publish time (epoch ms), to send back as the next `latest_time`.
pub async fn feed(State(state): State<QueryState>, params: Params) -> Reply<FeedBody> {
    answer(&state, CONTENT_TOPICS, async {
        let viewer = state.auth.optional(&params).await?;
        let now = titok_infra::now_ms();
        let latest = match normalize_ms(params.int_or_zero("latest_time")?) {
            0 => now + 1,
            t => t,
        };
        let sql = format!(
            "SELECT {VIDEO_COLUMNS} FROM videos WHERE published_ms < ? ORDER BY published_ms DESC, id DESC LIMIT ?"
        );
        let rows: Vec<VideoRow> = sqlx::query_as(&sql)
            .bind(latest)
            .bind(FEED_PAGE)
            .fetch_all(&state.store.read)
            .await?;
        let next_time = rows.last().map_or(now, |r| r.published_ms);
        let video_list = hydrate::videos(&state, viewer, rows).await?;
        Ok(FeedBody { video_list, next_time })
    })
    .await
}

/// The viewer, and the user a list is about (`user_id`, defaulting to the viewer), which must exist.
async fn subject(state: &QueryState, params: &Params) -> Result<(i64, i64), ApiError> {
    let viewer = state.auth.require(params).await?;
    let user_id = params.opt_id("user_id")?.unwrap_or(viewer);
    ensure_user(state, user_id).await?;
    Ok((viewer, user_id))
}

/// Fails with "not found" unless `user_id` has an account.
pub async fn ensure_user(state: &QueryState, user_id: i64) -> Result<(), ApiError> {
    if state.auth.user_exists(user_id).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("user {user_id} does not exist")))
    }
}

/// Row 4: one user, relative to the token's user.
pub async fn user_info(State(state): State<QueryState>, params: Params) -> Reply<UserBody> {
    answer(&state, CONTENT_TOPICS, async {
        let (viewer, user_id) = subject(&state, &params).await?;
        let user = hydrate::users(&state, Some(viewer), &[user_id])
            .await?
            .pop();
        Ok(UserBody { user })
    })
    .await
}

async fn video_list(
    state: &QueryState,
    params: &Params,
    sql: &str,
) -> Result<VideoListBody, ApiError> {
    let (viewer, user_id) = subject(state, params).await?;
    let rows: Vec<VideoRow> = sqlx::query_as(sql)
        .bind(user_id)
        .fetch_all(&state.store.read)
        .await?;
    let video_list = hydrate::videos(state, Some(viewer), rows).await?;
    Ok(VideoListBody { video_list })
}

/// Row 6: the user's videos, newest first.
pub async fn publish_list(State(state): State<QueryState>, params: Params) -> Reply<VideoListBody> {
    let sql = format!("SELECT {VIDEO_COLUMNS} FROM videos WHERE author_id = ? ORDER BY published_ms DESC, id DESC");
    answer(&state, CONTENT_TOPICS, video_list(&state, &params, &sql)).await
}

/// Row 8: the videos the user liked, most recently liked first.
pub async fn favorite_list(
    State(state): State<QueryState>,
    params: Params,
) -> Reply<VideoListBody> {
    let sql = "SELECT v.id, v.author_id, v.title, v.play_path, v.cover_path, v.published_ms \
               FROM favorites f JOIN videos v ON v.id = f.video_id \
               WHERE f.user_id = ? ORDER BY f.liked_ms DESC, v.id DESC";
    answer(&state, CONTENT_TOPICS, video_list(&state, &params, sql)).await
}

/// Row 10: a video's comments, newest first.
pub async fn comment_list(
    State(state): State<QueryState>,
    params: Params,
) -> Reply<CommentListBody> {
    answer(&state, CONTENT_TOPICS, async {
        let viewer = state.auth.require(&params).await?;
        let video_id = params.id("video_id")?;
        let video: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM videos WHERE id = ?")
            .bind(video_id)
            .fetch_optional(&state.store.read)
            .await?;
        if video.is_none() {
            return Err(ApiError::NotFound(format!("video {video_id} does not exist")));
        }
        let rows: Vec<(i64, i64, String, i64)> = sqlx::query_as(
            "SELECT id, user_id, content, created_ms FROM comments WHERE video_id = ? ORDER BY id DESC",
        )
        .bind(video_id)
        .fetch_all(&state.store.read)
        .await?;
        let authors: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let users = hydrate::users(&state, Some(viewer), &authors).await?;
        let comment_list = rows
            .into_iter()
            .zip(users)
            .map(|((id, _, content, created_ms), user)| Comment {
                id,
                user,
                content,
                create_date: create_date(created_ms),
            })
            .collect();
        Ok(CommentListBody { comment_list })
    })
    .await
}

/// `mm-dd` (UTC) of an epoch-millisecond time.
pub fn create_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%m-%d").to_string())
        .unwrap_or_default()
}

async fn user_list(
    state: &QueryState,
    params: &Params,
    sql: &str,
) -> Result<UserListBody, ApiError> {
    let (viewer, user_id) = subject(state, params).await?;
    let ids: Vec<(i64,)> = sqlx::query_as(sql)
        .bind(user_id)
        .fetch_all(&state.store.read)
        .await?;
    let ids: Vec<i64> = ids.into_iter().map(|(id,)| id).collect();
    let user_list = hydrate::users(state, Some(viewer), &ids).await?;
    Ok(UserListBody { user_list })
}

/// Row 12: whom the user follows, most recent first.
pub async fn follow_list(State(state): State<QueryState>, params: Params) -> Reply<UserListBody> {
    let sql = "SELECT followee_id FROM follows WHERE follower_id = ? ORDER BY created_ms DESC, followee_id DESC";
    answer(&state, CONTENT_TOPICS, user_list(&state, &params, sql)).await
}

/// Row 13: who follows the user, most recent first.
pub async fn follower_list(State(state): State<QueryState>, params: Params) -> Reply<UserListBody> {
    let sql = "SELECT follower_id FROM follows WHERE followee_id = ? ORDER BY created_ms DESC, follower_id DESC";
    answer(&state, CONTENT_TOPICS, user_list(&state, &params, sql)).await
}

/// Row 14: mutual follows, each with the latest message of the conversation and `msgType`
/// (0 = the user received it, 1 = sent it). Another user's friend list shows no messages: only
/// the two participants may read a conversation.
pub async fn friend_list(State(state): State<QueryState>, params: Params) -> Reply<FriendListBody> {
    let mut topics = CONTENT_TOPICS.to_vec();
    topics.push(Topic::Messages);
    answer(&state, &topics, async {
        let (viewer, user_id) = subject(&state, &params).await?;
        let rows: Vec<(i64, Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT f.friend_id, lm.content, lm.from_user_id FROM friends f \
             LEFT JOIN latest_messages lm \
               ON lm.pair_lo = CASE WHEN f.user_id < f.friend_id THEN f.user_id ELSE f.friend_id END \
              AND lm.pair_hi = CASE WHEN f.user_id < f.friend_id THEN f.friend_id ELSE f.user_id END \
             WHERE f.user_id = ? ORDER BY f.since_ms DESC, f.friend_id DESC",
        )
        .bind(user_id)
        .fetch_all(&state.store.read)
        .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let users = hydrate::users(&state, Some(viewer), &ids).await?;
        let own = viewer == user_id;
        let user_list = rows
            .into_iter()
            .zip(users)
            .map(|((_, content, from), user)| FriendUser {
                user,
                message: if own {
                    content.unwrap_or_default()
                } else {
                    String::new()
                },
                msg_type: i64::from(own && from == Some(user_id)),
            })
            .collect();
        Ok(FriendListBody { user_list })
    })
    .await
}
