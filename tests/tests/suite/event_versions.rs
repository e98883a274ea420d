//! Old event versions keep working: a `VideoPublished` v1 event stored in the log (as written
//! before v2 existed) is upcast on read and projected like any other.

use sqlx::Connection;
use titok_tests::*;

#[tokio::test]
async fn a_stored_v1_event_is_projected_after_an_upgrade() {
    assert!(
        !on_real_services(),
        "writes the embedded log file directly: run it in the embedded pass (scripts/test skips it in the real-service pass)"
    );
    // Arrange: a user, then the server stops and a v1 event lands in its log.
    let mut app = spawn_app().await;
    let author = app.register("veteran", "pw").await;
    app.kill().await;
    let video_id = author.id + 4096;
    let key = video_id.to_string();
    let partition = i64::from(titok_events::partition_for(&key, 4));
    let v1 = serde_json::json!({
        "event_id": "01937a4e-8f4b-7c3d-9a2b-1c2d3e4f5a6b",
        "type": "VideoPublished",
        "version": 1,
        "occurred_at": "2025-06-01T10:00:00Z",
        "actor": author.id,
        "key": key,
        "payload": {
            "video_id": video_id, "author_id": author.id, "title": "published in v1",
            "play_path": format!("videos/{video_id}.mp4"), "cover_path": format!("covers/{video_id}.png"),
            "published_at_ms": 1_748_772_000_000_i64
        }
    });
    let url = format!("sqlite://{}", app.data_dir.join("log.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open log.db");
    let (offset,): (i64,) = sqlx::query_as(
        "SELECT COALESCE(MAX(offset) + 1, 0) FROM log WHERE topic = 'titok.videos' AND partition = ?",
    )
    .bind(partition)
    .fetch_one(&mut db)
    .await
    .expect("next offset");
    sqlx::query("INSERT INTO log (topic, partition, offset, key, payload, appended_ms) VALUES ('titok.videos', ?, ?, ?, ?, 0)")
        .bind(partition)
        .bind(offset)
        .bind(&key)
        .bind(serde_json::to_vec(&v1).expect("json"))
        .execute(&mut db)
        .await
        .expect("insert v1 event");
    db.close().await.expect("close");

    // Act: the new binary starts on that log.
    app.restart().await;

    // Assert: the v1 video is in the views like any other.
    let videos = app.publish_list(&author, author.id).await;
    assert_eq!(ids(&videos), vec![video_id], "the v1 event was projected");
    assert_eq!(videos[0]["title"], "published in v1");
    assert_eq!(app.user_info(&author, author.id).await["work_count"], 1);
}
