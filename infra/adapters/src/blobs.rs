//! [`ObjectBlobs`]: the [`BlobStore`] port on Apache Arrow's `object_store` crate — a directory
//! (`LocalFileSystem`, the embedded default, under the data dir) or an S3 bucket (`AmazonS3`:
//! endpoint, region and credentials from the standard `AWS_*` variables, so AWS, MinIO,
//! SeaweedFS, Ceph or R2 work unchanged).
//!
//! On S3, [`BlobStore::signed_get`] presigns GET URLs (SigV4 query parameters) so that the query
//! API can send clients straight to the bucket (`--media-presign-secs`).
//!
//! Writes are multipart uploads in [`PART_BYTES`] parts with at most [`PARTS_IN_FLIGHT`] parts
//! being sent at once, so an upload holds at most ~`PART_BYTES × (PARTS_IN_FLIGHT + 1)` in memory
//! whatever its size. An unfinished upload is aborted (S3 `AbortMultipartUpload`; the staging
//! file on disk), so nothing appears under a path until the object is complete. On the local
//! directory the finished file and its directory are fsynced before `finish` returns: the event
//! that points at the file is appended only after that.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use object_store::aws::AmazonS3ConfigKey;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use titok_ports::blobs::{BlobError, BlobMeta, BlobRead, BlobStore, BlobWriter, ByteRange, Chunk};

/// Size of one multipart part (S3's minimum is 5 MiB, except for the last part).
pub const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts of one upload being sent at once.
pub const PARTS_IN_FLIGHT: usize = 2;

/// Blobs in an object store.
#[derive(Clone, Debug)]
pub struct ObjectBlobs {
    store: Arc<dyn ObjectStore>,
    /// The directory, for the local store (fsync after a write).
    root: Option<PathBuf>,
    /// The bucket's client and the prefix inside it, for presigned URLs (S3 only).
    signer: Option<(Arc<object_store::aws::AmazonS3>, String)>,
    describe: String,
}

impl ObjectBlobs {
    /// Objects as files under `root` (created if missing).
    pub fn local(root: impl Into<PathBuf>) -> std::io::Result<ObjectBlobs> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&root)
            .map_err(std::io::Error::other)?;
        Ok(ObjectBlobs {
            store: Arc::new(store),
            describe: format!("file://{}", root.display()),
            root: Some(root),
            signer: None,
        })
    }

    /// Objects in `s3://BUCKET[/PREFIX]`, configured from the `AWS_*` environment variables.
    pub fn s3(url: &str) -> Result<ObjectBlobs, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("blob store {url:?}: expected s3://BUCKET[/PREFIX]"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("blob store {url:?}: the bucket name is missing"));
        }
        // A store that cannot be reached is noticed within 2 s per attempt (the default is 5 s);
        // retries and the whole-request timeout stay object_store's (30 s per request, retried
        // for up to 3 minutes; a streamed read that was cut resumes where it stopped). Callers
        // that answer clients bound their own wait (the query API's `/static`: 10 s to the
        // first byte).
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_config(
                AmazonS3ConfigKey::Client(object_store::ClientConfigKey::ConnectTimeout),
                "2s",
            )
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| format!("blob store {url:?}: {e}"))?;
        let prefix = prefix.trim_matches('/');
        let signer = Some((Arc::new(s3.clone()), prefix.to_owned()));
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
        };
        Ok(ObjectBlobs {
            store,
            root: None,
            signer,
            describe: url.trim_end_matches('/').to_owned(),
        })
    }

    /// The store from `--blob-store`: `s3://…`, or a local directory.
    pub fn open(spec: Option<&str>, default_root: PathBuf) -> Result<ObjectBlobs, String> {
        match spec {
            Some(url) if url.starts_with("s3://") => ObjectBlobs::s3(url),
            Some(dir) => {
                let dir = dir.strip_prefix("file://").unwrap_or(dir);
                ObjectBlobs::local(dir).map_err(|e| format!("blob store {dir:?}: {e}"))
            }
            None => ObjectBlobs::local(&default_root)
                .map_err(|e| format!("blob store {}: {e}", default_root.display())),
        }
    }
}

