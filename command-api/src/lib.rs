//! # titok-command-api
//!
//! The write endpoints of the Douyin API (docs/api.md rows 2, 3, 5, 7, 9, 11, 15). Each handler
//! parses the request into a command, validates it (parameters, token, existence, ownership,
//! not-self), decides the event, appends it and replies only after the log acknowledged it
//! (an acknowledged command is never lost). The reply carries the event's log position in `x-titok-position`. If the log is
//! unreachable the reply is a 503 envelope and nothing was written.
//!
//! Commands never touch views; existence and ownership checks read them after the consistency
//! wait, so a user's own recent writes are always seen.

mod actions;
pub mod idempotency;
pub mod limits;
pub mod media;
mod publish;
mod users;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{post, MethodRouter};
use axum::Router;
use titok_events::{Envelope, EventBody, IdGenerator};
use titok_ports::accounts::{AccountStore, CommandKeys};
use titok_ports::blobs::BlobStore;
use titok_ports::log::{EventLog, Position};
use titok_ports::progress::Consistency;
use titok_views::reads::Reader;
use titok_web::auth::Authenticator;
use titok_web::http::{ApiError, Empty, Reply};
use titok_web::openapi::{opt, reply, req, Endpoint, IDEMPOTENCY_KEY, TOKEN};

pub use publish::publish_video;
pub use users::{recover_pending_registrations, register_user};

/// Everything the write handlers need; cheap to clone.
#[derive(Clone)]
pub struct CommandState {
    pub log: Arc<dyn EventLog>,
    pub accounts: Arc<dyn AccountStore>,
    pub ids: Arc<IdGenerator>,
    pub blobs: Arc<dyn BlobStore>,
    /// Tokens and user existence (the accounts store).
    pub auth: Authenticator,
    /// The wait for the views before a lookup.
    pub consistency: Consistency,
    /// The narrow read side: a video's author, a comment's owner, the user object of a reply.
    pub reader: Reader,
    /// Largest accepted upload, bytes.
    pub max_upload_bytes: usize,
    /// The ffmpeg that takes covers from uploads (`--ffmpeg`), if one runs.
    pub ffmpeg: media::Ffmpeg,
    /// Uploads being received at once, per process and per user.
    pub uploads: limits::Uploads,
    /// Login attempt quotas.
    pub login_limits: limits::LoginLimits,
    /// Password hashing (argon2id, ~19 MiB and tens of ms of one core each) runs on the blocking
    /// pool with at most this many at once, so that a login storm cannot take every core from
    /// the requests the runtime serves.
    pub hashing: Arc<tokio::sync::Semaphore>,
    /// Idempotency keys of commands (the accounts store).
    pub keys: Arc<dyn CommandKeys>,
}

/// How many password hashes may run at once by default: half the cores, at least one.
pub fn default_hashing_permits() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

impl CommandState {
    /// Run password work (`f`) on the blocking pool, at most [`CommandState::hashing`] at once.
    pub async fn hash_work<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| ApiError::Internal(e.into()))
    }

    /// Append one event and wait for the log's acknowledgement.
    pub async fn append(&self, actor: i64, body: EventBody) -> Result<Position, ApiError> {
        self.append_event(self.envelope(actor, body)).await
    }

    /// The envelope of a new event by `actor`, carrying the request's trace id.
    pub fn envelope(&self, actor: i64, body: EventBody) -> Envelope {
        let mut event = Envelope::new(actor, body);
        event.trace_id = titok_web::telemetry::current_request_id();
        event
    }

    /// Append an event and wait for the log's acknowledgement.
    /// Records the acknowledged end for the consistency wait; if that fails the write still
    /// stands (it is durable) and reads may at worst answer stale, marked as such.
    pub async fn append_event(&self, event: Envelope) -> Result<Position, ApiError> {
        let topic = event.topic();
        tracing::Span::current().record("event_id", tracing::field::display(event.event_id));
        let positions = self.log.append(&[event]).await?;
        metrics::counter!("titok_events_appended_total", "topic" => topic.name()).increment(1);
        self.record_acked(&positions).await;
        positions
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("log acknowledged no position")))
    }

    /// Publish acknowledged positions (their ends) for the consistency wait.
    async fn record_acked(&self, positions: &[Position]) {
        let ends: Vec<Position> = positions
            .iter()
            .map(|p| Position {
                offset: p.offset + 1,
                ..*p
            })
            .collect();
        if let Err(err) = self.consistency.positions.record_acked(&ends).await {
            tracing::warn!(error = %err, "cannot record the acknowledged position");
        }
    }
}

/// A reply for an appended command: the body, plus the event's position as a header.
fn acknowledged<T>(result: Result<(T, Position), ApiError>) -> Reply<T> {
    match result {
        Ok((body, position)) => {
            Reply::from(Ok(body)).with_header("x-titok-position", position.to_string())
        }
        Err(err) => Reply::from(Err(err)),
    }
}

