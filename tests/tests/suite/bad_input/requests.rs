//! The plain refusals, as one table: each row is a request and the fragment its `status_msg` must
//! mention (the refusal is HTTP 200 with `status_code != 0`), sometimes with envelope fields it
//! must also carry. Afterwards nothing the refused requests asked for was done.

use serde_json::{json, Value};
use titok_tests::*;

use super::{COMMENT, FAVORITE, LOGIN, MESSAGE, REGISTER, RELATION};

/// One refused request.
struct Case {
    /// What is wrong with it (printed before it is sent, so a failure names its row).
    what: &'static str,
    post: bool,
    path: &'static str,
    params: Vec<(&'static str, String)>,
    /// A fragment of the `status_msg` (case-insensitive).
    expect: &'static str,
    /// Fields the refusal's envelope must also have: `(field, value, why)`.
    fields: Vec<(&'static str, Value, &'static str)>,
}

fn get(
    what: &'static str,
    path: &'static str,
    params: Vec<(&'static str, String)>,
    expect: &'static str,
) -> Case {
    Case {
        what,
        post: false,
        path,
        params,
        expect,
        fields: Vec::new(),
    }
}

fn post(
    what: &'static str,
    path: &'static str,
    params: Vec<(&'static str, String)>,
    expect: &'static str,
) -> Case {
    Case {
        post: true,
        ..get(what, path, params, expect)
    }
}

impl Case {
    fn with_field(mut self, field: &'static str, value: Value, why: &'static str) -> Case {
        self.fields.push((field, value, why));
        self
    }
}

fn far_future() -> u64 {
    4_102_444_800
}

#[tokio::test]
async fn every_bad_request_is_refused_with_a_status_msg_naming_the_problem() {
    // Arrange: a user with a video, another user to write to, and accounts to collide with.
    let app = spawn_app().await;
    let user = app.register("user", "pw").await;
    let other = app.register("other", "pw").await;
    let video = app.publish(&user, "v").await;
    app.register("same", "pw").await;
    app.register("alice", "right").await;
    let forged = sign(
        b"not-the-server-secret-not-the-server",
        user.id,
        far_future(),
    );
    let mut tampered = user.token.clone();
    tampered.push('x');
    let expired = app.sign_token(user.id, 1_000_000);
    let ghost = app.sign_token(987_654_321, far_future());
    let token = |token: &String| vec![("token", token.clone())];
    let comment = |text: String| {
        user.with(&[
            ("video_id", video.to_string()),
            ("action_type", "1".into()),
            ("comment_text", text),
        ])
    };
    let message = |text: String| {
        user.with(&[
            ("to_user_id", other.id.to_string()),
            ("action_type", "1".into()),
            ("content", text),
        ])
    };
    let account = |name: &str, password: &str| {
        vec![
            ("username", name.to_owned()),
            ("password", password.to_owned()),
        ]
    };
    let bad_name = |name: String| {
        post(
            "a username longer than 32 characters or empty",
            REGISTER,
            vec![("username", name), ("password", "pw".into())],
            "username",
        )
        .with_field("user_id", json!(0), "user_id present on failure")
        .with_field("token", json!(""), "token is a string on failure")
    };

    let cases = vec![
        // Tokens: missing, forged, tampered, garbage, expired, of a user that does not exist.
        get(
            "a missing token",
            "/douyin/user/",
            vec![],
            "token is required",
        ),
        post(
            "a missing token",
            FAVORITE,
            vec![("video_id", "1".into()), ("action_type", "1".into())],
            "token is required",
        ),
        get("a forged token", "/douyin/user/", token(&forged), "invalid"),
        get("a forged token", "/douyin/feed/", token(&forged), "invalid"),
        get(
            "a tampered token",
            "/douyin/publish/list/",
            token(&tampered),
            "invalid",
        ),
        get(
            "a garbage token",
            "/douyin/user/",
            vec![("token", "garbage".into())],
            "invalid",
        ),
        get(
            "an expired token",
            "/douyin/user/",
            token(&expired),
            "expired",
        ),
        get(
            "a token of an unknown user",
            "/douyin/user/",
            token(&ghost),
            "does not exist",
        ),
        // Ids that are not numbers.
        post(
            "a non-numeric id",
            FAVORITE,
            user.with(&[("video_id", "abc".into()), ("action_type", "1".into())]),
            "video_id",
        ),
        get(
            "a non-numeric id",
            "/douyin/user/",
            user.with(&[("user_id", "12x".into())]),
            "user_id",
        ),
        get(
            "a non-numeric id",
            "/douyin/comment/list/",
            user.with(&[("video_id", "1.5".into())]),
            "video_id",
        ),
        get(
            "a non-numeric time",
            "/douyin/feed/",
            vec![("latest_time", "yesterday".into())],
            "latest_time",
        ),
        get(
            "a negative id",
            "/douyin/message/chat/",
            user.with(&[("to_user_id", "-3".into())]),
            "to_user_id",
        ),
        // Action types that do not exist, or none.
        post(
            "an unknown action type",
            RELATION,
            user.with(&[
                ("to_user_id", other.id.to_string()),
                ("action_type", "3".into()),
            ]),
            "action_type",
        ),
        post(
            "an unknown action type",
            MESSAGE,
            user.with(&[
                ("to_user_id", other.id.to_string()),
                ("action_type", "2".into()),
                ("content", "x".into()),
            ]),
            "action_type",
        ),
        post(
            "a missing action type",
            FAVORITE,
            user.with(&[("video_id", "1".into())]),
            "action_type",
        ),
        // Comment and message texts: empty, too long, missing.
        post(
            "an empty comment",
            COMMENT,
            comment("   ".into()),
            "must not be empty",
        ),
        post(
            "an oversized comment",
            COMMENT,
            comment("x".repeat(501)),
            "at most 500",
        ),
        post(
            "a comment without text",
            COMMENT,
            user.with(&[("video_id", video.to_string()), ("action_type", "1".into())]),
            "comment_text is required",
        ),
        post(
            "an empty message",
            MESSAGE,
            message(String::new()),
            "must not be empty",
        ),
        post(
            "an oversized message",
            MESSAGE,
            message("y".repeat(1001)),
            "at most 1000",
        ),
        // Accounts: bad usernames and passwords, a taken name, a wrong password, an unknown user.
        bad_name("x".repeat(33)),
        bad_name(String::new()),
        bad_name("名".repeat(33)),
        post(
            "a password longer than 32 characters",
            REGISTER,
            account("ok", &"p".repeat(33)),
            "password",
        ),
        post(
            "a register without a password",
            REGISTER,
            vec![("username", "ok".into())],
            "password is required",
        ),
        post(
            "a duplicate register",
            REGISTER,
            account("same", "other"),
            "already taken",
        ),
        post(
            "a wrong password",
            LOGIN,
            account("alice", "wrong"),
            "wrong username or password",
        )
        .with_field("token", json!(""), "no token on failure"),
        post(
            "a login of an unknown user",
            LOGIN,
            account("nobody", "right"),
            "wrong username or password",
        ),
        // Videos, users and comments that do not exist.
        post(
            "liking a video that does not exist",
            FAVORITE,
            user.with(&[("video_id", "424242".into()), ("action_type", "1".into())]),
            "does not exist",
        ),
        post(
            "commenting on a video that does not exist",
            COMMENT,
            user.with(&[
                ("video_id", "424242".into()),
                ("action_type", "1".into()),
                ("comment_text", "hi".into()),
            ]),
            "does not exist",
        ),
        get(
            "the comments of a video that does not exist",
            "/douyin/comment/list/",
            user.with(&[("video_id", "424242".into())]),
            "does not exist",
        ),
        post(
            "messaging a user that does not exist",
            MESSAGE,
            user.with(&[
                ("to_user_id", "777".into()),
                ("action_type", "1".into()),
                ("content", "hi".into()),
            ]),
            "does not exist",
        ),
        post(
            "following a user that does not exist",
            RELATION,
            user.with(&[("to_user_id", "777".into()), ("action_type", "1".into())]),
            "does not exist",
        ),
        get(
            "the chat with a user that does not exist",
            "/douyin/message/chat/",
            user.with(&[("to_user_id", "777".into())]),
            "does not exist",
        ),
        get(
            "a user that does not exist",
            "/douyin/user/",
            user.with(&[("user_id", "777".into())]),
            "does not exist",
        ),
        post(
            "messaging yourself",
            MESSAGE,
            user.with(&[
                ("to_user_id", user.id.to_string()),
                ("action_type", "1".into()),
                ("content", "me".into()),
            ]),
            "yourself",
        ),
        post(
            "deleting a comment that does not exist",
            COMMENT,
            user.with(&[
                ("video_id", video.to_string()),
                ("action_type", "2".into()),
                ("comment_id", "55".into()),
            ]),
            "does not exist",
        ),
    ];

    // Act + Assert: each row is refused with its message.
    for (row, case) in cases.iter().enumerate() {
        eprintln!("row {row}: {} ({} {})", case.what, case.path, case.expect);
        let body = if case.post {
            app.refused_post(case.path, &case.params, case.expect).await
        } else {
            app.refused_get(case.path, &case.params, case.expect).await
        };
        for (field, value, why) in &case.fields {
            assert_eq!(
                body[*field], *value,
                "row {row}, {}: {why}: {body}",
                case.what
            );
        }
    }

    // Assert: nothing a refused request asked for was done; a 32-character name (96 bytes) is fine.
    assert!(
        app.comments(&user, video).await.is_empty(),
        "nothing was added"
    );
    assert!(
        app.chat(&user, other.id, 0).await.is_empty(),
        "nothing was sent"
    );
    assert!(app.favorite_list(&user, user.id).await.is_empty());
    app.register(&"名".repeat(32), "pw").await;
}
