//! Durability: SIGKILL the server during a stream of acknowledged likes, restart it on the same data
//! dir, and find every acknowledged like counted exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use titok_tests::*;

const FANS: usize = 24;
const VIDEOS: usize = 4;

#[tokio::test]
async fn every_acknowledged_like_survives_a_sigkill_and_counts_exactly_once() {
    // Arrange
    let mut app = spawn_app().await;
    let author = app.register("author", "pw").await;
    let mut videos = Vec::new();
    for i in 0..VIDEOS {
        videos.push(app.publish(&author, &format!("v{i}")).await);
    }
    let mut fans = Vec::new();
    for i in 0..FANS {
        fans.push(app.register(&format!("fan{i}"), "pw").await);
    }
    let likes: Vec<(User, i64)> = fans
        .iter()
        .flat_map(|f| videos.iter().map(move |v| (f.clone(), *v)))
        .collect();

    // Act: a concurrent stream of likes; SIGKILL once a third of them were acknowledged.
    let acked = Arc::new(AtomicUsize::new(0));
    let kill_after = likes.len() / 3;
    let client = app.client.clone();
    let url = app.url("/douyin/favorite/action/");
    let counter = acked.clone();
    let stream = stream::iter(likes.clone())
        .map(move |(fan, video)| {
            let (client, url, acked) = (client.clone(), url.clone(), counter.clone());
            async move {
                let form =
                    fan.with(&[("video_id", video.to_string()), ("action_type", "1".into())]);
                let reply = client.post(&url).form(&form).send().await.ok()?;
                let body: serde_json::Value = reply.json().await.ok()?;
                (body["status_code"] == 0).then(|| {
                    acked.fetch_add(1, Ordering::SeqCst);
                    (fan.id, video)
                })
            }
        })
        .buffer_unordered(8);
    let collector = tokio::spawn(stream.filter_map(|x| async move { x }).collect::<Vec<_>>());
    while acked.load(Ordering::SeqCst) < kill_after {
        tokio::task::yield_now().await;
    }
    app.kill().await;
    let acknowledged: HashSet<(i64, i64)> = collector.await.expect("join").into_iter().collect();
    assert!(
        acknowledged.len() >= kill_after,
        "the stream was cut mid-way"
    );
    assert!(
        acknowledged.len() < likes.len(),
        "the kill happened before the stream ended ({} acked)",
        acknowledged.len()
    );
    app.restart().await;

    // Assert: every acknowledged like is there, and each video's count equals its likers.
    let mut likers: HashMap<i64, usize> = HashMap::new();
    for fan in &fans {
        let liked: HashSet<i64> = ids(&app.favorite_list(fan, fan.id).await)
            .into_iter()
            .collect();
        for &(fan_id, video) in &acknowledged {
            if fan_id == fan.id {
                assert!(
                    liked.contains(&video),
                    "acknowledged like ({fan_id}, {video}) was lost"
                );
            }
        }
        assert_eq!(
            app.user_info(fan, fan.id).await["favorite_count"],
            liked.len() as i64,
            "fan's favorite_count"
        );
        for v in liked {
            *likers.entry(v).or_default() += 1;
        }
    }
    let listed = app.publish_list(&author, author.id).await;
    let mut total = 0;
    for v in &listed {
        let id = v["id"].as_i64().expect("id");
        let expected = likers.get(&id).copied().unwrap_or(0) as i64;
        assert_eq!(
            v["favorite_count"], expected,
            "video {id}: count equals its likers"
        );
        total += expected;
    }
    assert_eq!(
        app.user_info(&author, author.id).await["total_favorited"],
        total,
        "author's total_favorited"
    );

    // And redelivering every like after the restart changes nothing beyond "each once".
    for (fan, video) in &likes {
        app.like(fan, *video, 1).await;
    }
    for v in app.publish_list(&author, author.id).await {
        assert_eq!(
            v["favorite_count"], FANS as i64,
            "each fan counted exactly once"
        );
    }
    assert_eq!(
        app.user_info(&author, author.id).await["total_favorited"],
        (FANS * VIDEOS) as i64
    );
}

#[tokio::test]
async fn everything_survives_a_restart_including_tokens() {
    let mut app = spawn_app().await;
    let a = app.register("a", "pw").await;
    let b = app.register("b", "pw").await;
    let video = app.publish(&a, "kept").await;
    app.comment(&b, video, "kept too").await;
    app.like(&b, video, 1).await;
    app.follow(&b, a.id, 1).await;
    app.send_message(&a, b.id, "still here").await;

    app.restart().await;

    assert_eq!(
        app.user_info(&a, a.id).await["follower_count"],
        1,
        "token still valid, follow kept"
    );
    let v = &app.publish_list(&b, a.id).await[0];
    assert_eq!(v["favorite_count"], 1);
    assert_eq!(v["comment_count"], 1);
    assert_eq!(v["is_favorite"], true);
    assert_eq!(app.chat(&b, a.id, 0).await[0]["content"], "still here");
    let video_file = app
        .client
        .get(v["play_url"].as_str().expect("url"))
        .send()
        .await
        .expect("get");
    assert_eq!(video_file.status(), 200, "uploads survive");
    let login = app
        .post(
            "/douyin/user/login/",
            &[("username", "a".into()), ("password", "pw".into())],
        )
        .await;
    assert_ok(&login, "login after restart");
    app.refused_post(
        "/douyin/user/register/",
        &[("username", "a".into()), ("password", "x".into())],
        "taken",
    )
    .await;
}
