//! The orphan sweep: objects no video points at are removed once old enough, nothing else.

use std::time::Duration;

use titok_ports::blobs::BlobStore;
use titok_tests::*;

use super::{big_video, bytes_of};

/// Objects a crash left in the store with no event pointing at them (an upload stored, the
/// process killed before the append) are swept once they are older than the age; the objects of
/// published videos, younger orphans and whatever else an operator keeps in the bucket stay.
#[tokio::test]
async fn the_sweep_removes_old_orphaned_uploads_and_nothing_else() {
    let app = TestApp::start(&[
        "--no-sample",
        "--orphan-sweep-secs",
        "1",
        "--orphan-age-secs",
        "5",
    ])
    .await;
    let a = app.register("a", "pw").await;
    let video = big_video(64 * 1024);
    let (status, body) = app
        .publish_raw(&a.token, "kept", video.clone(), "v.mp4")
        .await;
    assert_eq!(status, 200, "{body}");
    let published = &app.publish_list(&a, a.id).await[0];
    let blobs = app.blobs();
    let orphans = ["videos/977777777.mp4", "covers/977777777.png"];
    for path in orphans {
        blobs.put(path, bytes_of(SAMPLE_MP4)).await.expect("put");
    }
    blobs
        .put("videos/not-an-upload.txt", bytes_of(b"keep"))
        .await
        .expect("put");
    let listed = |prefix: &'static str| {
        let blobs = blobs.clone();
        async move {
            let objects = blobs.list(prefix).await.expect("list the blob store");
            objects
                .into_iter()
                .map(|(path, _)| path)
                .collect::<Vec<_>>()
        }
    };

    // Younger than the age: still there after several sweeps.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let young = listed("videos/").await;
    // Older: removed within a few sweeps.
    let (videos, covers) = eventually(
        Duration::from_secs(30),
        "the orphans older than the age are swept",
        || async {
            let (videos, covers) = (listed("videos/").await, listed("covers/").await);
            let gone = orphans
                .iter()
                .all(|o| !videos.iter().chain(&covers).any(|p| p == o));
            gone.then_some((videos, covers))
        },
    )
    .await;
    let play = app
        .client
        .get(published["play_url"].as_str().expect("play_url"))
        .send()
        .await
        .expect("GET the play URL");
    let cover = app
        .client
        .get(published["cover_url"].as_str().expect("cover_url"))
        .send()
        .await
        .expect("GET the cover URL");

    assert!(
        young.contains(&orphans[0].to_owned()),
        "swept too young: {young:?}"
    );
    for orphan in orphans {
        let all: Vec<_> = videos.iter().chain(&covers).collect();
        assert!(
            !all.iter().any(|p| *p == orphan),
            "{orphan} stayed: {all:?}"
        );
    }
    assert!(
        videos.contains(&"videos/not-an-upload.txt".to_owned()),
        "{videos:?}"
    );
    assert_eq!(
        videos.len(),
        2,
        "the published video and the other object: {videos:?}"
    );
    assert_eq!(covers.len(), 1, "the published video's cover: {covers:?}");
    assert_eq!(play.status().as_u16(), 200);
    assert!(play.bytes().await.expect("bytes").as_ref() == video.as_slice());
    assert_eq!(cover.status().as_u16(), 200);
}
