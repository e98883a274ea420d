//! The data set: its size (quick, full, soak), the synthetic users, videos, follows and likes as
//! events, the clients' accounts, and loading it through the log with the projections held so that
//! the fold is timed from a full log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use titok_adapters::store::ViewStore;
use titok_events::{Envelope, EventBody, Favorite, Follow, UserRegistered, VideoPublished};

use crate::context::{wait_caught_up, Ctx};
use crate::BenchArgs;

#[derive(Clone)]
pub(crate) struct Size {
    pub(crate) users: usize,
    pub(crate) videos: usize,
    pub(crate) likes: usize,
    pub(crate) follows: usize,
    pub(crate) seconds: u64,
    pub(crate) rate: u64,
}

impl Size {
    pub(crate) fn of(args: &BenchArgs) -> Size {
        let mut size = if args.quick || args.soak.is_some() {
            Size {
                users: 500,
                videos: 2_000,
                likes: 20_000,
                follows: 2_000,
                seconds: 2,
                rate: 200,
            }
        } else {
            Size {
                users: 10_000,
                videos: 50_000,
                likes: 1_000_000,
                follows: 50_000,
                seconds: 10,
                rate: 5_000,
            }
        };
        if let Some(s) = args.seconds {
            size.seconds = s;
        }
        if args.soak.is_some() {
            size.seconds = 60;
            size.rate = 1_000;
        }
        if let Some(r) = args.rate {
            size.rate = r;
        }
        size
    }
}

#[derive(Clone)]
pub(crate) struct Viewer {
    pub(crate) id: i64,
    pub(crate) token: String,
}

/// The data set's ids: synthetic users and videos far from the generator's range.
pub(crate) const USER_BASE: i64 = 7_000_000_000_000_000;
pub(crate) const VIDEO_BASE: i64 = 8_000_000_000_000_000;

/// The data set as loaded through the log, and how long the projections took to fold it.
pub(crate) struct Loaded {
    pub(crate) events: u64,
    pub(crate) appended: f64,
    pub(crate) seconds: f64,
}

/// Register 16 accounts `<prefix>0…15` through `base`: the clients' users, with tokens.
pub(crate) async fn register_viewers(
    client: &reqwest::Client,
    base: &str,
    prefix: &str,
) -> anyhow::Result<Vec<Viewer>> {
    let mut viewers = Vec::new();
    for i in 0..16 {
        let body: Value = client
            .post(format!("{base}/douyin/user/register/"))
            .form(&[
                ("username", format!("{prefix}{i}")),
                ("password", "bench-password".into()),
            ])
            .send()
            .await?
            .json()
            .await?;
        viewers.push(Viewer {
            id: body["user_id"]
                .as_i64()
                .with_context(|| format!("register: {body}"))?,
            token: body["token"].as_str().unwrap_or_default().to_owned(),
        });
    }
    Ok(viewers)
}

/// Load the data set through the log with the projections held, then time the fold from a full log.
pub(crate) async fn load(ctx: &Ctx) -> anyhow::Result<Loaded> {
    let Ctx {
        size,
        deps,
        client,
        base,
        viewers,
        ..
    } = ctx;
    // 2. Projection: load the data set through the log, time until the views caught up.
    eprintln!(
        "bench: loading {} users, {} videos, {} likes, {} follows",
        size.users, size.videos, size.likes, size.follows
    );
    let events = dataset(size, viewers);
    let total_events = events.len() as u64;
    // The projections hold (their pause lease, as during a rebuild's swap) while the data set is
    // appended, so that the fold is timed on its own, from a full log.
    hold_projections(&deps.store, titok_ports::now_ms() + 3_600_000).await?;
    let append_started = Instant::now();
    append_around_the_api(deps, &events).await?;
    let appended = append_started.elapsed().as_secs_f64();
    let load_started = Instant::now();
    hold_projections(&deps.store, 0).await?;
    wait_caught_up(client, base).await?;
    let projection_s = load_started.elapsed().as_secs_f64();
    eprintln!("bench: appended in {appended:.1} s, projected in {projection_s:.1} s");
    Ok(Loaded {
        events: total_events,
        appended,
        seconds: projection_s,
    })
}

