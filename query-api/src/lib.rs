//! # titok-query-api
//!
//! The read endpoints of the Douyin API (docs/api.md rows 1, 4, 6, 8, 10, 12–14, 16), served
//! from the projections' views and the counter cache, and the live stream beside them
//! ([`stream`]: `/douyin/stream/`, server-sent events). Every read first waits (bounded) until the
//! views reflect all writes acknowledged before it arrived — read-after-write for every user the
//! write touches, because it waits per partition for what was acknowledged — and says `x-titok-stale: true` when the wait timed out.
//!
//! With MySQL read replicas configured, a read then goes to a replica whose checkpoints show
//! every write that wait covered, else to the primary (`titok_views::replicas`); the reply names
//! the pool in `x-titok-read-from`.
//!
//! [`router`] builds the axum router over a [`QueryState`]; the `titok` binary serves it.

mod chat;
mod lists;
pub mod media;
pub mod stream;

use axum::routing::{get, MethodRouter};
use axum::Router;
use titok_events::Topic;
use titok_ports::progress::{Consistency, Freshness};
use titok_ports::Position;
use titok_views::model::{
    ChatBody, CommentListBody, FeedBody, FriendListBody, UserBody, UserListBody, VideoListBody,
};
use titok_views::reads::{FeedIndex, Reader};
use titok_views::replicas::ReadPools;
use titok_web::auth::Authenticator;
use titok_web::http::{ApiError, Reply};
use titok_web::openapi::{opt, reply, req, Endpoint, TOKEN};

/// Everything the read handlers need; cheap to clone.
#[derive(Clone)]
pub struct QueryState {
    /// The views, the counter cache and the public URL (`titok_views::reads`).
    pub reader: Reader,
    pub auth: Authenticator,
    pub consistency: Consistency,
    /// Where reads go: the primary, or read replicas that caught up (`--mysql-read-url`).
    pub pools: ReadPools,
    /// The newest videos in memory, for the feed (`--feed-index-videos`; `None` = off).
    pub feed: Option<FeedIndex>,
    /// Live streams (`/douyin/stream/`; `None` = off, `--streams 0`).
    pub stream: Option<stream::Hub>,
}

impl QueryState {
    /// A chat poll that had to query SQL (`titok_chat_db_queries_total`: the shortcut's effect).
    pub fn count_chat_query(&self) {
        metrics::counter!("titok_chat_db_queries_total").increment(1);
    }
}

/// Topics whose projections feed users and videos (names, counts, is_follow, is_favorite).
const CONTENT_TOPICS: &[Topic] = &[
    Topic::Users,
    Topic::Videos,
    Topic::Favorites,
    Topic::Comments,
    Topic::Relations,
];

/// Wait for the views fed by `topics`, then run the read — on a read replica that shows every
/// write the wait covered, when replicas are configured (`x-titok-read-from` names the pool) —
/// and mark the reply stale if the wait gave up (a stale read goes to the primary).
async fn answer<T>(
    state: &QueryState,
    topics: &[Topic],
    read: impl AsyncFnOnce(&QueryState) -> Result<T, ApiError>,
) -> Reply<T> {
    answer_waited(state, topics, async |state, _| read(state).await).await
}

/// Like [`answer`], also handing the read the acknowledged ends its wait saw applied (`None` when
/// the wait gave up): what an in-memory answer must cover to be as fresh as the views.
async fn answer_waited<T>(
    state: &QueryState,
    topics: &[Topic],
    read: impl AsyncFnOnce(&QueryState, Option<&[Position]>) -> Result<T, ApiError>,
) -> Reply<T> {
    let (freshness, targets) = state.consistency.wait_for(topics).await;
    // A stale read has nothing a replica (or the feed index) could be checked against.
    let (targets, applied) = match freshness {
        Freshness::Fresh => (targets, true),
        Freshness::Stale => (Vec::new(), false),
    };
    let applied = applied.then_some(targets.as_slice());
    let reply = if state.pools.has_replicas() {
        // A stale read goes to the primary.
        let (pool, chosen) = state.pools.choose(topics, &targets).await;
        let mut on = state.clone();
        on.reader.pool = pool;
        Reply::from(read(&on, applied).await).with_header("x-titok-read-from", chosen.name())
    } else {
        Reply::from(read(state, applied).await)
    };
    match freshness {
        Freshness::Fresh => reply,
        Freshness::Stale => reply.with_header("x-titok-stale", "true".into()),
    }
}

