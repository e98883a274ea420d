//! `GET`/`HEAD /static/{path}`: videos, covers and images streamed from the blob store, whichever
//! it is (a directory or an S3 bucket), so that any query instance serves any object and a client
//! can seek: one `Range: bytes=…` range is answered with 206 and `Content-Range`, a range past
//! the end with 416, anything else with the whole object. Objects are named by ids and never
//! change, so replies carry the store's `ETag`, `Last-Modified` and a year of `Cache-Control`
//! (`If-None-Match` answers 304): a CDN in front keeps them. With `--media-presign-secs` (S3)
//! the query API answers with a redirect to a presigned URL of the bucket instead.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use titok_ports::blobs::{BlobError, BlobMeta, BlobStore, ByteRange};
use titok_web::http::{code, status_only, ApiError};

/// What `/static` serves from.
#[derive(Clone)]
struct Media {
    blobs: Arc<dyn BlobStore>,
    /// Redirect to presigned URLs valid this long instead of streaming (S3 only).
    presign: Option<std::time::Duration>,
}

/// The router for `/static`: objects streamed from `blobs`, or — with `presign` — a redirect
/// (307) to a presigned GET URL of the object, valid that long, so that the bytes go from the
/// bucket to the client directly (the URL in the feed stays the same and never expires; only
/// the redirect does, and it says so in `Cache-Control`).
pub fn router(blobs: Arc<dyn BlobStore>, presign: Option<std::time::Duration>) -> axum::Router {
    axum::Router::new()
        .route("/{*path}", axum::routing::get(serve).head(serve))
        .with_state(Media { blobs, presign })
}

/// A redirect to a presigned URL of `path`, if the store signs them.
async fn presigned(
    blobs: &dyn BlobStore,
    path: &str,
    expires: std::time::Duration,
) -> Option<Response> {
    let signed = tokio::time::timeout(STORE_WAIT, blobs.signed_get(path, expires)).await;
    let url = match signed {
        Ok(Ok(Some(url))) => url,
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => return Some(failed(BlobError::Store(e))),
        Err(_) => {
            return Some(failed(BlobError::Store(
                std::io::ErrorKind::TimedOut.into(),
            )))
        }
    };
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&url) {
        headers.insert(header::LOCATION, location);
    }
    // Cached for half the URL's life at most, and only by the client itself.
    if let Ok(cache) = HeaderValue::from_str(&format!("private, max-age={}", expires.as_secs() / 2))
    {
        headers.insert(header::CACHE_CONTROL, cache);
    }
    Some((StatusCode::TEMPORARY_REDIRECT, headers).into_response())
}

/// Parse a `Range` header with one byte range; `None` for anything this server ignores (several
/// ranges, other units, bad syntax): the whole object is sent then (RFC 9110 §14.2).
pub fn parse_range(value: &str) -> Option<ByteRange> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let number = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => Some(ByteRange::Suffix(number(last)?)),
        (false, true) => Some(ByteRange::From(number(first)?)),
        (false, false) => Some(ByteRange::Inclusive(number(first)?, number(last)?)),
        (true, true) => None,
    }
}

/// Object paths are made by the server (`videos/123.mp4`); anything else is simply not there.
fn valid(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
}

fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        other => titok_events::content_type_of(other),
    }
}

fn http_date(ms: i64) -> Option<HeaderValue> {
    let at = chrono::DateTime::from_timestamp_millis(ms)?;
    HeaderValue::from_str(&at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()).ok()
}

fn object_headers(path: &str, meta: &BlobMeta) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if let Some(etag) = meta.etag.as_deref().and_then(|e| quoted(e).ok()) {
        headers.insert(header::ETAG, etag);
    }
    if let Some(date) = http_date(meta.modified_ms) {
        headers.insert(header::LAST_MODIFIED, date);
    }
    headers
}

/// Entity tags are quoted strings; S3 quotes them already, the local store does not.
fn quoted(etag: &str) -> Result<HeaderValue, axum::http::header::InvalidHeaderValue> {
    if etag.starts_with('"') || etag.starts_with("W/") {
        HeaderValue::from_str(etag)
    } else {
        HeaderValue::from_str(&format!("\"{etag}\""))
    }
}

