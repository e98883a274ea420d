//! The `BlobStore` port: uploaded videos and covers, written as a stream of chunks and read back
//! whole or by byte range. The adapter (`titok_adapters::blobs`) is an object store: a directory
//! under the data dir (the embedded default) or an S3 bucket (AWS, MinIO, SeaweedFS, Ceph, R2).
//! The query API serves objects under `/static/` from whichever store is configured.

use std::pin::Pin;

use async_trait::async_trait;

/// A chunk of an object's bytes.
pub type Chunk = bytes::Bytes;

/// An object's bytes as they arrive from the store.
pub type ChunkStream = Pin<Box<dyn futures::Stream<Item = std::io::Result<Chunk>> + Send>>;

/// Which bytes of an object a read wants (HTTP `Range: bytes=…`, one range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last`, both inclusive.
    Inclusive(u64, u64),
    /// `first-`: from `first` to the end.
    From(u64),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The half-open range `[start, end)` this selects of an object of `size` bytes, or `None`
    /// if it selects nothing (RFC 9110 §14.1.2: unsatisfiable).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        let (start, end) = match self {
            ByteRange::Inclusive(first, last) if first <= last => {
                (first, last.saturating_add(1).min(size))
            }
            ByteRange::Inclusive(..) => return None,
            ByteRange::From(first) => (first, size),
            ByteRange::Suffix(0) => return None,
            ByteRange::Suffix(n) => (size.saturating_sub(n), size),
        };
        (start < end).then_some((start, end))
    }
}

/// What the store knows of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    /// Size in bytes.
    pub size: u64,
    /// The store's entity tag, if it has one.
    pub etag: Option<String>,
    /// Last modified, milliseconds since the epoch.
    pub modified_ms: i64,
}

/// An object (or the part of it a range asked for) being read.
pub struct BlobRead {
    pub meta: BlobMeta,
    /// The half-open byte range `body` carries.
    pub range: (u64, u64),
    pub body: ChunkStream,
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("no such object")]
    NotFound,
    #[error("the range selects no bytes of an object of {size} bytes")]
    Unsatisfiable { size: u64 },
    #[error("blob store: {0}")]
    Store(#[from] std::io::Error),
}

/// An object being written. Nothing is visible under its path until [`BlobWriter::finish`]
/// returned; [`BlobWriter::abort`] (or dropping the writer unfinished) leaves nothing behind.
#[async_trait]
pub trait BlobWriter: Send {
    /// Add the next bytes. Waits while the store is behind (bounded buffering).
    async fn write(&mut self, chunk: Chunk) -> std::io::Result<()>;
    /// Make the object durable and visible; its size.
    async fn finish(self: Box<Self>) -> std::io::Result<u64>;
    /// Give up: remove what was written.
    async fn abort(self: Box<Self>);
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Start writing an object at the relative `path` (e.g. `videos/123.mp4`).
    async fn create(&self, path: &str) -> std::io::Result<Box<dyn BlobWriter>>;

    /// Store a small object whole (covers, images), durably.
    async fn put(&self, path: &str, bytes: Chunk) -> std::io::Result<()> {
        let mut writer = self.create(path).await?;
        if let Err(e) = writer.write(bytes).await {
            writer.abort().await;
            return Err(e);
        }
        writer.finish().await.map(|_| ())
    }

    /// Read an object, or one range of it.
    async fn get(&self, path: &str, range: Option<ByteRange>) -> Result<BlobRead, BlobError>;

    /// What the store knows of an object, without its bytes.
    async fn head(&self, path: &str) -> Result<BlobMeta, BlobError>;

    /// Remove an object (no error if it is not there).
    async fn delete(&self, path: &str) -> std::io::Result<()>;

    /// The objects whose paths start with `prefix` (e.g. `videos/`), with what the store knows
    /// of each; objects still being written are not among them.
    async fn list(&self, prefix: &str) -> std::io::Result<Vec<(String, BlobMeta)>>;

    /// Remove what unfinished uploads older than `age` left behind where [`BlobStore::list`]
    /// cannot see it (the directory store's staging files of a process that crashed mid-upload);
    /// how many were removed. S3 keeps unfinished multipart uploads out of sight: a bucket
    /// lifecycle rule (`AbortIncompleteMultipartUpload`) removes those.
    async fn sweep_partial(&self, age: std::time::Duration) -> std::io::Result<u64> {
        let _ = age;
        Ok(0)
    }

    /// A URL that lets anyone GET `path` (with `Range`) straight from the store until `expires`
    /// from now, when the store can sign one (S3); `None` for a directory.
    async fn signed_get(
        &self,
        path: &str,
        expires: std::time::Duration,
    ) -> std::io::Result<Option<String>> {
        let _ = (path, expires);
        Ok(None)
    }

    /// The store, for logs and `/readyz` (`file:///…`, `s3://bucket/prefix`).
    fn describe(&self) -> String;
}
