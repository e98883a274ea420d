//! The public demo suite's scenarios, end to end over HTTP against the embedded default.

use titok_tests::*;

#[tokio::test]
async fn a_fresh_server_serves_a_feed_with_the_sample_video_and_its_files() {
    // Arrange: sample content on (the default).
    let app = TestApp::start(&[]).await;

    // Act
    let body = app.get("/douyin/feed/", &[]).await;

    // Assert
    assert_ok(&body, "feed");
    let videos = list(&body, "video_list");
    assert_eq!(videos.len(), 1, "one sample video: {body}");
    let video = &videos[0];
    assert_eq!(video["author"]["name"], "titok-demo");
    assert_eq!(
        video["author"]["work_count"], 1,
        "author's work_count counts the sample"
    );
    assert!(
        body["next_time"].as_i64().unwrap_or(0) > 0,
        "next_time present: {body}"
    );
    let play = app
        .client
        .get(video["play_url"].as_str().expect("play_url"))
        .send()
        .await
        .expect("play");
    assert_eq!(play.status(), 200, "play_url is served");
    assert_eq!(
        play.bytes().await.expect("bytes").as_ref(),
        SAMPLE_MP4,
        "play_url serves the video bytes"
    );
    let cover = app
        .client
        .get(video["cover_url"].as_str().expect("cover_url"))
        .send()
        .await
        .expect("cover");
    assert_eq!(cover.status(), 200, "cover_url is served");
    assert!(!cover.bytes().await.expect("bytes").is_empty());
    let avatar = app
        .client
        .get(video["author"]["avatar"].as_str().expect("avatar"))
        .send()
        .await
        .expect("avatar");
    assert_eq!(avatar.status(), 200, "avatar is served");
}

#[tokio::test]
async fn the_sample_can_be_switched_off() {
    let app = spawn_app().await;
    let body = app.get("/douyin/feed/", &[]).await;
    assert_ok(&body, "feed");
    assert_eq!(
        list(&body, "video_list").len(),
        0,
        "no sample with --no-sample: {body}"
    );
}

#[tokio::test]
async fn register_then_login_then_user_info_without_user_id() {
    let app = spawn_app().await;
    let registered = app.register("alice", "pa55word").await;
    assert!(
        registered.id > 0 && registered.id < (1 << 53),
        "JS-safe positive id"
    );
    assert!(!registered.token.is_empty());

    let login = app
        .post(
            "/douyin/user/login/",
            &[
                ("username", "alice".into()),
                ("password", "pa55word".into()),
            ],
        )
        .await;
    assert_ok(&login, "login");
    assert_eq!(
        login["user_id"], registered.id,
        "login returns the registered id"
    );
    let token = login["token"].as_str().expect("token").to_owned();

    let me = app.get("/douyin/user/", &[("token", token)]).await;
    assert_ok(&me, "user info");
    let user = &me["user"];
    assert_eq!(user["id"], registered.id);
    assert_eq!(user["name"], "alice");
    for field in [
        "follow_count",
        "follower_count",
        "total_favorited",
        "work_count",
        "favorite_count",
    ] {
        assert_eq!(user[field], 0, "{field} starts at 0: {user}");
    }
    assert_eq!(user["is_follow"], false);
    for field in ["avatar", "background_image", "signature"] {
        assert!(user[field].is_string(), "{field} is always present: {user}");
    }
}

#[tokio::test]
async fn publish_then_the_publish_list_shows_it_with_absolute_urls() {
    let app = spawn_app().await;
    let author = app.register("author", "pw").await;

    let video_id = app.publish(&author, "my first clip").await;

    let videos = app.publish_list(&author, author.id).await;
    assert_eq!(ids(&videos), vec![video_id]);
    let v = &videos[0];
    assert_eq!(v["author"]["id"], author.id);
    assert_eq!(v["author"]["work_count"], 1);
    for url in ["play_url", "cover_url"] {
        let url = v[url].as_str().expect("url");
        assert!(url.starts_with("http://"), "absolute URL: {url}");
        let resp = app.client.get(url).send().await.expect("fetch");
        assert_eq!(resp.status(), 200, "{url} is served");
    }
    let feed = app
        .get("/douyin/feed/", &[("token", author.token.clone())])
        .await;
    assert_eq!(
        ids(&list(&feed, "video_list")),
        vec![video_id],
        "the feed shows it too"
    );
}

#[tokio::test]
async fn like_then_the_favorite_list_shows_it() {
    let app = spawn_app().await;
    let author = app.register("author", "pw").await;
    let fan = app.register("fan", "pw").await;
    let video_id = app.publish(&author, "likeable").await;

    app.like(&fan, video_id, 1).await;

    let favorites = app.favorite_list(&fan, fan.id).await;
    assert_eq!(ids(&favorites), vec![video_id]);
    assert_eq!(favorites[0]["is_favorite"], true, "liked by the viewer");
    assert_eq!(favorites[0]["favorite_count"], 1);
}

