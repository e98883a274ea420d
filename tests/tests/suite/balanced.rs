//! The scaled-out topology behind haproxy: two command APIs, two query APIs and two
//! projector instances on Kafka, a MariaDB primary with two read replicas and a Redis Cluster.
//! Only scripts/test's third pass (`TITOK_TEST_TOPOLOGY=scaled`) builds that topology; the same
//! pass runs the black-box suites and the 1,000-pair consistency tests through the balancer.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use titok_tests::*;

/// Guard: these tests are meaningless on one process.
fn needs_scaled() {
    assert!(
        scaled_topology(),
        "this test needs the scaled topology (TITOK_TEST_TOPOLOGY=scaled); scripts/test runs it in its third pass"
    );
}

#[tokio::test]
#[ignore = "needs the scaled topology: scripts/test runs it in its third pass"]
async fn the_login_quota_holds_across_command_instances() {
    needs_scaled();
    let app = TestApp::start(&["--no-sample", "--login-attempts-per-user", "4"]).await;
    app.register("target", "password1").await;
    // Round robin: the attempts alternate between the two command APIs, so an in-process quota
    // of 4 would let 8 through; the shared one refuses the fifth.
    app.assert_nth_login_throttled("target", 5).await;
}

/// The shipped balancer configuration does not route the operators' endpoints: `/metrics` and
/// `/readyz` through it answer a 404 envelope, while each instance still serves them itself.
#[tokio::test]
#[ignore = "needs the scaled topology: scripts/test runs it in its third pass"]
async fn the_balancer_does_not_route_metrics_or_readiness() {
    needs_scaled();
    let app = TestApp::start(&["--no-sample"]).await;
    for path in ["/metrics", "/readyz", "/readyz?max_lag=0"] {
        let resp = app.client.get(app.url(path)).send().await.expect("GET");
        assert_eq!(resp.status(), 404, "{path} through the balancer");
        let body: Value = resp.json().await.expect("an envelope");
        assert_refused(&body, path);
        let own = app
            .client
            .get(app.admin_url(path))
            .send()
            .await
            .expect("GET");
        assert_eq!(own.status(), 200, "{path} on the instance itself");
    }
    // Everything else still goes through.
    let (status, body) = app.get_raw("/douyin/feed/", &[]).await;
    assert_eq!(status, 200);
    assert_ok(&body, "feed through the balancer");
}

/// POST with an `Idempotency-Key`, retried with the same key on transport errors and 5xx (an
/// instance killed mid-request, a broker rebalancing) until acknowledged; the reply body.
async fn until_acked(app: &TestApp, path: &str, key: &str, form: &[(&str, String)]) -> Value {
    let what = format!("{path} {key} acknowledged");
    eventually(Duration::from_secs(120), &what, || async {
        match app.keyed_post(path, key, form).send().await {
            Ok(resp) if resp.status().is_server_error() => None,
            Ok(resp) => {
                let status = resp.status();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                assert_eq!(status, 200, "{path} {key}: {body}");
                assert_ok(&body, path);
                Some(body)
            }
            Err(_) => None,
        }
    })
    .await
}

const VIDEOS: usize = 3;
const WORKERS: usize = 4;

