//! Uploads are bounded per process and per user, refused uploads (not a video, over the size cap)
//! store nothing, and an upload its client breaks off leaves nothing behind.

use std::time::Duration;

use titok_tests::*;

use super::{big_video, bytes_of, stored_videos};

const PUBLISH: &str = "/douyin/publish/action/";

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
    let after = eventually(
        Duration::from_secs(5),
        "a publish is answered 200 once the broken upload freed the only place",
        || async {
            let reply = app
                .publish_raw(&b.token, "third", SAMPLE_MP4.to_vec(), "b.mp4")
                .await;
            (reply.0 == 200).then_some(reply)
        },
    )
    .await;

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
    eventually(
        Duration::from_secs(5),
        "the store holds exactly the published video",
        || async { (stored_videos(&app).await.len() == 1).then_some(()) },
    )
    .await;
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
