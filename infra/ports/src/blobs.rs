//! The `BlobStore` port: uploaded videos and covers. The adapter (`titok_adapters::blobs`) is a
//! local directory that the HTTP server exposes under `/static/`.

use std::path::PathBuf;

use async_trait::async_trait;

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Store `bytes` at the relative `path` (e.g. `videos/123.mp4`), durably.
    async fn put(&self, path: &str, bytes: &[u8]) -> std::io::Result<()>;
    /// A local file path for `path`, for tools (ffmpeg) that need one.
    fn local_path(&self, path: &str) -> PathBuf;
}