/// The `i`-th like/unlike of ingest client `worker` (the same sequence for titok-plus and the
/// direct-write baseline): video id and action type, each as a form value.
pub(crate) fn ingest_like(worker: usize, i: u64) -> (String, String) {
    let video = VIDEO_BASE + ((worker as u64 * 7919 + i) % videos()) as i64;
    let action = if (i / 64) & 1 == 0 { "1" } else { "2" };
    (video.to_string(), action.to_owned())
}

/// The generated data set as events: users, videos (newest first in the feed), follows and likes.
pub(crate) fn dataset(size: &Size, viewers: &[Viewer]) -> Vec<Envelope> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let now = titok_ports::now_ms();
    let mut events = Vec::with_capacity(size.users + size.videos + size.likes + size.follows);
    let author = |v: usize| USER_BASE + (v % size.users) as i64;
    for u in 0..size.users {
        let id = USER_BASE + u as i64;
        events.push(Envelope::new(
            id,
            EventBody::UserRegistered(UserRegistered {
                user_id: id,
                username: format!("u{u}"),
            }),
        ));
    }
    for v in 0..size.videos {
        let id = VIDEO_BASE + v as i64;
        events.push(Envelope::new(
            author(v),
            EventBody::VideoPublished(VideoPublished {
                video_id: id,
                author_id: author(v),
                title: format!("video {v}"),
                play_path: "bench.mp4".into(),
                cover_path: "bench.png".into(),
                published_at_ms: now - 1_000 - v as i64,
                content_type: "video/mp4".into(),
                size_bytes: Some(1_000_000),
            }),
        ));
    }
    let everyone = |rng: &mut rand::rngs::StdRng| {
        if rng.gen_bool(0.2) {
            viewers[rng.gen_range(0..viewers.len())].id
        } else {
            USER_BASE + rng.gen_range(0..size.users) as i64
        }
    };
    for _ in 0..size.follows {
        let (a, b) = (everyone(&mut rng), everyone(&mut rng));
        if a != b {
            events.push(Envelope::new(
                a,
                EventBody::UserFollowed(Follow {
                    follower_id: a,
                    followee_id: b,
                }),
            ));
        }
    }
    for _ in 0..size.likes {
        let user = everyone(&mut rng);
        // Skewed towards the newest videos, as feeds are.
        let v = (rng.gen_range(0.0f64..1.0).powi(3) * size.videos as f64) as usize;
        events.push(Envelope::new(
            user,
            EventBody::VideoLiked(Favorite {
                user_id: user,
                video_id: VIDEO_BASE + v as i64,
                author_id: author(v),
            }),
        ));
    }
    events
}

/// The data set's video count, for the request closures.
pub(crate) static VIDEOS: AtomicU64 = AtomicU64::new(1);
pub(crate) fn videos() -> u64 {
    VIDEOS.load(Ordering::Relaxed).max(1)
}

/// Set every projection's pause lease (0 releases it).
pub(crate) async fn hold_projections(store: &ViewStore, until_ms: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE projection_meta SET paused_until_ms = ?")
        .bind(until_ms)
        .execute(&store.write)
        .await?;
    Ok(())
}

/// Append `events` through the log and time until the projections have applied them; events/s.
pub(crate) async fn timed_projection(
    deps: &titok_projectors::ProjectorDeps,
    client: &reqwest::Client,
    base: &str,
    events: Vec<Envelope>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    append_around_the_api(deps, &events).await?;
    wait_caught_up(client, base).await?;
    Ok(events.len() as f64 / started.elapsed().as_secs_f64())
}

/// Append `events` to the log directly, around the command API, in chunks of 2,000; then tell
/// the positions what is acknowledged (the readiness lag and the consistency wait watch them).
async fn append_around_the_api(
    deps: &titok_projectors::ProjectorDeps,
    events: &[Envelope],
) -> anyhow::Result<()> {
    for chunk in events.chunks(2000) {
        deps.log
            .append(chunk)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let ends = deps
        .log
        .end_offsets(&titok_events::Topic::ALL)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    deps.positions.record_acked(&ends).await?;
    Ok(())
}
