//! The fold of every event type into the views (DESIGN.md §5): idempotent domain rules, counters in
//! their own rows, nothing read from another projection's tables.

mod comments;
mod favorites;
mod messages;
mod relations;
mod users;
mod videos;

use std::collections::HashSet;

use sqlx::AnyConnection;
use titok_events::{Envelope, EventBody};
use titok_infra::store::Tables;

/// What a batch touched, so the runtime can refresh the counter cache after commit.
#[derive(Debug, Default)]
pub struct Touched {
    pub users: HashSet<i64>,
    pub videos: HashSet<i64>,
    /// Conversations and the `create_time` of their newest message.
    pub chats: Vec<((i64, i64), i64)>,
    /// `occurred_at` (epoch ms) of the newest event folded, for the lag metric.
    pub newest_event_ms: Option<i64>,
}

/// Apply one event inside the projection's transaction.
pub async fn fold(
    conn: &mut AnyConnection,
    t: &Tables,
    event: &Envelope,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    let at = event.occurred_at.timestamp_millis();
    match &event.body {
        EventBody::UserRegistered(e) => users::registered(conn, t, e, at, touched).await,
        EventBody::VideoPublished(e) => videos::published(conn, t, e, touched).await,
        EventBody::VideoLiked(e) => favorites::liked(conn, t, e, at, touched).await,
        EventBody::VideoUnliked(e) => favorites::unliked(conn, t, e, touched).await,
        EventBody::CommentAdded(e) => comments::added(conn, t, e, touched).await,
        EventBody::CommentDeleted(e) => comments::deleted(conn, t, e, touched).await,
        EventBody::UserFollowed(e) => relations::followed(conn, t, e, at, touched).await,
        EventBody::UserUnfollowed(e) => relations::unfollowed(conn, t, e, touched).await,
        EventBody::MessageSent(e) => messages::sent(conn, t, e, touched).await,
    }
}
