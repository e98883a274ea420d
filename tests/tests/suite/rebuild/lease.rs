//! The rebuild lease: one rebuild of a group at a time, an expired lease taken over, and a swap
//! delayed past its pause lease aborted.

use std::time::Duration;

use titok_tests::*;

use super::{differences, now_ms, snapshot, traffic};

/// The rebuild lease: a rebuild of a group whose lease another rebuild holds refuses with a clear
/// message and changes nothing; an expired lease (a crashed rebuild) is taken over; a finished
/// rebuild releases it; two rebuilds started together never both swap at once.
#[tokio::test]
async fn a_second_rebuild_of_a_group_being_rebuilt_refuses_and_an_expired_lease_is_taken_over() {
    // Arrange
    let app = spawn_app().await;
    let world = traffic(&app, 3, 2).await;
    app.wait_ready().await;
    let people: Vec<&User> = world.users.iter().collect();
    let viewers = [people[0]];
    let before = snapshot(&app, &viewers, &people, &world.videos).await;
    let db = app.view_db().await;
    let lease = |until: i64| {
        let db = db.clone();
        async move {
            sqlx::query(
                "UPDATE projection_meta SET rebuild_by = 'pid 4242 started earlier (r1_)', \
                 rebuild_until_ms = ? WHERE projection = 'videos'",
            )
            .bind(until)
            .execute(&db)
            .await
            .expect("set lease");
        }
    };

    // Act 1: another rebuild holds the videos group's lease.
    lease(now_ms() + 60_000).await;
    let (ok, _, stderr) = app.cli_result(&["rebuild", "videos"]).await;

    // Assert 1
    assert!(!ok, "refused while another rebuild holds the lease");
    assert!(
        stderr.contains("being rebuilt by another `titok rebuild` (pid 4242"),
        "{stderr}"
    );
    let (generation,): (i64,) =
        sqlx::query_as("SELECT generation FROM projection_meta WHERE projection = 'videos'")
            .fetch_one(&db)
            .await
            .expect("generation");

    // Act 2: that rebuild died; its lease expired.
    lease(now_ms() - 1).await;
    app.cli(&["rebuild", "videos"]).await;

    // Assert 2: taken over, swapped, released.
    let (after_generation,): (i64,) =
        sqlx::query_as("SELECT generation FROM projection_meta WHERE projection = 'videos'")
            .fetch_one(&db)
            .await
            .expect("generation");
    assert!(after_generation > generation, "the rebuild swapped");
    let held: Vec<(String,)> =
        sqlx::query_as("SELECT rebuild_by FROM projection_meta WHERE rebuild_by <> ''")
            .fetch_all(&db)
            .await
            .expect("leases");
    assert!(held.is_empty(), "released: {held:?}");

    // Act 3: two rebuilds of the same group started together.
    let (first, second) = tokio::join!(
        app.cli_result(&["rebuild", "videos"]),
        app.cli_result(&["rebuild", "videos"])
    );

    // Assert 3: each one either swapped or refused with the lease message; the views are intact.
    assert!(
        first.0 || second.0,
        "at least one rebuild ran: {first:?} {second:?}"
    );
    for (ok, _, stderr) in [&first, &second] {
        assert!(
            *ok || stderr.contains("being rebuilt by another"),
            "{stderr}"
        );
    }
    let diff = eventually(
        Duration::from_secs(30),
        "the views answer as before the rebuilds (differences above)",
        || async {
            let diff = differences(
                &before,
                &snapshot(&app, &viewers, &people, &world.videos).await,
            );
            if diff.is_empty() {
                return Some(diff);
            }
            eprintln!("not as before yet: {diff:#?}");
            None
        },
    )
    .await;
    assert!(diff.is_empty(), "{diff:#?}");
}

/// A rebuild that stalls past its pause lease (fault points: a 1.5 s lease that is not
/// renewed, 4 s asleep before the swap) while likes keep coming must not swap: the live
/// projections folded on meanwhile, and a swap would have put their checkpoints back and left
/// those likes out of the new views while the positions said "applied".
#[tokio::test]
async fn a_swap_delayed_past_its_pause_lease_aborts_and_the_views_stay_exact() {
    let app = spawn_app().await;
    let author = app.register("lease-author", "secret1").await;
    let video = app.publish(&author, "lease").await;
    let mut likers = Vec::new();
    for i in 0..24 {
        likers.push(app.register(&format!("lease{i}"), "secret1").await);
    }
    for u in &likers[..8] {
        app.like(u, video, 1).await;
    }
    let faults = "rebuild::pause_lease_ms=return(1500);rebuild::stop_renewing=return;\
                  rebuild::before_swap_ms=return(4000)";
    let env = [("FAILPOINTS", faults)];
    let rebuild = app.cli_result_env(&["rebuild", "favorites"], &env);
    let writer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for u in &likers[8..] {
            app.like(u, video, 1).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    };
    let ((ok, _, stderr), ()) = tokio::join!(rebuild, writer);
    assert!(!ok, "the stalled rebuild must not swap");
    assert!(
        stderr.contains("not swapping") && stderr.contains("live views are unchanged"),
        "{stderr}"
    );
    // Read at once, with nothing written after the rebuild gave up: every like is there, and the
    // answer is not marked stale.
    let (_, headers, body) = app
        .get_full(
            "/douyin/publish/list/",
            &author.with(&[("user_id", author.id.to_string())]),
        )
        .await;
    assert!(
        !headers.contains_key("x-titok-stale"),
        "a fresh answer: {headers:?}"
    );
    let videos = list(&body, "video_list");
    assert_eq!(
        videos[0]["favorite_count"], 24,
        "every acknowledged like is in the views: {body}"
    );
    for u in &likers {
        assert_eq!(ids(&app.favorite_list(u, u.id).await), vec![video]);
    }
    // And a rebuild without faults swaps and agrees.
    app.cli(&["rebuild", "favorites"]).await;
    let videos = app.publish_list(&author, author.id).await;
    assert_eq!(videos[0]["favorite_count"], 24);
}