/// Every write route with its documentation (the router and `/openapi.json` both come from
/// here). `max_upload_bytes` sizes the publish route's body limit.
pub fn routes(max_upload_bytes: usize) -> Vec<(Endpoint, MethodRouter<CommandState>)> {
    use titok_web::openapi::Kind::{File, Integer, Text};
    // Multipart framing on top of the file itself.
    let upload_limit = DefaultBodyLimit::max(max_upload_bytes + 1024 * 1024);
    let action = |path, summary, params, reply, handler| {
        (Endpoint::get_post(path, summary, params, reply), handler)
    };
    let credentials = || {
        vec![
            req("username", Text, "1–32 characters"),
            req("password", Text, "1–32 characters"),
        ]
    };
    let action_type = |what| req("action_type", Integer, what);
    vec![
        action(
            "/douyin/user/register/",
            "Create an account; returns its id and a token",
            credentials(),
            reply::<users::SessionBody>,
            post(users::register).get(users::register),
        ),
        action(
            "/douyin/user/login/",
            "Log in; returns the user id and a token",
            credentials(),
            reply::<users::SessionBody>,
            post(users::login).get(users::login),
        ),
        (
            Endpoint {
                path: "/douyin/publish/action/",
                methods: &["post"],
                summary: "Publish a video (multipart): the file is sniffed, stored, given a cover",
                params: vec![
                    TOKEN,
                    req(
                        "data",
                        File,
                        "the video file (MP4/MOV, WebM/MKV, AVI, FLV, MPEG)",
                    ),
                    req("title", Text, "1–100 characters"),
                    IDEMPOTENCY_KEY,
                ],
                multipart: true,
                event_stream: false,
                reply: reply::<Empty>,
            },
            post(publish::publish).layer(upload_limit),
        ),
        action(
            "/douyin/favorite/action/",
            "Like (1) or unlike (2) a video; idempotent",
            vec![
                TOKEN,
                req("video_id", Integer, "the video"),
                action_type("1 like, 2 unlike"),
                IDEMPOTENCY_KEY,
            ],
            reply::<Empty>,
            post(actions::favorite).get(actions::favorite),
        ),
        action(
            "/douyin/comment/action/",
            "Post (1, with comment_text) or delete (2, with comment_id; author only) a comment",
            vec![
                TOKEN,
                req("video_id", Integer, "the video"),
                action_type("1 post, 2 delete"),
                opt("comment_text", Text, "1–500 characters, for action_type 1"),
                opt("comment_id", Integer, "for action_type 2"),
                IDEMPOTENCY_KEY,
            ],
            reply::<actions::CommentBody>,
            post(actions::comment).get(actions::comment),
        ),
        action(
            "/douyin/relation/action/",
            "Follow (1) or unfollow (2) a user; idempotent; not yourself",
            vec![
                TOKEN,
                req("to_user_id", Integer, "the other user"),
                action_type("1 follow, 2 unfollow"),
                IDEMPOTENCY_KEY,
            ],
            reply::<Empty>,
            post(actions::relation).get(actions::relation),
        ),
        action(
            "/douyin/message/action/",
            "Send a message (action_type 1); no friendship needed",
            vec![
                TOKEN,
                req("to_user_id", Integer, "the recipient"),
                action_type("1 send"),
                req("content", Text, "1–1000 characters"),
                IDEMPOTENCY_KEY,
            ],
            reply::<Empty>,
            post(actions::message).get(actions::message),
        ),
    ]
}

/// The write routes' documentation.
pub fn endpoints() -> Vec<Endpoint> {
    routes(0).into_iter().map(|(e, _)| e).collect()
}

/// The write side's router.
pub fn router(state: CommandState) -> Router {
    titok_web::openapi::router(routes(state.max_upload_bytes), state)
}

/// Trimmed text of 1..=`max` characters, or a clear error naming the parameter.
pub fn bounded_text<'a>(name: &str, raw: &'a str, max: usize) -> Result<&'a str, ApiError> {
    let text = raw.trim();
    let len = text.chars().count();
    if len == 0 {
        return Err(ApiError::bad(format!("{name} must not be empty")));
    }
    if len > max {
        return Err(ApiError::bad(format!(
            "{name} must be at most {max} characters, got {len}"
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bounded_text_trims_and_counts_characters() {
        assert_eq!(super::bounded_text("t", "  hi ", 5).expect("ok"), "hi");
        assert!(super::bounded_text("t", "   ", 5).is_err());
        assert!(
            super::bounded_text("t", "ééééé", 5).is_ok(),
            "counts characters, not bytes"
        );
        assert!(super::bounded_text("t", "ééééée", 5).is_err());
    }
}