fn not_modified(request: &HeaderMap, reply: &HeaderMap) -> bool {
    match (request.get(header::IF_NONE_MATCH), reply.get(header::ETAG)) {
        (Some(wanted), Some(etag)) => wanted
            .to_str()
            .is_ok_and(|w| w.split(',').any(|t| t.trim() == "*" || t.trim() == etag)),
        _ => false,
    }
}

/// Longest wait for the store to start answering (its metadata, or a read's first bytes); then
/// 503. The body itself streams for as long as the client reads it.
const STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, BlobError>>,
) -> Result<T, BlobError> {
    tokio::time::timeout(STORE_WAIT, call)
        .await
        .unwrap_or_else(|_| {
            Err(BlobError::Store(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {STORE_WAIT:?}"),
            )))
        })
}

/// Failures as Douyin envelopes (a player shows nothing of them, but a client or a cache in
/// between gets `status_code != 0` and a message, never a bare page).
fn failed(error: BlobError) -> Response {
    match error {
        BlobError::NotFound => {
            status_only(StatusCode::NOT_FOUND, code::NOT_FOUND, "no such object")
        }
        BlobError::Unsatisfiable { size } => {
            let message = format!("the range selects no bytes of an object of {size} bytes");
            let mut reply = status_only(
                StatusCode::RANGE_NOT_SATISFIABLE,
                code::BAD_REQUEST,
                &message,
            );
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                reply.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            reply
        }
        BlobError::Store(e) => ApiError::unavailable("blob store", e).into_response(),
    }
}

async fn serve(
    State(media): State<Media>,
    Path(path): Path<String>,
    method: Method,
    request: HeaderMap,
) -> Response {
    if !valid(&path) {
        return failed(BlobError::NotFound);
    }
    let blobs = media.blobs.as_ref();
    if let Some(expires) = media.presign {
        if let Some(redirect) = presigned(blobs, &path, expires).await {
            return redirect;
        }
    }
    if method == Method::HEAD {
        return match bounded(blobs.head(&path)).await {
            Ok(meta) => {
                let mut headers = object_headers(&path, &meta);
                headers.insert(header::CONTENT_LENGTH, meta.size.into());
                (StatusCode::OK, headers).into_response()
            }
            Err(e) => failed(e),
        };
    }
    // A conditional request (a cache revalidating) is answered from the object's metadata alone.
    if request.contains_key(header::IF_NONE_MATCH) {
        if let Ok(meta) = bounded(blobs.head(&path)).await {
            let headers = object_headers(&path, &meta);
            if not_modified(&request, &headers) {
                return (StatusCode::NOT_MODIFIED, headers).into_response();
            }
        }
    }
    let range = request
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_range);
    let read = match bounded(blobs.get(&path, range)).await {
        Ok(read) => read,
        Err(e) => return failed(e),
    };
    let mut headers = object_headers(&path, &read.meta);
    let (start, end) = read.range;
    headers.insert(header::CONTENT_LENGTH, (end - start).into());
    let status = if range.is_some() {
        if let Ok(value) = HeaderValue::from_str(&format!(
            "bytes {start}-{}/{}",
            end.saturating_sub(1),
            read.meta.size
        )) {
            headers.insert(header::CONTENT_RANGE, value);
        }
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    (status, headers, Body::from_stream(read.body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_range_is_understood_and_the_rest_ignored() {
        assert_eq!(parse_range("bytes=0-99"), Some(ByteRange::Inclusive(0, 99)));
        assert_eq!(parse_range("bytes=100-"), Some(ByteRange::From(100)));
        assert_eq!(parse_range("bytes=-500"), Some(ByteRange::Suffix(500)));
        assert_eq!(parse_range("bytes=0-1,5-6"), None);
        assert_eq!(parse_range("items=0-1"), None);
        assert_eq!(parse_range("bytes=-"), None);
        assert_eq!(parse_range("bytes=a-b"), None);
    }

    #[test]
    fn only_server_made_paths_are_served() {
        assert!(valid("videos/123.mp4"));
        assert!(valid("avatar.png"));
        assert!(!valid("../secret"));
        assert!(!valid("videos//1.mp4"));
        assert!(!valid("videos/%2e%2e"));
        assert!(!valid(""));
    }
}
