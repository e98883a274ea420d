//! `titok rebuild`: views rebuilt from the log while the system serves ([`while_serving`]),
//! damaged views and cache entries repaired ([`repair`]), projection versions checked at start-up
//! ([`versions`]), and the rebuild lease ([`lease`]). Embedded and (pass 2) real backends. Here:
//! what the tests share — answers of the API as a snapshot, and traffic to rebuild from.

mod lease;
mod repair;
mod versions;
mod while_serving;

use std::collections::BTreeMap;

use futures::future::join_all;
use serde_json::Value;
use titok_tests::*;

/// Everything the read endpoints answer for these viewers about these users and videos, keyed
/// `endpoint:viewer:subject`, with the server's own address replaced (it changes on restart).
async fn snapshot(
    app: &TestApp,
    viewers: &[&User],
    users: &[&User],
    videos: &[i64],
) -> BTreeMap<String, Value> {
    let mut snap = BTreeMap::new();
    for viewer in viewers {
        let v = viewer.id;
        let feed = app
            .get(
                "/douyin/feed/",
                &viewer.with(&[("latest_time", "4102444800000".into())]),
            )
            .await;
        snap.insert(format!("feed:{v}:-"), list(&feed, "video_list").into());
        for user in users {
            let s = user.id;
            snap.insert(format!("user:{v}:{s}"), app.user_info(viewer, s).await);
            snap.insert(
                format!("publish:{v}:{s}"),
                app.publish_list(viewer, s).await.into(),
            );
            snap.insert(
                format!("favorites:{v}:{s}"),
                app.favorite_list(viewer, s).await.into(),
            );
            for (name, path) in [
                ("follows", "/douyin/relation/follow/list/"),
                ("followers", "/douyin/relation/follower/list/"),
            ] {
                snap.insert(
                    format!("{name}:{v}:{s}"),
                    app.user_list(path, viewer, s).await.into(),
                );
            }
            if s != v {
                snap.insert(format!("chat:{v}:{s}"), app.chat(viewer, s, 0).await.into());
            }
        }
        snap.insert(
            format!("friends:{v}:{v}"),
            app.user_list("/douyin/relation/friend/list/", viewer, v)
                .await
                .into(),
        );
        for video in videos {
            snap.insert(
                format!("comments:{v}:{video}"),
                app.comments(viewer, *video).await.into(),
            );
        }
    }
    let base = app.base.clone();
    snap.into_iter()
        .map(|(k, v)| {
            let text = v.to_string().replace(&base, "BASE");
            (k, serde_json::from_str(&text).expect("json"))
        })
        .collect()
}

fn differences(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> Vec<String> {
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}: {v} != {}", b.get(k).unwrap_or(&Value::Null)))
        .collect()
}

struct World {
    users: Vec<User>,
    videos: Vec<i64>,
}

/// Users with videos, likes toggled many times (≈1,000 events), follows, friends, comments and
/// messages.
async fn traffic(app: &TestApp, people: usize, toggles: usize) -> World {
    let mut users = Vec::new();
    for i in 0..people {
        users.push(app.register(&format!("user{i}"), "password1").await);
    }
    let mut videos = Vec::new();
    for (i, user) in users.iter().enumerate() {
        for k in 0..2 {
            videos.push(app.publish(user, &format!("video {i}.{k}")).await);
        }
    }
    for (i, a) in users.iter().enumerate() {
        for (j, b) in users.iter().enumerate() {
            if i < j || (i > j && (i + j) % 2 == 0) {
                app.follow(a, b.id, 1).await;
            }
        }
    }
    for round in 0..toggles {
        let action = if round % 2 == 0 { 1 } else { 2 };
        join_all(users.iter().flat_map(|u| {
            videos
                .iter()
                .map(move |v| app.like(u, *v, action))
                .collect::<Vec<_>>()
        }))
        .await;
    }
    for (i, user) in users.iter().enumerate() {
        app.like(user, videos[(i * 3) % videos.len()], 2).await;
        app.comment(
            user,
            videos[(i + 1) % videos.len()],
            &format!("comment by {i}"),
        )
        .await;
        let to = &users[(i + 1) % users.len()];
        app.send_message(user, to.id, &format!("hello {i}")).await;
    }
    World { users, videos }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}
