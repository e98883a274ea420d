//! Redis outages: reads answer from MySQL while Redis is down and use it again when it is back, a
//! SIGTERM is not held up by a projection waiting for the cache, and a Redis restarted from an
//! older snapshot serves nothing old without the stale marker.

use std::time::Duration;

use titok_tests::*;

use super::on_private_redis;

#[tokio::test]
#[ignore = "needs Kafka, MySQL and Redis: scripts/test runs it in its real-service pass"]
async fn the_query_api_answers_from_mysql_while_redis_is_down_and_uses_redis_again_when_back() {
    needs_real_services!();
    // Arrange
    let (mut redis, app) = on_private_redis().await;
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
    let count = eventually(
        Duration::from_secs(30),
        "the like made after Redis returned is counted",
        || async {
            let count = app.publish_list(&author, author.id).await[0]["favorite_count"].clone();
            (count == 2).then_some(count)
        },
    )
    .await;
    assert_eq!(count, 2, "the like made after Redis returned is counted");
    app.wait_ready().await;
    assert_eq!(
        app.user_info(&author, author.id).await["total_favorited"],
        2
    );
}

#[tokio::test]
#[ignore = "needs Kafka, MySQL and Redis: scripts/test runs it in its real-service pass"]
async fn sigterm_during_a_redis_outage_stops_the_server_while_a_projection_waits_for_the_cache() {
    needs_real_services!();
    // Arrange: a like whose fold commits while Redis is down, so the projection retries its
    // counter-cache refresh.
    let (mut redis, mut app) = on_private_redis().await;
    let author = app.register("author", "pw").await;
    let fan = app.register("fan", "pw").await;
    let video = app.publish(&author, "v").await;
    redis.stop();
    let (status, body) = app
        .post_raw(
            "/douyin/favorite/action/",
            &fan.with(&[("video_id", video.to_string()), ("action_type", "1".into())]),
        )
        .await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (200, Some(0)),
        "{body}"
    );
    eventually(
        Duration::from_secs(5),
        "the projection retries its counter-cache refresh (\"counter cache refresh failed\")",
        || async {
            app.logs()
                .contains("counter cache refresh failed")
                .then_some(())
        },
    )
    .await;
    assert!(
        app.logs().contains("counter cache refresh failed"),
        "{}",
        app.logs()
    );

    // Act + Assert: SIGTERM ends the process promptly (it retried forever before).
    let started = std::time::Instant::now();
    app.terminate().await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(
        app.logs().contains("bumping the generation"),
        "{}",
        app.logs()
    );
}

/// Redis restarts from an older snapshot (RDB saved, then more likes and messages, then
/// killed and started again: what a crash with periodic snapshots, or a failover to a lagging
/// replica, leaves). Its counters, chat-poll entries and positions are then older than the views.
/// No read may answer them without the stale marker, and afterwards counts and chat are exact.
/// Before the fix the reverted entries were served as fresh hits for good.
#[tokio::test]
#[ignore = "needs Kafka, MySQL and Redis: scripts/test runs it in its real-service pass"]
async fn redis_restarted_from_an_older_snapshot_serves_nothing_old_unmarked() {
    needs_real_services!();
    let (mut redis, app) = on_private_redis().await;
    let author = app.register("snap-author", "pw").await;
    let friend = app.register("snap-friend", "pw").await;
    let mut fans = Vec::new();
    for i in 0..20 {
        fans.push(app.register(&format!("snap{i}"), "pw").await);
    }
    let video = app.publish(&author, "snapshot").await;
    for fan in &fans[..5] {
        app.like(fan, video, 1).await;
    }
    app.send_message(&friend, author.id, "before the snapshot")
        .await;
    let seen = app.chat(&author, friend.id, 0).await;
    let held = seen.last().expect("a message")["create_time"]
        .as_i64()
        .expect("time");
    app.wait_ready().await;
    // The snapshot; then more happens; then Redis dies and comes back with the snapshot.
    let saved = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "SAVE"])
        .output()
        .expect("redis-cli");
    assert!(saved.status.success());
    for fan in &fans[5..10] {
        app.like(fan, video, 1).await;
    }
    for i in 0..3 {
        app.send_message(&friend, author.id, &format!("after the snapshot {i}"))
            .await;
    }
    app.wait_ready().await;
    redis.stop();
    redis.start().await;

    let mut liked = 10;
    let (mut stale, mut fresh, mut wrong) = (0, 0, Vec::new());
    for round in 0..60 {
        if round % 6 == 0 && liked < fans.len() {
            app.like(&fans[liked], video, 1).await;
            liked += 1;
        }
        let (_, headers, body) = app
            .get_full(
                "/douyin/publish/list/",
                &author.with(&[("user_id", author.id.to_string())]),
            )
            .await;
        let count = list(&body, "video_list")[0]["favorite_count"].clone();
        let (_, chat_headers, chat) = app
            .get_full(
                "/douyin/message/chat/",
                &author.with(&[
                    ("to_user_id", friend.id.to_string()),
                    ("pre_msg_time", held.to_string()),
                ]),
            )
            .await;
        let newer = list(&chat, "message_list").len();
        let marked = headers.contains_key("x-titok-stale");
        let chat_marked = chat_headers.contains_key("x-titok-stale");
        if marked || chat_marked {
            stale += 1;
        } else {
            fresh += 1;
        }
        if !marked && count.as_i64() != Some(liked as i64) {
            wrong.push(format!(
                "round {round}: favorite_count {count} served fresh, {liked} liked"
            ));
        }
        if !chat_marked && newer != 3 {
            wrong.push(format!(
                "round {round}: {newer} of 3 newer messages polled fresh"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        wrong.is_empty(),
        "{} old answers served unmarked ({fresh} fresh, {stale} stale rounds): {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(8)]
    );
    assert!(
        fresh > 30,
        "reads fresh again after the recovery ({fresh} fresh, {stale} stale)"
    );
    app.wait_ready().await;
    assert_eq!(
        app.user_info(&author, author.id).await["total_favorited"],
        liked as i64
    );
    assert_eq!(app.chat(&author, friend.id, 0).await.len(), 4);
}
