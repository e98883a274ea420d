//! Order and paging: lists newest first (and `[]` when empty), the feed paged by `next_time` with
//! nothing repeated or missed, and chat polled for strictly newer messages, oldest first.

use titok_tests::*;

#[tokio::test]
async fn lists_are_newest_first_and_empty_lists_are_arrays() {
    let app = spawn_app().await;
    let u = app.register("u", "pw").await;
    for path in [
        "/douyin/publish/list/",
        "/douyin/favorite/list/",
        "/douyin/relation/follow/list/",
        "/douyin/relation/follower/list/",
        "/douyin/relation/friend/list/",
    ] {
        let body = app
            .get(path, &u.with(&[("user_id", u.id.to_string())]))
            .await;
        assert_ok(&body, path);
        let field = if path.contains("relation") {
            "user_list"
        } else {
            "video_list"
        };
        assert_eq!(
            body[field],
            serde_json::json!([]),
            "{path}: empty list is [] not null"
        );
    }
    let first = app.publish(&u, "first").await;
    let second = app.publish(&u, "second").await;
    assert_eq!(
        ids(&app.publish_list(&u, u.id).await),
        vec![second, first],
        "publish list newest first"
    );
    assert!(app.comments(&u, first).await.is_empty());
    let c1 = app.comment(&u, first, "one").await["id"]
        .as_i64()
        .expect("id");
    let c2 = app.comment(&u, first, "two").await["id"]
        .as_i64()
        .expect("id");
    assert_eq!(
        ids(&app.comments(&u, first).await),
        vec![c2, c1],
        "comments newest first"
    );
    let chat = app
        .get(
            "/douyin/message/chat/",
            &u.with(&[("to_user_id", app.register("w", "pw").await.id.to_string())]),
        )
        .await;
    assert_eq!(chat["message_list"], serde_json::json!([]));
}

#[tokio::test]
async fn feed_pages_by_next_time_with_no_repeats_and_nothing_missed() {
    let app = spawn_app().await;
    let u = app.register("u", "pw").await;
    let mut published = Vec::new();
    for i in 0..34 {
        published.push(app.publish(&u, &format!("clip {i}")).await);
    }

    let mut seen = Vec::new();
    let mut latest = 0_i64;
    for _page in 0..5 {
        let body = app
            .get(
                "/douyin/feed/",
                &[
                    ("latest_time", latest.to_string()),
                    ("token", u.token.clone()),
                ],
            )
            .await;
        assert_ok(&body, "feed");
        let page = list(&body, "video_list");
        assert!(page.len() <= 30, "at most 30 per page");
        if page.is_empty() {
            break;
        }
        seen.extend(ids(&page));
        latest = body["next_time"].as_i64().expect("next_time");
    }
    let mut expected = published.clone();
    expected.reverse();
    assert_eq!(
        seen, expected,
        "every video exactly once, newest first, across pages"
    );

    // Clients also send seconds: a latest_time in seconds from the far future shows the newest.
    let body = app
        .get("/douyin/feed/", &[("latest_time", "4102444800".into())])
        .await;
    assert_eq!(list(&body, "video_list").len(), 30, "seconds are accepted");
}

/// Videos published in one millisecond on a page boundary are neither skipped nor repeated: 80
/// videos injected through the log — 20 in the newest millisecond, 15 in the next, 40 sharing one
/// millisecond, then 5 apart — paged through with `next_time` as the next `latest_time`.
#[tokio::test]
async fn feed_paging_never_skips_or_repeats_videos_sharing_a_millisecond() {
    use titok_events::{Envelope, EventBody, Topic, VideoPublished};
    // Arrange
    let mut app = spawn_app().await;
    let author = app.register("author", "pw").await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let t0 = now_ms - 60_000;
    let groups: [(i64, usize); 4] = [(t0, 20), (t0 - 7, 15), (t0 - 20, 40), (t0 - 30, 5)];
    let mut expected = Vec::new();
    let mut records = Vec::new();
    let mut next_id = 7_000_000_000;
    for (group, (ms, count)) in groups.into_iter().enumerate() {
        for i in 0..count {
            next_id += 1;
            // The last group: five videos a millisecond apart.
            let published_at_ms = if group == 3 { ms - i as i64 } else { ms };
            let event = Envelope::new(
                author.id,
                EventBody::VideoPublished(VideoPublished {
                    video_id: next_id,
                    author_id: author.id,
                    title: format!("v{next_id}"),
                    play_path: format!("videos/{next_id}.mp4"),
                    cover_path: format!("covers/{next_id}.png"),
                    published_at_ms,
                    content_type: "video/mp4".into(),
                    size_bytes: Some(1),
                }),
            );
            expected.push((published_at_ms, next_id));
            records.push((event.key(), event.encode()));
        }
    }
    app.inject(Topic::Videos, &records).await;
    expected.sort_by(|a, b| b.cmp(a)); // newest first, ties by larger id

    // Act: page through the whole feed.
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut latest = 0;
    loop {
        let body = app
            .get("/douyin/feed/", &[("latest_time", latest.to_string())])
            .await;
        assert_ok(&body, "feed page");
        let page = list(&body, "video_list");
        if page.is_empty() {
            break;
        }
        sizes.push(page.len());
        seen.extend(ids(&page));
        latest = body["next_time"].as_i64().expect("next_time");
        assert!(sizes.len() < 20, "paging does not end: {sizes:?}");
    }

    // Assert: every video exactly once, in order; pages end on millisecond boundaries.
    let want: Vec<i64> = expected.iter().map(|(_, id)| *id).collect();
    assert_eq!(seen, want, "page sizes {sizes:?}");
    assert_eq!(sizes, vec![20, 15, 40, 5], "pages end between milliseconds");
}

#[tokio::test]
async fn chat_returns_strictly_newer_messages_oldest_first() {
    let app = spawn_app().await;
    let a = app.register("a", "pw").await;
    let b = app.register("b", "pw").await;
    for i in 0..5 {
        app.send_message(
            if i % 2 == 0 { &a } else { &b },
            if i % 2 == 0 { b.id } else { a.id },
            &format!("m{i}"),
        )
        .await;
    }

    let all = app.chat(&a, b.id, 0).await;
    let contents: Vec<&str> = all
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        contents,
        ["m0", "m1", "m2", "m3", "m4"],
        "both directions, oldest first"
    );
    let times: Vec<i64> = all
        .iter()
        .map(|m| m["create_time"].as_i64().unwrap_or(0))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "create_time strictly increasing: {times:?}"
    );

    let newer = app.chat(&a, b.id, times[2]).await;
    assert_eq!(newer.len(), 2, "strictly newer than pre_msg_time");
    assert_eq!(newer[0]["content"], "m3");
    assert!(
        app.chat(&b, a.id, times[4]).await.is_empty(),
        "nothing newer than the newest"
    );
    app.send_message(&b, a.id, "m5").await;
    let polled = app.chat(&a, b.id, times[4]).await;
    assert_eq!(
        polled.len(),
        1,
        "a poll after a send sees exactly the new message"
    );
    assert_eq!(polled[0]["content"], "m5");
}
