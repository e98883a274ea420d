//! Projection versions at start-up: views of an older version are rebuilt (or refused with
//! `--stale-views refuse`), views of a newer binary refused.

use titok_tests::*;

use super::{differences, snapshot, traffic};

#[tokio::test]
async fn an_older_view_version_is_rebuilt_at_start_or_refused_by_flag_and_a_newer_one_refused() {
    // Arrange
    let mut app = spawn_app().await;
    let world = traffic(&app, 3, 1).await;
    let people: Vec<&User> = world.users.iter().collect();
    app.wait_ready().await;
    let healthy = snapshot(&app, &[people[0]], &people, &world.videos).await;
    assert!(app.terminate().await);
    let db = app.view_db().await;
    let set_version = |v: i64| {
        let db = db.clone();
        async move {
            sqlx::query("UPDATE projection_meta SET version = ? WHERE projection = 'favorites'")
                .bind(v)
                .execute(&db)
                .await
                .expect("set version");
        }
    };

    // Act + Assert: a view built by a newer binary is refused.
    set_version(99).await;
    let (ok, _, stderr) = app.cli_result(&["serve", "--listen", "127.0.0.1:0"]).await;
    assert!(!ok && stderr.contains("newer titok"), "{stderr}");

    // An older one is refused with --stale-views refuse …
    set_version(0).await;
    let (ok, _, stderr) = app
        .cli_result(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--stale-views",
            "refuse",
        ])
        .await;
    assert!(!ok && stderr.contains("titok rebuild"), "{stderr}");

    // … and rebuilt by default before serving, answering as before.
    app.respawn().await;
    app.wait_ready().await;
    assert!(
        app.logs().contains("rebuilding them from the log"),
        "{}",
        app.logs()
    );
    let (version,): (i64,) =
        sqlx::query_as("SELECT version FROM projection_meta WHERE projection = 'favorites'")
            .fetch_one(&db)
            .await
            .expect("version");
    assert_eq!(version, 2, "this binary's favorites version");
    let after = snapshot(&app, &[people[0]], &people, &world.videos).await;
    let diff = differences(&healthy, &after);
    assert!(diff.is_empty(), "{diff:#?}");
}
