//! Likes and follows: repeated actions are idempotent, counts are exact, mutual follows make
//! friends (and unfollowing ends it), and `is_follow` / `is_favorite` are the viewer's own.

use titok_tests::*;

#[tokio::test]
async fn like_and_unlike_are_idempotent_and_counts_are_exact() {
    let app = spawn_app().await;
    let author = app.register("author", "pw").await;
    let fans = [
        app.register("f1", "pw").await,
        app.register("f2", "pw").await,
    ];
    let video_id = app.publish(&author, "v").await;

    for fan in &fans {
        app.like(fan, video_id, 1).await;
        app.like(fan, video_id, 1).await; // repeated: success, no change
    }
    let video = &app.publish_list(&author, author.id).await[0];
    assert_eq!(
        video["favorite_count"], 2,
        "two distinct likers, each counted once"
    );
    assert_eq!(
        app.user_info(&author, author.id).await["total_favorited"],
        2
    );
    assert_eq!(
        app.user_info(&fans[0], fans[0].id).await["favorite_count"],
        1
    );

    app.like(&fans[0], video_id, 2).await;
    app.like(&fans[0], video_id, 2).await; // unlike of nothing: success, no change
    let video = &app.publish_list(&author, author.id).await[0];
    assert_eq!(video["favorite_count"], 1);
    assert_eq!(
        app.user_info(&author, author.id).await["total_favorited"],
        1
    );
    assert_eq!(
        app.user_info(&fans[0], fans[0].id).await["favorite_count"],
        0
    );
    assert!(app.favorite_list(&fans[0], fans[0].id).await.is_empty());
}

#[tokio::test]
async fn follow_is_idempotent_and_friends_appear_and_disappear_with_mutual_follows() {
    let app = spawn_app().await;
    let a = app.register("a", "pw").await;
    let b = app.register("b", "pw").await;
    let friends = "/douyin/relation/friend/list/";

    app.follow(&a, b.id, 1).await;
    app.follow(&a, b.id, 1).await;
    assert_eq!(
        app.user_info(&a, b.id).await["follower_count"],
        1,
        "repeated follow counts once"
    );
    assert!(
        app.user_list(friends, &a, a.id).await.is_empty(),
        "one-way follow is no friendship"
    );

    app.follow(&b, a.id, 1).await;
    app.send_message(&b, a.id, "hi friend").await;
    let list_a = app.user_list(friends, &a, a.id).await;
    assert_eq!(ids(&list_a), vec![b.id], "mutual follow makes friends");
    assert_eq!(list_a[0]["message"], "hi friend", "latest message shown");
    assert_eq!(list_a[0]["msgType"], 0, "a received it");
    let list_b = app.user_list(friends, &b, b.id).await;
    assert_eq!(ids(&list_b), vec![a.id]);
    assert_eq!(list_b[0]["msgType"], 1, "b sent it");

    app.follow(&a, b.id, 2).await;
    app.follow(&a, b.id, 2).await;
    assert!(
        app.user_list(friends, &a, a.id).await.is_empty(),
        "unfollow ends friendship"
    );
    assert!(
        app.user_list(friends, &b, b.id).await.is_empty(),
        "for both sides"
    );
    assert_eq!(
        app.user_info(&a, b.id).await["follower_count"],
        0,
        "repeated unfollow subtracts once"
    );
    assert_eq!(app.user_info(&a, a.id).await["follow_count"], 0);
    assert_eq!(
        app.user_info(&a, b.id).await["follow_count"],
        1,
        "b still follows a"
    );
}

#[tokio::test]
async fn is_follow_and_is_favorite_are_relative_to_the_viewer() {
    let app = spawn_app().await;
    let author = app.register("author", "pw").await;
    let fan = app.register("fan", "pw").await;
    let stranger = app.register("stranger", "pw").await;
    let video_id = app.publish(&author, "v").await;
    app.like(&fan, video_id, 1).await;
    app.follow(&fan, author.id, 1).await;

    let as_fan = app
        .get("/douyin/feed/", &[("token", fan.token.clone())])
        .await;
    let v = &list(&as_fan, "video_list")[0];
    assert_eq!(v["is_favorite"], true);
    assert_eq!(v["author"]["is_follow"], true);
    let as_stranger = app
        .get("/douyin/feed/", &[("token", stranger.token.clone())])
        .await;
    let v = &list(&as_stranger, "video_list")[0];
    assert_eq!(v["is_favorite"], false);
    assert_eq!(v["author"]["is_follow"], false);
    let anonymous = app.get("/douyin/feed/", &[]).await;
    assert_eq!(list(&anonymous, "video_list")[0]["is_favorite"], false);
}
