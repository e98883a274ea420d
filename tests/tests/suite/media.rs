//! Videos in the blob store: uploads are streamed and bounded, refused or interrupted uploads
//! leave nothing behind, and what a client is given plays and seeks (Range) from the query API.

use std::time::Duration;

use titok_ports::blobs::BlobStore;
use titok_tests::*;

const PUBLISH: &str = "/douyin/publish/action/";

/// A video of `size` bytes that sniffs as MP4: the sample's bytes, then a deterministic filler.
fn big_video(size: usize) -> Vec<u8> {
    let mut bytes = SAMPLE_MP4.to_vec();
    bytes.extend((bytes.len()..size).map(|i| (i % 253) as u8));
    bytes
}

/// An upload whose body is sent only as far as its first bytes until `release` is sent `true`
/// (then it completes) or `false` / dropped (then the client breaks it off).
struct SlowUpload {
    release: tokio::sync::oneshot::Sender<bool>,
    reply: tokio::task::JoinHandle<Option<(u16, serde_json::Value)>>,
}

fn slow_upload(app: &TestApp, token: &str) -> SlowUpload {
    let (release, released) = tokio::sync::oneshot::channel::<bool>();
    let head = bytes_of(SAMPLE_MP4);
    let body = futures::stream::unfold(
        (Some(head), Some(released)),
        |(head, released)| async move {
            if let Some(head) = head {
                return Some((Ok::<_, std::io::Error>(head), (None, released)));
            }
            let finish = released?.await.unwrap_or(false);
            if finish {
                None
            } else {
                Some((Err(std::io::Error::other("client gave up")), (None, None)))
            }
        },
    );
    let form = reqwest::multipart::Form::new().text("title", "slow").part(
        "data",
        reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(body)).file_name("slow.mp4"),
    );
    let request = app
        .client
        .post(app.url(&format!("{PUBLISH}?token={token}")))
        .multipart(form);
    let reply = tokio::spawn(async move {
        let resp = request.send().await.ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.json().await.unwrap_or_default()))
    });
    SlowUpload { release, reply }
}

fn bytes_of(bytes: &[u8]) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(bytes)
}

