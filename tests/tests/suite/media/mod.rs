//! Videos in the blob store: uploads are streamed and bounded, refused or interrupted uploads
//! leave nothing behind ([`uploads`]), what a client is given plays and seeks (Range) from the
//! query API or, presigned, from the bucket ([`presign`]), orphaned uploads are swept ([`sweep`]),
//! and with an ffmpeg a cover is the video's first frame (here: scripts/test selects it by its
//! path `media::with_ffmpeg…`).

mod presign;
mod sweep;
mod uploads;

use titok_ports::blobs::BlobStore;
use titok_tests::*;

/// A video of `size` bytes that sniffs as MP4: the sample's bytes, then a deterministic filler.
fn big_video(size: usize) -> Vec<u8> {
    let mut bytes = SAMPLE_MP4.to_vec();
    bytes.extend((bytes.len()..size).map(|i| (i % 253) as u8));
    bytes
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

/// The ffmpeg of `TITOK_TEST_FFMPEG` (scripts/test installs a static build from PyPI).
fn test_ffmpeg() -> String {
    std::env::var("TITOK_TEST_FFMPEG").expect(
        "needs TITOK_TEST_FFMPEG=<an ffmpeg binary> (scripts/test sets it in passes 1 and 2)",
    )
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
#[ignore = "needs ffmpeg: scripts/test installs a static build (PyPI imageio-ffmpeg) and runs it in passes 1 and 2"]
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
