//! A MySQL outage: the projections pause while it is down and resume without skipping an event.

use std::time::Duration;

use titok_tests::*;

#[tokio::test]
#[ignore = "needs Kafka, MySQL and Redis: scripts/test runs it in its real-service pass"]
async fn projectors_pause_while_mysql_is_down_and_resume_without_skipping_an_event() {
    needs_real_services!();
    // Arrange: a private MariaDB for this server's accounts and views.
    let mut mysql = PrivateService::mariadb().await;
    let app = TestApp::start_with(&["--no-sample"], &[("--mysql-url", mysql.mysql_url())]).await;
    let author = app.register("author", "pw").await;
    let video = app.publish(&author, "v").await;
    let mut fans = Vec::new();
    for i in 0..40 {
        fans.push(app.register(&format!("fan{i}"), "pw").await);
    }

    // Act: MySQL crashes; meanwhile likes reach the log (appended directly, as another command API
    // instance would), so the projection has events it cannot apply.
    mysql.stop();
    let log = kafka_log(app.arg("--namespace").expect("namespace")).await;
    for fan in &fans {
        let like = titok_events::Favorite {
            user_id: fan.id,
            video_id: video,
            author_id: author.id,
        };
        let event = titok_events::Envelope::new(fan.id, titok_events::EventBody::VideoLiked(like));
        titok_ports::log::EventLog::append(&log, &[event.clone(), event])
            .await
            .expect("append");
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // the projection retries against a dead MySQL
    mysql.start().await;

    // Assert: every like is applied once (each was appended twice), none skipped.
    let count = eventually(
        Duration::from_secs(90),
        "all likes applied after MySQL returned",
        || async {
            let (status, body) = app
                .get_raw(
                    "/douyin/publish/list/",
                    &author.with(&[("user_id", author.id.to_string())]),
                )
                .await;
            let count = body["video_list"][0]["favorite_count"].clone();
            (status == 200 && body["status_code"] == 0 && count == fans.len() as i64)
                .then_some(count)
        },
    )
    .await;
    assert_eq!(
        count,
        fans.len() as i64,
        "all likes applied after MySQL returned"
    );
    assert_eq!(
        app.user_info(&author, author.id).await["total_favorited"],
        fans.len() as i64
    );
    for fan in fans.iter().step_by(7) {
        assert_eq!(
            ids(&app.favorite_list(fan, fan.id).await),
            vec![video],
            "fan {} like applied",
            fan.id
        );
    }
}
