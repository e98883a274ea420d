//! Damage repaired by a rebuild: lost rows and wrong counts in the views and the counter cache,
//! and cache entries of ids that only the damaged tables had.

use std::time::Duration;

use titok_adapters::redis_store::{self, RedisCounters};
use titok_ports::counters::{Counters, Versioned};
use titok_tests::*;

use super::{differences, now_ms, snapshot, traffic};

#[tokio::test]
async fn damaged_views_and_counters_are_repaired_by_a_rebuild() {
    // Arrange
    let mut app = spawn_app().await;
    let world = traffic(&app, 4, 3).await;
    let people: Vec<&User> = world.users.iter().collect();
    let viewers = [people[0], people[1]];
    app.wait_ready().await;
    let healthy = snapshot(&app, &viewers, &people, &world.videos).await;

    // Damage the views the way a buggy projection would: rows lost, counts wrong (with their
    // versions bumped, so the counter cache takes them too).
    let db = app.view_db().await;
    for damage in [
        "DELETE FROM favorites WHERE video_id IN (SELECT id FROM videos WHERE title LIKE 'video 0.%')",
        "UPDATE video_stats SET favorite_count = favorite_count + 5, comment_count = 7, version = version + 1",
        "UPDATE user_stats SET follower_count = 42, total_favorited = 0, version = version + 1",
        "DELETE FROM messages",
        "DELETE FROM friends",
        "DELETE FROM comments",
    ] {
        sqlx::query(damage).execute(&db).await.expect(damage);
    }
    let user_ids: Vec<i64> = people.iter().map(|u| u.id).collect();
    let redis = match std::env::var("TITOK_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(RedisCounters::new(
            redis_store::connect(&url).await.expect("redis"),
            app.arg("--namespace").expect("namespace"),
        )),
        _ => None,
    };
    let sql_counts = || async {
        let users = titok_views::stats::user_stats(&db, &user_ids)
            .await
            .expect("users");
        let videos = titok_views::stats::video_stats(&db, &world.videos)
            .await
            .expect("videos");
        (users, videos)
    };
    match &redis {
        Some(cache) => {
            let (users, videos) = sql_counts().await;
            let users: Vec<_> = users.into_iter().collect();
            let videos: Vec<_> = videos.into_iter().collect();
            cache.put_users(&users).await.expect("put");
            cache.put_videos(&videos).await.expect("put");
        }
        // The embedded cache lives in the server: a restart refills it from the damaged rows.
        None => app.restart().await,
    }
    let damaged = snapshot(&app, &viewers, &people, &world.videos).await;
    assert!(
        differences(&healthy, &damaged).len() > 10,
        "the damage is visible through the API"
    );

    // Act
    app.cli(&["rebuild", "all"]).await;

    // Assert: the API answers as before the damage (the embedded server refills its cache when it
    // sees the rebuild's generation; allow it a moment).
    let diff = eventually(
        Duration::from_secs(30),
        "the API answers as before the damage (differences above)",
        || async {
            let repaired = snapshot(&app, &viewers, &people, &world.videos).await;
            let diff = differences(&healthy, &repaired);
            if diff.is_empty() {
                return Some(diff);
            }
            eprintln!("not repaired yet: {diff:#?}");
            None
        },
    )
    .await;
    assert!(diff.is_empty(), "not repaired: {diff:#?}");
    if let Some(cache) = &redis {
        let (users, videos) = sql_counts().await;
        let cached_users = cache.users(&user_ids).await.expect("cached users");
        for (i, id) in user_ids.iter().enumerate() {
            assert_eq!(
                cached_users[i],
                users.get(id).map(|v: &Versioned<_>| v.value),
                "user {id} in Redis"
            );
        }
        let cached_videos = cache.videos(&world.videos).await.expect("cached videos");
        for (i, id) in world.videos.iter().enumerate() {
            assert_eq!(
                cached_videos[i],
                videos.get(id).map(|v| v.value),
                "video {id} in Redis"
            );
        }
    }
}

/// Cache entries of ids that only the damaged tables had are removed on swap: a ghost video with 5
/// likes is served (and cached), a rebuild removes it, and when a video with that id appears later
/// with fewer, older-versioned counts, the author's list shows its real count, not the ghost's.
#[tokio::test]
async fn a_rebuild_removes_cache_entries_of_ids_only_the_damaged_tables_had() {
    // Arrange: the ghost, in the damaged views, read once so that the cache holds it.
    let app = spawn_app().await;
    let author = app.register("author", "pw").await;
    app.publish(&author, "real").await;
    app.wait_ready().await;
    let db = app.view_db().await;
    let ghost = 6_000_000_001_i64;
    let published = now_ms() - 1_000;
    let insert_ghost = |likes: i64, version: i64| {
        let db = db.clone();
        let author = author.id;
        async move {
            sqlx::query(
                "INSERT INTO videos (id, author_id, title, play_path, cover_path, published_ms) \
                 VALUES (?, ?, 'ghost', 'videos/ghost.mp4', 'covers/ghost.png', ?)",
            )
            .bind(ghost)
            .bind(author)
            .bind(published)
            .execute(&db)
            .await
            .expect("ghost video");
            sqlx::query(
                "INSERT INTO video_stats (video_id, favorite_count, comment_count, version) \
                 VALUES (?, ?, 0, ?)",
            )
            .bind(ghost)
            .bind(likes)
            .bind(version)
            .execute(&db)
            .await
            .expect("ghost stats");
        }
    };
    insert_ghost(5, 1_000).await;
    // The author's list reads the videos view (the feed's newest pages come from the feed
    // index, which folds the log and never held the ghost).
    let ghost_likes = || async {
        app.publish_list(&author, author.id)
            .await
            .into_iter()
            .find(|v| v["id"] == ghost)
            .map(|v| v["favorite_count"].as_i64().unwrap_or(-1))
    };
    assert_eq!(
        ghost_likes().await,
        Some(5),
        "the damage is served and cached"
    );

    // Act: rebuild (the ghost is in no event); then a video with the ghost's id appears with no
    // likes at a low version, as a live projection would write a new row.
    app.cli(&["rebuild", "videos"]).await;
    // The server replaces its own cache once it sees the rebuild's generation (the embedded
    // server's cache is in its process, not the CLI's).
    eventually(
        Duration::from_secs(20),
        "the server saw the rebuild (\"counter cache refilled\")",
        || async { app.logs().contains("counter cache refilled").then_some(()) },
    )
    .await;
    assert!(
        app.logs().contains("counter cache refilled"),
        "the server saw the rebuild"
    );
    assert_eq!(ghost_likes().await, None, "the rebuild removed the ghost");
    insert_ghost(0, 1).await;

    // Assert: its real count, not the cached ghost's.
    assert_eq!(
        ghost_likes().await,
        Some(0),
        "no stale cache entry for the ghost's id"
    );
}