#[tokio::test]
async fn comment_then_the_list_contains_it_then_delete_removes_it() {
    let app = spawn_app().await;
    let author = app.register("author", "pw").await;
    let video_id = app.publish(&author, "discuss").await;

    let comment = app.comment(&author, video_id, "first!").await;
    assert_eq!(comment["content"], "first!");
    assert_eq!(comment["user"]["id"], author.id);
    let create_date = comment["create_date"].as_str().expect("create_date");
    assert_eq!(create_date.len(), 5, "mm-dd: {create_date}");
    let comment_id = comment["id"].as_i64().expect("comment id");

    let listed = app.comments(&author, video_id).await;
    assert_eq!(ids(&listed), vec![comment_id]);
    assert_eq!(
        app.publish_list(&author, author.id).await[0]["comment_count"],
        1
    );

    let deleted = app
        .post(
            "/douyin/comment/action/",
            &author.with(&[
                ("video_id", video_id.to_string()),
                ("action_type", "2".into()),
                ("comment_id", comment_id.to_string()),
            ]),
        )
        .await;
    assert_ok(&deleted, "delete comment");
    assert!(
        app.comments(&author, video_id).await.is_empty(),
        "deleted comment is gone"
    );
    assert_eq!(
        app.publish_list(&author, author.id).await[0]["comment_count"],
        0
    );
}

#[tokio::test]
async fn follow_then_follow_list_and_the_other_users_follower_list() {
    let app = spawn_app().await;
    let a = app.register("a", "pw").await;
    let b = app.register("b", "pw").await;

    app.follow(&a, b.id, 1).await;

    let following = app
        .user_list("/douyin/relation/follow/list/", &a, a.id)
        .await;
    assert_eq!(ids(&following), vec![b.id]);
    assert_eq!(following[0]["is_follow"], true, "a follows b");
    let followers = app
        .user_list("/douyin/relation/follower/list/", &b, b.id)
        .await;
    assert_eq!(ids(&followers), vec![a.id]);
    assert_eq!(followers[0]["is_follow"], false, "b does not follow a");
    assert_eq!(app.user_info(&b, b.id).await["follower_count"], 1);
    assert_eq!(app.user_info(&a, a.id).await["follow_count"], 1);
}

#[tokio::test]
async fn a_sent_message_is_in_both_users_chat() {
    let app = spawn_app().await;
    let a = app.register("a", "pw").await;
    let b = app.register("b", "pw").await;

    app.send_message(&a, b.id, "hello b").await;

    for (me, other) in [(&a, b.id), (&b, a.id)] {
        let chat = app.chat(me, other, 0).await;
        assert_eq!(chat.len(), 1, "both participants see it: {chat:?}");
        assert_eq!(chat[0]["content"], "hello b");
        assert_eq!(chat[0]["from_user_id"], a.id);
        assert_eq!(chat[0]["to_user_id"], b.id);
        assert!(
            chat[0]["create_time"].as_i64().unwrap_or(0) > 1_600_000_000_000,
            "epoch ms"
        );
    }
}

#[tokio::test]
async fn a_published_video_plays_and_seeks_from_the_url_it_was_given() {
    // Arrange: a video larger than one multipart part, published through the command API.
    let app = spawn_app().await;
    let a = app.register("a", "pw").await;
    let mut video = SAMPLE_MP4.to_vec();
    video.extend((video.len()..6 * 1024 * 1024 + 17).map(|i| (i % 251) as u8));
    let (status, body) = app
        .publish_raw(&a.token, "big", video.clone(), "big.mp4")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_ok(&body, "publish");
    let listed = app.publish_list(&a, a.id).await;
    let url = listed[0]["play_url"].as_str().expect("play_url").to_owned();
    let get = |range: Option<&str>| {
        let mut request = app.client.get(&url);
        if let Some(range) = range {
            request = request.header("range", range);
        }
        request.send()
    };

    // Act
    let whole = get(None).await.expect("GET");
    let etag = whole.headers().get("etag").cloned();
    let cache = whole.headers().get("cache-control").cloned();
    let whole_status = whole.status().as_u16();
    let whole = whole.bytes().await.expect("bytes");
    let middle = get(Some("bytes=5000000-5000099")).await.expect("GET range");
    let middle_status = middle.status().as_u16();
    let content_range = middle.headers().get("content-range").cloned();
    let middle = middle.bytes().await.expect("bytes");
    let tail = get(Some("bytes=-10")).await.expect("GET suffix");
    let tail_status = tail.status().as_u16();
    let tail = tail.bytes().await.expect("bytes");
    let past = get(Some(&format!("bytes={}-", video.len())))
        .await
        .expect("GET past the end");
    let revalidated = app
        .client
        .get(&url)
        .header("if-none-match", etag.clone().expect("an ETag"))
        .send()
        .await
        .expect("GET if-none-match");
    let head = app.client.head(&url).send().await.expect("HEAD");

    // Assert
    assert_eq!(whole_status, 200);
    assert_eq!(whole.len(), video.len());
    assert!(whole.as_ref() == video.as_slice(), "the bytes uploaded");
    assert!(cache.is_some(), "cacheable");
    assert_eq!(middle_status, 206);
    assert_eq!(
        content_range.expect("Content-Range"),
        format!("bytes 5000000-5000099/{}", video.len()).as_str()
    );
    assert!(middle.as_ref() == &video[5_000_000..5_000_100]);
    assert_eq!(tail_status, 206);
    assert!(tail.as_ref() == &video[video.len() - 10..]);
    assert_eq!(past.status().as_u16(), 416);
    assert_eq!(revalidated.status().as_u16(), 304);
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(
        head.headers().get("content-length").expect("length"),
        video.len().to_string().as_str()
    );
}
