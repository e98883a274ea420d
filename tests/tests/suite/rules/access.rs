//! Authorization: only the participants read a conversation, only the author deletes a comment,
//! and nobody follows themselves.

use titok_tests::*;

#[tokio::test]
async fn only_the_participants_read_a_conversation() {
    let app = spawn_app().await;
    let a = app.register("a", "pw").await;
    let b = app.register("b", "pw").await;
    let eve = app.register("eve", "pw").await;
    app.send_message(&a, b.id, "secret").await;
    app.follow(&a, b.id, 1).await;
    app.follow(&b, a.id, 1).await;

    assert!(
        app.chat(&eve, a.id, 0).await.is_empty(),
        "eve's chat with a is her own, empty"
    );
    assert!(app.chat(&eve, b.id, 0).await.is_empty());
    let a_friends_seen_by_eve = app
        .user_list("/douyin/relation/friend/list/", &eve, a.id)
        .await;
    assert_eq!(ids(&a_friends_seen_by_eve), vec![b.id]);
    assert_eq!(
        a_friends_seen_by_eve[0]["message"], "",
        "another user's friend list shows no messages"
    );
}

#[tokio::test]
async fn only_the_author_deletes_a_comment() {
    let app = spawn_app().await;
    let author = app.register("author", "pw").await;
    let other = app.register("other", "pw").await;
    let video_id = app.publish(&author, "v").await;
    let comment_id = app.comment(&author, video_id, "mine").await["id"]
        .as_i64()
        .expect("id");

    let body = app
        .post(
            "/douyin/comment/action/",
            &other.with(&[
                ("video_id", video_id.to_string()),
                ("action_type", "2".into()),
                ("comment_id", comment_id.to_string()),
            ]),
        )
        .await;
    assert_refused(&body, "deleting another user's comment");
    assert_eq!(
        ids(&app.comments(&other, video_id).await),
        vec![comment_id],
        "the comment is still there"
    );
}

#[tokio::test]
async fn following_yourself_is_refused() {
    let app = spawn_app().await;
    let u = app.register("u", "pw").await;
    let body = app
        .post(
            "/douyin/relation/action/",
            &u.with(&[
                ("to_user_id", u.id.to_string()),
                ("action_type", "1".into()),
            ]),
        )
        .await;
    assert_refused(&body, "self-follow");
    assert_eq!(app.user_info(&u, u.id).await["follow_count"], 0);
}
