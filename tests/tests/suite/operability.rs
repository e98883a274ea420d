//! Health, readiness, metrics, and graceful shutdown.

use std::time::Duration;

use titok_tests::*;

async fn metrics_text(app: &TestApp) -> String {
    app.get_text("/metrics").await
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let health = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    app.wait_ready().await;
    let u = app.register("u", "pw").await;
    app.publish(&u, "v").await;
    app.wait_ready().await;
    let (_, ready) = app.readyz().await;
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["lag_events"], 0, "everything applied: {ready}");
    for dependency in ["read_store", "event_log", "positions"] {
        assert_eq!(ready["checks"][dependency], "ok", "{dependency}: {ready}");
    }
}

#[tokio::test]
async fn metrics_count_requests_events_projections_and_consistency_waits() {
    let app = spawn_app().await;
    let a = app.register("a", "pw").await;
    let b = app.register("b", "pw").await;
    let video = app.publish(&a, "v").await;
    app.like(&b, video, 1).await;
    app.favorite_list(&b, b.id).await;

    let text = metrics_text(&app).await;
    let cases: [(&str, &[&str]); 8] = [
        (
            "titok_http_requests_total",
            &[r#"route="/douyin/user/register/""#, r#"status="200""#],
        ),
        (
            "titok_http_request_duration_seconds_count",
            &[r#"route="/douyin/favorite/list/""#],
        ),
        ("titok_events_appended_total", &[r#"topic="titok.users""#]),
        (
            "titok_events_appended_total",
            &[r#"topic="titok.favorites""#],
        ),
        (
            "titok_projector_applied_offset",
            &[r#"projection="favorites""#],
        ),
        (
            "titok_projector_batch_size_count",
            &[r#"projection="users""#],
        ),
        ("titok_consistency_waits_total", &[]),
        ("titok_db_pool_connections", &[r#"pool="read""#]),
    ];
    for (name, labels) in cases {
        assert!(
            metric(&text, name, labels) > 0.0,
            "{name}{labels:?} should be positive in:\n{text}"
        );
    }
    assert_eq!(
        metric(
            &text,
            "titok_events_appended_total",
            &[r#"topic="titok.users""#]
        ),
        2.0,
        "two registrations"
    );
}

#[tokio::test]
async fn idle_chat_polls_make_no_database_query() {
    let app = spawn_app().await;
    let a = app.register("a", "pw").await;
    let b = app.register("b", "pw").await;
    app.send_message(&a, b.id, "hi").await;
    let newest = app.chat(&b, a.id, 0).await[0]["create_time"]
        .as_i64()
        .expect("time");
    let before = metric(
        &metrics_text(&app).await,
        "titok_chat_db_queries_total",
        &[],
    );

    for _ in 0..50 {
        assert!(app.chat(&b, a.id, newest).await.is_empty(), "nothing new");
    }

    let text = metrics_text(&app).await;
    assert_eq!(
        metric(&text, "titok_chat_db_queries_total", &[]),
        before,
        "idle polls touched the database"
    );
    assert!(metric(&text, "titok_chat_polls_total", &[r#"answer="shortcut""#]) >= 50.0);

    // Positive control: a poll that has something to fetch does query, and the series counts it
    // (a missing series would read as 0 above and prove nothing).
    assert_eq!(app.chat(&b, a.id, 0).await.len(), 1);
    let after = metric(
        &metrics_text(&app).await,
        "titok_chat_db_queries_total",
        &[],
    );
    assert!(
        after > before,
        "a non-idle poll is counted: {before} → {after}"
    );
}

#[tokio::test]
async fn sigterm_stops_the_server_gracefully_and_nothing_is_lost() {
    let mut app = spawn_app().await;
    let u = app.register("u", "pw").await;
    let video = app.publish(&u, "v").await;
    app.like(&u, video, 1).await;

    assert!(app.terminate().await, "clean exit on SIGTERM");
    let log = app.logs();
    assert!(log.contains("shutting down"), "logs the shutdown:\n{log}");
    assert!(
        log.contains("projection stopped"),
        "projections finish their batch and stop:\n{log}"
    );

    app.respawn().await;
    assert_eq!(app.publish_list(&u, u.id).await[0]["favorite_count"], 1);
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_served_routes() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(
        doc["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3."),
        "OpenAPI 3: {}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
    documented.sort_unstable();
    let mut contract = vec![
        "/douyin/feed/",
        "/douyin/user/register/",
        "/douyin/user/login/",
        "/douyin/user/",
        "/douyin/publish/action/",
        "/douyin/publish/list/",
        "/douyin/favorite/action/",
        "/douyin/favorite/list/",
        "/douyin/comment/action/",
        "/douyin/comment/list/",
        "/douyin/relation/action/",
        "/douyin/relation/follow/list/",
        "/douyin/relatioin/follow/list/",
        "/douyin/relation/follower/list/",
        "/douyin/relation/friend/list/",
        "/douyin/message/action/",
        "/douyin/message/chat/",
        "/douyin/stream/",
    ];
    contract.sort_unstable();
    assert_eq!(
        documented, contract,
        "the 16 endpoints, the typo alias and the live stream, nothing else"
    );
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../../../docs/openapi.json"))
            .expect("docs/openapi.json parses");
    assert_eq!(
        committed, doc,
        "docs/openapi.json is stale: regenerate it with `curl -s localhost:8080/openapi.json | python3 -m json.tool > docs/openapi.json`"
    );
    for schema in ["User", "Video", "Comment", "Message", "FriendUser"] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} documented"
        );
    }

    // Every documented operation exists and answers with an envelope.
    for (path, item) in paths {
        for method in item.as_object().expect("operations").keys() {
            let request = match method.as_str() {
                "get" => app.client.get(app.url(path)),
                "post" => app.client.post(app.url(path)).form(&[("x", "1")]),
                other => panic!("unexpected method {other} on {path}"),
            };
            let resp = request.send().await.expect("send");
            let status = resp.status().as_u16();
            assert!(
                status != 404 && status != 405,
                "{method} {path} is documented but answers {status}"
            );
            let body: serde_json::Value = resp.json().await.expect("an envelope");
            assert!(body["status_code"].is_i64(), "{method} {path}: {body}");
        }
    }
}

#[tokio::test]
async fn one_write_can_be_followed_from_its_request_to_the_projector_in_the_logs() {
    let app = TestApp::start(&["--no-sample", "--log-json"]).await;
    let author = app.register("author", "pw").await;
    let fan = app.register("fan", "pw").await;
    let video = app.publish(&author, "v").await;

    let resp = app
        .client
        .post(app.url("/douyin/favorite/action/"))
        .header("x-request-id", "trace-like-42")
        .form(&fan.with(&[("video_id", video.to_string()), ("action_type", "1".into())]))
        .send()
        .await
        .expect("like");
    assert_eq!(
        resp.headers()["x-request-id"],
        "trace-like-42",
        "the request id is echoed"
    );
    app.favorite_list(&fan, fan.id).await; // read-after-write: the projector applied it

    let lines: Vec<serde_json::Value> = app
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let request = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request finished")
        .find_map(|l| {
            l["span"]
                .as_object()
                .filter(|s| s["request_id"] == "trace-like-42")
        })
        .unwrap_or_else(|| panic!("no request line for trace-like-42 in:\n{}", app.logs()));
    assert_eq!(request["route"], "/douyin/favorite/action/");
    assert_eq!(request["user_id"], fan.id, "the span carries the user");
    let event_id = request["event_id"]
        .as_str()
        .expect("the span carries the event id");
    let applied = lines
        .iter()
        .find(|l| {
            l["fields"]["message"] == "event applied" && l["fields"]["trace_id"] == "trace-like-42"
        })
        .unwrap_or_else(|| panic!("no projector line for trace-like-42 in:\n{}", app.logs()));
    assert_eq!(
        applied["fields"]["event_id"], event_id,
        "the projector names the same event"
    );
    assert_eq!(applied["fields"]["projection"], "favorites");
}

/// With `--admin-listen`, `/metrics` and `/readyz` are served there and not on the
/// public address (where a balancer would expose them); `/healthz` stays on both.
#[tokio::test]
async fn admin_endpoints_move_to_their_own_listener() {
    let port = free_port();
    let app = TestApp::start(&[
        "--no-sample",
        "--admin-listen",
        &format!("127.0.0.1:{port}"),
    ])
    .await;
    for path in ["/metrics", "/readyz"] {
        let (status, body) = app.get_raw(path, &[]).await;
        assert_eq!(status, 404, "{path} is not public: {body}");
        assert_ne!(body["status_code"], 0);
    }
    assert_eq!(app.get_text("/healthz").await, "ok");
    let admin = format!("http://127.0.0.1:{port}");
    let metrics = app
        .client
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .expect("admin metrics");
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.expect("text").contains("titok_"));
    let ready = app
        .client
        .get(format!("{admin}/readyz"))
        .send()
        .await
        .expect("admin readyz");
    assert_eq!(ready.status(), 200);
}

/// Feed pages and their SQL statements so far: anonymous pages, their statements, pages with a
/// token, theirs.
fn feed_counts(text: &str) -> [f64; 4] {
    let of = |name: &str, viewer: &str| metric(text, name, &[&format!(r#"viewer="{viewer}""#)]);
    [
        of("titok_feed_pages_total", "anonymous"),
        of("titok_feed_sql_statements_total", "anonymous"),
        of("titok_feed_pages_total", "token"),
        of("titok_feed_sql_statements_total", "token"),
    ]
}

/// [`feed_counts`] over `pages` anonymous pages and `pages` with the viewer's token.
async fn feed_statements(app: &TestApp, viewer: &User, pages: usize) -> [f64; 4] {
    let before = feed_counts(&metrics_text(app).await);
    for _ in 0..pages {
        let page = app.get_ok("/douyin/feed/", &[], "anonymous feed").await;
        assert_eq!(list(&page, "video_list").len(), 3, "{page}");
        let page = app
            .get_ok("/douyin/feed/", &[("token", viewer.token.clone())], "feed")
            .await;
        let videos = list(&page, "video_list");
        assert!(
            videos.iter().any(|v| v["is_favorite"] == true)
                && videos.iter().all(|v| v["author"]["is_follow"] == true),
            "the viewer's like and follow show: {page}"
        );
    }
    let after = feed_counts(&metrics_text(app).await);
    std::array::from_fn(|i| after[i] - before[i])
}

/// The feed's pages come from memory: an anonymous page runs no SQL, one with a token a single
/// statement (its likes and follows). With the index off, the same pages query SQL (the count's
/// positive control).
#[tokio::test]
async fn a_feed_page_runs_no_sql_anonymous_and_one_statement_with_a_token() {
    for (index, args) in [
        (true, &["--no-sample"][..]),
        (false, &["--no-sample", "--feed-index-videos", "0"][..]),
    ] {
        let app = TestApp::start(args).await;
        let author = app.register("author", "pw").await;
        let viewer = app.register("viewer", "pw").await;
        let mut videos = Vec::new();
        for i in 0..3 {
            videos.push(app.publish(&author, &format!("v{i}")).await);
        }
        app.like(&viewer, videos[1], 1).await;
        app.follow(&viewer, author.id, 1).await;
        // Warm the caches a process fills once (names, counters, the token's user); with the
        // index on, until its tail of the videos topic has folded the three videos (on a broker
        // its consumer group may take seconds to join; meanwhile pages come from SQL).
        feed_statements(&app, &viewer, 1).await;
        if index {
            eventually(
                Duration::from_secs(30),
                "a feed page from the index",
                || async {
                    let before = metrics_text(&app).await;
                    let memory = |text: &str| {
                        metric(
                            text,
                            "titok_feed_index_pages_total",
                            &[r#"source="memory""#],
                        )
                    };
                    app.get_ok("/douyin/feed/", &[], "feed").await;
                    (memory(&metrics_text(&app).await) > memory(&before)).then_some(())
                },
            )
            .await;
        }

        let [anonymous, anonymous_sql, token, token_sql] = feed_statements(&app, &viewer, 20).await;

        assert_eq!((anonymous, token), (20.0, 20.0), "pages counted");
        if index {
            assert_eq!(anonymous_sql, 0.0, "statements of 20 anonymous pages");
            assert_eq!(token_sql, 20.0, "statements of 20 pages with a token");
        } else {
            assert!(
                anonymous_sql >= 20.0,
                "SQL pages are counted: {anonymous_sql}"
            );
            assert!(token_sql >= 40.0, "SQL pages are counted: {token_sql}");
        }
    }
}
