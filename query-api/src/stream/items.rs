//! What a stream pushes: events of the streamed topics, each turned into the users it concerns
//! and a JSON `data:` line completed from the views (counts, the video's author, the commenter).
//!
//! Completed only once the event's projection applied it (the hub sees to that), so the counts
//! are at least as new as the event.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;
use titok_events::EventBody;
use titok_views::model::{create_date, Comment, Message};
use titok_views::reads::Reader;

/// An event ready to push: whom it concerns, its SSE event name and its `data:`.
#[derive(Debug)]
pub struct Pushed {
    pub users: Vec<i64>,
    pub kind: &'static str,
    pub data: String,
}

/// One pushed event in a stream, as stored by the hub: where it sits in the log, and the hub's
/// released position after it (what a stream's id becomes once it has the event).
#[derive(Debug)]
pub struct Item {
    pub slot: usize,
    pub offset: i64,
    pub pushed: Pushed,
    pub cursor: Arc<[i64]>,
}

/// `favorite`: a like (`action_type` 1) or unlike (2) of one of the user's videos.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FavoritePush {
    pub video_id: i64,
    /// Who liked or unliked it.
    pub user_id: i64,
    pub action_type: i32,
    /// The video's likes once this event was applied.
    pub favorite_count: i64,
}

/// `comment`: a comment added to (`action_type` 1, with the Comment object) or deleted from (2)
/// one of the user's videos.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CommentPush {
    pub video_id: i64,
    pub action_type: i32,
    pub comment_id: i64,
    /// The comment as `/douyin/comment/list/` shows it (`null` for a deletion).
    pub comment: Option<Comment>,
    /// The video's comments once this event was applied.
    pub comment_count: i64,
}

/// `follow`: someone followed (`action_type` 1) or unfollowed (2) the user.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FollowPush {
    /// Who followed or unfollowed.
    pub user_id: i64,
    pub to_user_id: i64,
    pub action_type: i32,
    /// The user's followers once this event was applied.
    pub follower_count: i64,
}

/// `reset`: the stream cannot replay what the client missed (its id is older than this server
/// holds, of another partition layout, or the log lost events): re-read with the polling API.
/// The event's id is where the stream goes on from.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ResetPush {
    pub reason: String,
}

/// `ready`: the stream is subscribed; its id is where it starts (resume from it to miss nothing
/// that follows).
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReadyPush {
    pub user_id: i64,
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".into())
}

/// Complete `events` (in order; `None` for a record that could not be decoded) into what each
/// pushes (`None`: concerns no one).
pub async fn complete(
    reader: &Reader,
    events: &[Option<&EventBody>],
) -> Result<Vec<Option<Pushed>>, sqlx::Error> {
    let mut videos = HashSet::new();
    let mut followees = HashSet::new();
    let mut commented = HashSet::new();
    for event in events.iter().flatten() {
        match event {
            EventBody::VideoLiked(f) | EventBody::VideoUnliked(f) => {
                videos.insert(f.video_id);
            }
            EventBody::CommentAdded(c) => {
                videos.insert(c.video_id);
                commented.insert(c.video_id);
            }
            EventBody::CommentDeleted(c) => {
                videos.insert(c.video_id);
                commented.insert(c.video_id);
            }
            EventBody::UserFollowed(f) | EventBody::UserUnfollowed(f) => {
                followees.insert(f.followee_id);
            }
            _ => {}
        }
    }
    let videos: Vec<i64> = videos.into_iter().collect();
    let followees: Vec<i64> = followees.into_iter().collect();
    let (video_counts, user_counts) =
        tokio::try_join!(reader.video_counts(&videos), reader.user_counts(&followees))?;
    // A comment concerns its video's author, which the comment event does not carry.
    let mut authors = HashMap::new();
    for video in commented {
        let author = match reader.known_author(video) {
            Some(a) => Some(a),
            None => reader.video_author(video).await?,
        };
        if let Some(a) = author {
            authors.insert(video, a);
        }
    }
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        let pushed = match event {
            None => None,
            Some(EventBody::MessageSent(m)) => Some(Pushed {
                users: if m.from_user_id == m.to_user_id {
                    vec![m.from_user_id]
                } else {
                    vec![m.from_user_id, m.to_user_id]
                },
                kind: "message",
                data: json(&Message {
                    id: m.message_id,
                    to_user_id: m.to_user_id,
                    from_user_id: m.from_user_id,
                    content: m.content.clone(),
                    create_time: m.created_at_ms,
                }),
            }),
            Some(EventBody::VideoLiked(f) | EventBody::VideoUnliked(f)) => Some(Pushed {
                users: vec![f.author_id],
                kind: "favorite",
                data: json(&FavoritePush {
                    video_id: f.video_id,
                    user_id: f.user_id,
                    action_type: if matches!(event, Some(EventBody::VideoLiked(_))) {
                        1
                    } else {
                        2
                    },
                    favorite_count: video_counts
                        .get(&f.video_id)
                        .map_or(0, |c| c.favorite_count),
                }),
            }),
            Some(EventBody::CommentAdded(c)) => match authors.get(&c.video_id) {
                None => None,
                Some(author) => {
                    let user = reader.users(Some(*author), &[c.user_id]).await?;
                    Some(Pushed {
                        users: vec![*author],
                        kind: "comment",
                        data: json(&CommentPush {
                            video_id: c.video_id,
                            action_type: 1,
                            comment_id: c.comment_id,
                            comment: Some(Comment {
                                id: c.comment_id,
                                user: user.into_iter().next().unwrap_or_default(),
                                content: c.content.clone(),
                                create_date: create_date(c.created_at_ms),
                            }),
                            comment_count: video_counts
                                .get(&c.video_id)
                                .map_or(0, |n| n.comment_count),
                        }),
                    })
                }
            },
            Some(EventBody::CommentDeleted(c)) => authors.get(&c.video_id).map(|author| Pushed {
                users: vec![*author],
                kind: "comment",
                data: json(&CommentPush {
                    video_id: c.video_id,
                    action_type: 2,
                    comment_id: c.comment_id,
                    comment: None,
                    comment_count: video_counts.get(&c.video_id).map_or(0, |n| n.comment_count),
                }),
            }),
            Some(EventBody::UserFollowed(f) | EventBody::UserUnfollowed(f)) => Some(Pushed {
                users: vec![f.followee_id],
                kind: "follow",
                data: json(&FollowPush {
                    user_id: f.follower_id,
                    to_user_id: f.followee_id,
                    action_type: if matches!(event, Some(EventBody::UserFollowed(_))) {
                        1
                    } else {
                        2
                    },
                    follower_count: user_counts
                        .get(&f.followee_id)
                        .map_or(0, |c| c.follower_count),
                }),
            }),
            Some(_) => None,
        };
        out.push(pushed);
    }
    Ok(out)
}
