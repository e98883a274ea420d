//! Rows 7, 9, 11, 15: like/unlike, comment/delete, follow/unfollow, send message.
//!
//! Like, unlike, follow and unfollow are appended even when they change nothing: the projections
//! apply them idempotently (a like that exists adds nothing), which keeps the command side free of
//! racy "already liked?" reads and the reply a plain success, as clients expect.

use axum::extract::State;
use std::future::Future;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use titok_events::{CommentAdded, CommentDeleted, EventBody, Favorite, Follow, MessageSent, Topic};
use titok_ports::progress::Freshness;
use titok_views::model::{create_date, Comment};
use titok_web::http::{ActionType, ApiError, Empty, Params, Reply};

use crate::idempotency::{fingerprint, idempotency_key};
use crate::{acknowledged, bounded_text, CommandState};

/// Longest comment, characters.
pub const MAX_COMMENT_CHARS: usize = 500;
/// Longest chat message, characters.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// The author of a video, after waiting until the videos view reflects every acknowledged publish.
/// A video missing from a view that is still behind is not known to be missing: 503.
async fn video_author(state: &CommandState, video_id: i64) -> Result<i64, ApiError> {
    // A video once seen keeps its author: no wait and no query.
    if let Some(author) = state.reader.known_author(video_id) {
        return Ok(author);
    }
    let freshness = state.consistency.wait(&[Topic::Videos]).await;
    match state.reader.video_author(video_id).await? {
        Some(author) => Ok(author),
        None if freshness == Freshness::Stale => Err(behind(
            "the videos view (still catching up with the log, so the video may exist)",
        )),
        None => Err(ApiError::NotFound(format!(
            "video {video_id} does not exist"
        ))),
    }
}

/// The refusal of a lookup that found nothing in a view still catching up: the thing may exist.
fn behind(what: &'static str) -> ApiError {
    ApiError::unavailable(what, "consistency wait timed out")
}

/// `action_type` of `/douyin/favorite/action/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LikeAction {
    Like,
    Unlike,
}

impl ActionType for LikeAction {
    const ACTIONS: &'static [(i64, Self)] = &[(1, LikeAction::Like), (2, LikeAction::Unlike)];
}

/// `action_type` of `/douyin/comment/action/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommentAction {
    Post,
    Delete,
}

impl ActionType for CommentAction {
    const ACTIONS: &'static [(i64, Self)] = &[(1, CommentAction::Post), (2, CommentAction::Delete)];
}

/// `action_type` of `/douyin/relation/action/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FollowAction {
    Follow,
    Unfollow,
}

impl ActionType for FollowAction {
    const ACTIONS: &'static [(i64, Self)] =
        &[(1, FollowAction::Follow), (2, FollowAction::Unfollow)];
}

/// `action_type` of `/douyin/message/action/`: sending is the only action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageAction {
    Send,
}

impl ActionType for MessageAction {
    const ACTIONS: &'static [(i64, Self)] = &[(1, MessageAction::Send)];
}

/// The frame of every keyed action: the token's user, the idempotency key, then `decide` for that
/// user, appended once per key ([`CommandState::once`]: a retry with the key gets the first
/// reply), and the reply with the event's position.
async fn keyed_action<T, Decision>(
    state: &CommandState,
    params: &Params,
    name: &str,
    decide: impl FnOnce(i64) -> Decision,
) -> Reply<T>
where
    T: Serialize + DeserializeOwned,
    Decision: Future<Output = Result<(EventBody, T), ApiError>>,
{
    let result = async {
        let actor = state.auth.require(params).await?;
        let key = idempotency_key(params)?;
        let request = || fingerprint(name, params, b"");
        state.once(actor, key, request, decide(actor)).await
    };
    acknowledged(result.await)
}

/// The other user of a relation or conversation: must exist and not be the actor.
async fn other_user(
    state: &CommandState,
    actor: i64,
    params: &Params,
    what: &str,
) -> Result<i64, ApiError> {
    let other = params.id("to_user_id")?;
    if other == actor {
        return Err(ApiError::bad(format!("you cannot {what} yourself")));
    }
    if !state.auth.user_exists(other).await? {
        return Err(ApiError::NotFound(format!("user {other} does not exist")));
    }
    Ok(other)
}

