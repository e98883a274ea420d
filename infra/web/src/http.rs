//! What both HTTP APIs share: the Douyin envelope, the error enum and lenient parameter parsing
//! (token authentication is in [`crate::auth`]).
//!
//! Business failures are HTTP 200 with `status_code != 0` (clients look at `status_code`); only
//! "cannot accept this right now" is HTTP 503, still with the envelope. Every reply carries every
//! field of its endpoint: on failure the endpoint's empty body (`[]` lists, `0` ids, `""` token).

use std::borrow::Cow;
use std::collections::HashMap;

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use titok_ports::accounts::AccountError;
use titok_ports::counters::CountersError;
use titok_ports::log::LogError;
use titok_ports::BoxError;

/// `status_code` values (documented in docs/api.md, "Replies").
pub mod code {
    pub const OK: i32 = 0;
    pub const BAD_REQUEST: i32 = 1;
    pub const UNAUTHENTICATED: i32 = 2;
    pub const FORBIDDEN: i32 = 3;
    pub const NOT_FOUND: i32 = 4;
    pub const CONFLICT: i32 = 5;
    pub const TOO_MANY_REQUESTS: i32 = 429;
    pub const UNAVAILABLE: i32 = 503;
    pub const INTERNAL: i32 = 500;
}

/// Every outcome other than success. The message is shown to clients; causes of `Unavailable` and
/// `Internal` are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Rate limited: HTTP 429 with the envelope.
    #[error("{0}")]
    TooManyRequests(String),
    /// Over a capacity bound of this process: HTTP 503 with the envelope.
    #[error("{0}")]
    Busy(String),
    /// A dependency (the log, a store, a cache) failed: HTTP 503. `source` is logged, never sent.
    #[error("{what} is unavailable, try again later")]
    Unavailable {
        what: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn bad(msg: impl Into<String>) -> ApiError {
        ApiError::BadRequest(msg.into())
    }

    /// `what` is unavailable because of `source` (an error, or a message: `"…".into()`).
    pub fn unavailable(what: &'static str, source: impl Into<BoxError>) -> ApiError {
        ApiError::Unavailable {
            what,
            source: source.into(),
        }
    }

    fn status(&self) -> (StatusCode, i32) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::OK, code::BAD_REQUEST),
            ApiError::Unauthenticated(_) => (StatusCode::OK, code::UNAUTHENTICATED),
            ApiError::Forbidden(_) => (StatusCode::OK, code::FORBIDDEN),
            ApiError::NotFound(_) => (StatusCode::OK, code::NOT_FOUND),
            ApiError::Conflict(_) => (StatusCode::OK, code::CONFLICT),
            ApiError::TooManyRequests(_) => {
                (StatusCode::TOO_MANY_REQUESTS, code::TOO_MANY_REQUESTS)
            }
            ApiError::Unavailable { .. } | ApiError::Busy(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE)
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL),
        }
    }

    fn log(&self) {
        match self {
            ApiError::Unavailable { what, source } => {
                tracing::error!(what, cause = %source, "dependency unavailable")
            }
            ApiError::Internal(err) => tracing::error!(error = ?err, "internal error"),
            _ => {}
        }
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        ApiError::unavailable("event log", e)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::unavailable("read store", e)
    }
}

impl From<CountersError> for ApiError {
    fn from(e: CountersError) -> Self {
        ApiError::unavailable("counter cache", e)
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::UsernameTaken => ApiError::Conflict("username is already taken".into()),
            AccountError::Unavailable(cause) => ApiError::unavailable("account store", cause),
        }
    }
}

/// The Douyin envelope: every reply's `status_code` and `status_msg` beside its body's fields.
/// The same type documents the replies in the OpenAPI document ([`crate::openapi::reply`]),
/// whose published description predates this sharing (hence the `schemars` override).
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(description = "The Douyin envelope around a reply body, for documentation.")]
pub struct Envelope<T> {
    /// 0 = success; 1 bad parameter, 2 not authenticated, 3 forbidden, 4 not found, 5 conflict,
    /// 503 unavailable.
    pub status_code: i32,
    pub status_msg: Cow<'static, str>,
    #[serde(flatten)]
    pub body: T,
}

