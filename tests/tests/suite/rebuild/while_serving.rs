//! `titok rebuild all` while clients read and write: no read fails or comes back empty, nothing
//! written meanwhile is lost, and the result equals a fresh fold of the whole log.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;
use titok_tests::*;

use super::{differences, snapshot, traffic};

/// The views must be rebuilt for the reference: drop them so the restarted server folds the
/// whole log from scratch through its live projections (not through the rebuild code).
async fn wipe_views(app: &TestApp) {
    if app.arg("--mysql-url").is_some() {
        let db = app.view_db().await;
        for table in titok_schemas_tables() {
            sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
                .execute(&db)
                .await
                .expect("drop");
        }
        for meta in ["projection_meta", "projection_offsets", "parked_events"] {
            sqlx::query(&format!("DELETE FROM {meta}"))
                .execute(&db)
                .await
                .expect("delete");
        }
    } else {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(app.data_dir.join(format!("views.db{suffix}")));
        }
    }
}

fn titok_schemas_tables() -> Vec<&'static str> {
    titok_views::ViewTable::ALL
        .iter()
        .map(|t| t.name())
        .collect()
}

#[tokio::test]
async fn rebuild_all_while_clients_read_and_write_ends_equal_to_a_fresh_fold_of_the_log() {
    // Arrange: traffic, then two quiet users: the writer W and the author A whose videos W will
    // like and to whom W will write during the rebuild. Nobody else touches them.
    let app = Arc::new(spawn_app().await);
    let world = traffic(&app, 6, 7).await;
    let w = app.register("writer", "password1").await;
    let a = app.register("author", "password1").await;
    let a_videos = [
        app.publish(&a, "a.0").await,
        app.publish(&a, "a.1").await,
        app.publish(&a, "a.2").await,
    ];
    let mut everyone: Vec<&User> = world.users.iter().collect();
    everyone.extend([&w, &a]);
    let viewers = [&world.users[0], &world.users[1], &w, &a];
    let mut all_videos = world.videos.clone();
    all_videos.extend(a_videos);
    app.wait_ready().await;
    let before = snapshot(&app, &viewers, &everyone, &all_videos).await;

    // Act: rebuild everything while one client reads and another writes.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let (app, stop, reads, failures) =
            (app.clone(), stop.clone(), reads.clone(), failures.clone());
        let (u0, author) = (world.users[0].clone(), world.users[1].id);
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let (status, body) = app
                    .get_raw(
                        "/douyin/publish/list/",
                        &u0.with(&[("user_id", author.to_string())]),
                    )
                    .await;
                if status != 200 || body["status_code"] != 0 || list(&body, "video_list").len() != 2
                {
                    failures
                        .lock()
                        .expect("lock")
                        .push(format!("publish list: {status} {body}"));
                }
                let (status, body) = app
                    .get_raw(
                        "/douyin/favorite/list/",
                        &u0.with(&[("user_id", u0.id.to_string())]),
                    )
                    .await;
                if status != 200 || body["status_code"] != 0 || list(&body, "video_list").is_empty()
                {
                    failures
                        .lock()
                        .expect("lock")
                        .push(format!("favorite list: {status} {body}"));
                }
                let (status, body) = app
                    .get_raw(
                        "/douyin/user/",
                        &u0.with(&[("user_id", author.to_string())]),
                    )
                    .await;
                if status != 200 || body["status_code"] != 0 || body["user"]["work_count"] != 2 {
                    failures
                        .lock()
                        .expect("lock")
                        .push(format!("user: {status} {body}"));
                }
                reads.fetch_add(3, Ordering::SeqCst);
            }
        })
    };
    let writer = {
        let (app, stop, w, a) = (app.clone(), stop.clone(), w.clone(), a.clone());
        tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut liked = Vec::new();
            // Bursts of concurrent writes, so the log's tail runs ahead of the rebuild — at a
            // bounded rate (~100/s), so the rebuild can catch up.
            while !stop.load(Ordering::SeqCst) && sent.len() < 5000 {
                let burst: Vec<String> = (sent.len()..sent.len() + 4)
                    .map(|n| format!("during rebuild {n:06}"))
                    .collect();
                join_all(burst.iter().map(|text| app.send_message(&w, a.id, text))).await;
                sent.extend(burst);
                if liked.len() < a_videos.len() {
                    app.like(&w, a_videos[liked.len()], 1).await;
                    liked.push(a_videos[liked.len()]);
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            (sent, liked)
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reads_before = reads.load(Ordering::SeqCst);
    // A small pause threshold, so most of the log is replayed while the live side runs.
    let output = app.cli(&["rebuild", "all", "--pause-within", "200"]).await;
    let reads_during = reads.load(Ordering::SeqCst) - reads_before;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::SeqCst);
    reader.await.expect("reader");
    let (sent, liked) = writer.await.expect("writer");
    app.wait_ready().await;

    // Assert: the rebuild replayed the log; no read failed or came back empty meanwhile.
    let reports: Vec<Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).expect("report line"))
        .collect();
    assert_eq!(reports.len(), 2, "one report per group: {output}");
    assert!(reports[0]["events"].as_u64().unwrap_or(0) > 500, "{output}");
    assert!(reads_during > 0, "the reader ran during the rebuild");
    let failures = failures.lock().expect("lock").clone();
    assert!(
        failures.is_empty(),
        "reads failed during the rebuild: {failures:?}"
    );

    // Assert: every answer untouched by the concurrent writes is as before …
    let after = snapshot(&app, &viewers, &everyone, &all_videos).await;
    let touched = |key: &String| {
        key.starts_with("feed:")
            || key
                .split(':')
                .any(|part| part == w.id.to_string() || part == a.id.to_string())
    };
    let untouched_before: BTreeMap<_, _> = before
        .iter()
        .filter(|(k, _)| !touched(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(untouched_before.len() > 100, "a meaningful snapshot");
    let diff = differences(&untouched_before, &after);
    assert!(diff.is_empty(), "answers changed by the rebuild: {diff:#?}");
    // … the writes made meanwhile are all there …
    let mut chat: Vec<String> = app
        .chat(&w, a.id, 0)
        .await
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect();
    chat.sort();
    let missing: Vec<_> = sent.iter().filter(|m| !chat.contains(m)).take(10).collect();
    assert!(
        missing.is_empty() && chat.len() == sent.len(),
        "{} sent during the rebuild, {} in the chat; missing e.g. {missing:?}",
        sent.len(),
        chat.len()
    );
    assert_eq!(ids(&app.favorite_list(&w, w.id).await).len(), liked.len());
    assert_eq!(
        app.user_info(&w, a.id).await["total_favorited"],
        liked.len() as i64
    );
    // … and everything equals a fresh fold of the whole log by the live projections.
    let mut app = Arc::into_inner(app).expect("sole owner");
    app.kill().await;
    wipe_views(&app).await;
    if let Ok(redis) = std::env::var("TITOK_TEST_REDIS_URL") {
        if !redis.is_empty() {
            // A cache of its own, so the reference is computed from SQL only.
            app.set_arg("--redis-url", &format!("{}/1", redis.trim_end_matches('/')));
        }
    }
    app.respawn().await;
    app.wait_ready().await;
    let reference = snapshot(&app, &viewers, &everyone, &all_videos).await;
    let diff = differences(&after, &reference);
    assert!(
        diff.is_empty(),
        "rebuilt views differ from a fresh fold: {diff:#?}"
    );
}
