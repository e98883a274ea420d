//! Secrets and passwords: production refuses to run without a real token secret, and passwords
//! are stored as argon2id hashes with the documented parameters (docs/reliability.md).

use std::time::Duration;

use titok_tests::*;

#[tokio::test]
async fn production_refuses_a_missing_short_or_placeholder_token_secret() {
    let placeholder_a = "a".repeat(40);
    let cases: [(Option<&str>, &str); 4] = [
        (None, "--token-secret (TITOK_TOKEN_SECRET) is required"),
        (Some("too-short-secret"), "at least 32 bytes"),
        (Some(&placeholder_a), "looks like a placeholder"),
        (
            Some("change-me-please-0123456789-abcdefgh"),
            "looks like a placeholder",
        ),
    ];
    for (secret, expected) in cases {
        // A service flag makes it production; the secret is checked before connecting anywhere.
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            "redis://127.0.0.1:9",
        ];
        if let Some(secret) = secret {
            args.extend(["--token-secret", secret]);
        }
        let (ok, stdout, stderr) = run_titok_bare(&args, Duration::from_secs(30)).await;
        assert!(!ok, "started with secret {secret:?}: {stdout}");
        assert!(
            stderr.contains(expected),
            "secret {secret:?}: expected {expected:?} in: {stderr}"
        );
    }
}

#[tokio::test]
async fn passwords_are_stored_as_argon2id_with_the_documented_parameters() {
    let app = spawn_app().await;
    let user = app.register("hashed", "correct horse battery").await;
    let hash: String = match app.arg("--mysql-url") {
        Some(url) => {
            let pool = titok_adapters::store::mysql_any(url, 1)
                .await
                .expect("mysql");
            sqlx::query_scalar("SELECT password_hash FROM accounts WHERE user_id = ?")
                .bind(user.id)
                .fetch_one(&pool)
                .await
                .expect("account row")
        }
        None => {
            let pool = sqlx::SqlitePool::connect(&format!(
                "sqlite://{}",
                app.data_dir.join("accounts.db").display()
            ))
            .await
            .expect("accounts.db");
            sqlx::query_scalar("SELECT password_hash FROM accounts WHERE user_id = ?")
                .bind(user.id)
                .fetch_one(&pool)
                .await
                .expect("account row")
        }
    };
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "argon2id, 19 MiB, 2 passes, 1 lane (docs/reliability.md): {hash}"
    );
    assert!(!hash.contains("correct horse"), "no plain text");
}

/// Behind a trusted proxy, a client that sends its own `X-Forwarded-For` line must not
/// escape the per-address login quota: every line of the header counts, in order, walked from
/// the right past the trusted proxies (before the fix only the first line — the client's — was
/// read: 0 of 70 failed logins were throttled).
#[tokio::test]
async fn a_forged_forwarded_for_line_does_not_escape_the_address_quota() {
    let app = TestApp::start(&[
        "--no-sample",
        "--trusted-proxy",
        "127.0.0.1",
        "--login-attempts-per-user",
        "1000",
    ])
    .await;
    for attempt in 1..=61 {
        let resp = app
            .client
            .post(app.url("/douyin/user/login/"))
            .form(&[
                ("username", format!("nobody{attempt}")),
                ("password", "wrong-guess".to_owned()),
            ])
            // The client's own line first, then what its proxy appended.
            .header("x-forwarded-for", format!("10.1.0.{attempt}"))
            .header("x-forwarded-for", "203.0.113.7")
            .send()
            .await
            .expect("login");
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.expect("envelope");
        assert_ne!(body["status_code"], 0, "{body}");
        assert_eq!(
            status == 429,
            attempt == 61,
            "attempt {attempt}: HTTP {status} {body}"
        );
    }
}

/// Sign-ups are limited per client address (`--registers-per-address`, per hour),
/// before their argon2 hash; another address is not affected.
#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let app = TestApp::start(&["--no-sample", "--registers-per-address", "3"]).await;
    for i in 0..3 {
        app.register(&format!("signup{i}"), "secret1").await;
    }
    let (status, body) = app
        .post_raw(
            "/douyin/user/register/",
            &[
                ("username", "signup3".into()),
                ("password", "secret1".into()),
            ],
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert_ne!(body["status_code"], 0);
    assert!(
        body["status_msg"]
            .as_str()
            .is_some_and(|m| m.contains("too many sign-ups from this address")),
        "{body}"
    );
}

/// `--node-id` above the id layout's 4 bits is refused instead of wrapping onto another
/// node's ids.
#[tokio::test]
async fn a_node_id_out_of_range_is_refused() {
    let (ok, stdout, stderr) = run_titok_bare(
        &["--listen", "127.0.0.1:0", "--node-id", "16"],
        Duration::from_secs(30),
    )
    .await;
    assert!(!ok, "started with node id 16: {stdout}");
    assert!(
        stderr.contains("--node-id") && stderr.contains("0..=15"),
        "{stderr}"
    );
}