/// A path no endpoint serves: HTTP 404 with the envelope (router fallback).
pub async fn unknown_path(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    status_only(
        StatusCode::NOT_FOUND,
        code::NOT_FOUND,
        &format!("no endpoint {method} {}; see /openapi.json", uri.path()),
    )
}

/// A method the path does not serve: HTTP 405 with the envelope (the router adds `Allow`).
pub async fn unsupported_method(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    status_only(
        StatusCode::METHOD_NOT_ALLOWED,
        code::BAD_REQUEST,
        &format!(
            "{} does not accept {method}; the Allow header lists what it does",
            uri.path()
        ),
    )
}

/// A reply with this HTTP status and an envelope with no body (`status_code`, `status_msg`).
pub fn status_only(status: StatusCode, status_code: i32, status_msg: &str) -> Response {
    let env = Envelope {
        status_code,
        status_msg: Cow::Owned(status_msg.to_owned()),
        body: Empty {},
    };
    (status, Json(env)).into_response()
}

/// A status-only envelope, for failures before a handler runs (unparseable body).
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        Reply::<Empty>::from(Err(self)).into_response()
    }
}

/// A body with no fields beyond the envelope.
#[derive(Debug, Default, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Empty {}

/// A handler's answer: its body or an error, plus extra headers (log position, staleness).
pub struct Reply<T> {
    pub result: Result<T, ApiError>,
    pub headers: Vec<(HeaderName, String)>,
}

impl<T> From<Result<T, ApiError>> for Reply<T> {
    fn from(result: Result<T, ApiError>) -> Self {
        Reply {
            result,
            headers: Vec::new(),
        }
    }
}

impl<T> Reply<T> {
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((HeaderName::from_static(name), value));
        self
    }
}

impl<T: Serialize + Default> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        let (status, mut response) = match self.result {
            Ok(body) => {
                let env = Envelope {
                    status_code: code::OK,
                    status_msg: Cow::Borrowed("ok"),
                    body,
                };
                (StatusCode::OK, Json(env).into_response())
            }
            Err(err) => {
                err.log();
                let (status, status_code) = err.status();
                let env = Envelope {
                    status_code,
                    status_msg: Cow::Owned(err.to_string()),
                    body: T::default(),
                };
                (status, Json(env).into_response())
            }
        };
        *response.status_mut() = status;
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// Add a Douyin route, served with and without its trailing slash (clients send both).
pub fn douyin_route<S: Clone + Send + Sync + 'static>(
    router: axum::Router<S>,
    path: &str,
    handler: axum::routing::MethodRouter<S>,
) -> axum::Router<S> {
    let trimmed = path.trim_end_matches('/');
    router.route(path, handler.clone()).route(trimmed, handler)
}

/// Query-string and form-body parameters, merged (form wins), on any method.
#[derive(Debug, Default, Clone)]
pub struct Params(pub HashMap<String, String>);

/// Largest form body accepted (uploads use multipart, not this).
const MAX_FORM_BYTES: usize = 256 * 1024;

/// Whether reading a body failed because it passed a length limit: the `LengthLimitError` of
/// `http_body_util::Limited`, which both `to_bytes`'s own limit and a route's `DefaultBodyLimit`
/// (an inner body's error, one `axum::Error` deeper) put in the error's source chain.
fn too_large(err: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let mut params = Params::from_query(req.uri().query().unwrap_or(""))?;
        let key_header = req.headers().get(IDEMPOTENCY_HEADER).cloned();
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            // Read at most the limit: a larger body is refused as soon as it passes the limit,
            // not after it was buffered whole (the route's own limit can be the upload size).
            let body = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
                .await
                .map_err(|e| {
                    if too_large(&e) {
                        ApiError::bad(format!(
                            "form body is too large (at most {} KiB)",
                            MAX_FORM_BYTES / 1024
                        ))
                    } else {
                        ApiError::bad(format!("cannot read the form body: {e}"))
                    }
                })?;
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
                .map_err(|e| ApiError::bad(format!("malformed form body: {e}")))?;
            params.0.extend(pairs);
        }
        params.take_idempotency_header(key_header.as_ref())?;
        Ok(params)
    }
}

