//! The web demo page, driven in headless Chromium (Debian's `chromium`, with playwright-core from
//! npm): register, like the sample video, comment on it, save a screenshot. scripts/test installs
//! both and runs this ignored test in its real-service pass.

use std::path::Path;
use std::process::Command;

use titok_tests::*;

/// Run `node SCRIPT ARGS… SCREENSHOT` in `script_dir`, asserting it succeeded; its stdout.
fn node(script_dir: &Path, script: &str, args: &[&str], screenshot: &Path) -> String {
    let run = Command::new("node")
        .arg(script_dir.join(script))
        .args(args)
        .arg(screenshot)
        .output()
        .expect("node");
    assert!(
        run.status.success(),
        "browser script failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stdout).into_owned()
}

fn browser_available(script_dir: &Path) -> bool {
    Path::new("/usr/bin/chromium").exists()
        && script_dir.join("node_modules/playwright-core").exists()
}

#[tokio::test]
#[ignore = "needs Chromium and playwright-core: scripts/test installs them and runs it in its real-service pass"]
async fn the_demo_page_likes_and_comments_in_a_real_browser() {
    let script_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        browser_available(&script_dir),
        "needs /usr/bin/chromium and `npm install` in tests/browser (scripts/test does both)"
    );
    // Arrange: a server with the sample video.
    let app = TestApp::start(&[]).await;
    let page = app.client.get(app.url("/")).send().await.expect("page");
    assert_eq!(page.status(), 200);
    assert!(
        page.text().await.expect("html").contains("titok"),
        "the demo page is served at /"
    );
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo-page.png");
    let _ = std::fs::remove_file(&screenshot);

    // Act: a person registers, likes and comments through the page.
    node(&script_dir, "demo.mjs", &[app.base.as_str()], &screenshot);

    // Assert: the screenshot exists and the API sees the like and the comment.
    let png = std::fs::read(&screenshot).expect("screenshot");
    assert!(
        png.starts_with(&[0x89, b'P', b'N', b'G']) && png.len() > 10_000,
        "a real screenshot"
    );
    let feed = app.get("/douyin/feed/", &[]).await;
    let video = &list(&feed, "video_list")[0];
    assert_eq!(video["favorite_count"], 1, "the like made in the browser");
    assert_eq!(video["comment_count"], 1, "the comment made in the browser");
    eprintln!("screenshot: {}", screenshot.display());
}

/// Live push in the demo page: two users in two browser contexts; a message sent by one appears
/// in the other's chat within a second of its acknowledgement, with no poll (the page polls only
/// while its stream is down), and a like updates the author's count on their page.
#[tokio::test]
#[ignore = "needs Chromium and playwright-core: scripts/test installs them and runs it in its real-service pass"]
async fn the_demo_page_shows_a_message_and_a_like_live_in_another_browser() {
    let script_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        browser_available(&script_dir),
        "needs /usr/bin/chromium and `npm install` in tests/browser (scripts/test does both)"
    );
    // Arrange: two users, a video each (the page opens a chat from an author's video).
    let app = TestApp::start(&["--no-sample"]).await;
    let a = app.register("live_a", "pw12345").await;
    let b = app.register("live_b", "pw12345").await;
    app.publish(&a, "a's video").await;
    let video = app.publish(&b, "b's video").await;
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo-live.png");

    // Act
    let stdout = node(
        &script_dir,
        "live.mjs",
        &[app.base.as_str(), "live_a", "live_b", "pw12345"],
        &screenshot,
    );

    // Assert: what the pages showed is what the API holds.
    eprintln!("{stdout}");
    let chat = app.chat(&b, a.id, 0).await;
    assert_eq!(chat.len(), 1);
    assert_eq!(chat[0]["content"], "hello, live");
    let videos = app.publish_list(&b, b.id).await;
    let liked = videos.iter().find(|v| v["id"] == video).expect("b's video");
    assert_eq!(liked["favorite_count"], 1);
}
