//! Two projector instances in one consumer group, one of them SIGKILLed again and again during a
//! stream of likes and follows: afterwards MySQL's counts, Redis' counts, the query API's answers
//! and an independent fold of the whole Kafka log must all agree exactly. Real services only.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use titok_adapters::redis_store::{self, RedisCounters};
use titok_events::{Envelope, EventBody, Topic};
use titok_ports::counters::Counters;
use titok_ports::log::EventLog;
use titok_tests::*;

const USERS: usize = 6;
const VIDEOS: usize = 3;
const OPS: usize = 1500;

/// The likes and follows in the log, folded with the domain's set semantics.
struct Fold {
    likes: HashSet<(i64, i64)>,
    follows: HashSet<(i64, i64)>,
}

async fn fold_the_log(namespace: &str) -> Fold {
    let log = kafka_log(namespace).await;
    let mut fold = Fold {
        likes: HashSet::new(),
        follows: HashSet::new(),
    };
    for topic in [Topic::Favorites, Topic::Relations] {
        let ends: HashMap<u32, i64> = log
            .end_offsets(&[topic])
            .await
            .expect("ends")
            .into_iter()
            .map(|p| (p.partition, p.offset))
            .collect();
        let mut seen: HashMap<u32, i64> = HashMap::new();
        let parts = log.partitions(topic);
        let mut consumer = log
            .consumer(
                &format!("{namespace}.test-fold"),
                topic,
                vec![0; parts as usize],
            )
            .await
            .expect("consumer");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while ends
            .iter()
            .any(|(p, end)| seen.get(p).copied().unwrap_or(0) < *end)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "could not read the whole log"
            );
            for rec in consumer
                .poll(1000, Duration::from_millis(500))
                .await
                .expect("poll")
            {
                let next = seen.entry(rec.partition).or_insert(0);
                if rec.offset < *next {
                    continue;
                }
                *next = rec.offset + 1;
                match Envelope::decode(&rec.payload).expect("decodes").body {
                    EventBody::VideoLiked(f) => {
                        fold.likes.insert((f.user_id, f.video_id));
                    }
                    EventBody::VideoUnliked(f) => {
                        fold.likes.remove(&(f.user_id, f.video_id));
                    }
                    EventBody::UserFollowed(f) => {
                        fold.follows.insert((f.follower_id, f.followee_id));
                    }
                    EventBody::UserUnfollowed(f) => {
                        fold.follows.remove(&(f.follower_id, f.followee_id));
                    }
                    _ => {}
                }
            }
        }
    }
    fold
}

/// One command: who sends it, to which path, with which parameters.
type Command = (User, &'static str, Vec<(&'static str, String)>);