/// The idempotency key's header (the common HTTP convention) and its parameter twin, for clients
/// that cannot set headers.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
pub const IDEMPOTENCY_PARAM: &str = "idempotency_key";

impl Params {
    /// Copy an `Idempotency-Key` header into the parameters (as `idempotency_key`); refused when
    /// the parameter is also given with another value, or the header is not text.
    pub fn take_idempotency_header(
        &mut self,
        header: Option<&HeaderValue>,
    ) -> Result<(), ApiError> {
        let Some(value) = header else {
            return Ok(());
        };
        let value = value
            .to_str()
            .map_err(|_| ApiError::bad("Idempotency-Key must be visible ASCII text"))?
            .to_owned();
        match self.0.get(IDEMPOTENCY_PARAM) {
            Some(param) if *param != value => Err(ApiError::bad(
                "Idempotency-Key header and idempotency_key parameter differ",
            )),
            _ => {
                self.0.insert(IDEMPOTENCY_PARAM.to_owned(), value);
                Ok(())
            }
        }
    }

    pub fn from_query(query: &str) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| ApiError::bad(format!("malformed query string: {e}")))?;
        Ok(Params(pairs.into_iter().collect()))
    }

    /// A parameter's text, `None` when absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A required text parameter (may be empty; callers validate length).
    pub fn text(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::bad(format!("{name} is required")))
    }

    /// A required positive id.
    pub fn id(&self, name: &str) -> Result<i64, ApiError> {
        let raw = self.get(name).filter(|s| !s.trim().is_empty());
        let raw = raw.ok_or_else(|| ApiError::bad(format!("{name} is required")))?;
        match parse_integer(raw) {
            Some(v) if v > 0 => Ok(v),
            _ => Err(ApiError::bad(format!(
                "{name} must be a positive integer id, got {raw:?}"
            ))),
        }
    }

    /// An optional positive id: absent or empty gives `None`.
    pub fn opt_id(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(_) => self.id(name).map(Some),
        }
    }

    /// An optional non-negative integer (times): absent or empty gives 0.
    pub fn int_or_zero(&self, name: &str) -> Result<i64, ApiError> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(0),
            Some(raw) => match parse_integer(raw) {
                Some(v) if v >= 0 => Ok(v),
                _ => Err(ApiError::bad(format!(
                    "{name} must be a non-negative integer, got {raw:?}"
                ))),
            },
        }
    }

    /// `action_type` as the endpoint's action `A` (see [`ActionType`]); refused when absent, not
    /// an integer, or not one of `A`'s numbers (the refusal lists them).
    pub fn action<A: ActionType>(&self) -> Result<A, ApiError> {
        let raw = self.text("action_type")?;
        let number = parse_integer(raw);
        A::ACTIONS
            .iter()
            .find(|&&(n, _)| Some(n) == number)
            .map(|&(_, action)| action)
            .ok_or_else(|| {
                let allowed: Vec<i64> = A::ACTIONS.iter().map(|&(n, _)| n).collect();
                ApiError::bad(format!(
                    "action_type must be one of {allowed:?}, got {raw:?}"
                ))
            })
    }
}

/// The actions an endpoint's `action_type` selects (1 like, 2 unlike; …), each with its number on
/// the wire: parsed by [`Params::action`], refused with the allowed numbers otherwise.
pub trait ActionType: Copy + 'static {
    /// Every accepted number with its action, in the order the refusal lists them.
    const ACTIONS: &'static [(i64, Self)];
}

/// An integer, leniently: `42`, ` 42 `, `42.0` or `1.68e+09` (clients send integral floats).
pub fn parse_integer(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    if let Ok(v) = raw.parse::<i64>() {
        return Some(v);
    }
    let f = raw.parse::<f64>().ok()?;
    // 2^63 is exactly representable; anything at or above it does not fit an i64.
    (f.is_finite() && f.fract() == 0.0 && f.abs() < i64::MAX as f64).then_some(f as i64)
}

#[cfg(test)]
mod tests;
