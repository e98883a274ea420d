//! Feed, user info, and the video, comment and relation lists.

use std::time::Duration;

use axum::extract::State;
use titok_events::Topic;
use titok_ports::Position;
use titok_web::http::{ApiError, Params, Reply};

use titok_views::model::*;
use titok_views::reads::VideoRow;

use crate::{answer, answer_waited, normalize_ms, QueryState, CONTENT_TOPICS};

/// Feed page size (docs/api.md row 1).
pub const FEED_PAGE: i64 = 30;

/// How long a feed read waits for the feed index to fold what the views show before reading the
/// page from SQL instead.
const INDEX_WAIT: Duration = Duration::from_millis(20);

/// Row 1: ≤ 30 videos published before `latest_time`, newest first; `next_time` = the page's
/// earliest publish time (epoch ms), to send back as the next `latest_time`. A page never ends
/// inside a millisecond the next video shares ([`titok_views::reads::Reader::feed_page`]).
///
/// The page comes from the feed index when it covers what the consistency wait waited for (see
/// [`titok_views::reads::FeedIndex`]), else from SQL. The SQL statements each page ran are
/// counted (`titok_feed_sql_statements_total`, beside `titok_feed_pages_total`, by viewer:
/// `anonymous` or `token`).
pub async fn feed(State(state): State<QueryState>, params: Params) -> Reply<FeedBody> {
    let viewer_kind = match params.get("token").map(str::trim) {
        None | Some("") => "anonymous",
        Some(_) => "token",
    };
    let (reply, statements) = titok_ports::statements::counted(answer_waited(
        &state,
        CONTENT_TOPICS,
        async |state, applied| {
            let viewer = state.auth.optional(&params).await?;
            let now = titok_ports::now_ms();
            let latest = match normalize_ms(params.int_or_zero("latest_time")?) {
                0 => now + 1,
                t => t,
            };
            let rows = match from_index(state, applied, latest).await {
                Some(rows) => rows,
                None => state.reader.feed_page(latest, FEED_PAGE).await?,
            };
            let next_time = rows.last().map_or(now, |r| r.published_ms);
            let video_list = state.reader.videos(viewer, rows).await?;
            Ok(FeedBody {
                video_list,
                next_time,
            })
        },
    ))
    .await;
    metrics::counter!("titok_feed_pages_total", "viewer" => viewer_kind).increment(1);
    metrics::counter!("titok_feed_sql_statements_total", "viewer" => viewer_kind)
        .increment(statements);
    reply
}

/// The page from the feed index, if it has one and covers the positions the read waited for.
async fn from_index(
    state: &QueryState,
    applied: Option<&[Position]>,
    latest: i64,
) -> Option<Vec<VideoRow>> {
    let index = state.feed.as_ref()?;
    let rows = match applied {
        Some(targets) if index.covering(targets, INDEX_WAIT).await => {
            index.page(latest, FEED_PAGE as usize)
        }
        _ => None,
    };
    let source = if rows.is_some() { "memory" } else { "sql" };
    metrics::counter!("titok_feed_index_pages_total", "source" => source).increment(1);
    rows
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
    answer(&state, CONTENT_TOPICS, async |state| {
        let (viewer, user_id) = subject(state, &params).await?;
        let user = state.reader.users(Some(viewer), &[user_id]).await?.pop();
        Ok(UserBody { user })
    })
    .await
}

/// Which of a user's video lists.
#[derive(Clone, Copy)]
enum Videos {
    Published,
    Liked,
}

async fn video_list(
    state: &QueryState,
    params: &Params,
    which: Videos,
) -> Result<VideoListBody, ApiError> {
    let (viewer, user_id) = subject(state, params).await?;
    let rows: Vec<VideoRow> = match which {
        Videos::Published => state.reader.published_by(user_id).await?,
        Videos::Liked => state.reader.liked_videos(user_id).await?,
    };
    let video_list = state.reader.videos(Some(viewer), rows).await?;
    Ok(VideoListBody { video_list })
}

/// Row 6: the user's videos, newest first.
pub async fn publish_list(State(state): State<QueryState>, params: Params) -> Reply<VideoListBody> {
    answer(&state, CONTENT_TOPICS, async |state| {
        video_list(state, &params, Videos::Published).await
    })
    .await
}

/// Row 8: the videos the user liked, most recently liked first.
pub async fn favorite_list(
    State(state): State<QueryState>,
    params: Params,
) -> Reply<VideoListBody> {
    answer(&state, CONTENT_TOPICS, async |state| {
        video_list(state, &params, Videos::Liked).await
    })
    .await
}

/// Row 10: a video's comments, newest first.
pub async fn comment_list(
    State(state): State<QueryState>,
    params: Params,
) -> Reply<CommentListBody> {
    answer(&state, CONTENT_TOPICS, async |state| {
        let viewer = state.auth.require(&params).await?;
        let video_id = params.id("video_id")?;
        if state.reader.video_author(video_id).await?.is_none() {
            return Err(ApiError::NotFound(format!(
                "video {video_id} does not exist"
            )));
        }
        let rows = state.reader.comments_of(video_id).await?;
        let authors: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let users = state.reader.users(Some(viewer), &authors).await?;
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

async fn user_list(
    state: &QueryState,
    params: &Params,
    followers: bool,
) -> Result<UserListBody, ApiError> {
    let (viewer, user_id) = subject(state, params).await?;
    let ids = state.reader.relations_of(user_id, followers).await?;
    let user_list = state.reader.users(Some(viewer), &ids).await?;
    Ok(UserListBody { user_list })
}

/// Row 12: whom the user follows, most recent first.
pub async fn follow_list(State(state): State<QueryState>, params: Params) -> Reply<UserListBody> {
    answer(&state, CONTENT_TOPICS, async |state| {
        user_list(state, &params, false).await
    })
    .await
}

/// Row 13: who follows the user, most recent first.
pub async fn follower_list(State(state): State<QueryState>, params: Params) -> Reply<UserListBody> {
    answer(&state, CONTENT_TOPICS, async |state| {
        user_list(state, &params, true).await
    })
    .await
}

/// Row 14: mutual follows, each with the latest message of the conversation and `msgType`
/// (0 = the user received it, 1 = sent it). Another user's friend list shows no messages: only
/// the two participants may read a conversation.
pub async fn friend_list(State(state): State<QueryState>, params: Params) -> Reply<FriendListBody> {
    let mut topics = CONTENT_TOPICS.to_vec();
    topics.push(Topic::Messages);
    answer(&state, &topics, async |state| {
        let (viewer, user_id) = subject(state, &params).await?;
        let rows = state.reader.friends_of(user_id).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let users = state.reader.users(Some(viewer), &ids).await?;
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
