//! Secrets stay out of the logs: passwords, tokens and the token secret never appear in the
//! server's log output, whatever the request (success, wrong password, bad input), at the most
//! verbose level the server offers.

use titok_tests::*;

#[tokio::test]
async fn no_password_token_or_secret_appears_in_the_logs() {
    // Arrange: debug logging everywhere the server logs requests and events.
    let app = TestApp::start(&["--no-sample", "--log-json"]).await;
    let password = "Pw-never-logged-7f3a9c";
    let wrong = "Wrong-pw-never-logged-2b8e";

    // Act: register, log in, fail to log in, use the token on reads and writes, and send the
    // password through query strings, where request logging would see it if anything would.
    let user = app.register("secretive", password).await;
    let (_, ok) = app
        .post_raw(
            "/douyin/user/login/",
            &[
                ("username", "secretive".into()),
                ("password", password.into()),
            ],
        )
        .await;
    assert_ok(&ok, "login");
    let (_, refused) = app
        .get_raw(
            "/douyin/user/login/",
            &[("username", "secretive".into()), ("password", wrong.into())],
        )
        .await;
    assert_refused(&refused, "wrong password");
    let video = app.publish(&user, "v").await;
    app.like(&user, video, 1).await;
    app.user_info(&user, user.id).await;
    let (_, bad) = app
        .get_raw(
            "/douyin/user/",
            &[
                ("token", format!("{}x", user.token)),
                ("user_id", "abc".into()),
            ],
        )
        .await;
    assert_refused(&bad, "bad input");

    // Assert
    let logs = app.logs();
    assert!(
        logs.contains("request finished"),
        "requests are logged at all"
    );
    // The embedded default's secret is random bytes; with services it is the configured text.
    let secret = std::fs::read(app.data_dir.join("token-secret")).expect("secret");
    let secret = secret.trim_ascii();
    assert!(
        !logs.as_bytes().windows(secret.len()).any(|w| w == secret),
        "the token secret appears in the logs"
    );
    let token_signature = user.token.rsplit('.').next().expect("jwt");
    for (what, needle) in [
        ("password", password),
        ("wrong password", wrong),
        ("token", user.token.as_str()),
        ("token signature", token_signature),
    ] {
        assert!(!logs.contains(needle), "the {what} appears in the logs");
    }
}
