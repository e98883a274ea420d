//! Read-after-write across users (the query API waits per partition for what was acknowledged): a read that starts after a write's reply reflects
//! it for every user the write touches — no sleeps, no retries in the client.

use titok_tests::*;

const PAIRS: usize = 1000;

#[tokio::test]
async fn a_like_is_visible_to_the_author_immediately_a_thousand_times() {
    let app = spawn_app().await;
    let author = app.register("author", "pw").await;
    let fan = app.register("fan", "pw").await;
    let video_id = app.publish(&author, "v").await;

    let mut stale = Vec::new();
    for i in 0..PAIRS {
        // Like on even rounds, unlike on odd ones: the count must alternate 1, 0, 1, …
        let action = if i % 2 == 0 { 1 } else { 2 };
        app.like(&fan, video_id, action).await;
        let list = app.publish_list(&author, author.id).await;
        let expected = if action == 1 { 1 } else { 0 };
        if list[0]["favorite_count"] != expected {
            stale.push((i, list[0]["favorite_count"].clone()));
        }
    }
    assert!(
        stale.is_empty(),
        "{} of {PAIRS} reads by the author were stale: {:?}",
        stale.len(),
        &stale[..stale.len().min(10)]
    );
}

#[tokio::test]
async fn a_message_is_in_the_recipients_next_poll_a_thousand_times() {
    let app = spawn_app().await;
    let sender = app.register("sender", "pw").await;
    let recipient = app.register("recipient", "pw").await;

    let mut last_seen = 0_i64;
    let mut stale = Vec::new();
    for i in 0..PAIRS {
        let text = format!("message {i}");
        app.send_message(&sender, recipient.id, &text).await;
        let new = app.chat(&recipient, sender.id, last_seen).await;
        if new.len() != 1 || new[0]["content"] != text.as_str() {
            stale.push((i, new.len()));
        }
        if let Some(t) = new.last().and_then(|m| m["create_time"].as_i64()) {
            last_seen = t;
        }
    }
    assert!(
        stale.is_empty(),
        "{} of {PAIRS} polls were stale or repeated: {:?}",
        stale.len(),
        &stale[..stale.len().min(10)]
    );
}

#[tokio::test]
async fn a_follow_is_in_the_other_users_follower_list_immediately() {
    let app = spawn_app().await;
    let a = app.register("a", "pw").await;
    let b = app.register("b", "pw").await;
    for round in 0..100 {
        let follow = round % 2 == 0;
        app.follow(&a, b.id, if follow { 1 } else { 2 }).await;
        let followers = app
            .user_list("/douyin/relation/follower/list/", &b, b.id)
            .await;
        assert_eq!(
            followers.len(),
            usize::from(follow),
            "round {round}: b's follower list is current"
        );
    }
}

/// A video is on the feed of another user (and an anonymous one) the moment its publish was
/// acknowledged: the feed's in-memory index is at least as fresh as the views a read waits for.
#[tokio::test]
async fn a_published_video_is_on_the_next_feed_page_of_another_user() {
    let app = spawn_app().await;
    let author = app.register("author", "pw").await;
    let viewer = app.register("viewer", "pw").await;
    let mut missing = Vec::new();
    for round in 0..20 {
        let title = format!("clip {round}");
        let (status, body) = app
            .publish_raw(&author.token, &title, SAMPLE_MP4.to_vec(), "clip.mp4")
            .await;
        assert_eq!(status, 200, "publish: {body}");
        assert_ok(&body, "publish");
        let query = if round % 2 == 0 {
            vec![("token", viewer.token.clone())]
        } else {
            Vec::new()
        };
        let page = app.get_ok("/douyin/feed/", &query, "feed").await;
        let on_page = list(&page, "video_list")
            .iter()
            .any(|v| v["title"] == title.as_str() && v["author"]["id"] == author.id);
        if !on_page {
            missing.push(round);
        }
    }
    assert!(
        missing.is_empty(),
        "rounds whose video was not on the next feed page: {missing:?}"
    );
}

/// Videos served again come from their rendered JSON only while nothing they show changed: after
/// every like, unlike, follow and comment, the next feed pages (anonymous, the actor's, another
/// user's) and the author's list show the new counts and the viewer's own bits — with the pages
/// of every kind read (and rendered) before each change.
#[tokio::test]
async fn feed_pages_served_again_show_every_change_at_once() {
    let app = spawn_app().await;
    let author = app.register("author", "pw").await;
    let fan = app.register("fan", "pw").await;
    let other = app.register("other", "pw").await;
    let video_id = app.publish(&author, "clip").await;
    let video_on = |page: &serde_json::Value| -> serde_json::Value {
        list(page, "video_list")
            .iter()
            .find(|v| v["id"] == video_id)
            .cloned()
            .unwrap_or_else(|| panic!("video {video_id} not on the page: {page}"))
    };
    let pages = async || {
        let mut seen = Vec::new();
        for viewer in [None, Some(&fan), Some(&other)] {
            let query: Vec<(&str, String)> =
                viewer.map_or_else(Vec::new, |u| vec![("token", u.token.clone())]);
            let page = app.get_ok("/douyin/feed/", &query, "feed").await;
            seen.push(video_on(&page));
        }
        seen
    };
    let mut comments = 0;
    for round in 0..6 {
        pages().await; // rendered (and cached) before the change
        let (likes, follows) = match round % 3 {
            0 => {
                app.like(&fan, video_id, 1).await;
                (1, round % 2 == 1)
            }
            1 => {
                app.follow(&fan, author.id, if round == 1 { 1 } else { 2 })
                    .await;
                (1, round == 1)
            }
            _ => {
                app.like(&fan, video_id, 2).await;
                let form = vec![
                    ("token", fan.token.clone()),
                    ("video_id", video_id.to_string()),
                    ("action_type", "1".to_owned()),
                    ("comment_text", format!("note {round}")),
                ];
                app.post_ok("/douyin/comment/action/", &form, "comment")
                    .await;
                comments += 1;
                (0, round == 2)
            }
        };
        let [anonymous, by_fan, by_other] = pages().await.try_into().expect("three pages");
        for (who, v) in [
            ("anonymous", &anonymous),
            ("fan", &by_fan),
            ("other", &by_other),
        ] {
            assert_eq!(v["favorite_count"], likes, "round {round}, {who}: {v}");
            assert_eq!(v["comment_count"], comments, "round {round}, {who}: {v}");
            assert_eq!(
                v["author"]["follower_count"],
                i64::from(follows),
                "round {round}, {who}: {v}"
            );
        }
        assert_eq!(by_fan["is_favorite"], likes == 1, "round {round}: {by_fan}");
        assert_eq!(
            by_fan["author"]["is_follow"], follows,
            "round {round}: {by_fan}"
        );
        assert_eq!(by_other["is_favorite"], false, "round {round}: {by_other}");
        assert_eq!(
            by_other["author"]["is_follow"], false,
            "round {round}: {by_other}"
        );
        let listed = app.publish_list(&fan, author.id).await;
        assert_eq!(
            listed[0]["favorite_count"], likes,
            "round {round}: {listed:?}"
        );
        assert_eq!(
            listed[0]["is_favorite"],
            likes == 1,
            "round {round}: {listed:?}"
        );
    }
}
