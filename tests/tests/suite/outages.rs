//! Outages of the production services (runs in scripts/test's real-service pass): each test runs
//! its own private instance of the service it stops, so parallel tests are not disturbed. The
//! broker, MySQL and Redis are each stopped for 3 s under a steady like load: every reply is an
//! acknowledgement or a 503 envelope, writes recover by themselves, nothing acknowledged is lost.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use titok_tests::*;

/// What a steady like load saw while a service went away and came back.
#[derive(Debug, Default)]
struct UnderLoad {
    /// Fans with at least one acknowledged like.
    acked: HashSet<i64>,
    /// Replies that were HTTP 503 with the envelope naming what is unavailable.
    unavailable: usize,
    /// Requests sent.
    sent: usize,
}

/// Likes of `video` by `fans` (cycled), 4 in flight, from before `outage` starts until a second
/// after it ends. Every reply must be an acknowledgement or a 503 envelope: anything else (a 500,
/// another status, a dropped connection, a body that is not an envelope) fails the test.
async fn likes_during(
    app: &TestApp,
    fans: &[User],
    video: i64,
    outage: impl Future<Output = ()>,
) -> UnderLoad {
    let done = AtomicBool::new(false);
    let sent = AtomicUsize::new(0);
    let outcomes = stream::iter(fans.iter().cycle())
        .take_while(|_| futures::future::ready(!done.load(Ordering::SeqCst)))
        .map(|fan| {
            let form = fan.with(&[("video_id", video.to_string()), ("action_type", "1".into())]);
            let sent = &sent;
            async move {
                sent.fetch_add(1, Ordering::SeqCst);
                let (status, body) = app.post_raw("/douyin/favorite/action/", &form).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                match (status, body["status_code"].as_i64()) {
                    (200, Some(0)) => Some(fan.id),
                    (503, Some(503))
                        if body["status_msg"]
                            .as_str()
                            .is_some_and(|m| m.contains("unavailable")) =>
                    {
                        None
                    }
                    _ => panic!("neither acknowledged nor a 503 envelope: HTTP {status} {body}"),
                }
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<Option<i64>>>();
    let chaos = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        outage.await;
        // Held writes finish (acknowledged or refused) within the 5 s timeouts after the return.
        tokio::time::sleep(Duration::from_secs(1)).await;
        done.store(true, Ordering::SeqCst);
    };
    let (outcomes, ()) = tokio::join!(outcomes, chaos);
    UnderLoad {
        unavailable: outcomes.iter().filter(|o| o.is_none()).count(),
        acked: outcomes.into_iter().flatten().collect(),
        sent: sent.load(Ordering::SeqCst),
    }
}

/// After an outage: a like by each of `fans` is acknowledged again within 30 s (automatic
/// recovery, no restart of titok).
async fn writes_recover(app: &TestApp, fans: &[User], video: i64) {
    for fan in fans {
        let form = fan.with(&[("video_id", video.to_string()), ("action_type", "1".into())]);
        let mut last = serde_json::Value::Null;
        for _ in 0..60 {
            let (status, body) = app.post_raw("/douyin/favorite/action/", &form).await;
            if status == 200 && body["status_code"] == 0 {
                last = serde_json::Value::Null;
                break;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(
            last.is_null(),
            "writes recover after the outage; last reply {last}"
        );
    }
}

/// Every acknowledged like is in the views, and the counts equal the likers exactly.
async fn nothing_acknowledged_lost(
    app: &TestApp,
    author: &User,
    fans: &[User],
    acked: &HashSet<i64>,
    video: i64,
) {
    app.wait_ready().await;
    let mut likers = 0;
    for fan in fans {
        let liked = ids(&app.favorite_list(fan, fan.id).await).contains(&video);
        if acked.contains(&fan.id) {
            assert!(liked, "acknowledged like of fan {} lost", fan.id);
        }
        likers += i64::from(liked);
        assert_eq!(
            app.user_info(fan, fan.id).await["favorite_count"],
            i64::from(liked),
            "fan {}'s favorite_count",
            fan.id
        );
    }
    assert_eq!(
        app.publish_list(author, author.id).await[0]["favorite_count"],
        likers,
        "the video's count equals its likers"
    );
    assert_eq!(
        app.user_info(author, author.id).await["total_favorited"],
        likers
    );
}

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

/// A server (no sample content) whose Redis is a private one the test stops and starts.
async fn on_private_redis() -> (PrivateService, TestApp) {
    let redis = PrivateService::redis().await;
    let app = TestApp::start_with(
        &["--no-sample"],
        &[("--redis-url", format!("redis://127.0.0.1:{}", redis.port))],
    )
    .await;
    (redis, app)
}

/// Stop `service` for `down` under a steady like load on `app`, and start it again. When
/// `must_refuse`, the load must meet 503s: an outage longer than the 5 s the command API waits for
/// the broker (delivery timeout) or MySQL (pool acquire timeout) fails the writes it held; a
/// shorter one only delays their acknowledgement. Then writes recover by themselves, nothing
/// acknowledged is lost, and the counts are exact.
/// How a test takes a service away: the process SIGKILLed and started again, or (the broker) the
/// network to it resetting every connection while the process keeps running.
///
/// The broker is taken away by the network: tansu 0.6, SIGKILLed and started again, reports
/// watermarks that disagree with the records it holds (a partition's high watermark 0, or its
/// low watermark above offsets it still serves; seen here 2026-12-03 with its sqlite storage),
/// which the projections' log-continuity checks rightly refuse to fold past. Apache Kafka keeps
/// its offsets across a restart.
enum Outage<'a> {
    Process(&'a mut PrivateService),
    Network(&'a FaultyProxy),
}

impl Outage<'_> {
    fn down(&mut self) {
        match self {
            Outage::Process(service) => service.stop(),
            Outage::Network(proxy) => proxy.set(Fault::Reset),
        }
    }

    async fn up(&mut self) {
        match self {
            Outage::Process(service) => service.start().await,
            Outage::Network(proxy) => proxy.set(Fault::None),
        }
    }
}

/// A private broker behind a proxy that can cut it off: `(broker, proxy, brokers argument)`.
async fn broker_behind_proxy() -> (PrivateService, FaultyProxy, String) {
    let (port, proxy_port) = (free_port(), free_port());
    let broker = PrivateService::tansu_advertising(port, proxy_port).await;
    let proxy = FaultyProxy::start_on(proxy_port, port).await;
    (broker, proxy, format!("127.0.0.1:{proxy_port}"))
}

async fn outage_under_load(
    app: &TestApp,
    mut service: Outage<'_>,
    what: &str,
    down: Duration,
    must_refuse: bool,
    register_refused: bool,
) {
    let author = app.register("author", "pw").await;
    let video = app.publish(&author, "v").await;
    let mut fans = Vec::new();
    for i in 0..24 {
        fans.push(app.register(&format!("fan{i}"), "pw").await);
    }
    let (loaded, later) = fans.split_at(20);

    let seen = likes_during(app, loaded, video, async {
        service.down();
        let started = std::time::Instant::now();
        if register_refused {
            // A register needs the accounts store: refused with the envelope, within the timeout.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let form = [
                ("username", "during-outage".into()),
                ("password", "pw".into()),
            ];
            let (status, body) = app.post_raw("/douyin/user/register/", &form).await;
            assert_eq!(status, 503, "register during the {what} outage: {body}");
            assert_eq!(body["status_code"], 503, "{body}");
            assert_eq!(body["user_id"], 0, "{body}");
        }
        tokio::time::sleep(down.saturating_sub(started.elapsed())).await;
        service.up().await;
    })
    .await;
    eprintln!("{what} outage under load: {seen:?}");

    assert!(seen.sent > 20, "a steady load: {seen:?}");
    if must_refuse {
        assert!(seen.unavailable > 0, "the load met the outage: {seen:?}");
    }
    assert!(!seen.acked.is_empty(), "writes were acknowledged around it");
    writes_recover(app, later, video).await;
    let mut acked = seen.acked.clone();
    acked.extend(later.iter().map(|f| f.id));
    nothing_acknowledged_lost(app, &author, &fans, &acked, video).await;
}

#[tokio::test]
#[ignore = "needs Kafka, MySQL and Redis: scripts/test runs it in its real-service pass"]
async fn the_command_api_answers_503_while_the_broker_is_down_and_loses_nothing_it_acknowledged() {
    needs_real_services!();
    let (_broker, proxy, brokers) = broker_behind_proxy().await;
    // tansu 0.6 panics when an idempotent producer from before its restart produces again
    // ("more or less than one row" in its idempotence check) and then refuses all writes; the
    // production default (idempotence on) is covered by the rest of the suite.
    let app = TestApp::start_with(
        &["--no-sample", "--kafka-idempotence", "false"],
        &[("--kafka-brokers", brokers)],
    )
    .await;
    outage_under_load(
        &app,
        Outage::Network(&proxy),
        "broker",
        Duration::from_secs(8),
        true,
        false,
    )
    .await;
}

#[tokio::test]
#[ignore = "needs Kafka, MySQL and Redis: scripts/test runs it in its real-service pass"]
async fn likes_go_on_while_mysql_is_down_registers_answer_503_and_nothing_acknowledged_is_lost() {
    needs_real_services!();
    // A like of a video this process has seen needs neither MySQL nor the views (the author is an
    // immutable fact it caches; the user's existence too): it is appended and acknowledged, and
    // the projections apply it once MySQL is back. A register needs the accounts store: 503.
    let mut mysql = PrivateService::mariadb().await;
    let app = TestApp::start_with(&["--no-sample"], &[("--mysql-url", mysql.mysql_url())]).await;
    outage_under_load(
        &app,
        Outage::Process(&mut mysql),
        "MySQL",
        Duration::from_secs(8),
        false,
        true,
    )
    .await;
}

#[tokio::test]
#[ignore = "needs Kafka, MySQL and Redis: scripts/test runs it in its real-service pass"]
async fn writes_go_on_through_a_redis_outage_under_load_and_nothing_acknowledged_is_lost() {
    needs_real_services!();
    // Redis is a cache and a position board: writes go on (or answer 503), counts come from MySQL.
    let (mut redis, app) = on_private_redis().await;
    outage_under_load(
        &app,
        Outage::Process(&mut redis),
        "Redis",
        Duration::from_secs(3),
        false,
        false,
    )
    .await;
}

#[tokio::test]
#[ignore = "needs Kafka, MySQL and Redis: scripts/test runs it in its real-service pass"]
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
        titok_ports::log::EventLog::append(&log, &[event.clone(), event])
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
    for _ in 0..100 {
        if app.logs().contains("counter cache refresh failed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

#[tokio::test]
#[ignore = "needs Kafka, MySQL and Redis: scripts/test runs it in its real-service pass"]
async fn a_register_refused_during_a_broker_outage_is_kept_and_completed_by_a_retry_or_a_login() {
    needs_real_services!();
    // Arrange: the broker goes away; two registers' appends time out (their outcome is unknown:
    // with Kafka an event whose acknowledgement was lost may still be in the log).
    let (_broker, proxy, brokers) = broker_behind_proxy().await;
    let app = TestApp::start_with(
        &[
            "--no-sample",
            "--kafka-idempotence",
            "false",
            "--login-attempts-per-user",
            "1000",
        ],
        &[("--kafka-brokers", brokers)],
    )
    .await;
    let early = app.register("early", "pw").await;
    proxy.set(Fault::Reset);
    let ann = [
        ("username", "ann".to_owned()),
        ("password", "secret-1".to_owned()),
    ];
    let bob = [
        ("username", "bob".to_owned()),
        ("password", "secret-2".to_owned()),
    ];
    for form in [&ann, &bob] {
        let (status, body) = app.post_raw("/douyin/user/register/", form).await;
        assert_eq!(
            (status, body["status_code"].as_i64()),
            (503, Some(503)),
            "{body}"
        );
    }
    proxy.set(Fault::None);

    // Act: ann logs in (before: her account had been deleted, so this was "wrong password"
    // although her UserRegistered could be in the log); bob retries the register.
    let until_ok = |path: &'static str, form: [(&'static str, String); 2]| {
        let app = &app;
        async move {
            let mut last = serde_json::Value::Null;
            for _ in 0..60 {
                let (status, body) = app.post_raw(path, &form).await;
                last = body;
                if status == 200 && last["status_code"] == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            last
        }
    };
    let ann_login = until_ok("/douyin/user/login/", ann.clone()).await;
    let bob_register = until_ok("/douyin/user/register/", bob.clone()).await;
    let other = [
        ("username", "bob".to_owned()),
        ("password", "not-his".to_owned()),
    ];
    let (_, stolen) = app.post_raw("/douyin/user/register/", &other).await;

    // Assert: both accounts exist once, under the ids their logins return.
    assert_eq!(ann_login["status_code"], 0, "{ann_login}");
    assert_eq!(bob_register["status_code"], 0, "{bob_register}");
    assert_eq!(
        stolen["status_code"], 5,
        "another password is a conflict: {stolen}"
    );
    let bob_login = app.post("/douyin/user/login/", &bob).await;
    assert_eq!(bob_login["user_id"], bob_register["user_id"], "{bob_login}");
    // The projections may take a while to get their partitions back after the connections were
    // reset (tansu can wedge a consumer group after a stall; README "Known limitations").
    app.wait_ready().await;
    for (login, name) in [(&ann_login, "ann"), (&bob_login, "bob")] {
        let id = login["user_id"].as_i64().expect("user id");
        assert_eq!(app.user_info(&early, id).await["name"], name);
    }
}

/// Issue 21: Redis restarts from an older snapshot (RDB saved, then more likes and messages, then
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