#[tokio::test]
#[ignore = "needs the scaled topology: scripts/test runs it in its third pass"]
async fn one_instance_of_each_role_killed_under_load_loses_nothing_acknowledged() {
    needs_scaled();
    let app = Arc::new(TestApp::start(&["--no-sample"]).await);
    let author = app.register("author", "password1").await;
    let mut videos = Vec::new();
    for i in 0..VIDEOS {
        videos.push(app.publish(&author, &format!("v{i}")).await);
    }
    let mut fans = Vec::new();
    for i in 0..WORKERS {
        fans.push(app.register(&format!("fan{i}"), "password1").await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for (w, fan) in fans.iter().cloned().enumerate() {
        let (app, stop, acked, videos, author_id) = (
            app.clone(),
            stop.clone(),
            acked.clone(),
            videos.clone(),
            author.id,
        );
        workers.push(tokio::spawn(async move {
            let mut liked = vec![false; VIDEOS];
            let mut messages = 0usize;
            let mut op = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let v = op % VIDEOS;
                let form = fan.with(&[
                    ("video_id", videos[v].to_string()),
                    ("action_type", if liked[v] { "2" } else { "1" }.into()),
                ]);
                until_acked(
                    &app,
                    "/douyin/favorite/action/",
                    &format!("like-{w}-{op}"),
                    &form,
                )
                .await;
                liked[v] = !liked[v];
                if op.is_multiple_of(4) {
                    let form = fan.with(&[
                        ("to_user_id", author_id.to_string()),
                        ("action_type", "1".into()),
                        ("content", format!("m{op}")),
                    ]);
                    until_acked(
                        &app,
                        "/douyin/message/action/",
                        &format!("msg-{w}-{op}"),
                        &form,
                    )
                    .await;
                    messages += 1;
                }
                acked.fetch_add(1, Ordering::Relaxed);
                op += 1;
            }
            (liked, messages)
        }));
    }

    // One instance of each role dies mid-load; work must go on in between.
    for role in ["projectors", "command-api", "query-api"] {
        let before = acked.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            acked.load(Ordering::Relaxed) > before,
            "no progress before killing {role}"
        );
        app.kill_one(role, 1);
    }
    let before = acked.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        acked.load(Ordering::Relaxed) > before,
        "no progress after the kills"
    );
    stop.store(true, Ordering::Relaxed);
    let mut expected = Vec::new();
    for worker in workers {
        expected.push(worker.await.expect("worker"));
    }

    // Every acknowledged like, unlike and message is in the views, exactly once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut mismatches = Vec::new();
        for (fan, (liked, messages)) in fans.iter().zip(&expected) {
            let listed: HashSet<i64> = ids(&app.favorite_list(fan, fan.id).await)
                .into_iter()
                .collect();
            let want: HashSet<i64> = videos
                .iter()
                .zip(liked)
                .filter(|(_, l)| **l)
                .map(|(v, _)| *v)
                .collect();
            if listed != want {
                mismatches.push(format!(
                    "fan {} likes {listed:?}, acknowledged {want:?}",
                    fan.id
                ));
            }
            let chat = app.chat(fan, author.id, 0).await.len();
            if chat != *messages {
                mismatches.push(format!(
                    "fan {}: {chat} messages, acknowledged {messages}",
                    fan.id
                ));
            }
        }
        let counts: HashMap<i64, i64> = app
            .publish_list(&author, author.id)
            .await
            .iter()
            .map(|v| {
                (
                    v["id"].as_i64().expect("id"),
                    v["favorite_count"].as_i64().expect("count"),
                )
            })
            .collect();
        for (i, video) in videos.iter().enumerate() {
            let want = expected.iter().filter(|(liked, _)| liked[i]).count() as i64;
            if counts.get(video) != Some(&want) {
                mismatches.push(format!(
                    "video {video}: count {:?}, acknowledged {want}",
                    counts.get(video)
                ));
            }
        }
        if mismatches.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "60 s after the load: {mismatches:#?}\n{}",
            app.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A message accepted by command API 1 reaches a stream held by query API 2 (each query API
/// tails the log itself), and a like accepted by command API 2 one held by query API 1; a
/// stream held through the balancer outlives haproxy's 20 s server timeout of the reads (its
/// own backend allows an hour, and keep-alive comments every 15 s show it is alive).
#[tokio::test]
#[ignore = "needs the scaled topology: scripts/test runs it in its third pass"]
async fn a_message_sent_through_one_instance_reaches_a_stream_on_the_other() {
    needs_scaled();
    let app = TestApp::start(&["--no-sample"]).await;
    let a = app.register("across_a", "password1").await;
    let b = app.register("across_b", "password1").await;
    let video = app.publish(&b, "across").await;
    let stream_on = |n: usize| format!("{}/douyin/stream/", app.instance_url("query-api", n));
    let mut on_two = app.stream_at(&stream_on(2), &b.token, None).await;
    assert_eq!(on_two.next().await.event, "ready");
    let mut on_one = app.stream_at(&stream_on(1), &b.token, None).await;
    assert_eq!(on_one.next().await.event, "ready");
    let through = app
        .stream_at(&app.url("/douyin/stream/"), &b.token, None)
        .await;

    let sent = app
        .client
        .post(format!(
            "{}/douyin/message/action/",
            app.instance_url("command-api", 1)
        ))
        .form(&a.with(&[
            ("to_user_id", b.id.to_string()),
            ("action_type", "1".into()),
            ("content", "from command api 1".into()),
        ]))
        .send()
        .await
        .expect("POST");
    assert_ok(
        &sent.json().await.expect("envelope"),
        "message via command API 1",
    );
    let event = on_two.next().await;
    assert_eq!(event.event, "message");
    assert_eq!(event.data["content"], "from command api 1");
    assert_eq!(on_one.next().await.data["content"], "from command api 1");

    let liked = app
        .client
        .post(format!(
            "{}/douyin/favorite/action/",
            app.instance_url("command-api", 2)
        ))
        .form(&a.with(&[("video_id", video.to_string()), ("action_type", "1".into())]))
        .send()
        .await
        .expect("POST");
    assert_ok(
        &liked.json().await.expect("envelope"),
        "like via command API 2",
    );
    let like = on_one.next().await;
    assert_eq!(
        (like.event.as_str(), &like.data["favorite_count"]),
        ("favorite", &Value::from(1))
    );

    // The balanced stream is still open after 25 s of quiet, and then still delivers.
    let mut through = through;
    assert_eq!(through.next().await.event, "ready");
    tokio::time::sleep(Duration::from_secs(25)).await;
    app.send_message(&a, b.id, "after the quiet").await;
    let mut seen = Vec::new();
    while let Some(event) = through.next_within(Duration::from_secs(10)).await {
        let done = event.data["content"] == "after the quiet";
        seen.push(event);
        if done {
            break;
        }
    }
    assert_eq!(
        seen.last().map(|e| e.data["content"].clone()),
        Some(Value::from("after the quiet")),
        "{seen:?}"
    );
    assert!(
        through.comments > 0,
        "a keep-alive comment in 25 s of quiet"
    );
}
