//! Crash exactness: a mixed write load (likes, follows, comments and their deletion, messages) while
//! processes are SIGKILLed at random points, 20 times; then every view and counter the API serves
//! must equal an independent fold of the whole log (read with `titok tap`, folded with the
//! domain's rules: the tests' one model, `titok-model`), and every acknowledged command must be in
//! the log.
//!
//! Two victims: the all-in-one server (embedded and real services), and — real services only —
//! projector processes, two instances in one group, while the command and query roles keep serving.
//!
//! The load is in [`load`]; the model the views are checked against is its own crate
//! (`titok-model`).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use titok_events::{Envelope, EventBody};
use titok_model::Views;
use titok_tests::*;

mod load;

use load::*;

/// The whole log folded with the domain's rules ([`titok_model`]), independently of the
/// projectors, and every event as an acknowledged-command key, counted.
#[derive(Debug, Default)]
struct Logged {
    views: Views,
    commands: HashMap<Acked, usize>,
}

fn fold(tap_output: &str) -> Logged {
    let mut records: Vec<(String, i64, i64, Envelope)> = tap_output
        .lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("tap line not JSON ({e}): {l}"));
            let raw = serde_json::to_vec(&v["event"]).expect("event JSON");
            let event = Envelope::decode(&raw)
                .unwrap_or_else(|e| panic!("unexpected event ({e}): {}", v["event"]));
            (
                v["topic"].as_str().unwrap_or_default().to_owned(),
                v["partition"].as_i64().expect("partition"),
                v["offset"].as_i64().expect("offset"),
                event,
            )
        })
        .collect();
    // Per-key order is partition order.
    records.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    let mut f = Logged::default();
    for (_, _, _, event) in records {
        f.views
            .apply(&event.body, event.occurred_at.timestamp_millis());
        let command = match event.body {
            EventBody::UserRegistered(_) | EventBody::VideoPublished(_) => None,
            EventBody::VideoLiked(e) => Some(Acked::Like(e.user_id, e.video_id, true)),
            EventBody::VideoUnliked(e) => Some(Acked::Like(e.user_id, e.video_id, false)),
            EventBody::UserFollowed(e) => Some(Acked::Follow(e.follower_id, e.followee_id, true)),
            EventBody::UserUnfollowed(e) => {
                Some(Acked::Follow(e.follower_id, e.followee_id, false))
            }
            EventBody::CommentAdded(e) => Some(Acked::CommentAdded(e.comment_id)),
            EventBody::CommentDeleted(e) => Some(Acked::CommentDeleted(e.comment_id)),
            EventBody::MessageSent(e) => Some(Acked::Message(e.content)),
        };
        if let Some(c) = command {
            *f.commands.entry(c).or_default() += 1;
        }
    }
    f
}

fn id_set(items: &[Value]) -> BTreeSet<i64> {
    ids(items).into_iter().collect()
}

/// The log (through `tap_output`) against what was acknowledged and what `query` serves.
async fn assert_views_equal_the_log(query: &TestApp, world: &World, tap_output: &str) {
    let f = fold(tap_output);

    // Every acknowledged command is in the log (as often as it was acknowledged, at least).
    let mut acked: HashMap<Acked, usize> = HashMap::new();
    for a in world.acked() {
        *acked.entry(a).or_default() += 1;
    }
    for (command, times) in &acked {
        let logged = f.commands.get(command).copied().unwrap_or(0);
        assert!(
            logged >= *times,
            "acknowledged {times}× but in the log {logged}×: {command:?}"
        );
    }
    let v = &f.views;
    assert!(
        world.users.iter().all(|u| v.users.contains_key(&u.id)),
        "registrations in the log"
    );

    for viewer in &world.users {
        let me = viewer.id;
        // Counters of every user, as this viewer sees them.
        for user in &world.users {
            let id = user.id;
            let info = query.user_info(viewer, id).await;
            let [follows, followers, total, works, favorites, _version] = v.user_counts(id);
            let expected = serde_json::json!({
                "follow_count": follows,
                "follower_count": followers,
                "favorite_count": favorites,
                "total_favorited": total,
                "work_count": works,
                "is_follow": v.follows.contains_key(&(me, id)),
            });
            for (field, value) in expected.as_object().expect("object") {
                assert_eq!(&info[field], value, "user {id} {field} seen by {me}");
            }
        }
        // Lists of this user.
        assert_eq!(
            id_set(&query.favorite_list(viewer, me).await),
            v.liked_by(me),
            "favorite list of {me}"
        );
        for (path, expected) in [
            ("/douyin/relation/follow/list/", v.following(me)),
            ("/douyin/relation/follower/list/", v.followers(me)),
            ("/douyin/relation/friend/list/", v.friends_of(me)),
        ] {
            assert_eq!(
                id_set(&query.user_list(path, viewer, me).await),
                expected,
                "{path} of {me}"
            );
        }
        // Conversations of this user.
        for other in world.users.iter().filter(|o| o.id != me) {
            let contents: Vec<String> = query
                .chat(viewer, other.id, 0)
                .await
                .iter()
                .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
                .collect();
            assert_eq!(contents, v.chat(me, other.id), "chat {me} ↔ {}", other.id);
        }
    }
    // Videos: counters, is_favorite, and comments.
    let viewer = &world.users[USERS - 1];
    for author in &world.users[..3] {
        for video in query.publish_list(viewer, author.id).await {
            let id = video["id"].as_i64().expect("id");
            let [favorites, comments, _version] = v.video_counts(id);
            assert_eq!(
                video["favorite_count"], favorites,
                "favorite_count of video {id}"
            );
            assert_eq!(
                video["comment_count"], comments,
                "comment_count of video {id}"
            );
            assert_eq!(
                video["is_favorite"],
                v.favorites.contains_key(&(viewer.id, id)),
                "is_favorite of video {id}"
            );
            assert_eq!(
                id_set(&query.comments(viewer, id).await),
                v.comments_on(id),
                "comments of video {id}"
            );
        }
    }
}

