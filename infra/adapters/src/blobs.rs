//! [`LocalBlobs`]: the [`BlobStore`] port as files under a directory (a shared volume when the
//! roles run apart).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use titok_ports::blobs::BlobStore;

/// Blobs as files under a root directory.
#[derive(Clone, Debug)]
pub struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    pub fn new(root: impl Into<PathBuf>) -> LocalBlobs {
        LocalBlobs { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[async_trait]
impl BlobStore for LocalBlobs {
    async fn put(&self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
        let target = self.local_path(path);
        if let Some(dir) = target.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        // Write to a temporary name, fsync, then rename: a crash never leaves a torn file behind
        // a URL that an acknowledged event points at. The name is unique, so that instances
        // sharing the volume writing the same file at once (every query API writes the static
        // images at start) each rename their own complete copy.
        let tmp = target.with_extension(format!("{}.part", uuid::Uuid::now_v7().simple()));
        let mut file = tokio::fs::File::create(&tmp).await?;
        tokio::io::AsyncWriteExt::write_all(&mut file, bytes).await?;
        file.sync_all().await?;
        tokio::fs::rename(&tmp, &target).await
    }

    fn local_path(&self, path: &str) -> PathBuf {
        // Paths are built by the server from ids, never from client input; refuse traversal anyway.
        let clean: PathBuf = Path::new(path)
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .collect();
        self.root.join(clean)
    }
}