/// Paths are built by the server from ids, never from client input; refuse anything else anyway.
fn location(path: &str) -> std::io::Result<Path> {
    Path::parse(path.trim_start_matches('/')).map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{path:?}: {e}"))
    })
}

fn io(e: object_store::Error) -> std::io::Error {
    std::io::Error::other(e)
}

fn read_error(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        e => BlobError::Store(io(e)),
    }
}

fn meta(m: &object_store::ObjectMeta) -> BlobMeta {
    BlobMeta {
        size: m.size,
        etag: m.e_tag.clone(),
        modified_ms: m.last_modified.timestamp_millis(),
    }
}

/// Bytes of a local file read per blocking call. object_store's own stream of a local file reads
/// 8 KiB per `spawn_blocking`, 128 hand-offs to the blocking pool for a 1 MiB range: measured
/// with the bench, `/static` on the directory store served a third of what reading the store
/// directly did.
const LOCAL_READ_BYTES: u64 = 256 * 1024;

impl ObjectBlobs {
    /// [`BlobStore::get`] on the directory store: the object's metadata from object_store (so
    /// the ETag is the one `head` gives), its bytes read in [`LOCAL_READ_BYTES`] chunks.
    async fn get_local(
        &self,
        file: PathBuf,
        at: &Path,
        range: Option<ByteRange>,
    ) -> Result<BlobRead, BlobError> {
        use std::io::{Read, Seek, SeekFrom};
        let m = self.store.head(at).await.map_err(read_error)?;
        let (start, end) = match range {
            None => (0, m.size),
            Some(wanted) => wanted
                .resolve(m.size)
                .ok_or(BlobError::Unsatisfiable { size: m.size })?,
        };
        let opened = tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(file)?;
            file.seek(SeekFrom::Start(start))?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(std::io::Error::other)?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BlobError::NotFound,
            _ => BlobError::Store(e),
        })?;
        let body = futures::stream::try_unfold(
            (opened, end - start),
            |(mut file, remaining)| async move {
                if remaining == 0 {
                    return Ok(None);
                }
                tokio::task::spawn_blocking(move || {
                    let want = remaining.min(LOCAL_READ_BYTES);
                    let mut chunk = Vec::with_capacity(want as usize);
                    (&mut file).take(want).read_to_end(&mut chunk)?;
                    if chunk.is_empty() {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the file ended before the range did",
                        ));
                    }
                    let left = remaining - chunk.len() as u64;
                    Ok(Some((Chunk::from(chunk), (file, left))))
                })
                .await
                .map_err(std::io::Error::other)?
            },
        )
        .boxed();
        Ok(BlobRead {
            meta: meta(&m),
            range: (start, end),
            body,
        })
    }
}

/// fsync a finished file and the directory entry that names it.
async fn sync_file(file: PathBuf) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || {
        std::fs::File::open(&file)?.sync_all()?;
        if let Some(dir) = file.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?
}

struct Upload {
    inner: Option<WriteMultipart>,
    /// The finished file to fsync, on the local store.
    local_file: Option<PathBuf>,
    written: u64,
}

#[async_trait]
impl BlobWriter for Upload {
    async fn write(&mut self, chunk: Chunk) -> std::io::Result<()> {
        let inner = self
            .inner
            .as_mut()
            .ok_or_else(|| std::io::Error::other("upload already finished"))?;
        inner.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(io)?;
        self.written += chunk.len() as u64;
        inner.put(chunk);
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> std::io::Result<u64> {
        let inner = self
            .inner
            .take()
            .ok_or_else(|| std::io::Error::other("upload already finished"))?;
        inner.finish().await.map_err(io)?;
        if let Some(file) = self.local_file.take() {
            sync_file(file).await?;
        }
        Ok(self.written)
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(inner) = self.inner.take() {
            if let Err(e) = inner.abort().await {
                tracing::warn!(error = %e, "aborting a blob upload failed");
            }
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // A writer dropped unfinished (the request was cancelled): abort in the background.
        if let Some(inner) = self.inner.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = inner.abort().await;
                });
            }
        }
    }
}