fn read_the_log(args: &[&'static str]) -> Vec<&'static str> {
    let mut all = vec!["tap", "--from-beginning", "--idle-exit-ms", "3000"];
    all.extend(args);
    all
}

#[tokio::test]
async fn the_all_in_one_server_killed_20_times_under_mixed_load_serves_exactly_the_log() {
    // Arrange
    let mut app = spawn_app().await;
    let world = World::create(&app, &app).await;
    let seed = seed();
    eprintln!("chaos seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    // Act: 20 rounds of load, each ended by a SIGKILL at a random point while commands are in
    // flight, then a restart on the same data.
    for round in 0..KILLS {
        let stop = AtomicBool::new(false);
        let (client, base) = (app.client.clone(), app.base.clone());
        let workers = futures::future::join_all((0..WORKERS).map(|w| {
            let seed =
                seed ^ ((round * WORKERS + w + 1) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            load(&client, &base, &world, seed, &stop)
        }));
        let delay = Duration::from_millis(100 + rng.gen_range(0..500));
        let killer = async {
            tokio::time::sleep(delay).await;
            app.kill().await;
            stop.store(true, Ordering::SeqCst);
        };
        tokio::join!(workers, killer);
        app.restart().await;
    }
    let acked = world.acked().len();
    assert!(acked > 200, "a real stream of commands ({acked} acked)");
    eprintln!("{acked} commands acknowledged across {KILLS} kills");

    // Assert
    let log = app.cli(&read_the_log(&[])).await;
    assert_views_equal_the_log(&app, &world, &log).await;
}

#[tokio::test]
#[ignore = "needs Kafka, MySQL and Redis: scripts/test runs it in its real-service pass"]
async fn projectors_killed_20_times_under_mixed_load_leave_views_and_counters_equal_to_the_log() {
    needs_real_services!();
    // Arrange: the three roles split, two projector instances in one group.
    let mut cluster = Cluster::new();
    let command = cluster.spawn("command-api", &["--no-sample"]).await;
    let query = cluster.spawn("query-api", &[]).await;
    let mut projectors = [
        cluster.spawn("projectors", &[]).await,
        cluster.spawn("projectors", &[]).await,
    ];
    let world = World::create(&command, &query).await;
    let seed = seed();
    eprintln!("chaos seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    // Act: the load runs throughout; a projector (either one, at random) is SIGKILLed at a
    // random point and started again, 20 times.
    let stop = AtomicBool::new(false);
    let workers = futures::future::join_all((0..WORKERS).map(|w| {
        load(
            &command.client,
            &command.base,
            &world,
            seed ^ (w as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            &stop,
        )
    }));
    let chaos = async {
        for _ in 0..KILLS {
            tokio::time::sleep(Duration::from_millis(100 + rng.gen_range(0..500))).await;
            let victim = &mut projectors[rng.gen_range(0..2)];
            victim.kill().await;
            victim.respawn().await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::SeqCst);
    };
    tokio::join!(workers, chaos);
    let acked = world.acked().len();
    assert!(acked > 200, "a real stream of commands ({acked} acked)");
    eprintln!("{acked} commands acknowledged across {KILLS} projector kills");
    // Consumer-group rebalances after the last kill (session timeout 6 s) take a while on tansu.
    let started = std::time::Instant::now();
    loop {
        let (status, body) = query
            .get_raw("/readyz", &[("max_lag", "0".to_owned())])
            .await;
        if status == 200 {
            break;
        }
        if started.elapsed() > Duration::from_secs(180) {
            let mut report = String::new();
            for p in &projectors {
                let metrics = p.get_text("/metrics").await;
                let lag: Vec<&str> = metrics
                    .lines()
                    .filter(|l| l.starts_with("titok_projector_lag_events"))
                    .collect();
                let log = p.logs();
                if let Ok(dir) = std::env::var("TITOK_TEST_KEEP_LOGS") {
                    let _ = std::fs::write(format!("{dir}/projector-{}.log", report.len()), &log);
                }
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                report += &format!("\n--- projector {}: {lag:?}\n{}", p.base, tail.join("\n"));
            }
            let namespace = cluster.arg("--namespace").expect("namespace").to_owned();
            let ends = titok_ports::log::EventLog::end_offsets(
                &kafka_log(&namespace).await,
                &titok_events::Topic::ALL,
            )
            .await;
            let pool =
                titok_adapters::store::mysql_any(cluster.arg("--mysql-url").expect("mysql"), 1)
                    .await
                    .expect("mysql");
            let applied: Vec<(String, i64, i64)> = sqlx::query_as(
                "SELECT projection, part, next_offset FROM projection_offsets ORDER BY projection, part",
            )
            .fetch_all(&pool)
            .await
            .expect("checkpoints");
            report += &format!("\n--- log ends {ends:?}\n--- applied {applied:?}");
            panic!("projectors did not catch up within 180 s of the last kill: {body}{report}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("caught up {:?} after the last kill", started.elapsed());

    // Assert
    let log = cluster.cli(&read_the_log(&[])).await;
    assert_views_equal_the_log(&query, &world, &log).await;
}
