//! Payloads of every event type. Each carries what its projections need to fold it without reading
//! another projection's tables (projections never read each other's views): a like carries the video's author, a comment deletion its video.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `UserRegistered` v1, topic `titok.users`, key = user id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UserRegistered {
    pub user_id: i64,
    pub username: String,
}

/// `VideoPublished` v2, topic `titok.videos`, key = video id.
/// `play_path` / `cover_path` are blob-store paths; the query API turns them into absolute URLs.
/// v2 added `content_type` and `size_bytes` (for analytics: formats and upload sizes); v1 events
/// are upcast on read ([`VideoPublishedV1::upcast`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VideoPublished {
    pub video_id: i64,
    pub author_id: i64,
    pub title: String,
    pub play_path: String,
    pub cover_path: String,
    /// Publish time, epoch milliseconds: the feed's order and `next_time`.
    pub published_at_ms: i64,
    /// MIME type of the sniffed container, e.g. `video/mp4`.
    pub content_type: String,
    /// Size of the upload in bytes; `None` for videos published before v2.
    pub size_bytes: Option<i64>,
}

/// `VideoPublished` v1, as stored before v2: no `content_type`, no `size_bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VideoPublishedV1 {
    pub video_id: i64,
    pub author_id: i64,
    pub title: String,
    pub play_path: String,
    pub cover_path: String,
    pub published_at_ms: i64,
}

impl VideoPublishedV1 {
    /// v1 → v2: the content type follows from the stored file's extension (the server chose it
    /// from the sniffed container); the size is unknown.
    pub fn upcast(self) -> VideoPublished {
        let content_type = content_type_of(&self.play_path).to_owned();
        VideoPublished {
            video_id: self.video_id,
            author_id: self.author_id,
            title: self.title,
            play_path: self.play_path,
            cover_path: self.cover_path,
            published_at_ms: self.published_at_ms,
            content_type,
            size_bytes: None,
        }
    }
}

/// The MIME type of a stored video, by the extension the server gave it.
pub fn content_type_of(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "avi" => "video/x-msvideo",
        "flv" => "video/x-flv",
        "ts" => "video/mp2t",
        "mpg" => "video/mpeg",
        _ => "application/octet-stream",
    }
}

/// `VideoLiked` / `VideoUnliked` v1, topic `titok.favorites`, key = video id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Favorite {
    pub user_id: i64,
    pub video_id: i64,
    /// The video's author, so `total_favorited` can be counted without the videos view.
    pub author_id: i64,
}

/// `CommentAdded` v1, topic `titok.comments`, key = video id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommentAdded {
    pub comment_id: i64,
    pub video_id: i64,
    pub user_id: i64,
    pub content: String,
    pub created_at_ms: i64,
}

/// `CommentDeleted` v1, topic `titok.comments`, key = video id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommentDeleted {
    pub comment_id: i64,
    pub video_id: i64,
    pub user_id: i64,
}

/// `UserFollowed` / `UserUnfollowed` v1, topic `titok.relations`, key = the unordered pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Follow {
    pub follower_id: i64,
    pub followee_id: i64,
}

/// `MessageSent` v1, topic `titok.messages`, key = the unordered pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MessageSent {
    pub message_id: i64,
    pub from_user_id: i64,
    pub to_user_id: i64,
    pub content: String,
    /// Epoch milliseconds; the chat's `create_time`.
    pub created_at_ms: i64,
}