#[async_trait]
impl BlobStore for ObjectBlobs {
    async fn create(&self, path: &str) -> std::io::Result<Box<dyn BlobWriter>> {
        let at = location(path)?;
        let upload = self.store.put_multipart(&at).await.map_err(io)?;
        Ok(Box::new(Upload {
            inner: Some(WriteMultipart::new_with_chunk_size(upload, PART_BYTES)),
            local_file: self.root.as_ref().map(|root| root.join(at.as_ref())),
            written: 0,
        }))
    }

    async fn get(&self, path: &str, range: Option<ByteRange>) -> Result<BlobRead, BlobError> {
        let at = location(path)?;
        if let Some(root) = &self.root {
            return self.get_local(root.join(at.as_ref()), &at, range).await;
        }
        let range = match range {
            None => None,
            Some(wanted) => {
                // Resolved against the object's size here, so every store answers an
                // unsatisfiable range the same way.
                let size = self.store.head(&at).await.map_err(read_error)?.size;
                let (start, end) = wanted
                    .resolve(size)
                    .ok_or(BlobError::Unsatisfiable { size })?;
                Some(GetRange::Bounded(start..end))
            }
        };
        let options = GetOptions {
            range,
            ..GetOptions::default()
        };
        let got = self
            .store
            .get_opts(&at, options)
            .await
            .map_err(read_error)?;
        let meta = meta(&got.meta);
        let range = (got.range.start, got.range.end);
        let body = got.into_stream().map(|chunk| chunk.map_err(io)).boxed();
        Ok(BlobRead { meta, range, body })
    }

    async fn head(&self, path: &str) -> Result<BlobMeta, BlobError> {
        let at = location(path)?;
        let m = self.store.head(&at).await.map_err(read_error)?;
        Ok(meta(&m))
    }

    async fn delete(&self, path: &str) -> std::io::Result<()> {
        let at = location(path)?;
        match self.store.delete(&at).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    async fn list(&self, prefix: &str) -> std::io::Result<Vec<(String, BlobMeta)>> {
        let dir = location(prefix.trim_end_matches('/'))?;
        let mut objects = self.store.list(Some(&dir));
        let mut out = Vec::new();
        while let Some(object) = objects.next().await {
            let object = object.map_err(io)?;
            out.push((object.location.to_string(), meta(&object)));
        }
        Ok(out)
    }

    async fn signed_get(
        &self,
        path: &str,
        expires: std::time::Duration,
    ) -> std::io::Result<Option<String>> {
        use object_store::signer::Signer;
        let Some((s3, prefix)) = &self.signer else {
            return Ok(None);
        };
        let at = location(path)?;
        let full = if prefix.is_empty() {
            at
        } else {
            location(&format!("{prefix}/{at}"))?
        };
        let url = s3
            .signed_url(http::Method::GET, &full, expires)
            .await
            .map_err(io)?;
        Ok(Some(url.to_string()))
    }

    async fn sweep_partial(&self, age: std::time::Duration) -> std::io::Result<u64> {
        let Some(root) = self.root.clone() else {
            return Ok(0);
        };
        tokio::task::spawn_blocking(move || remove_staging_files(&root, age))
            .await
            .map_err(std::io::Error::other)?
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

/// Remove `LocalFileSystem`'s staging files (`<object>#<n>`) under `dir` not written to for
/// `age`: what a process that died mid-upload left.
fn remove_staging_files(dir: &std::path::Path, age: std::time::Duration) -> std::io::Result<u64> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            removed += remove_staging_files(&entry.path(), age)?;
        } else if kind.is_file() && entry.file_name().to_string_lossy().contains('#') {
            // An upload that finishes meanwhile renames its staging file away: not an error.
            let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
            let idle = match entry.metadata().and_then(|m| m.modified()) {
                Ok(modified) => modified.elapsed().unwrap_or_default(),
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(e),
            };
            if idle < age {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(path = %entry.path().display(), "removed an unfinished upload's staging file");
                    removed += 1;
                }
                Err(e) if gone(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests;
