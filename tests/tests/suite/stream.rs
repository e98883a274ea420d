//! Live push (`/douyin/stream/`, server-sent events): what concerns a user reaches their streams,
//! only once its projection applied it; a resume with `Last-Event-ID` replays exactly what was
//! missed, across a restart; refusals are envelopes. Runs on every topology (passes 1–4); the
//! cross-instance case is in `balanced::`.

use std::time::Duration;

use serde_json::Value;
use titok_tests::*;

/// A query API's own URL: the only one of the embedded server, the first of a scaled topology
/// (per-process bounds are asserted there, not through the balancer).
fn one_query_api(app: &TestApp) -> String {
    if app.is_scaled() {
        app.instance_url("query-api", 1)
    } else {
        app.url("")
    }
}

#[tokio::test]
async fn a_message_reaches_both_streams_only_once_the_view_holds_it() {
    // Arrange
    let app = spawn_app().await;
    let a = app.register("push_from", "secret123").await;
    let b = app.register("push_to", "secret123").await;
    let (mut from, _) = app.stream(&a.token).await;
    let (mut to, _) = app.stream(&b.token).await;
    let views = app.view_db().await;

    for round in 0..10 {
        // Act
        let content = format!("live {round}");
        app.send_message(&a, b.id, &content).await;

        // Assert: both participants get it, and the messages view already holds it then.
        for stream in [&mut from, &mut to] {
            let event = stream.next().await;
            assert_eq!(event.event, "message", "{event:?}");
            assert_eq!(event.data["content"], content.as_str());
            assert_eq!(event.data["from_user_id"], a.id);
            assert_eq!(event.data["to_user_id"], b.id);
            assert!(event.data["create_time"].as_i64().unwrap_or(0) > 0);
            assert!(event.id.starts_with("s1."), "{event:?}");
            let held: Option<(i64,)> = sqlx::query_as("SELECT id FROM messages WHERE id = ?")
                .bind(event.data["id"].as_i64().expect("id"))
                .fetch_optional(&views)
                .await
                .expect("read the messages view");
            assert!(
                held.is_some(),
                "round {round}: pushed before the view held it"
            );
        }
    }
    let chat = app.chat(&b, a.id, 0).await;
    assert_eq!(chat.len(), 10);
}

#[tokio::test]
async fn likes_comments_and_follows_reach_the_author_with_their_counts() {
    // Arrange
    let app = spawn_app().await;
    let author = app.register("push_author", "secret123").await;
    let fan = app.register("push_fan", "secret123").await;
    let video = app.publish(&author, "pushed").await;
    let (mut author_stream, _) = app.stream(&author.token).await;
    let (mut fan_stream, _) = app.stream(&fan.token).await;

    // Act + Assert, one action at a time.
    app.like(&fan, video, 1).await;
    let like = author_stream.next().await;
    assert_eq!(like.event, "favorite", "{like:?}");
    assert_eq!(
        (
            &like.data["video_id"],
            &like.data["user_id"],
            &like.data["action_type"],
            &like.data["favorite_count"]
        ),
        (
            &Value::from(video),
            &Value::from(fan.id),
            &Value::from(1),
            &Value::from(1)
        )
    );

    let reply = app.comment(&fan, video, "seen live").await;
    let comment_id = reply["id"].as_i64().expect("comment id");
    let comment = author_stream.next().await;
    assert_eq!(comment.event, "comment", "{comment:?}");
    assert_eq!(comment.data["action_type"], 1);
    assert_eq!(comment.data["comment_id"], comment_id);
    assert_eq!(comment.data["comment"]["content"], "seen live");
    assert_eq!(comment.data["comment"]["user"]["id"], fan.id);
    assert_eq!(comment.data["comment_count"], 1);

    app.follow(&fan, author.id, 1).await;
    let follow = author_stream.next().await;
    assert_eq!(follow.event, "follow", "{follow:?}");
    assert_eq!(follow.data["user_id"], fan.id);
    assert_eq!(follow.data["action_type"], 1);
    assert_eq!(follow.data["follower_count"], 1);

    app.like(&fan, video, 2).await;
    let unlike = author_stream.next().await;
    assert_eq!(
        (
            unlike.event.as_str(),
            &unlike.data["action_type"],
            &unlike.data["favorite_count"]
        ),
        ("favorite", &Value::from(2), &Value::from(0))
    );
    // The author's counters as read agree with what was pushed.
    let info = app.user_info(&author, author.id).await;
    assert_eq!(info["follower_count"], 1);

    // None of it concerned the fan.
    assert!(
        fan_stream
            .next_within(Duration::from_millis(500))
            .await
            .is_none(),
        "the fan's stream got an event of the author's"
    );
}