/// The videos in the app's blob store: on the local store every file under `videos/`, staging
/// files of unfinished uploads included; on S3 the finished objects (an unfinished multipart
/// upload is not an object).
async fn stored_videos(app: &TestApp) -> Vec<String> {
    if app.arg("--blob-store").is_some() {
        return app
            .blobs()
            .list("videos/")
            .await
            .expect("list the blob store")
            .into_iter()
            .map(|(path, _)| path)
            .collect();
    }
    let dir = app.data_dir.join("blobs").join("videos");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn until_uploading(app: &TestApp) {
    // The server has the upload once its first bytes are in the store's staging file, or (other
    // stores) once it had time to read them; either way a short wait is enough on loopback.
    for _ in 0..50 {
        if !stored_videos(app).await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn uploads_over_the_process_bound_are_refused_and_a_broken_upload_leaves_nothing() {
    // Arrange
    let app = TestApp::start(&["--no-sample", "--max-uploads", "1"]).await;
    let a = app.register("a", "pw").await;
    let b = app.register("b", "pw").await;
    let slow = slow_upload(&app, &a.token);
    until_uploading(&app).await;

    // Act: another user's upload while the slow one holds the only place; then the slow one is
    // broken off by its client, and the place is free again.
    let (busy_status, busy) = app
        .publish_raw(&b.token, "second", SAMPLE_MP4.to_vec(), "b.mp4")
        .await;
    let _ = slow.release.send(false);
    let broken = slow.reply.await.expect("slow upload task");
    let mut after = (0, serde_json::Value::Null);
    for _ in 0..50 {
        after = app
            .publish_raw(&b.token, "third", SAMPLE_MP4.to_vec(), "b.mp4")
            .await;
        if after.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Assert
    assert_eq!(busy_status, 503, "{busy}");
    assert_refused(&busy, "an upload over the bound");
    assert!(
        busy["status_msg"]
            .as_str()
            .unwrap_or_default()
            .contains("too many uploads"),
        "{busy}"
    );
    assert!(
        broken
            .as_ref()
            .is_none_or(|(status, body)| *status != 200 || body["status_code"] != 0),
        "a broken upload is not acknowledged: {broken:?}"
    );
    assert_eq!(after.0, 200, "the place is free again: {}", after.1);
    assert_ok(&after.1, "publish after the broken upload");
    assert!(app.publish_list(&a, a.id).await.is_empty());
    let titles: Vec<_> = app
        .publish_list(&b, b.id)
        .await
        .iter()
        .map(|v| v["title"].clone())
        .collect();
    assert_eq!(titles, ["third"]);
    // The local store holds exactly the published video: the broken upload's multipart staging
    // file was removed, the refused one never started.
    for _ in 0..50 {
        if stored_videos(&app).await.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        stored_videos(&app).await.len(),
        1,
        "{:?}",
        stored_videos(&app).await
    );
}

#[tokio::test]
async fn a_user_uploading_over_their_bound_gets_429_and_others_are_not_held_up() {
    // Arrange
    let app = TestApp::start(&["--no-sample", "--max-uploads-per-user", "1"]).await;
    let a = app.register("a", "pw").await;
    let b = app.register("b", "pw").await;
    let slow = slow_upload(&app, &a.token);
    until_uploading(&app).await;

    // Act: the token first (in the query string), so the user is known before the video.
    let form = reqwest::multipart::Form::new().text("title", "again").part(
        "data",
        reqwest::multipart::Part::bytes(SAMPLE_MP4.to_vec()).file_name("a.mp4"),
    );
    let again = app
        .client
        .post(app.url(&format!("{PUBLISH}?token={}", a.token)))
        .multipart(form)
        .send()
        .await
        .expect("POST");
    let again_status = again.status().as_u16();
    let again: serde_json::Value = again.json().await.expect("JSON");
    let other = app.publish(&b, "other").await;
    let _ = slow.release.send(true);
    let finished = slow.reply.await.expect("slow upload task");

    // Assert
    assert_eq!(again_status, 429, "{again}");
    assert_refused(&again, "a second upload at once by one user");
    assert!(other > 0);
    let (status, body) = finished.expect("the slow upload's reply");
    assert_eq!(status, 200, "{body}");
    assert_ok(&body, "the slow upload, completed");
    let titles: Vec<_> = app
        .publish_list(&a, a.id)
        .await
        .iter()
        .map(|v| v["title"].clone())
        .collect();
    assert_eq!(titles, ["slow"]);
}

#[tokio::test]
async fn a_non_video_or_an_oversize_upload_is_refused_and_stores_nothing() {
    let app = TestApp::start(&["--no-sample", "--max-upload-mb", "1"]).await;
    let a = app.register("a", "pw").await;

    let (_, not_video) = app
        .publish_raw(&a.token, "text", b"hello, not a video".repeat(100), "x.mp4")
        .await;
    let (_, oversize) = app
        .publish_raw(&a.token, "big", big_video(3 * 1024 * 1024), "big.mp4")
        .await;

    assert_refused(&not_video, "a text file");
    assert!(
        not_video["status_msg"]
            .as_str()
            .unwrap_or_default()
            .contains("not a video"),
        "{not_video}"
    );
    assert_refused(&oversize, "a 3 MiB video over a 1 MiB cap");
    assert!(app.publish_list(&a, a.id).await.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        stored_videos(&app).await.is_empty(),
        "{:?}",
        stored_videos(&app).await
    );
}

/// With `--media-presign-secs` on S3, a play URL answers with a redirect to a presigned URL of the
/// bucket, which plays and seeks there; a tampered signature is refused by the bucket.
#[tokio::test]
#[ignore = "needs an S3 server: scripts/test runs it in pass 2 (SeaweedFS)"]
async fn with_presigning_a_play_url_redirects_to_the_bucket_and_seeks_there() {
    assert!(
        std::env::var("TITOK_TEST_BLOB_STORE").is_ok(),
        "needs TITOK_TEST_BLOB_STORE=s3://… (scripts/test pass 2)"
    );
    let app = TestApp::start(&["--no-sample", "--media-presign-secs", "600"]).await;
    let a = app.register("a", "pw").await;
    let video = big_video(3 * 1024 * 1024);
    let (status, body) = app
        .publish_raw(&a.token, "signed", video.clone(), "v.mp4")
        .await;
    assert_eq!(status, 200, "{body}");
    let play_url = app.publish_list(&a, a.id).await[0]["play_url"]
        .as_str()
        .expect("play_url")
        .to_owned();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    let redirect = no_redirects.get(&play_url).send().await.expect("GET");
    let location = redirect
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let cache = redirect.headers().get("cache-control").cloned();
    let seek = no_redirects
        .get(&location)
        .header("range", "bytes=1000000-1000099")
        .send()
        .await
        .expect("GET the presigned URL");
    let seek_status = seek.status().as_u16();
    let seek_bytes = seek.bytes().await.expect("bytes");
    let tampered = no_redirects
        .get(location.replace("X-Amz-Signature=", "X-Amz-Signature=0"))
        .send()
        .await
        .expect("GET a tampered URL");
    // A client that follows redirects simply plays the URL it was given.
    let followed = app
        .client
        .get(&play_url)
        .send()
        .await
        .expect("GET, following");
    let followed_status = followed.status().as_u16();
    let followed_len = followed.bytes().await.expect("bytes").len();

    assert_eq!(redirect.status().as_u16(), 307, "{location}");
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    assert!(location.starts_with(&endpoint), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    assert!(location.contains("X-Amz-Expires=600"), "{location}");
    assert_eq!(
        cache.expect("Cache-Control"),
        "private, max-age=300",
        "cached for half the URL's life"
    );
    assert_eq!(seek_status, 206);
    assert!(seek_bytes.as_ref() == &video[1_000_000..1_000_100]);
    assert_eq!(tampered.status().as_u16(), 403);
    assert_eq!(followed_status, 200);
    assert_eq!(followed_len, video.len());
}

/// Presigning needs a store that can sign: on a directory the server refuses to start.
#[tokio::test]
async fn presigning_on_a_directory_store_is_refused_at_start() {
    let (ok, _, stderr) = run_titok_bare(
        &["--listen", "127.0.0.1:0", "--media-presign-secs", "600"],
        Duration::from_secs(30),
    )
    .await;
    assert!(!ok, "started: {stderr}");
    assert!(
        stderr.contains("--media-presign-secs needs an S3 blob store"),
        "{stderr}"
    );
}

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
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (videos, covers) = loop {
        let (videos, covers) = (listed("videos/").await, listed("covers/").await);
        let gone = orphans
            .iter()
            .all(|o| !videos.iter().chain(&covers).any(|p| p == o));
        if gone || std::time::Instant::now() > deadline {
            break (videos, covers);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
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

/// The ffmpeg of `TITOK_TEST_FFMPEG` (scripts/test installs a static build from PyPI).
fn test_ffmpeg() -> String {
    std::env::var("TITOK_TEST_FFMPEG")
        .expect("needs TITOK_TEST_FFMPEG=<an ffmpeg binary> (scripts/test sets it in pass 2)")
}

/// Run `ffmpeg args…` and return its stdout.
async fn run_ffmpeg(args: &[&str]) -> Vec<u8> {
    let out = tokio::process::Command::new(test_ffmpeg())
        .args(["-v", "error", "-nostdin", "-y"])
        .args(args)
        .output()
        .await
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// With an ffmpeg, a video's cover is its first frame (a red video gets a red JPEG), taken from
/// the spooled upload and stored beside the video; a "video" ffmpeg cannot decode still gets a
/// placeholder cover and is published.
#[tokio::test]
#[ignore = "needs ffmpeg: scripts/test installs a static build (PyPI imageio-ffmpeg) and runs it in pass 2"]
async fn with_ffmpeg_a_cover_is_the_videos_first_frame() {
    let ffmpeg = test_ffmpeg();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let red = file("red.mp4");
    let source = "color=c=red:s=160x120:d=1";
    run_ffmpeg(&[
        "-f", "lavfi", "-i", source, "-c:v", "mpeg4", "-f", "mp4", &red,
    ])
    .await;
    let video = std::fs::read(&red).expect("the generated video");
    let app = TestApp::start(&["--no-sample", "--ffmpeg", &ffmpeg]).await;
    let a = app.register("a", "pw").await;

    let (status, body) = app.publish_raw(&a.token, "red", video, "red.mp4").await;
    assert_eq!(status, 200, "{body}");
    let mut broken = b"\0\0\0\x18ftypisom\0\0\0\0isommp41".to_vec();
    broken.resize(4096, 0);
    let (status, body) = app.publish_raw(&a.token, "broken", broken, "b.mp4").await;
    assert_eq!(status, 200, "{body}");
    let list = app.publish_list(&a, a.id).await;
    let cover_of = |title: &str| {
        let video = list
            .iter()
            .find(|v| v["title"] == title)
            .expect("published");
        video["cover_url"].as_str().expect("cover_url").to_owned()
    };
    let get = |url: String| {
        let client = app.client.clone();
        async move {
            let resp = client.get(url).send().await.expect("GET the cover");
            let kind = resp.headers().get("content-type").cloned();
            (
                resp.status().as_u16(),
                kind,
                resp.bytes().await.expect("bytes"),
            )
        }
    };
    let (red_status, red_kind, red_cover) = get(cover_of("red")).await;
    let (broken_status, broken_kind, broken_cover) = get(cover_of("broken")).await;
    let jpeg = file("cover.jpg");
    std::fs::write(&jpeg, &red_cover).expect("write the cover");
    // The cover scaled to one pixel, as RGB.
    let pixel = run_ffmpeg(&[
        "-i",
        &jpeg,
        "-vf",
        "scale=1:1",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ])
    .await;

    assert!(cover_of("red").ends_with(".jpg"), "{}", cover_of("red"));
    assert_eq!(red_status, 200);
    assert_eq!(red_kind.expect("content-type"), "image/jpeg");
    assert!(red_cover.starts_with(&[0xFF, 0xD8, 0xFF]), "a JPEG");
    assert!(
        pixel.len() == 3 && pixel[0] > 200 && pixel[1] < 60 && pixel[2] < 60,
        "the first frame is red: {pixel:?}"
    );
    assert!(
        cover_of("broken").ends_with(".png"),
        "{}",
        cover_of("broken")
    );
    assert_eq!(broken_status, 200);
    assert_eq!(broken_kind.expect("content-type"), "image/png");
    assert!(broken_cover.starts_with(b"\x89PNG"), "a PNG placeholder");
}
