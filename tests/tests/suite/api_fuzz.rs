//! schemathesis (from PyPI; `scripts/test` installs it and names it in `TITOK_TEST_SCHEMATHESIS`)
//! against the server's own `/openapi.json`: generated and mutated requests to every operation,
//! anonymous and with a real user's token. Zero 5xx, and every reply is a Douyin envelope
//! (checked here on every exchange of its HAR recording, and by its response-schema check) —
//! but a live stream the fuzzer opened with a token it registered itself: server-sent events,
//! each checked against the documented event schema.

use std::time::Duration;

use serde_json::Value;
use titok_tests::*;

#[tokio::test]
#[ignore = "needs schemathesis: scripts/test installs it and runs this in both passes"]
async fn schemathesis_finds_no_server_error_and_every_reply_is_an_envelope() {
    let st = std::env::var("TITOK_TEST_SCHEMATHESIS")
        .ok()
        .filter(|s| !s.is_empty())
        .expect("TITOK_TEST_SCHEMATHESIS names the schemathesis binary (scripts/test installs it)");
    // Arrange: the sample video in the feed, and a user whose token the generated requests use.
    let app = TestApp::start(&[]).await;
    let user = app.register("fuzzer", "fuzz-password").await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("schemathesis.toml"),
        "[parameters]\n\"query.token\" = \"${TITOK_FUZZ_TOKEN}\"\n\"body.token\" = \"${TITOK_FUZZ_TOKEN}\"\n",
    )
    .expect("config");
    let har = dir.path().join("exchanges.har");

    // Act: once anonymous (random tokens), once as the user.
    let mut runs = Vec::new();
    for token in ["", user.token.as_str()] {
        let mut command = tokio::process::Command::new(&st);
        command
            .args(["run", &app.url("/openapi.json")])
            .args([
                "--checks",
                "not_a_server_error,response_schema_conformance,content_type_conformance",
                "--max-examples",
                "15",
                "--no-color",
                "--report",
                "har",
                "--report-har-path",
            ])
            .arg(&har);
        if !token.is_empty() {
            // With a real token the stream answers for as long as the client stays: its
            // refusals are fuzzed in the anonymous run, the stream itself is tested in stream::.
            command.args(["--exclude-path", "/douyin/stream/"]);
        }
        command
            .current_dir(if token.is_empty() {
                std::env::temp_dir()
            } else {
                dir.path().to_path_buf()
            })
            .env("TITOK_FUZZ_TOKEN", token)
            .kill_on_drop(true);
        let output = tokio::time::timeout(Duration::from_secs(300), command.output())
            .await
            .expect("schemathesis finished within 300 s")
            .expect("run schemathesis");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "schemathesis found problems:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let recorded: Value =
            serde_json::from_slice(&std::fs::read(&har).expect("HAR written")).expect("HAR JSON");
        runs.push((stdout, recorded));
    }

    // Assert: every exchange answered below 500 with an envelope.
    let mut exchanges = 0;
    for (stdout, recorded) in &runs {
        let entries = recorded["log"]["entries"].as_array().expect("entries");
        assert!(entries.len() > 300, "a real run: {stdout}");
        for entry in entries {
            let (request, response) = (&entry["request"], &entry["response"]);
            let what = format!("{} {}", request["method"], request["url"]);
            let status = response["status"].as_i64().expect("status");
            assert!(status < 500, "{what} → HTTP {status}");
            let text = response["content"]["text"].as_str().unwrap_or_default();
            let mime = response["content"]["mimeType"].as_str().unwrap_or_default();
            if mime.starts_with("text/event-stream") {
                // A stream the fuzzer opened with a token it registered: events whose data
                // lines are JSON objects, the first `ready` (or `reset`).
                assert!(
                    text.starts_with("event: ready") || text.starts_with("event: reset"),
                    "{what} → a stream that does not start with ready: {text:?}"
                );
                for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
                    let event: Value = serde_json::from_str(data)
                        .unwrap_or_else(|e| panic!("{what}: event data not JSON ({e}): {data:?}"));
                    assert!(event.is_object(), "{what}: {data}");
                }
                exchanges += 1;
                continue;
            }
            let body: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("{what} → HTTP {status}, not JSON ({e}): {text:?}"));
            assert!(
                body["status_code"].is_i64() && body["status_msg"].is_string(),
                "{what} → HTTP {status}, not an envelope: {text}"
            );
            exchanges += 1;
        }
    }
    eprintln!("{exchanges} exchanges checked");
    let plain = strip_ansi(&app.logs());
    let as_user = plain.matches(&format!("user_id={}", user.id)).count();
    assert!(
        as_user > 50,
        "the second run used the user's token ({as_user} requests)"
    );
    assert!(!plain.contains("panicked"), "no panic in the server log");
    let health = app.get_raw("/healthz", &[]).await;
    assert_eq!(health.0, 200, "the server still serves");
}

/// The log without terminal colours.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