#[tokio::test]
async fn a_resume_replays_exactly_what_was_missed_across_a_restart() {
    // Arrange: b received "one", then went away.
    let mut app = spawn_app().await;
    let a = app.register("resume_from", "secret123").await;
    let b = app.register("resume_to", "secret123").await;
    let (mut stream, _) = app.stream(&b.token).await;
    app.send_message(&a, b.id, "one").await;
    let one = stream.next().await;
    assert_eq!(one.data["content"], "one");
    drop(stream);
    for text in ["two", "three", "four"] {
        app.send_message(&a, b.id, text).await;
        // Events of other users' in between are not b's.
        app.follow(&a, b.id, if text == "three" { 2 } else { 1 })
            .await;
    }
    app.restart().await;

    // Act: resume with the Last-Event-ID header (on whichever query API the request lands).
    let url = app.url("/douyin/stream/");
    let mut resumed = app.stream_at(&url, &b.token, Some(&one.id)).await;

    // Assert: "ready", then the missed messages and follows in order, none twice.
    assert_eq!(resumed.next().await.event, "ready");
    let mut messages = Vec::new();
    let mut follows = Vec::new();
    let mut last = None;
    while let Some(event) = resumed.next_within(Duration::from_secs(3)).await {
        match event.event.as_str() {
            "message" => messages.push(event.data["content"].as_str().unwrap_or("").to_owned()),
            "follow" => follows.push(event.data["action_type"].as_i64().unwrap_or(0)),
            other => panic!("unexpected {other}: {event:?}"),
        }
        last = Some(event);
    }
    assert_eq!(messages, ["two", "three", "four"]);
    assert_eq!(follows, [1, 2, 1]);

    // And from the last id (in the query string this time), nothing again.
    let last = last.expect("events");
    let mut again = app
        .stream_response(
            &url,
            &[
                ("token", b.token.clone()),
                ("last_event_id", last.id.clone()),
            ],
            None,
        )
        .await;
    assert_eq!(again.status(), 200);
    let mut first = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, again.chunk()).await {
        first.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(first.contains("event: ready"), "{first}");
    assert!(
        !first.contains("event: message") && !first.contains("event: follow"),
        "replayed again: {first}"
    );
}

#[tokio::test]
async fn a_resume_point_older_than_the_server_holds_gets_reset_and_the_stream_goes_on() {
    // Arrange: a replay window of 4 events, and 12 messages missed.
    let app = TestApp::start(&["--stream-replay", "4"]).await;
    let a = app.register("reset_from", "secret123").await;
    let b = app.register("reset_to", "secret123").await;
    let base = one_query_api(&app);
    let url = format!("{base}/douyin/stream/");
    let mut stream = app.stream_at(&url, &b.token, None).await;
    assert_eq!(stream.next().await.event, "ready");
    app.send_message(&a, b.id, "kept").await;
    let kept = stream.next().await;
    drop(stream);
    for i in 0..12 {
        app.send_message(&a, b.id, &format!("missed {i}")).await;
    }
    // Let the hub release them all (a resume only sees what it released).
    let mut watcher = app.stream_at(&url, &a.token, None).await;
    assert_eq!(watcher.next().await.event, "ready");
    app.send_message(&b, a.id, "marker").await;
    assert_eq!(watcher.next().await.data["content"], "marker");

    // Act
    let mut resumed = app.stream_at(&url, &b.token, Some(&kept.id)).await;

    // Assert: reset, telling the client to re-read; then live events as usual.
    let reset = resumed.next().await;
    assert_eq!(reset.event, "reset", "{reset:?}");
    assert!(
        reset.data["reason"]
            .as_str()
            .unwrap_or("")
            .contains("polling API"),
        "{reset:?}"
    );
    app.send_message(&a, b.id, "after the reset").await;
    let next = resumed.next().await;
    assert_eq!(next.data["content"], "after the reset");
    // A resume point of another partition layout is a reset too, not an error.
    let mut other = app.stream_at(&url, &b.token, Some("s1.0.0")).await;
    assert_eq!(other.next().await.event, "reset");
}

#[tokio::test]
async fn refusals_are_envelopes_and_streams_are_capped_per_user() {
    // Arrange
    let app = TestApp::start(&["--streams-per-user", "2"]).await;
    let user = app.register("capped", "secret123").await;
    let base = one_query_api(&app);
    let url = format!("{base}/douyin/stream/");
    let refusal = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("an envelope");
        assert_ne!(body["status_code"], 0, "{body}");
        assert!(
            body["status_msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        (status, body["status_msg"].as_str().unwrap_or("").to_owned())
    };

    // Act + Assert: no token, a bad token, a malformed resume id.
    let (_, msg) = refusal(app.stream_response(&url, &[], None).await).await;
    assert!(msg.contains("token"), "{msg}");
    let (_, msg) = refusal(
        app.stream_response(&url, &[("token", "forged".into())], None)
            .await,
    )
    .await;
    assert!(!msg.is_empty());
    let (_, msg) = refusal(
        app.stream_response(&url, &[("token", user.token.clone())], Some("not-an-id"))
            .await,
    )
    .await;
    assert!(msg.contains("last_event_id"), "{msg}");

    // The token also comes as a bearer; two streams are allowed, the third refused with 429.
    let client = reqwest::Client::new();
    let bearer = client
        .get(&url)
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("GET");
    assert_eq!(bearer.status(), 200);
    let _second = app.stream_at(&url, &user.token, None).await;
    let (status, msg) = refusal(
        app.stream_response(&url, &[("token", user.token.clone())], None)
            .await,
    )
    .await;
    assert_eq!(status, 429, "{msg}");
    // Closing one frees its place.
    drop(bearer);
    let token = user.token.clone();
    eventually(
        Duration::from_secs(20),
        "a closed stream's place freed",
        || {
            let (app, url, token) = (&app, &url, token.clone());
            async move {
                let response = app.stream_response(url, &[("token", token)], None).await;
                (response.status() == 200).then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn with_streams_off_the_endpoint_refuses_with_503_and_polling_still_works() {
    let app = TestApp::start(&["--streams", "0"]).await;
    let user = app.register("no_streams", "secret123").await;
    let response = app
        .stream_response(
            &app.url("/douyin/stream/"),
            &[("token", user.token.clone())],
            None,
        )
        .await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("envelope");
    assert!(
        body["status_msg"].as_str().unwrap_or("").contains("poll"),
        "{body}"
    );
}
