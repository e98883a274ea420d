//! Tests of [`ObjectBlobs`] on a local directory: multipart writes read back whole and by range,
//! aborted uploads leave nothing behind, the sweep of a crashed upload's staging file, and how
//! byte ranges resolve.

use super::*;

async fn read_all(read: BlobRead) -> Vec<u8> {
    let mut body = read.body;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.expect("blob test"));
    }
    out
}

#[tokio::test]
async fn a_streamed_object_reads_back_whole_and_by_range() {
    let dir = tempfile::tempdir().expect("blob test");
    let blobs = ObjectBlobs::local(dir.path()).expect("blob test");
    let bytes: Vec<u8> = (0..(PART_BYTES * 2 + 123))
        .map(|i| (i % 251) as u8)
        .collect();
    let mut writer = blobs.create("videos/1.mp4").await.expect("blob test");
    for chunk in bytes.chunks(64 * 1024) {
        writer
            .write(Chunk::copy_from_slice(chunk))
            .await
            .expect("blob test");
    }
    assert_eq!(
        writer.finish().await.expect("blob test"),
        bytes.len() as u64
    );

    let whole = blobs.get("videos/1.mp4", None).await.expect("blob test");
    assert_eq!(whole.meta.size, bytes.len() as u64);
    assert_eq!(read_all(whole).await, bytes);
    let part = blobs
        .get("videos/1.mp4", Some(ByteRange::Inclusive(10, 19)))
        .await
        .expect("blob test");
    assert_eq!(part.range, (10, 20));
    assert_eq!(read_all(part).await, &bytes[10..20]);
    let tail = blobs
        .get("videos/1.mp4", Some(ByteRange::Suffix(5)))
        .await
        .expect("blob test");
    assert_eq!(read_all(tail).await, &bytes[bytes.len() - 5..]);
    assert!(matches!(
        blobs
            .get("videos/1.mp4", Some(ByteRange::From(bytes.len() as u64)))
            .await,
        Err(BlobError::Unsatisfiable { .. })
    ));
    assert!(matches!(
        blobs.get("videos/2.mp4", None).await,
        Err(BlobError::NotFound)
    ));
}

#[tokio::test]
async fn an_aborted_or_dropped_upload_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("blob test");
    let blobs = ObjectBlobs::local(dir.path()).expect("blob test");
    let mut writer = blobs.create("videos/1.mp4").await.expect("blob test");
    writer
        .write(Chunk::from(vec![1u8; 1000]))
        .await
        .expect("blob test");
    writer.abort().await;
    let mut dropped = blobs.create("videos/2.mp4").await.expect("blob test");
    dropped
        .write(Chunk::from(vec![1u8; 1000]))
        .await
        .expect("blob test");
    drop(dropped);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let files: Vec<_> = walk(dir.path());
    assert!(files.is_empty(), "left behind: {files:?}");
    assert!(matches!(
        blobs.get("videos/1.mp4", None).await,
        Err(BlobError::NotFound)
    ));
}

/// A process that died mid-upload (the writer never aborted) leaves a staging file that
/// `list` does not show; the sweep removes it once it is old enough, and nothing else.
#[tokio::test]
async fn the_sweep_removes_a_crashed_uploads_staging_file_only() {
    let dir = tempfile::tempdir().expect("blob test");
    let blobs = ObjectBlobs::local(dir.path()).expect("blob test");
    blobs
        .put("videos/1.mp4", Chunk::from(vec![1u8; 10]))
        .await
        .expect("blob test");
    let mut crashed = blobs.create("videos/2.mp4").await.expect("blob test");
    crashed
        .write(Chunk::from(vec![1u8; PART_BYTES + 1]))
        .await
        .expect("blob test");
    std::mem::forget(crashed);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(walk(dir.path()).len(), 2, "the staging file is there");
    let day = std::time::Duration::from_secs(86_400);
    assert_eq!(blobs.sweep_partial(day).await.expect("blob test"), 0);
    let zero = std::time::Duration::ZERO;
    assert_eq!(blobs.sweep_partial(zero).await.expect("blob test"), 1);
    let left = walk(dir.path());
    assert_eq!(left, vec![dir.path().join("videos").join("1.mp4")]);
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("blob test") {
        let path = entry.expect("blob test").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn ranges_resolve_like_rfc_9110() {
    assert_eq!(ByteRange::Inclusive(0, 9).resolve(5), Some((0, 5)));
    assert_eq!(ByteRange::Inclusive(5, 9).resolve(5), None);
    assert_eq!(ByteRange::Inclusive(3, 2).resolve(5), None);
    assert_eq!(ByteRange::From(2).resolve(5), Some((2, 5)));
    assert_eq!(ByteRange::Suffix(9).resolve(5), Some((0, 5)));
    assert_eq!(ByteRange::Suffix(0).resolve(5), None);
}
