//! Payloads of every event type. Each carries what its projections need to fold it without reading
//! another view (DESIGN.md §3): a like carries the video's author, a comment deletion its video.

use serde::{Deserialize, Serialize};

/// `UserRegistered` v1, topic `titok.users`, key = user id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistered {
    pub user_id: i64,
    pub username: String,
}

/// `VideoPublished` v1, topic `titok.videos`, key = video id.
/// `play_path` / `cover_path` are blob-store paths; the query API turns them into absolute URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoPublished {
    pub video_id: i64,
    pub author_id: i64,
    pub title: String,
    pub play_path: String,
    pub cover_path: String,
    /// Publish time, epoch milliseconds: the feed's order and `next_time`.
    pub published_at_ms: i64,
}

/// `VideoLiked` / `VideoUnliked` v1, topic `titok.favorites`, key = video id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Favorite {
    pub user_id: i64,
    pub video_id: i64,
    /// The video's author, so `total_favorited` can be counted without the videos view.
    pub author_id: i64,
}

/// `CommentAdded` v1, topic `titok.comments`, key = video id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentAdded {
    pub comment_id: i64,
    pub video_id: i64,
    pub user_id: i64,
    pub content: String,
    pub created_at_ms: i64,
}

/// `CommentDeleted` v1, topic `titok.comments`, key = video id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentDeleted {
    pub comment_id: i64,
    pub video_id: i64,
    pub user_id: i64,
}

/// `UserFollowed` / `UserUnfollowed` v1, topic `titok.relations`, key = the unordered pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Follow {
    pub follower_id: i64,
    pub followee_id: i64,
}

/// `MessageSent` v1, topic `titok.messages`, key = the unordered pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSent {
    pub message_id: i64,
    pub from_user_id: i64,
    pub to_user_id: i64,
    pub content: String,
    /// Epoch milliseconds; the chat's `create_time`.
    pub created_at_ms: i64,
}