pub async fn favorite(State(state): State<CommandState>, params: Params) -> Reply<Empty> {
    let (state, params) = (&state, &params);
    keyed_action(state, params, "favorite", |user_id| async move {
        let video_id = params.id("video_id")?;
        let action: LikeAction = params.action()?;
        let author_id = video_author(state, video_id).await?;
        let fav = Favorite {
            user_id,
            video_id,
            author_id,
        };
        let body = match action {
            LikeAction::Like => EventBody::VideoLiked(fav),
            LikeAction::Unlike => EventBody::VideoUnliked(fav),
        };
        Ok((body, Empty {}))
    })
    .await
}

#[derive(Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CommentBody {
    pub comment: Option<Comment>,
}

pub async fn comment(State(state): State<CommandState>, params: Params) -> Reply<CommentBody> {
    let (state, params) = (&state, &params);
    keyed_action(state, params, "comment", |user_id| async move {
        let video_id = params.id("video_id")?;
        match params.action()? {
            CommentAction::Post => add_comment(state, user_id, video_id, params).await,
            CommentAction::Delete => delete_comment(state, user_id, video_id, params).await,
        }
    })
    .await
}

/// A new comment's event and the reply that shows it.
async fn add_comment(
    state: &CommandState,
    user_id: i64,
    video_id: i64,
    params: &Params,
) -> Result<(EventBody, CommentBody), ApiError> {
    let content = bounded_text(
        "comment_text",
        params.text("comment_text")?,
        MAX_COMMENT_CHARS,
    )?
    .to_owned();
    video_author(state, video_id).await?;
    let comment_id = state.ids.next_id();
    let created_at_ms = titok_ports::now_ms();
    let user = state.reader.user_object(user_id).await?;
    let comment = Comment {
        id: comment_id,
        user,
        content: content.clone(),
        create_date: create_date(created_at_ms),
    };
    let event = CommentAdded {
        comment_id,
        video_id,
        user_id,
        content,
        created_at_ms,
    };
    Ok((
        EventBody::CommentAdded(event),
        CommentBody {
            comment: Some(comment),
        },
    ))
}

/// The deletion of the actor's own comment.
async fn delete_comment(
    state: &CommandState,
    user_id: i64,
    video_id: i64,
    params: &Params,
) -> Result<(EventBody, CommentBody), ApiError> {
    let comment_id = params.id("comment_id")?;
    let freshness = state.consistency.wait(&[Topic::Comments]).await;
    let row = state.reader.comment_owner(comment_id).await?;
    if row.is_none() && freshness == Freshness::Stale {
        return Err(behind(
            "the comments view (still catching up with the log, so the comment may exist)",
        ));
    }
    let not_found = || {
        ApiError::NotFound(format!(
            "comment {comment_id} does not exist on video {video_id}"
        ))
    };
    let (on_video, author) = row.ok_or_else(not_found)?;
    if on_video != video_id {
        return Err(not_found());
    }
    if author != user_id {
        return Err(ApiError::Forbidden(
            "only the author of a comment may delete it".into(),
        ));
    }
    let event = CommentDeleted {
        comment_id,
        video_id,
        user_id,
    };
    Ok((
        EventBody::CommentDeleted(event),
        CommentBody { comment: None },
    ))
}

pub async fn relation(State(state): State<CommandState>, params: Params) -> Reply<Empty> {
    let (state, params) = (&state, &params);
    keyed_action(state, params, "relation", |follower_id| async move {
        let action: FollowAction = params.action()?;
        let followee_id = other_user(state, follower_id, params, "follow or unfollow").await?;
        let follow = Follow {
            follower_id,
            followee_id,
        };
        let body = match action {
            FollowAction::Follow => EventBody::UserFollowed(follow),
            FollowAction::Unfollow => EventBody::UserUnfollowed(follow),
        };
        Ok((body, Empty {}))
    })
    .await
}

pub async fn message(State(state): State<CommandState>, params: Params) -> Reply<Empty> {
    let (state, params) = (&state, &params);
    keyed_action(state, params, "message", |from_user_id| async move {
        let MessageAction::Send = params.action()?;
        let content =
            bounded_text("content", params.text("content")?, MAX_MESSAGE_CHARS)?.to_owned();
        let to_user_id = other_user(state, from_user_id, params, "send a message to").await?;
        let event = MessageSent {
            message_id: state.ids.next_id(),
            from_user_id,
            to_user_id,
            content,
            created_at_ms: titok_ports::now_ms(),
        };
        Ok((EventBody::MessageSent(event), Empty {}))
    })
    .await
}
