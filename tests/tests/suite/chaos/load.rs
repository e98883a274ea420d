//! The chaos tests' load: the users and videos of a run ([`World`]), and workers sending random
//! likes, follows, comments (and their deletion) and messages, recording what was acknowledged.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use titok_tests::*;

pub(super) const USERS: usize = 6;
pub(super) const VIDEOS: usize = 4;
pub(super) const KILLS: usize = 20;
pub(super) const WORKERS: usize = 4;

/// A command the server acknowledged (`status_code == 0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Acked {
    /// (user, video, liked?)
    Like(i64, i64, bool),
    /// (follower, followee, followed?)
    Follow(i64, i64, bool),
    CommentAdded(i64),
    CommentDeleted(i64),
    /// Unique content.
    Message(String),
}

/// The users and videos of the run, and what the load was told.
pub(super) struct World {
    pub(super) users: Vec<User>,
    /// (video, author)
    pub(super) videos: Vec<(i64, i64)>,
    pub(super) acked: Mutex<Vec<Acked>>,
    /// Acknowledged comments not yet deleted: (index of the user, video, comment id).
    pub(super) comments: Mutex<Vec<(usize, i64, i64)>>,
    pub(super) next_message: AtomicU64,
}

impl World {
    /// Users and videos made through `command`, read back through `query` (the same server,
    /// or the split roles).
    pub(super) async fn create(command: &TestApp, query: &TestApp) -> World {
        let mut users = Vec::new();
        for i in 0..USERS {
            users.push(command.register(&format!("u{i}"), "pw").await);
        }
        for i in 0..VIDEOS {
            let author = &users[i % 3];
            let (status, body) = command
                .publish_raw(
                    &author.token,
                    &format!("v{i}"),
                    SAMPLE_MP4.to_vec(),
                    "v.mp4",
                )
                .await;
            assert!(status == 200 && body["status_code"] == 0, "publish: {body}");
        }
        let mut videos = Vec::new();
        for author in &users[..3] {
            for video in query.publish_list(author, author.id).await {
                videos.push((video["id"].as_i64().expect("id"), author.id));
            }
        }
        assert_eq!(videos.len(), VIDEOS, "every video published");
        World {
            users,
            videos,
            acked: Mutex::new(Vec::new()),
            comments: Mutex::new(Vec::new()),
            next_message: AtomicU64::new(0),
        }
    }

    pub(super) fn acked(&self) -> Vec<Acked> {
        self.acked.lock().expect("lock").clone()
    }
}

/// The run's seed, printed by the test: the load and the kills are `StdRng`s seeded from it, so a
/// run is reproducible from it.
pub(super) fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// Send random commands to `base` until `stop`; record what was acknowledged. Connection errors
/// (the server is being killed) are expected and just retried with the next command.
pub(super) async fn load(
    client: &reqwest::Client,
    base: &str,
    world: &World,
    seed: u64,
    stop: &AtomicBool,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::SeqCst) {
        let u = rng.gen_range(0..USERS);
        let user = &world.users[u];
        let mut other = world.users[rng.gen_range(0..USERS)].id;
        if other == user.id {
            other = world.users[(u + 1) % USERS].id;
        }
        let (video, _) = world.videos[rng.gen_range(0..VIDEOS)];
        let on = rng.gen_range(0..2) == 0;
        let action = if on { "1" } else { "2" }.to_owned();
        let (path, params, acked): (&str, Vec<(&'static str, String)>, Acked) =
            match rng.gen_range(0..10) {
                0..=3 => (
                    "/douyin/favorite/action/",
                    vec![("video_id", video.to_string()), ("action_type", action)],
                    Acked::Like(user.id, video, on),
                ),
                4..=5 => (
                    "/douyin/relation/action/",
                    vec![("to_user_id", other.to_string()), ("action_type", action)],
                    Acked::Follow(user.id, other, on),
                ),
                6 => (
                    "/douyin/comment/action/",
                    vec![
                        ("video_id", video.to_string()),
                        ("action_type", "1".into()),
                        ("comment_text", format!("c{}", rng.gen_range(0..1000))),
                    ],
                    Acked::CommentAdded(0), // the id comes with the reply
                ),
                7 => {
                    let own = {
                        let comments = world.comments.lock().expect("lock");
                        comments.iter().find(|(who, _, _)| *who == u).copied()
                    };
                    let Some((_, video, id)) = own else { continue };
                    (
                        "/douyin/comment/action/",
                        vec![
                            ("video_id", video.to_string()),
                            ("action_type", "2".into()),
                            ("comment_id", id.to_string()),
                        ],
                        Acked::CommentDeleted(id),
                    )
                }
                _ => {
                    let n = world.next_message.fetch_add(1, Ordering::SeqCst);
                    let content = format!("m{n}");
                    (
                        "/douyin/message/action/",
                        vec![
                            ("to_user_id", other.to_string()),
                            ("action_type", "1".into()),
                            ("content", content.clone()),
                        ],
                        Acked::Message(content),
                    )
                }
            };
        let sent = client
            .post(format!("{base}{path}"))
            .form(&user.with(&params))
            .send()
            .await;
        let Ok(reply) = sent else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let Ok(body) = reply.json::<Value>().await else {
            continue;
        };
        if body["status_code"] != 0 {
            // A delete racing another worker's delete of the same comment is refused; nothing else.
            assert!(
                matches!(acked, Acked::CommentDeleted(_)),
                "command refused: {path} {params:?}: {body}"
            );
            continue;
        }
        let acked = match acked {
            Acked::CommentAdded(_) => {
                let id = body["comment"]["id"].as_i64().expect("comment id");
                world.comments.lock().expect("lock").push((u, video, id));
                Acked::CommentAdded(id)
            }
            Acked::CommentDeleted(id) => {
                world
                    .comments
                    .lock()
                    .expect("lock")
                    .retain(|(_, _, c)| *c != id);
                Acked::CommentDeleted(id)
            }
            other => other,
        };
        world.acked.lock().expect("lock").push(acked);
    }
}