/// Every read route with its documentation (the router and `/openapi.json` both come from here).
pub fn routes() -> Vec<(Endpoint, MethodRouter<QueryState>)> {
    use titok_web::openapi::Kind::{Integer, Text};
    let user_id = opt("user_id", Integer, "whose list (default: the token's user)");
    let list = |path, summary, reply, handler| {
        let params = vec![TOKEN, user_id];
        (Endpoint::get_post(path, summary, params, reply), handler)
    };
    vec![
        (
            Endpoint::get_post(
                "/douyin/feed/",
                "Up to 30 videos published before latest_time, newest first; next_time = the earliest (epoch ms); a page never ends inside a millisecond the next video shares (more than 30 only when over 30 share one)",
                vec![
                    opt("latest_time", Integer, "only videos published before it; seconds or milliseconds; 0 or missing = now"),
                    opt("token", Text, "for is_favorite / is_follow"),
                ],
                reply::<FeedBody>,
            ),
            get(lists::feed).post(lists::feed),
        ),
        list("/douyin/user/", "One user, relative to the token's user", reply::<UserBody>, get(lists::user_info).post(lists::user_info)),
        list("/douyin/publish/list/", "A user's videos, newest first", reply::<VideoListBody>, get(lists::publish_list).post(lists::publish_list)),
        list("/douyin/favorite/list/", "Videos a user liked, most recent first", reply::<VideoListBody>, get(lists::favorite_list).post(lists::favorite_list)),
        (
            Endpoint::get_post(
                "/douyin/comment/list/",
                "A video's comments, newest first",
                vec![TOKEN, req("video_id", Integer, "the video")],
                reply::<CommentListBody>,
            ),
            get(lists::comment_list).post(lists::comment_list),
        ),
        list("/douyin/relation/follow/list/", "Whom a user follows", reply::<UserListBody>, get(lists::follow_list).post(lists::follow_list)),
        // The official document's typo, which some clients copied.
        list("/douyin/relatioin/follow/list/", "Alias of /douyin/relation/follow/list/ (the official document's typo)", reply::<UserListBody>, get(lists::follow_list).post(lists::follow_list)),
        list("/douyin/relation/follower/list/", "Who follows a user", reply::<UserListBody>, get(lists::follower_list).post(lists::follower_list)),
        list("/douyin/relation/friend/list/", "Mutual follows, each with the latest message and msgType", reply::<FriendListBody>, get(lists::friend_list).post(lists::friend_list)),
        (
            Endpoint::get_post(
                "/douyin/message/chat/",
                "Messages between the token's user and to_user_id newer than pre_msg_time, oldest first",
                vec![
                    TOKEN,
                    req("to_user_id", Integer, "the other participant"),
                    opt("pre_msg_time", Integer, "create_time (epoch ms) of the newest message held; 0 or missing = all"),
                ],
                reply::<ChatBody>,
            ),
            get(chat::chat).post(chat::chat),
        ),
        (
            Endpoint::event_stream(
                "/douyin/stream/",
                "Live events concerning the token's user (text/event-stream): ready, message, favorite, comment, follow, reset, end — each pushed once its projection applied it; resume with Last-Event-ID",
                vec![
                    opt("token", Text, "the user's token (or Authorization: Bearer)"),
                    opt("last_event_id", Text, "resume after this event id (or the Last-Event-ID header)"),
                ],
                stream::schema,
            ),
            get(stream::stream),
        ),
    ]
}

/// The read routes' documentation.
pub fn endpoints() -> Vec<Endpoint> {
    routes().into_iter().map(|(e, _)| e).collect()
}

/// The read side's router.
pub fn router(state: QueryState) -> Router {
    titok_web::openapi::router(routes(), state)
}

/// Feed and chat clients send seconds or milliseconds: anything below 10^11 is seconds.
pub fn normalize_ms(value: i64) -> i64 {
    if value > 0 && value < 100_000_000_000 {
        value * 1000
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seconds_become_milliseconds_and_milliseconds_stay() {
        assert_eq!(super::normalize_ms(1_700_000_000), 1_700_000_000_000);
        assert_eq!(super::normalize_ms(1_700_000_000_123), 1_700_000_000_123);
        assert_eq!(super::normalize_ms(0), 0);
    }
}
