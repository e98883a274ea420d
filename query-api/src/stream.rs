//! `GET /douyin/stream/`: live push of what concerns the token's user, as server-sent events —
//! beside the polling API, which stays as it is.
//!
//! Events (`event:` name, a JSON `data:` line, an `id:`):
//! - `ready` — the stream is subscribed; its id is where it starts (not `open`: a browser's
//!   `EventSource` fires an `open` of its own);
//! - `message` — a chat message to or from the user (the contract's Message object);
//! - `favorite` — a like or unlike of one of the user's videos, with the video's new count;
//! - `comment` — a comment added to (with the Comment object) or deleted from one of the user's
//!   videos, with the video's new count;
//! - `follow` — someone followed or unfollowed the user, with the user's new follower count;
//! - `reset` — what the client missed cannot be replayed: re-read with the polling API;
//! - `end` — the client fell too far behind (its buffer filled): reconnect with the last id.
//!
//! An event is pushed only after its projection applied it, so a read made after receiving it
//! sees it. `Last-Event-ID` (or `?last_event_id=`) resumes exactly after the last event the
//! client had, on any query instance and across restarts ([`cursor`], [`hub`]). Keep-alive
//! comments every 15 s. The token comes in `token` or `Authorization: Bearer`.

pub mod cursor;
pub mod hub;
pub mod items;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use titok_web::http::{ApiError, Params};
use tokio::sync::{mpsc, watch};

pub use hub::{Hub, StreamLimits};

use crate::QueryState;
use cursor::CursorError;
use items::Item;

/// How often an idle stream sends a comment, so proxies and clients keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub async fn stream(
    State(state): State<QueryState>,
    headers: HeaderMap,
    params: Params,
) -> Response {
    match open(&state, &headers, params).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// The token of `Authorization: Bearer …`, when the parameters carry none.
fn with_bearer(mut params: Params, headers: &HeaderMap) -> Params {
    let has_token = params.get("token").is_some_and(|t| !t.trim().is_empty());
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let (false, Some(token)) = (has_token, bearer) {
        params.0.insert("token".into(), token.to_owned());
    }
    params
}

async fn open(
    state: &QueryState,
    headers: &HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let params = with_bearer(params, headers);
    let user = state.auth.require(&params).await?;
    let Some(hub) = state.stream.clone() else {
        return Err(ApiError::Busy(
            "live streams are off on this server (--streams 0): poll instead".into(),
        ));
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or_else(|| params.get("last_event_id"))
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let (resume, layout_reset) = match resume.map(|t| cursor::parse(t, hub.layout())) {
        None => (None, None),
        Some(Ok(c)) => (Some(c), None),
        Some(Err(CursorError::Malformed)) => {
            return Err(ApiError::bad(CursorError::Malformed.to_string()))
        }
        Some(Err(e @ CursorError::Layout(..))) => {
            (None, Some(format!("{e}; re-read with the polling API")))
        }
    };
    let opened = hub.subscribe(user, resume).await?;
    let first = match opened.reset.or(layout_reset) {
        Some(reason) => Event::default()
            .event("reset")
            .data(json(&items::ResetPush { reason })),
        None => Event::default()
            .event("ready")
            .data(json(&items::ReadyPush { user_id: user })),
    }
    .id(cursor::format(&opened.cursor));
    let flow = Flow {
        first: Some(first),
        replay: opened.replay.into_iter(),
        live: opened.live,
        cursor: opened.cursor,
        shutdown: hub.shutdown(),
        ended: false,
        _guard: opened.guard,
    };
    let events = futures::stream::unfold(flow, Flow::next);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response();
    // Proxies that buffer responses (nginx) must pass events through at once.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".into())
}

/// One stream's state: its first event, the replayed events, then the live ones.
struct Flow {
    first: Option<Event>,
    replay: std::vec::IntoIter<Arc<Item>>,
    live: mpsc::Receiver<Arc<Item>>,
    /// What the client has: the id of the last event sent.
    cursor: Vec<i64>,
    shutdown: watch::Receiver<bool>,
    ended: bool,
    _guard: hub::Subscription,
}

impl Flow {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Flow)> {
        if let Some(first) = self.first.take() {
            return Some((Ok(first), self));
        }
        if self.ended {
            return None;
        }
        let item = match self.replay.next() {
            Some(item) => Some(item),
            None => {
                tokio::select! {
                    item = self.live.recv() => item,
                    _ = self.shutdown.wait_for(|stop| *stop) => return None,
                }
            }
        };
        let event = match item {
            Some(item) => {
                cursor::advance(&mut self.cursor, &item.cursor);
                Event::default()
                    .event(item.pushed.kind)
                    .data(&item.pushed.data)
            }
            None => {
                // The hub dropped this stream: its buffer was full.
                self.ended = true;
                Event::default().event("end").data(json(&items::ResetPush {
                    reason: "this client fell behind; reconnect with the last event id".into(),
                }))
            }
        };
        let event = event.id(cursor::format(&self.cursor));
        Some((Ok(event), self))
    }
}

/// The `data:` of each event, by its `event:` name (for the OpenAPI document).
#[derive(serde::Serialize, schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum StreamData {
    /// `ready`
    Ready(items::ReadyPush),
    /// `message`: the contract's Message object.
    Message(titok_views::model::Message),
    /// `favorite`
    Favorite(items::FavoritePush),
    /// `comment`
    Comment(items::CommentPush),
    /// `follow`
    Follow(items::FollowPush),
    /// `reset` and `end`
    Reset(items::ResetPush),
}

/// The schema of the stream's `data:` lines (the endpoint's documented reply).
pub fn schema(gen: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
    gen.subschema_for::<StreamData>()
}
