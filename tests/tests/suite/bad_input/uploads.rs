//! Uploads and request bodies: what is not a video, too large, incomplete or sent without a valid
//! token is refused with the envelope — an oversized or anonymous body before it is read whole.

use titok_tests::*;

use super::LOGIN;

async fn app_with_user() -> (TestApp, User) {
    let app = spawn_app().await;
    let user = app.register("user", "pw").await;
    (app, user)
}

#[tokio::test]
async fn a_non_video_upload_is_refused_whatever_its_name() {
    let (app, user) = app_with_user().await;
    let (status, body) = app
        .publish_raw(
            &user.token,
            "fake",
            b"#!/bin/sh\necho this is not a video\n".to_vec(),
            "clip.mp4",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_refused(&body, "text upload");
    assert!(
        body["status_msg"]
            .as_str()
            .unwrap_or_default()
            .contains("not a video"),
        "{body}"
    );
    assert!(
        app.publish_list(&user, user.id).await.is_empty(),
        "nothing was published"
    );
}

#[tokio::test]
async fn an_oversized_upload_is_refused() {
    let app = TestApp::start(&["--no-sample", "--max-upload-mb", "1"]).await;
    let user = app.register("user", "pw").await;
    let mut big = SAMPLE_MP4.to_vec();
    big.resize(1024 * 1024 + 512 * 1024, 0);
    let (status, body) = app.publish_raw(&user.token, "big", big, "big.mp4").await;
    assert_eq!(status, 200, "{body}");
    assert_refused(&body, "oversized upload");
    assert!(
        body["status_msg"]
            .as_str()
            .unwrap_or_default()
            .contains("too large"),
        "{body}"
    );
    assert!(
        app.publish_list(&user, user.id).await.is_empty(),
        "nothing was published"
    );
}

#[tokio::test]
async fn a_publish_without_a_file_title_or_token_is_refused() {
    let (app, user) = app_with_user().await;
    let (_, body) = app
        .publish_raw(&user.token, "   ", SAMPLE_MP4.to_vec(), "a.mp4")
        .await;
    assert_refused(&body, "empty title");
    let (_, body) = app.publish_raw("", "t", SAMPLE_MP4.to_vec(), "a.mp4").await;
    assert_refused(&body, "no token");
    let resp = app
        .client
        .post(app.url("/douyin/publish/action/"))
        .form(&[("token", user.token.clone()), ("title", "t".into())])
        .send()
        .await
        .expect("post");
    assert_eq!(
        resp.status(),
        200,
        "a non-multipart publish is a refusal, not an error page"
    );
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_refused(&body, "non-multipart publish");
    let form = reqwest::multipart::Form::new()
        .text("token", user.token.clone())
        .text("title", "t");
    let resp = app
        .client
        .post(app.url("/douyin/publish/action/"))
        .multipart(form)
        .send()
        .await
        .expect("post");
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_refused(&body, "publish without data");
}

#[tokio::test]
async fn an_oversized_form_body_is_refused_before_it_is_read_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Arrange: a login form that says it is 60 MB long; only 300 KiB of it are ever sent.
    let app = spawn_app().await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "POST {LOGIN} HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000000\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.expect("head");
    let mut chunk = b"username=u&password=".to_vec();
    chunk.resize(300 * 1024, b'a');
    socket.write_all(&chunk).await.expect("body");

    // Act: wait for the reply while the rest of the body never comes.
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !String::from_utf8_lossy(&reply).contains("status_msg") {
            let n = socket.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
        }
    })
    .await;

    // Assert: refused with the envelope once the limit was passed (before: it waited for all 60 MB).
    assert!(
        read.is_ok(),
        "no reply within 10 s: the body was being read whole"
    );
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("too large"), "{text}");
    assert!(text.contains("\"status_code\":1"), "{text}");
}

/// Send the start of a 60 MiB multipart upload whose token (query or first field) is forged, and
/// return the reply read while the client has sent only 1 MiB of the file, then send the rest.
async fn forged_upload_reply(app: &TestApp, token_in_query: bool) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const FILE: usize = 60 * 1024 * 1024;
    let boundary = "titokBoundary42";
    let field = |name: &str, value: &str| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
    };
    let mut head = String::new();
    if !token_in_query {
        head.push_str(&field("token", "forged.token.value"));
    }
    head.push_str(&field("title", "anonymous upload"));
    head.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"data\"; filename=\"a.mp4\"\r\n\
         Content-Type: video/mp4\r\n\r\n"
    ));
    let tail = format!("\r\n--{boundary}--\r\n");
    let path = if token_in_query {
        "/douyin/publish/action/?token=forged.token.value"
    } else {
        "/douyin/publish/action/"
    };
    let host = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; \
         boundary={boundary}\r\nContent-Length: {}\r\n\r\n{head}",
        head.len() + FILE + tail.len()
    );
    stream.write_all(request.as_bytes()).await.expect("head");
    let chunk = vec![0u8; 64 * 1024];
    let mut sent = 0;
    while sent < 1024 * 1024 {
        stream.write_all(&chunk).await.expect("first MiB");
        sent += chunk.len();
    }
    // The reply must come now, with 59 MiB still unsent.
    let mut reply = Vec::new();
    let mut buf = vec![0u8; 8192];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let n = stream.read(&mut buf).await.expect("read reply");
            assert!(n > 0, "connection closed before a reply");
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            if let Some(at) = text.find("\r\n\r\n") {
                let len: usize = text[..at]
                    .lines()
                    .find_map(|l| {
                        let l = l.to_ascii_lowercase();
                        l.strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if reply.len() >= at + 4 + len {
                    return text[at + 4..].to_string();
                }
            }
        }
    })
    .await
    .expect("the refusal is answered before the upload is sent (no reply after 1 MiB of 60)");
    // The server keeps reading (and dropping) the rest, so the client can finish sending.
    let mut delivered = true;
    while sent < FILE {
        if stream
            .write_all(&chunk[..chunk.len().min(FILE - sent)])
            .await
            .is_err()
        {
            delivered = false;
            break;
        }
        sent += chunk.len();
    }
    (
        read,
        delivered && stream.write_all(tail.as_bytes()).await.is_ok(),
    )
}

#[tokio::test]
async fn an_anonymous_upload_is_refused_before_its_body_is_read() {
    let app = TestApp::start(&["--no-sample", "--max-upload-mb", "64"]).await;
    let user = app.register("owner", "pw").await;
    for token_in_query in [false, true] {
        let (reply, delivered) = forged_upload_reply(&app, token_in_query).await;
        let body: serde_json::Value = serde_json::from_str(&reply).expect("json reply");
        assert_refused(&body, "forged token on an upload");
        assert!(
            body["status_msg"]
                .as_str()
                .unwrap_or_default()
                .contains("token"),
            "{body}"
        );
        assert!(
            delivered,
            "the server drained the refused upload (token in query: {token_in_query})"
        );
    }
    assert!(app.publish_list(&user, user.id).await.is_empty());
    // A client with a good token, sent first, still publishes.
    app.publish(&user, "fine").await;
}
