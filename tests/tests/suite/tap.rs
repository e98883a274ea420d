//! `titok tap`: a read-only consumer sees every event written, in per-key order, and filters.

use titok_tests::*;

fn events(output: &str) -> Vec<serde_json::Value> {
    output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test]
async fn tap_sees_every_event_of_the_test_in_per_key_order() {
    // Arrange: traffic of every kind.
    let app = spawn_app().await;
    let a = app.register("a", "pw").await;
    let b = app.register("b", "pw").await;
    let video = app.publish(&a, "v").await;
    for round in 0..6 {
        app.like(&b, video, if round % 2 == 0 { 1 } else { 2 })
            .await;
    }
    app.follow(&a, b.id, 1).await;
    app.follow(&b, a.id, 1).await;
    for i in 0..3 {
        app.send_message(&a, b.id, &format!("m{i}")).await;
    }
    let comment = app.comment(&b, video, "nice").await;

    // Act
    let all = events(
        &app.cli(&["tap", "--from-beginning", "--idle-exit-ms", "3000"])
            .await,
    );

    // Assert: every event, once.
    let count = |t: &str| all.iter().filter(|e| e["event"]["type"] == t).count();
    let expected = [
        ("UserRegistered", 2),
        ("VideoPublished", 1),
        ("VideoLiked", 3),
        ("VideoUnliked", 3),
        ("UserFollowed", 2),
        ("MessageSent", 3),
        ("CommentAdded", 1),
    ];
    for (t, n) in expected {
        assert_eq!(count(t), n, "{t} events seen by tap");
    }
    assert_eq!(all.len(), 15, "nothing else");
    // Per-key order: the likes of one video, and one conversation, in the order they were made.
    let likes: Vec<&str> = all
        .iter()
        .filter(|e| e["topic"] == "titok.favorites")
        .map(|e| e["event"]["type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        likes,
        [
            "VideoLiked",
            "VideoUnliked",
            "VideoLiked",
            "VideoUnliked",
            "VideoLiked",
            "VideoUnliked"
        ]
    );
    let texts: Vec<&str> = all
        .iter()
        .filter(|e| e["event"]["type"] == "MessageSent")
        .map(|e| {
            e["event"]["payload"]["content"]
                .as_str()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(texts, ["m0", "m1", "m2"]);
    let comment_event = all
        .iter()
        .find(|e| e["event"]["type"] == "CommentAdded")
        .expect("comment");
    assert_eq!(
        comment_event["event"]["payload"]["comment_id"],
        comment["id"]
    );
    assert_eq!(
        comment_event["key"],
        video.to_string(),
        "comments are keyed by video"
    );

    // Filters: one type, one user.
    let b_likes = events(
        &app.cli(&[
            "tap",
            "--from-beginning",
            "--idle-exit-ms",
            "3000",
            "--type",
            "VideoLiked",
            "--user",
            &b.id.to_string(),
        ])
        .await,
    );
    assert_eq!(b_likes.len(), 3, "b's likes only");
    let top = events(
        &app.cli(&[
            "tap",
            "--from-beginning",
            "--idle-exit-ms",
            "3000",
            "--likes-top",
            "3",
        ])
        .await,
    );
    let last = top.last().expect("an aggregate line");
    assert_eq!(last["top"][0]["video_id"], video);
    // Net likes in the latest minute that had any (the test may straddle a minute boundary).
    let minute = |e: &serde_json::Value| {
        e["event"]["occurred_at"].as_str().unwrap_or_default()[..16].to_owned()
    };
    let favorites: Vec<&serde_json::Value> = all
        .iter()
        .filter(|e| e["topic"] == "titok.favorites")
        .collect();
    let latest = favorites.iter().map(|e| minute(e)).max().expect("a minute");
    let net: i64 = favorites
        .iter()
        .filter(|e| minute(e) == latest)
        .map(|e| {
            if e["event"]["type"] == "VideoLiked" {
                1
            } else {
                -1
            }
        })
        .sum();
    assert_eq!(
        last["top"][0]["likes"], net,
        "net likes of the latest minute"
    );

    // The tap changed nothing for the projections.
    assert_eq!(app.publish_list(&a, a.id).await[0]["favorite_count"], 0);
}
