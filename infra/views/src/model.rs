//! The Douyin objects (docs/api.md, "Objects") and the reply bodies built from them, shared by
//! the query API (every read endpoint) and the command API (the comment a comment action returns).
//! Every field is always serialised; lists default to `[]`.

use serde::{Deserialize, Serialize};

use crate::reads::VideoJson;

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub follow_count: i64,
    pub follower_count: i64,
    pub is_follow: bool,
    pub avatar: String,
    pub background_image: String,
    pub signature: String,
    pub total_favorited: i64,
    pub work_count: i64,
    pub favorite_count: i64,
}

#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Video {
    pub id: i64,
    pub author: User,
    pub play_url: String,
    pub cover_url: String,
    pub favorite_count: i64,
    pub comment_count: i64,
    pub is_favorite: bool,
    pub title: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Comment {
    pub id: i64,
    pub user: User,
    pub content: String,
    /// `mm-dd`, UTC.
    pub create_date: String,
}

/// `mm-dd` (UTC) of an epoch-millisecond time: a comment's `create_date`.
pub fn create_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%m-%d").to_string())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Message {
    pub id: i64,
    pub to_user_id: i64,
    pub from_user_id: i64,
    pub content: String,
    /// Epoch milliseconds.
    pub create_time: i64,
}

#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct FriendUser {
    #[serde(flatten)]
    pub user: User,
    pub message: String,
    #[serde(rename = "msgType")]
    pub msg_type: i64,
}

#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct FeedBody {
    #[schemars(with = "Vec<Video>")]
    pub video_list: Vec<VideoJson>,
    pub next_time: i64,
}

#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct VideoListBody {
    #[schemars(with = "Vec<Video>")]
    pub video_list: Vec<VideoJson>,
}

#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct UserBody {
    pub user: Option<User>,
}

#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct UserListBody {
    pub user_list: Vec<User>,
}

#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct FriendListBody {
    pub user_list: Vec<FriendUser>,
}

#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct CommentListBody {
    pub comment_list: Vec<Comment>,
}

#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct ChatBody {
    pub message_list: Vec<Message>,
}
