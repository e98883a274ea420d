//! Row 5: publish a video (multipart `data`, `token`, `title`).
//!
//! The upload is streamed from the request body to the blob store, never held whole in memory:
//! its first bytes are sniffed (a video container, not whatever the name or the content type
//! claims) and a non-video is refused before anything is stored; the rest goes to the store as
//! a multipart upload in parts (`titok_adapters::blobs::PART_BYTES`), hashed on the way for the
//! idempotency fingerprint, and spooled to a temporary file only when ffmpeg is installed to take
//! the cover from. Uploads at once are bounded per process and per user
//! ([`crate::limits::Uploads`]). A refused, failed or interrupted upload leaves no object behind
//! (the multipart upload is aborted, a stored object deleted), and `VideoPublished` is appended
//! only after the video and its cover are durable in the store: the event never points at an
//! object that is not there. The token is checked before the upload is read when the client
//! sends it first; a refusal is answered at once while the rest of the body is drained in the
//! background.

use axum::body::Bytes;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use titok_events::{EventBody, VideoPublished};
use titok_ports::log::Position;
use titok_web::http::{ApiError, Empty, Params, Reply};
use tokio::io::AsyncWriteExt;

use crate::idempotency::{fingerprint, idempotency_key};
use crate::limits::UploadPermit;
use crate::media::{placeholder_png, sniff, SNIFF_BYTES};
use crate::{acknowledged, bounded_text, CommandState};

/// Longest title, characters.
pub const MAX_TITLE_CHARS: usize = 100;

pub async fn publish(
    State(state): State<CommandState>,
    uri: Uri,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut multipart = match multipart {
        Ok(m) => m,
        Err(e) => {
            return Reply::<Empty>::from(Err(ApiError::bad(format!(
                "publish needs a multipart/form-data body: {e}"
            ))))
            .into_response()
        }
    };
    let result = publish_fields(&state, uri, &headers, &mut multipart).await;
    if result.is_err() {
        // Answer now; the rest of the upload is read and dropped in the background (up to the
        // router's body limit) so the client, still sending, gets the reply instead of a reset.
        // The connection closes after that (the body may be cut at the limit): say so, so that
        // the client does not send its next request on it.
        tokio::spawn(drain(multipart));
        let close = [(axum::http::header::CONNECTION, "close")];
        return (close, acknowledged(result)).into_response();
    }
    acknowledged(result).into_response()
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
    let mut stored: Option<StoredVideo> = None;
    let result = read_and_publish(state, uri, headers, multipart, &mut stored).await;
    if let Some(video) = stored.filter(|v| !v.published) {
        // Refused after the upload, or a retry answered with the first attempt's reply.
        video.remove(state).await;
    }
    result
}

