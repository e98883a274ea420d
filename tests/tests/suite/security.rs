//! Secrets and passwords: production refuses to run without a real token secret, and passwords
//! are stored as argon2id hashes with the documented parameters (README "Reliability and security").

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
        "argon2id, 19 MiB, 2 passes, 1 lane (README): {hash}"
    );
    assert!(!hash.contains("correct horse"), "no plain text");
}
