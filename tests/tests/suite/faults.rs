//! Faults of the machine itself (issue 14): the wall clock jumping while the server runs
//! (libfaketime), the embedded data dir's disk filling up (a small tmpfs), and slow or broken
//! networks between the roles and Kafka/MySQL/Redis (a TCP proxy of the harness).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use titok_tests::*;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// The server's own idea of now: `next_time` of a feed page with no videos (latest_time 1 s).
async fn server_now(app: &TestApp) -> i64 {
    let page = app
        .get("/douyin/feed/", &[("latest_time", "1".into())])
        .await;
    page["next_time"].as_i64().expect("next_time")
}

/// The wall clock jumps back an hour, forward two, and back to true time while users chat and
/// comment: ids stay unique and increasing, each conversation's `create_time` strictly
/// increasing, and the tokens issued before the jumps keep working (they expire by the wall
/// clock: 720 h by default, so an hour either way changes nothing).
#[tokio::test]
#[ignore = "needs libfaketime (Debian package faketime; scripts/test installs it)"]
async fn ids_and_conversation_times_stay_increasing_when_the_clock_jumps_an_hour_either_way() {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "libfaketime is not installed: apt-get install faketime"
    );
    // Arrange: the server's wall clock follows a file (its monotonic clock stays true).
    let clock = tempfile::NamedTempFile::new().expect("clock file");
    let set_clock = |offset: &str| std::fs::write(clock.path(), offset).expect("write clock");
    set_clock("+0");
    let app = TestApp::start_env(
        &["--no-sample"],
        &[
            ("LD_PRELOAD", LIBFAKETIME.to_owned()),
            (
                "FAKETIME_TIMESTAMP_FILE",
                clock.path().display().to_string(),
            ),
            ("FAKETIME_NO_CACHE", "1".to_owned()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
        ],
    )
    .await;
    let a = app.register("a", "pw").await;
    let b = app.register("b", "pw").await;
    let video = app.publish(&a, "v").await;

    // Act: in each clock phase, messages both ways and a comment, with the tokens from before.
    let mut sent = Vec::new();
    let mut comment_ids = Vec::new();
    for (phase, (offset, hours)) in [("+0", 0), ("-1h", -1), ("+1h", 1), ("+0", 0)]
        .into_iter()
        .enumerate()
    {
        set_clock(offset);
        let skew = server_now(&app).await - now_ms();
        assert!(
            (skew - hours * 3_600_000).abs() < 60_000,
            "phase {phase}: the server's clock is {skew} ms off, expected {hours} h"
        );
        for i in 0..4 {
            let (from, to) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
            let text = format!("phase {phase} message {i}");
            app.send_message(from, to.id, &text).await;
            sent.push(text);
        }
        let reply = app.comment(&a, video, &format!("phase {phase}")).await;
        comment_ids.push(reply["id"].as_i64().expect("comment id"));
    }

    // Assert
    let chat = app.chat(&a, b.id, 0).await;
    let contents: Vec<&str> = chat.iter().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(contents, sent, "every message, in the order sent");
    let times: Vec<i64> = chat
        .iter()
        .filter_map(|m| m["create_time"].as_i64())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "create_time strictly increasing: {times:?}"
    );
    let ids: Vec<i64> = chat.iter().filter_map(|m| m["id"].as_i64()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "message ids increasing: {ids:?}"
    );
    assert!(
        comment_ids.windows(2).all(|w| w[0] < w[1]),
        "comment ids increasing: {comment_ids:?}"
    );
    let listed: Vec<i64> = ids_of(&app.comments(&a, video).await);
    let newest_first: Vec<i64> = comment_ids.iter().rev().copied().collect();
    assert_eq!(listed, newest_first, "comments newest first, each once");
}

fn ids_of(items: &[Value]) -> Vec<i64> {
    items.iter().filter_map(|v| v["id"].as_i64()).collect()
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u32) -> SmallDisk {
        let dir = tempfile::tempdir().expect("mount point");
        let path = dir.path().to_path_buf();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs (this test needs root)"
        );
        SmallDisk { path, _dir: dir }
    }

    /// Fill the filesystem with a ballast file until it refuses more.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let ballast = self.path.join("ballast");
        let mut file = std::fs::File::create(&ballast).expect("ballast");
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        ballast
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// The embedded data dir's filesystem fills up under writes, then space returns: every write
/// answers an acknowledgement or a 503 envelope (never a 500), reads keep answering, everything
/// acknowledged is there afterwards, and writes recover without a restart.
#[tokio::test]
#[ignore = "needs root to mount a small tmpfs (scripts/test runs it in its embedded pass)"]
async fn a_full_disk_answers_503_keeps_serving_reads_loses_nothing_and_recovers_when_space_returns()
{
    // Arrange: a 64 MiB filesystem for the data dir.
    let disk = SmallDisk::mount(64);
    let data_dir = disk.path.join("data");
    std::fs::create_dir(&data_dir).expect("data dir");
    let app = TestApp::start_in(data_dir, &["--no-sample"]).await;
    let a = app.register("a", "pw").await;
    let b = app.register("b", "pw").await;
    let video = app.publish(&a, "v").await;
    app.comment(&a, video, "before").await;

    // Act 1: the disk fills up; comments keep coming.
    let ballast = disk.fill();
    let mut acked = vec!["before".to_owned()];
    let mut refused = 0;
    for i in 0..40 {
        let text = format!("full {i}");
        let form = a.with(&[
            ("video_id", video.to_string()),
            ("action_type", "1".into()),
            ("comment_text", text.clone()),
        ]);
        let (status, body) = app.post_raw("/douyin/comment/action/", &form).await;
        match (status, body["status_code"].as_i64()) {
            (200, Some(0)) => acked.push(text),
            (503, Some(503)) => refused += 1,
            other => panic!("neither an acknowledgement nor a 503 envelope: {other:?} {body}"),
        }
    }
    // Reads keep answering while the disk is full.
    let feed = app.get("/douyin/feed/", &[]).await;
    assert_ok(&feed, "feed on a full disk");
    let (status, body) = app
        .get_raw(
            "/douyin/message/chat/",
            &b.with(&[("to_user_id", a.id.to_string())]),
        )
        .await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (200, Some(0)),
        "{body}"
    );

    // Act 2: space returns.
    std::fs::remove_file(&ballast).expect("remove ballast");
    let mut recovered = None;
    for attempt in 0..120 {
        let text = format!("after {attempt}");
        let form = a.with(&[
            ("video_id", video.to_string()),
            ("action_type", "1".into()),
            ("comment_text", text.clone()),
        ]);
        let (status, body) = app.post_raw("/douyin/comment/action/", &form).await;
        if status == 200 && body["status_code"] == 0 {
            acked.push(text);
            recovered = Some(attempt);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Assert
    assert!(
        refused > 0,
        "the full disk refused writes (acked {})",
        acked.len()
    );
    assert!(
        recovered.is_some(),
        "writes recovered by themselves once space returned"
    );
    let mut listed = Vec::new();
    for _ in 0..120 {
        listed = app.comments(&a, video).await;
        if listed.len() >= acked.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut texts: Vec<String> = listed
        .iter()
        .filter_map(|c| c["content"].as_str().map(str::to_owned))
        .collect();
    texts.sort();
    acked.sort();
    assert_eq!(
        texts, acked,
        "exactly the acknowledged comments ({refused} refused)"
    );
    println!("disk full: {} acknowledged, {refused} refused (503), recovered after {recovered:?} retries", acked.len());
}