async fn read_and_publish(
    state: &CommandState,
    uri: Uri,
    headers: &HeaderMap,
    multipart: &mut Multipart,
    stored: &mut Option<StoredVideo>,
) -> Result<(Empty, Position), ApiError> {
    let mut params = Params::from_query(uri.query().unwrap_or(""))?;
    let mut user_id = match params.get("token") {
        Some(_) => Some(state.auth.require(&params).await?),
        None => None,
    };
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad(format!("malformed multipart body: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "data" {
            if stored.is_some() {
                return Err(ApiError::bad("data (the video file) is given twice"));
            }
            let mut permit: UploadPermit = state.uploads.admit()?;
            if let Some(user) = user_id {
                state.uploads.admit_user(&mut permit, user)?;
            }
            let max = state.max_upload_bytes;
            let chunks = field.map(move |chunk| chunk.map_err(|e| upload_error(&e, max)));
            *stored = Some(store_video(state, chunks).await?);
            drop(permit);
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
    let video = stored
        .as_mut()
        .ok_or_else(|| ApiError::bad("data (the video file) is required"))?;
    let digest = video.digest;
    let request = || fingerprint("publish", &params, &digest);
    let decide = async {
        video.published = true;
        Ok((video.event(user_id, &title), Empty {}))
    };
    state.once(user_id, key, request, decide).await
}

/// The error that ended an upload's chunks.
fn upload_error(e: &axum::extract::multipart::MultipartError, max: usize) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        too_large(max)
    } else {
        ApiError::bad(format!("upload interrupted: {e}"))
    }
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

fn too_large(max: usize) -> ApiError {
    ApiError::bad(format!(
        "video is too large: at most {} MiB",
        max / (1024 * 1024)
    ))
}

/// Store a video and its cover, then append `VideoPublished`; used by the seed.
pub async fn publish_video(
    state: &CommandState,
    author_id: i64,
    title: &str,
    data: &[u8],
) -> Result<Position, ApiError> {
    let chunks = futures::stream::iter([Ok(Bytes::copy_from_slice(data))]);
    let video = store_video(state, chunks).await?;
    match state.append(author_id, video.event(author_id, title)).await {
        Ok(position) => Ok(position),
        Err(e) => {
            video.remove(state).await;
            Err(e)
        }
    }
}

/// A video and its cover in the blob store, not yet (or not any more) pointed at by an event.
struct StoredVideo {
    video_id: i64,
    play_path: String,
    cover_path: String,
    content_type: &'static str,
    size: u64,
    /// SHA-256 of the video's bytes (the idempotency fingerprint's part for `data`).
    digest: [u8; 32],
    /// An event pointing at the objects was handed to the log: keep them.
    published: bool,
}

impl StoredVideo {
    fn event(&self, author_id: i64, title: &str) -> EventBody {
        EventBody::VideoPublished(VideoPublished {
            video_id: self.video_id,
            author_id,
            title: title.to_owned(),
            play_path: self.play_path.clone(),
            cover_path: self.cover_path.clone(),
            published_at_ms: titok_ports::now_ms(),
            content_type: self.content_type.to_owned(),
            size_bytes: i64::try_from(self.size).ok(),
        })
    }

    async fn remove(self, state: &CommandState) {
        for path in [&self.play_path, &self.cover_path] {
            if let Err(e) = state.blobs.delete(path).await {
                tracing::warn!(path, error = %e, "could not remove an unpublished upload");
            }
        }
    }
}

fn store_error(e: std::io::Error) -> ApiError {
    ApiError::unavailable("blob store", e)
}

/// Stream an upload into the store under a new video id, with its cover. The first
/// [`SNIFF_BYTES`] decide whether it is a video at all; the size cap is enforced by the body
/// (the caller's stream ends with the error).
async fn store_video(
    state: &CommandState,
    chunks: impl Stream<Item = Result<Bytes, ApiError>>,
) -> Result<StoredVideo, ApiError> {
    let mut chunks = std::pin::pin!(chunks);
    let mut first: Vec<Bytes> = Vec::new();
    let mut head = Vec::new();
    while head.len() < SNIFF_BYTES {
        let Some(chunk) = chunks.next().await else {
            break;
        };
        let chunk = chunk?;
        head.extend_from_slice(&chunk[..chunk.len().min(SNIFF_BYTES - head.len())]);
        first.push(chunk);
    }
    let container = sniff(&head).ok_or_else(|| {
        ApiError::bad(
            "data is not a video: expected an MP4, MOV, WebM/Matroska, AVI, FLV or MPEG file",
        )
    })?;
    let video_id = state.ids.next_id();
    let play_path = format!("videos/{video_id}.{}", container.extension());
    let mut spool = Spool::open(state.ffmpeg.installed(), video_id).await;
    let mut writer = state.blobs.create(&play_path).await.map_err(store_error)?;
    let mut hash = Sha256::new();
    let max = state.max_upload_bytes;
    let copied = async {
        let mut all = futures::stream::iter(first.into_iter().map(Ok)).chain(chunks.as_mut());
        let mut total = 0;
        while let Some(chunk) = all.next().await {
            let chunk = chunk?;
            total += chunk.len();
            if total > max {
                return Err(too_large(max));
            }
            hash.update(&chunk);
            spool.write(&chunk).await;
            writer.write(chunk).await.map_err(store_error)?;
        }
        Ok::<(), ApiError>(())
    }
    .await;
    if let Err(e) = copied {
        writer.abort().await;
        spool.remove().await;
        return Err(e);
    }
    let size = match writer.finish().await {
        Ok(size) => size,
        Err(e) => {
            spool.remove().await;
            return Err(store_error(e));
        }
    };
    let cover = match spool.path() {
        Some(file) => state.ffmpeg.cover(file).await,
        None => None,
    };
    spool.remove().await;
    let (cover_path, cover) = match cover {
        Some(jpeg) => (format!("covers/{video_id}.jpg"), jpeg),
        None => (
            format!("covers/{video_id}.png"),
            placeholder_png(320, 240, video_id),
        ),
    };
    if let Err(e) = state.blobs.put(&cover_path, cover.into()).await {
        let _ = state.blobs.delete(&play_path).await;
        return Err(store_error(e));
    }
    Ok(StoredVideo {
        video_id,
        play_path,
        cover_path,
        content_type: container.content_type(),
        size,
        digest: hash.finalize().into(),
        published: false,
    })
}

/// A temporary copy of an upload for ffmpeg, which needs a file to take the cover from; made
/// only when ffmpeg is installed. A write that fails (a full temp dir) just drops the copy: the
/// video then gets the placeholder cover.
struct Spool {
    file: Option<(tokio::fs::File, std::path::PathBuf)>,
}

impl Spool {
    async fn open(wanted: bool, video_id: i64) -> Spool {
        if !wanted {
            return Spool { file: None };
        }
        let path = std::env::temp_dir().join(format!("titok-upload-{video_id}.part"));
        let file = tokio::fs::File::create(&path).await.ok().map(|f| (f, path));
        Spool { file }
    }

    async fn write(&mut self, chunk: &[u8]) {
        if let Some((file, _)) = &mut self.file {
            if file.write_all(chunk).await.is_err() {
                self.remove().await;
            }
        }
    }

    fn path(&self) -> Option<&std::path::Path> {
        self.file.as_ref().map(|(_, path)| path.as_path())
    }

    async fn remove(&mut self) {
        if let Some((mut file, path)) = self.file.take() {
            let _ = file.flush().await;
            drop(file);
            let _ = tokio::fs::remove_file(path).await;
        }
    }
}
