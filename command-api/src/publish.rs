//! Row 5: publish a video (multipart `data`, `token`, `title`).
//!
//! The upload is read with a size cap, sniffed (a video container, not whatever the name or the
//! content type claims), stored under a server-made name, given a cover (ffmpeg's first frame or a
//! placeholder), and only then is `VideoPublished` appended: the event never points at a file that
//! is not there. The token is checked before the upload is read when the client sends it first;
//! a refusal is answered at once while the rest of the body is drained in the background.

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use titok_events::{EventBody, VideoPublished};
use titok_ports::log::Position;
use titok_web::http::{ApiError, Empty, Params, Reply};

use crate::idempotency::{fingerprint, idempotency_key};
use crate::media::{ffmpeg_cover, placeholder_png, sniff};
use crate::{acknowledged, bounded_text, CommandState};

/// Longest title, characters.
pub const MAX_TITLE_CHARS: usize = 100;

pub async fn publish(
    State(state): State<CommandState>,
    uri: Uri,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Reply<Empty> {
    let mut multipart = match multipart {
        Ok(m) => m,
        Err(e) => {
            return Reply::from(Err(ApiError::bad(format!(
                "publish needs a multipart/form-data body: {e}"
            ))))
        }
    };
    let result = publish_fields(&state, uri, &headers, &mut multipart).await;
    if result.is_err() {
        // Answer now; the rest of the upload is read and dropped in the background (up to the
        // router's body limit) so the client, still sending, gets the reply instead of a reset.
        tokio::spawn(drain(multipart));
    }
    acknowledged(result)
}

/// The token is checked as soon as it is known — in the query string before any field is read,
/// or as a form field the moment that field arrives — so an anonymous or forged upload is refused
/// before its `data` is accepted when the client sends the token first. A client that sends
/// `data` first (the contract lists it first) is checked after the upload, which the cap bounds.
async fn publish_fields(
    state: &CommandState,
    uri: Uri,
    headers: &HeaderMap,
    multipart: &mut Multipart,
) -> Result<(Empty, Position), ApiError> {
    let mut params = Params::from_query(uri.query().unwrap_or(""))?;
    let mut user_id = match params.get("token") {
        Some(_) => Some(state.auth.require(&params).await?),
        None => None,
    };
    let mut data = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad(format!("malformed multipart body: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "data" {
            data = Some(read_capped(field, state.max_upload_bytes).await?);
            continue;
        }
        let text = field
            .text()
            .await
            .map_err(|e| ApiError::bad(format!("malformed multipart field {name}: {e}")))?;
        params.0.insert(name.clone(), text);
        if name == "token" {
            user_id = Some(state.auth.require(&params).await?);
        }
    }
    params.take_idempotency_header(headers.get(titok_web::http::IDEMPOTENCY_HEADER))?;
    let user_id = match user_id {
        Some(id) => id,
        None => state.auth.require(&params).await?,
    };
    let key = idempotency_key(&params)?;
    let title = bounded_text("title", params.text("title")?, MAX_TITLE_CHARS)?.to_owned();
    let data = data.ok_or_else(|| ApiError::bad("data (the video file) is required"))?;
    let decide = async {
        let event = store_video(state, user_id, &title, &data).await?;
        Ok((event, Empty {}))
    };
    let request = || fingerprint("publish", &params, &data);
    state.once(user_id, key, request, decide).await
}

/// Read and drop what is left of a refused upload, for at most a minute.
async fn drain(mut multipart: Multipart) {
    let read_all = async {
        while let Ok(Some(mut field)) = multipart.next_field().await {
            while let Ok(Some(_)) = field.chunk().await {}
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(60), read_all).await;
}

/// Read the upload, keeping at most `max` bytes; an upload over the cap is refused at once (the
/// rest is drained by the caller).
async fn read_capped(
    mut field: axum::extract::multipart::Field<'_>,
    max: usize,
) -> Result<Vec<u8>, ApiError> {
    let too_big = || {
        ApiError::bad(format!(
            "video is too large: at most {} MiB",
            max / (1024 * 1024)
        ))
    };
    let mut bytes = Vec::new();
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                if bytes.len() + chunk.len() > max {
                    return Err(too_big());
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(bytes),
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(too_big())
            }
            Err(e) => return Err(ApiError::bad(format!("upload interrupted: {e}"))),
        }
    }
}

/// Store a video and its cover, then append `VideoPublished`; used by the seed.
pub async fn publish_video(
    state: &CommandState,
    author_id: i64,
    title: &str,
    data: &[u8],
) -> Result<Position, ApiError> {
    let event = store_video(state, author_id, title, data).await?;
    state.append(author_id, event).await
}

/// Store a video and its cover under a new video id; the `VideoPublished` that points at them.
async fn store_video(
    state: &CommandState,
    author_id: i64,
    title: &str,
    data: &[u8],
) -> Result<EventBody, ApiError> {
    let container = sniff(data).ok_or_else(|| {
        ApiError::bad(
            "data is not a video: expected an MP4, MOV, WebM/Matroska, AVI, FLV or MPEG file",
        )
    })?;
    let video_id = state.ids.next_id();
    let play_path = format!("videos/{video_id}.{}", container.extension());
    let stored = |e: std::io::Error| ApiError::Unavailable {
        what: "blob store",
        cause: e.to_string(),
    };
    state.blobs.put(&play_path, data).await.map_err(stored)?;
    let (cover_path, cover) = match ffmpeg_cover(&state.blobs.local_path(&play_path)).await {
        Some(jpeg) => (format!("covers/{video_id}.jpg"), jpeg),
        None => (
            format!("covers/{video_id}.png"),
            placeholder_png(320, 240, video_id),
        ),
    };
    state.blobs.put(&cover_path, &cover).await.map_err(stored)?;
    let event = VideoPublished {
        video_id,
        author_id,
        title: title.to_owned(),
        play_path,
        cover_path,
        published_at_ms: titok_ports::now_ms(),
        content_type: container.content_type().to_owned(),
        size_bytes: i64::try_from(data.len()).ok(),
    };
    Ok(EventBody::VideoPublished(event))
}
