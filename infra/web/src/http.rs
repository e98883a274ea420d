//! What both HTTP APIs share: the Douyin envelope, the error enum, lenient parameter parsing and
//! token authentication.
//!
//! Business failures are HTTP 200 with `status_code != 0` (clients look at `status_code`); only
//! "cannot accept this right now" is HTTP 503, still with the envelope. Every reply carries every
//! field of its endpoint: on failure the endpoint's empty body (`[]` lists, `0` ids, `""` token).

use std::collections::HashMap;

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::auth::TokenKeys;
use titok_ports::accounts::{AccountError, AccountStore};
use titok_ports::counters::CountersError;
use titok_ports::known::KnownIds;
use titok_ports::log::LogError;

/// `status_code` values (documented in the README).
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
    #[error("{what} is unavailable, try again later")]
    Unavailable { what: &'static str, cause: String },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn bad(msg: impl Into<String>) -> ApiError {
        ApiError::BadRequest(msg.into())
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
            ApiError::Unavailable { what, cause } => {
                tracing::error!(what, cause, "dependency unavailable")
            }
            ApiError::Internal(err) => tracing::error!(error = ?err, "internal error"),
            _ => {}
        }
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        ApiError::Unavailable {
            what: "event log",
            cause: e.to_string(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Unavailable {
            what: "read store",
            cause: e.to_string(),
        }
    }
}

impl From<CountersError> for ApiError {
    fn from(e: CountersError) -> Self {
        ApiError::Unavailable {
            what: "counter cache",
            cause: e.to_string(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::UsernameTaken => ApiError::Conflict("username is already taken".into()),
            AccountError::Unavailable(cause) => ApiError::Unavailable {
                what: "account store",
                cause: cause.to_string(),
            },
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a, T> {
    status_code: i32,
    status_msg: &'a str,
    #[serde(flatten)]
    body: T,
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
        status_msg,
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
                    status_msg: "ok",
                    body,
                };
                (StatusCode::OK, Json(env).into_response())
            }
            Err(err) => {
                err.log();
                let (status, status_code) = err.status();
                let msg = err.to_string();
                let env = Envelope {
                    status_code,
                    status_msg: &msg,
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

/// Whether reading a body failed because it passed the length limit.
fn too_large(err: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if e.to_string().contains("length limit exceeded") {
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

    /// `action_type`, which must be one of `allowed`.
    pub fn action_type(&self, allowed: &[i64]) -> Result<i64, ApiError> {
        let raw = self.text("action_type")?;
        match parse_integer(raw) {
            Some(v) if allowed.contains(&v) => Ok(v),
            _ => Err(ApiError::bad(format!(
                "action_type must be one of {allowed:?}, got {raw:?}"
            ))),
        }
    }
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

/// Token checks shared by both APIs: signature and expiry, then that the user exists.
#[derive(Clone)]
pub struct Authenticator {
    pub keys: TokenKeys,
    pub accounts: std::sync::Arc<dyn AccountStore>,
    /// Users seen to exist (accounts are never deleted), so most requests skip the lookup.
    pub known: KnownIds,
}

impl Authenticator {
    /// The token's user; fails when the token is missing, forged, expired or names no user.
    pub async fn require(&self, params: &Params) -> Result<i64, ApiError> {
        match self.optional(params).await? {
            Some(uid) => Ok(uid),
            None => Err(ApiError::Unauthenticated(
                "token is required, log in first".into(),
            )),
        }
    }

    /// Like [`Authenticator::require`], but a missing token is `None`.
    pub async fn optional(&self, params: &Params) -> Result<Option<i64>, ApiError> {
        let token = match params.get("token").map(str::trim) {
            None | Some("") => return Ok(None),
            Some(t) => t,
        };
        let uid = self
            .keys
            .verify(token)
            .map_err(|e| ApiError::Unauthenticated(e.to_string()))?;
        tracing::Span::current().record("user_id", uid);
        if !self.user_exists(uid).await? {
            return Err(ApiError::Unauthenticated(
                "token's user does not exist".into(),
            ));
        }
        Ok(Some(uid))
    }

    /// Whether `user_id` has an account. Accounts are the command side's synchronous truth (a
    /// user exists the moment register replies, whatever the views' lag) and are never deleted,
    /// so a positive answer is cached and most checks make no query.
    pub async fn user_exists(&self, user_id: i64) -> Result<bool, ApiError> {
        if self.known.contains(user_id) {
            return Ok(true);
        }
        let exists = self.accounts.exists(user_id).await?;
        if exists {
            self.known.insert(user_id);
        }
        Ok(exists)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_leniently_but_not_loosely() {
        let cases = [
            ("42", Some(42)),
            (" 7 ", Some(7)),
            ("1.68e+09", Some(1_680_000_000)),
            ("3.0", Some(3)),
            ("3.5", None),
            ("abc", None),
            ("", None),
            ("NaN", None),
            ("1e30", None),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_integer(raw), want, "parsing {raw:?}");
        }
    }

    #[test]
    fn ids_must_be_positive_and_present() {
        let p = Params::from_query("a=5&b=-1&c=x&d=").expect("query");
        assert_eq!(p.id("a").expect("a"), 5);
        assert!(p.id("b").is_err());
        assert!(p.id("c").is_err());
        assert!(p.id("d").is_err());
        assert!(p.id("missing").is_err());
        assert_eq!(p.opt_id("d").expect("empty is none"), None);
        assert_eq!(p.int_or_zero("missing").expect("zero"), 0);
    }
}
