//! Presigned play URLs (`--media-presign-secs`): a redirect to the bucket on S3, which plays and
//! seeks there; refused at start on a directory store.

use std::time::Duration;

use titok_tests::*;

use super::big_video;

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