/// A deterministic stream of like/unlike/follow/unfollow commands.
fn operations(users: &[User], videos: &[i64]) -> Vec<Command> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    (0..OPS)
        .map(|_| {
            let actor = users[next(users.len())].clone();
            let action = (1 + next(2)).to_string();
            if next(2) == 0 {
                let video = videos[next(videos.len())].to_string();
                (
                    actor,
                    "/douyin/favorite/action/",
                    vec![("video_id", video), ("action_type", action)],
                )
            } else {
                let mut other = users[next(users.len())].id;
                if other == actor.id {
                    other = users[(users.iter().position(|u| u.id == actor.id).unwrap_or(0) + 1)
                        % users.len()]
                    .id;
                }
                (
                    actor,
                    "/douyin/relation/action/",
                    vec![("to_user_id", other.to_string()), ("action_type", action)],
                )
            }
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs Kafka, MySQL and Redis: scripts/test runs it in its real-service pass"]
async fn two_projector_instances_killed_repeatedly_leave_mysql_redis_and_the_log_in_agreement() {
    needs_real_services!();
    // Arrange: the three roles split, two projector instances in one group.
    let mut cluster = Cluster::new();
    let command = cluster.spawn("command-api", &["--no-sample"]).await;
    let query = cluster.spawn("query-api", &[]).await;
    let mut steady = cluster.spawn("projectors", &[]).await;
    let mut victim = cluster.spawn("projectors", &[]).await;
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(command.register(&format!("u{i}"), "pw").await);
    }
    for i in 0..VIDEOS {
        let (status, body) = command
            .publish_raw(
                &users[0].token,
                &format!("v{i}"),
                SAMPLE_MP4.to_vec(),
                "v.mp4",
            )
            .await;
        assert!(status == 200 && body["status_code"] == 0, "publish: {body}");
    }
    let videos = ids(&query.publish_list(&users[0], users[0].id).await);
    assert_eq!(videos.len(), VIDEOS);

    // Act: the command stream, while one projector is SIGKILLed and restarted again and again
    // (and the other once).
    let url_base = command.base.clone();
    let client = command.client.clone();
    // The command stream runs (cycling through the operations) until the chaos is over, so
    // every kill lands mid-stream whatever the machine's speed.
    let chaos_done = std::sync::atomic::AtomicBool::new(false);
    let sent = std::sync::atomic::AtomicUsize::new(0);
    let load = stream::iter(operations(&users, &videos).into_iter().cycle())
        .take_while(|_| {
            futures::future::ready(!chaos_done.load(std::sync::atomic::Ordering::SeqCst))
        })
        .map(|(user, path, params)| {
            let (client, url, sent) = (client.clone(), format!("{url_base}{path}"), &sent);
            async move {
                let reply = client
                    .post(url)
                    .form(&user.with(&params))
                    .send()
                    .await
                    .expect("send");
                let body: serde_json::Value = reply.json().await.expect("json");
                assert_eq!(body["status_code"], 0, "command refused: {body}");
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<()>>();
    let chaos = async {
        for round in 0..4 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            if round == 2 {
                steady.kill().await;
                steady.respawn().await;
            } else {
                victim.kill().await;
                victim.respawn().await;
            }
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        chaos_done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    tokio::join!(load, chaos);
    assert!(
        sent.load(std::sync::atomic::Ordering::SeqCst) > 100,
        "a real stream of commands"
    );
    query.wait_ready().await;

    // Assert: the log's fold, MySQL, Redis and the API agree.
    let namespace = cluster.arg("--namespace").expect("namespace").to_owned();
    let fold = fold_the_log(&namespace).await;
    let user_ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    let count = |pred: &dyn Fn(&(i64, i64)) -> bool, set: &HashSet<(i64, i64)>| {
        set.iter().filter(|p| pred(p)).count() as i64
    };

    let pool = titok_adapters::store::mysql_any(cluster.arg("--mysql-url").expect("mysql"), 2)
        .await
        .expect("mysql");
    let db_likes: HashSet<(i64, i64)> = sqlx::query_as("SELECT user_id, video_id FROM favorites")
        .fetch_all(&pool)
        .await
        .expect("favorites")
        .into_iter()
        .collect();
    assert_eq!(
        db_likes, fold.likes,
        "MySQL favorites equal the fold of the log"
    );
    let db_follows: HashSet<(i64, i64)> =
        sqlx::query_as("SELECT follower_id, followee_id FROM follows")
            .fetch_all(&pool)
            .await
            .expect("follows")
            .into_iter()
            .collect();
    assert_eq!(
        db_follows, fold.follows,
        "MySQL follows equal the fold of the log"
    );

    let redis = RedisCounters::new(
        redis_store::connect(&std::env::var("TITOK_TEST_REDIS_URL").expect("redis"))
            .await
            .expect("redis"),
        &namespace,
    );
    let redis_videos = redis.videos(&videos).await.expect("redis videos");
    let db_videos = titok_views::stats::video_stats(&pool, &videos)
        .await
        .expect("video_stats");
    for (i, video) in videos.iter().enumerate() {
        let expected = count(&|(_, v)| v == video, &fold.likes);
        assert_eq!(
            db_videos[video].value.favorite_count, expected,
            "MySQL count of video {video}"
        );
        assert_eq!(
            redis_videos[i].map(|c| c.favorite_count),
            Some(expected),
            "Redis count of video {video}"
        );
    }
    let redis_users = redis.users(&user_ids).await.expect("redis users");
    let db_users = titok_views::stats::user_stats(&pool, &user_ids)
        .await
        .expect("user_stats");
    for (i, user) in users.iter().enumerate() {
        let id = user.id;
        let expected = (
            count(&|(f, _)| *f == id, &fold.follows),
            count(&|(_, t)| *t == id, &fold.follows),
            count(&|(u, _)| *u == id, &fold.likes),
            if i == 0 { fold.likes.len() as i64 } else { 0 },
        );
        let db = db_users[&id].value;
        assert_eq!(
            (
                db.follow_count,
                db.follower_count,
                db.favorite_count,
                db.total_favorited
            ),
            expected,
            "MySQL counts of user {id}"
        );
        let cached = redis_users[i].expect("cached");
        assert_eq!(
            (
                cached.follow_count,
                cached.follower_count,
                cached.favorite_count,
                cached.total_favorited
            ),
            expected,
            "Redis counts of user {id}"
        );
        let api = query.user_info(user, id).await;
        assert_eq!(
            (
                api["follow_count"].as_i64(),
                api["follower_count"].as_i64(),
                api["favorite_count"].as_i64(),
                api["total_favorited"].as_i64()
            ),
            (
                Some(expected.0),
                Some(expected.1),
                Some(expected.2),
                Some(expected.3)
            ),
            "API counts of user {id}"
        );
    }
}

#[tokio::test]
#[ignore = "needs Kafka, MySQL and Redis: scripts/test runs it in its real-service pass"]
async fn a_command_whose_lookup_view_is_behind_answers_503_not_does_not_exist() {
    needs_real_services!();
    // Arrange: split roles; the projectors stop, then a publish is acknowledged but not applied.
    let mut cluster = Cluster::new();
    let command = cluster
        .spawn(
            "command-api",
            &["--no-sample", "--consistency-timeout-ms", "300"],
        )
        .await;
    let mut projectors = cluster.spawn("projectors", &[]).await;
    let user = command.register("writer", "pw").await;
    let (status, body) = command
        .publish_raw(&user.token, "first", SAMPLE_MP4.to_vec(), "a.mp4")
        .await;
    assert_eq!(status, 200, "{body}");
    projectors.kill().await;
    let (status, body) = command
        .publish_raw(&user.token, "second", SAMPLE_MP4.to_vec(), "b.mp4")
        .await;
    assert_eq!(status, 200, "{body}");
    let like_nothing = user.with(&[("video_id", "999999".into()), ("action_type", "1".into())]);

    // Act: a like of a video the view does not show, while the view is behind.
    let (status, body) = command
        .post_raw("/douyin/favorite/action/", &like_nothing)
        .await;

    // Assert: not "does not exist" (it may be in the log), but "try again".
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (503, Some(503)),
        "{body}"
    );
    assert!(
        body["status_msg"]
            .as_str()
            .is_some_and(|m| m.contains("catching up")),
        "{body}"
    );

    // Once the projections caught up, the same request is a plain "not found".
    let _projectors = cluster.spawn("projectors", &[]).await;
    let last = eventually(
        Duration::from_secs(90),
        "the like of a video nobody published is refused as \"not found\" (status_code 4)",
        || async {
            let (_, body) = command
                .post_raw("/douyin/favorite/action/", &like_nothing)
                .await;
            (body["status_code"] == 4).then_some(body)
        },
    )
    .await;
    assert_eq!(last["status_code"], 4, "{last}");
}
