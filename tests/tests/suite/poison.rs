//! Poison events: records no command could have produced reach the log (a foreign producer, a
//! corrupted write). Each is parked with its reason together with the later records of its key; the
//! rest flows on; `titok parked list|retry|drop` shows them, replays them and lets the key flow again.

use std::time::Duration;

use serde_json::{json, Value};
use titok_events::{pair_key, Topic};
use titok_tests::*;

/// Append raw bytes to a topic of the server's log, as a foreign producer would.
async fn inject(app: &mut TestApp, topic: Topic, key: &str, payload: &[u8]) {
    app.inject(topic, &[(key.to_owned(), payload.to_vec())])
        .await;
}

fn parked(app_output: &str) -> Vec<Value> {
    app_output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test]
async fn poison_events_are_parked_with_their_key_the_rest_flows_and_parked_retry_replays_them() {
    // Arrange
    let mut app = spawn_app().await;
    let a = app.register("a", "pw").await;
    let b = app.register("b", "pw").await;
    let (v1, v2) = (app.publish(&a, "v1").await, app.publish(&a, "v2").await);

    // Act: garbage on v1's key of the favorites topic, and a well-formed self-follow.
    inject(
        &mut app,
        Topic::Favorites,
        &v1.to_string(),
        br#"{"type":"VideoLiked","version":1,"payl"#,
    )
    .await;
    let self_follow = json!({
        "event_id": "01937a4e-8f4b-7c3d-9a2b-1c2d3e4f5a6b", "type": "UserFollowed", "version": 1,
        "occurred_at": "2026-11-25T10:00:00Z", "actor": a.id, "key": pair_key(a.id, a.id),
        "payload": {"follower_id": a.id, "followee_id": a.id}
    });
    inject(
        &mut app,
        Topic::Relations,
        &pair_key(a.id, a.id),
        self_follow.to_string().as_bytes(),
    )
    .await;
    app.like(&b, v1, 1).await; // behind the garbage: parked
    app.like(&b, v2, 1).await; // another key: flows
    app.follow(&b, a.id, 1).await; // another key: flows

    // Assert: the rest flowed; v1's like waits.
    let videos = app.publish_list(&b, a.id).await;
    let count = |id: i64| {
        videos
            .iter()
            .find(|v| v["id"] == id)
            .map(|v| v["favorite_count"].clone())
    };
    assert_eq!(count(v1), Some(json!(0)), "v1's like is parked");
    assert_eq!(count(v2), Some(json!(1)), "v2's like flowed");
    assert_eq!(app.user_info(&b, a.id).await["follower_count"], 1);
    assert_eq!(app.user_info(&a, a.id).await["follow_count"], 0);

    let listed = parked(&app.cli(&["parked", "list", "--json"]).await);
    assert_eq!(listed.len(), 3, "three parked records: {listed:?}");
    let garbage = &listed
        .iter()
        .find(|e| e["projection"] == "favorites" && e["event_type"].is_null())
        .expect("the garbage is parked");
    assert!(
        garbage["reason"]
            .as_str()
            .is_some_and(|r| r.contains("malformed event JSON")),
        "{garbage}"
    );
    assert!(listed.iter().any(|e| e["projection"] == "favorites"
        && e["event_type"] == "VideoLiked v1"
        && e["reason"] == "an earlier event of this key is parked"
        && e["key"].as_str() == Some(v1.to_string().as_str())));
    assert!(listed.iter().any(|e| e["projection"] == "relations"
        && e["reason"]
            .as_str()
            .is_some_and(|r| r.contains("follows themselves"))));
    let table = app.cli(&["parked", "list"]).await;
    assert!(
        table.contains("malformed event JSON") && table.contains("VideoLiked v1"),
        "{table}"
    );

    // A retry changes nothing while the garbage is first in line.
    let report: Value =
        serde_json::from_str(app.cli(&["parked", "retry"]).await.trim()).expect("report");
    assert_eq!(report["applied"], 0, "{report}");
    assert_eq!(report["still_parked"], 3, "{report}");

    // Dropping the garbage and retrying applies the like behind it and releases the key.
    let (partition, offset) = (
        garbage["partition"].to_string(),
        garbage["offset"].to_string(),
    );
    app.cli(&["parked", "drop", "favorites", &partition, &offset])
        .await;
    let report: Value = serde_json::from_str(
        app.cli(&["parked", "retry", "--projection", "favorites"])
            .await
            .trim(),
    )
    .expect("report");
    assert_eq!(report["applied"], 1, "{report}");
    assert_eq!(report["keys_released"], 1, "{report}");
    let seen = eventually(
        Duration::from_secs(5),
        "the retried like counts (cache refilled)",
        || async {
            let videos = app.publish_list(&b, a.id).await;
            let seen = videos
                .iter()
                .find(|v| v["id"] == v1)
                .map(|v| v["favorite_count"].clone())
                .unwrap_or_default();
            (seen == 1).then_some(seen)
        },
    )
    .await;
    assert_eq!(seen, 1, "the retried like counts (cache refilled)");
    assert_eq!(app.user_info(&a, a.id).await["total_favorited"], 2);

    // The key flows again in the live projection, and only the self-follow is still parked.
    app.like(&a, v1, 1).await;
    let v = app.publish_list(&a, a.id).await;
    let v1_now = v.iter().find(|v| v["id"] == v1).expect("v1");
    assert_eq!(v1_now["favorite_count"], 2, "a new like of v1 flows");
    let listed = parked(&app.cli(&["parked", "list", "--json"]).await);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["projection"], "relations");
    let refused = app
        .cli_result(&["parked", "drop", "favorites", &partition, &offset])
        .await;
    assert!(!refused.0, "dropping a record that is not parked fails");
}

/// An event the views cannot hold (a comment longer than its column) is parked with
/// its reason instead of failing its batch forever (on MySQL the insert fails in strict mode, and
/// the projection retried the same batch for good); the rest flows on.
#[tokio::test]
async fn an_event_too_long_for_its_column_is_parked_not_wedged() {
    let mut app = spawn_app().await;
    let a = app.register("long", "pw").await;
    let (v1, v2) = (app.publish(&a, "v1").await, app.publish(&a, "v2").await);
    let long = json!({
        "event_id": "01937a4e-8f4b-7c3d-9a2b-1c2d3e4f5a6c", "type": "CommentAdded", "version": 1,
        "occurred_at": "2026-11-25T10:00:00Z", "actor": a.id, "key": v1.to_string(),
        "payload": {"comment_id": 4242, "video_id": v1, "user_id": a.id,
                    "content": "x".repeat(2001), "created_at_ms": 1_764_064_800_000_i64}
    });
    inject(
        &mut app,
        Topic::Comments,
        &v1.to_string(),
        long.to_string().as_bytes(),
    )
    .await;
    app.comment(&a, v2, "fits").await;
    assert_eq!(app.comments(&a, v2).await.len(), 1, "the rest flows");
    assert!(app.comments(&a, v1).await.is_empty());
    let listed = parked(&app.cli(&["parked", "list", "--json"]).await);
    assert!(
        listed.iter().any(|e| e["projection"] == "comments"
            && e["reason"].as_str().is_some_and(|r| r.contains(
                "comment content has 2001 characters; the view column holds at most 2000"
            ))),
        "{listed:?}"
    );
}
