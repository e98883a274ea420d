//! Outages of the production services (runs in scripts/test's real-service pass): each test runs
//! its own private instance of the service it stops, so parallel tests are not disturbed.

use std::time::Duration;

use titok_tests::*;

#[tokio::test]
async fn the_query_api_answers_from_mysql_while_redis_is_down_and_uses_redis_again_when_back() {
    needs_real_services!();
    // Arrange
    let mut redis = PrivateService::redis().await;
    let app = TestApp::start_with(
        &["--no-sample"],
        &[("--redis-url", format!("redis://127.0.0.1:{}", redis.port))],
    )
    .await;
    let author = app.register("author", "pw").await;
    let fans = [
        app.register("f1", "pw").await,
        app.register("f2", "pw").await,
    ];
    let video = app.publish(&author, "v").await;
    app.like(&fans[0], video, 1).await;
    assert_eq!(
        app.publish_list(&author, author.id).await[0]["favorite_count"],
        1
    );

    // Act: Redis goes away.
    redis.stop();

    // Assert: reads still answer, with counts from MySQL.
    for _ in 0..3 {
        assert_eq!(
            app.publish_list(&fans[1], author.id).await[0]["favorite_count"],
            1,
            "count from MySQL"
        );
        assert_eq!(
            app.user_info(&fans[1], author.id).await["total_favorited"],
            1
        );
        let feed = app
            .get("/douyin/feed/", &[("token", fans[1].token.clone())])
            .await;
        assert_ok(&feed, "feed without Redis");
        let chat = app
            .get(
                "/douyin/message/chat/",
                &fans[1].with(&[("to_user_id", author.id.to_string())]),
            )
            .await;
        assert_ok(&chat, "chat without Redis");
    }

    // Redis returns (empty): the projections resume and reads use it again.
    redis.start().await;
    app.like(&fans[1], video, 1).await;
    let mut count = serde_json::Value::Null;
    for _ in 0..100 {
        count = app.publish_list(&author, author.id).await[0]["favorite_count"].clone();
        if count == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count, 2, "the like made after Redis returned is counted");
    app.wait_ready().await;
    assert_eq!(
        app.user_info(&author, author.id).await["total_favorited"],
        2
    );
}

#[tokio::test]
async fn the_command_api_answers_503_while_the_broker_is_down_and_loses_nothing_it_acknowledged() {
    needs_real_services!();
    // Arrange
    let mut broker = PrivateService::tansu().await;
    // tansu 0.6 panics when an idempotent producer from before its restart produces again
    // ("more or less than one row" in its idempotence check) and then refuses all writes; the
    // production default (idempotence on) is covered by the rest of the suite.
    let app = TestApp::start_with(
        &["--no-sample", "--kafka-idempotence", "false"],
        &[("--kafka-brokers", format!("127.0.0.1:{}", broker.port))],
    )
    .await;
    let author = app.register("author", "pw").await;
    let video = app.publish(&author, "v").await;
    let mut fans = Vec::new();
    for i in 0..8 {
        fans.push(app.register(&format!("fan{i}"), "pw").await);
    }
    let like =
        |fan: &User| fan.with(&[("video_id", video.to_string()), ("action_type", "1".into())]);
    let mut acknowledged = Vec::new();
    for fan in &fans[..4] {
        app.like(fan, video, 1).await;
        acknowledged.push(fan.id);
    }

    // Act: the broker stops.
    broker.stop();
    let (status, body) = app
        .post_raw("/douyin/favorite/action/", &like(&fans[4]))
        .await;

    // Assert: a clear 503 envelope, not an acknowledgement.
    assert_eq!(status, 503, "write without a broker: {body}");
    assert_eq!(body["status_code"], 503, "{body}");
    assert!(
        body["status_msg"]
            .as_str()
            .unwrap_or_default()
            .contains("unavailable"),
        "{body}"
    );

    // The broker returns: writes are acknowledged again, and every acknowledged like is counted.
    broker.start().await;
    for fan in &fans[5..] {
        let mut last = serde_json::Value::Null;
        for _ in 0..60 {
            let (status, body) = app.post_raw("/douyin/favorite/action/", &like(fan)).await;
            if status == 200 && body["status_code"] == 0 {
                last = serde_json::Value::Null;
                break;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let log = app.logs();
        let tail: String = log.lines().rev().take(15).collect::<Vec<_>>().join("\n");
        assert!(
            last.is_null(),
            "writes succeed again once the broker is back; last {last}; log tail:\n{tail}"
        );
        acknowledged.push(fan.id);
    }
    app.wait_ready().await;
    let count = app.publish_list(&author, author.id).await[0]["favorite_count"]
        .as_i64()
        .unwrap_or(-1);
    assert_eq!(
        count,
        acknowledged.len() as i64,
        "every acknowledged like, nothing else"
    );
    for fan in &fans {
        let liked = ids(&app.favorite_list(fan, fan.id).await).contains(&video);
        assert_eq!(
            liked,
            acknowledged.contains(&fan.id),
            "fan {}: liked iff acknowledged",
            fan.id
        );
    }
}

#[tokio::test]
async fn projectors_pause_while_mysql_is_down_and_resume_without_skipping_an_event() {
    needs_real_services!();
    // Arrange: a private MariaDB for this server's accounts and views.
    let mut mysql = PrivateService::mariadb().await;
    let app = TestApp::start_with(&["--no-sample"], &[("--mysql-url", mysql.mysql_url())]).await;
    let author = app.register("author", "pw").await;
    let video = app.publish(&author, "v").await;
    let mut fans = Vec::new();
    for i in 0..40 {
        fans.push(app.register(&format!("fan{i}"), "pw").await);
    }

    // Act: MySQL crashes; meanwhile likes reach the log (appended directly, as another command API
    // instance would), so the projection has events it cannot apply.
    mysql.stop();
    let log = kafka_log(app.arg("--namespace").expect("namespace")).await;
    for fan in &fans {
        let like = titok_events::Favorite {
            user_id: fan.id,
            video_id: video,
            author_id: author.id,
        };
        let event = titok_events::Envelope::new(fan.id, titok_events::EventBody::VideoLiked(like));
        titok_infra::log::EventLog::append(&log, &[event.clone(), event])
            .await
            .expect("append");
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // the projection retries against a dead MySQL
    mysql.start().await;

    // Assert: every like is applied once (each was appended twice), none skipped.
    let mut count = serde_json::Value::Null;
    for _ in 0..150 {
        let (status, body) = app
            .get_raw(
                "/douyin/publish/list/",
                &author.with(&[("user_id", author.id.to_string())]),
            )
            .await;
        if status == 200 && body["status_code"] == 0 {
            count = body["video_list"][0]["favorite_count"].clone();
            if count == fans.len() as i64 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        count,
        fans.len() as i64,
        "all likes applied after MySQL returned"
    );
    assert_eq!(
        app.user_info(&author, author.id).await["total_favorited"],
        fans.len() as i64
    );
    for fan in fans.iter().step_by(7) {
        assert_eq!(
            ids(&app.favorite_list(fan, fan.id).await),
            vec![video],
            "fan {} like applied",
            fan.id
        );
    }
}
