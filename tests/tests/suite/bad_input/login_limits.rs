//! The login quotas: attempts are limited per username and per client address (HTTP 429 with the
//! envelope, no token).

use titok_tests::*;

use super::LOGIN;

#[tokio::test]
async fn login_attempts_are_limited_per_username_and_per_address() {
    let app = TestApp::start(&[
        "--no-sample",
        "--login-attempts-per-user",
        "3",
        "--login-attempts-per-address",
        "5",
    ])
    .await;
    app.register("alice", "right").await;
    let login =
        |user: &str, pass: &str| vec![("username", user.to_owned()), ("password", pass.to_owned())];
    for _ in 0..3 {
        app.refused_post(
            LOGIN,
            &login("alice", "wrong"),
            "wrong username or password",
        )
        .await;
    }

    let (status, body) = app.post_raw(LOGIN, &login("alice", "right")).await;
    assert_eq!(
        status, 429,
        "a fourth attempt for alice within the minute: {body}"
    );
    assert_eq!(body["status_code"], 429);
    assert!(
        body["status_msg"]
            .as_str()
            .unwrap_or_default()
            .contains("too many login attempts for this username"),
        "{body}"
    );
    assert_eq!(body["token"], "", "no token while limited");

    app.refused_post(LOGIN, &login("carol", "x"), "wrong username or password")
        .await; // 5th from this address
    let (status, body) = app.post_raw(LOGIN, &login("dave", "x")).await;
    assert_eq!(status, 429, "a sixth attempt from one address: {body}");
    assert!(
        body["status_msg"]
            .as_str()
            .unwrap_or_default()
            .contains("from this address"),
        "{body}"
    );
}
