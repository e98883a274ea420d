//! # titok-bench
//!
//! `titok-bench` (`cargo run --release -p titok-bench -- [--quick]`): what the architecture buys, measured against its alternatives in the same run.
//!
//! The bench starts the whole system in this process on the configured backend (embedded by
//! default; `--kafka-brokers`/`--mysql-url`/`--redis-url` for the real one) in a scratch data dir,
//! loads a generated data set through the event log, and drives the HTTP API with a real client
//! under concurrency, recording latencies in HDR histograms. Each scenario runs beside its baseline,
//! which a second small HTTP server in the same process serves from the same databases:
//!
//! | scenario | titok-plus | baseline |
//! |---|---|---|
//! | ingest | like/unlike → appended to the log | one transaction per like: insert + three counter updates |
//! | projection | events/s folded into views + counters; `rebuild` events/s | multi-row inserts into the same database |
//! | feed | `/douyin/feed/`, concurrent batched join | one author/count/is_favorite/is_follow query per video, in turn |
//! | chat | idle polls with the shortcut | the SQL query on every poll |
//! | lag | acknowledged → visible through the query API | plain read latency (the wait's cost) |
//! | scaled topology (real services + haproxy) | 2 command / 2 query / 2 projector instances behind haproxy: feed and ingest requests/s, CPU split, stale reads | 1 of each behind the same haproxy |
//!
//! Results: a table on stdout and, with `--json PATH`, the numbers as JSON.
//!
//! **Size.** ~2,500 lines, ~8 concerns: issue 24 splits it into generators, one module per
//! scenario, topology, report, data set, baseline and soak.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::AnyPool;
use titok_adapters::store::{Dialect, ViewStore};
use titok_events::{Envelope, EventBody, Favorite, Follow, UserRegistered, VideoPublished};

use titok::{Config, Role};

pub mod fold;
mod media;
pub mod topology;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// A small data set and short phases (well under 2 minutes; the test suite runs this).
    #[arg(long)]
    pub quick: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Seconds per measured phase (default 10, quick 2).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Concurrent clients in the throughput phases.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Steady write rate of the lag phase, events/s (default 5000, quick 200; soak 1000).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Soak instead of benchmarking: this many minutes of steady writes (`--rate`) with
    /// read-after-write probes, one line per minute (memory, lag, failures); fails when memory
    /// grows or lag goes beyond `--soak-max-lag-ms`. Not part of the test suite (`scripts/soak`).
    #[arg(long)]
    pub soak: Option<u64>,
    /// Largest acceptable per-minute p99 of ack → visible during a soak.
    #[arg(long, default_value_t = 250.0)]
    pub soak_max_lag_ms: f64,
    /// The `titok` binary the scale-out scenario starts as separate projector processes
    /// (default: `titok` next to this binary, as `cargo build --release` leaves it).
    #[arg(long, env = "TITOK_BENCH_SERVER_BIN")]
    pub server_bin: Option<std::path::PathBuf>,
}

/// The `titok` binary: `--server-bin`, else `titok` beside this executable.
fn server_binary(given: &Option<std::path::PathBuf>) -> anyhow::Result<std::path::PathBuf> {
    if let Some(path) = given {
        return Ok(path.clone());
    }
    let exe = std::env::current_exe()?;
    let sibling = exe.with_file_name(format!("titok{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        sibling.exists(),
        "{} is missing: build it (`cargo build --release`) or pass --server-bin",
        sibling.display()
    );
    Ok(sibling)
}

#[derive(Clone)]
struct Size {
    users: usize,
    videos: usize,
    likes: usize,
    follows: usize,
    seconds: u64,
    rate: u64,
}

impl Size {
    fn of(args: &BenchArgs) -> Size {
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

/// Latency histogram in microseconds.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Throughput and latency of one closed-loop phase.
struct Phase {
    ok: u64,
    failed: u64,
    seconds: f64,
    latency: Histogram<u64>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds.max(1e-9)
    }

    fn json(&self) -> Value {
        json!({"requests_per_s": self.rate().round(), "ok": self.ok, "failed": self.failed,
               "p50_ms": ms(&self.latency, 0.5), "p99_ms": ms(&self.latency, 0.99)})
    }
}

/// `workers` clients each calling `request(worker, i)` in a loop for `seconds`.
async fn closed_loop<F, Fut>(workers: usize, seconds: u64, request: F) -> Phase
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut handles = Vec::new();
    for worker in 0..workers {
        let request = request.clone();
        handles.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut latency) = (0, 0, histogram());
            let mut i = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                if request(worker, i).await {
                    ok += 1;
                    let _ = latency.record(t.elapsed().as_micros().max(1) as u64);
                } else {
                    failed += 1;
                }
                i += 1;
            }
            (ok, failed, latency)
        }));
    }
    let mut phase = Phase {
        ok: 0,
        failed: 0,
        seconds: 0.0,
        latency: histogram(),
    };
    for h in handles {
        if let Ok((ok, failed, latency)) = h.await {
            phase.ok += ok;
            phase.failed += failed;
            let _ = phase.latency.add(latency);
        }
    }
    phase.seconds = started.elapsed().as_secs_f64();
    phase
}

/// `rate` requests per second for `seconds`, each started on its schedule whether or not earlier
/// ones returned, its latency counted from the scheduled start (so a stall counts against every
/// request it delays, not just one). At most `MAX_OUTSTANDING` in flight: a request due while
/// that many are outstanding is not sent, and counted as failed.
async fn open_loop<F, Fut>(rate: u64, seconds: u64, request: F) -> Phase
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    const MAX_OUTSTANDING: usize = 512;
    let request = Arc::new(request);
    let started = tokio::time::Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut running = tokio::task::JoinSet::new();
    let mut phase = Phase {
        ok: 0,
        failed: 0,
        seconds: 0.0,
        latency: histogram(),
    };
    let settle =
        |phase: &mut Phase, done: Result<(bool, Duration), tokio::task::JoinError>| match done {
            Ok((true, took)) => {
                phase.ok += 1;
                let _ = phase.latency.record(took.as_micros().max(1) as u64);
            }
            _ => phase.failed += 1,
        };
    for i in 0..rate * seconds {
        let due = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        while let Some(done) = running.try_join_next() {
            settle(&mut phase, done);
        }
        if running.len() >= MAX_OUTSTANDING {
            phase.failed += 1;
            continue;
        }
        let request = request.clone();
        running.spawn(async move {
            let ok = request((i % 1024) as usize, i).await;
            (ok, due.elapsed())
        });
    }
    while let Some(done) = running.join_next().await {
        settle(&mut phase, done);
    }
    phase.seconds = started.elapsed().as_secs_f64();
    phase
}

async fn ok_envelope(resp: reqwest::Result<reqwest::Response>) -> bool {
    match resp {
        Ok(r) if r.status().is_success() => {
            r.json::<Value>().await.is_ok_and(|v| v["status_code"] == 0)
        }
        _ => false,
    }
}

struct Viewer {
    id: i64,
    token: String,
}

/// The data set's ids: synthetic users and videos far from the generator's range.
const USER_BASE: i64 = 7_000_000_000_000_000;
const VIDEO_BASE: i64 = 8_000_000_000_000_000;

/// What every scenario needs: the running system's ports, an HTTP client, the data set's viewers.
struct Ctx {
    args: BenchArgs,
    size: Size,
    config: Config,
    deps: titok_projectors::ProjectorDeps,
    client: reqwest::Client,
    base: String,
    viewers: Arc<Vec<Viewer>>,
}

/// The results so far: the JSON keys and the table's rows.
#[derive(Default)]
struct Report {
    results: BTreeMap<&'static str, Value>,
    rows: Vec<[String; 5]>,
    /// Requests/s of the no-op endpoint (the HTTP stack's own ceiling), once measured.
    ceiling_rps: f64,
}

/// The data set as loaded through the log, and how long the projections took to fold it.
struct Loaded {
    events: u64,
    appended: f64,
    seconds: f64,
}

/// Register 16 accounts `<prefix>0…15` through `base`: the clients' users, with tokens.
async fn register_viewers(
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

/// Run the bench (or, with `--soak`, the soak): one function per scenario, in this order.
pub async fn run(args: BenchArgs, config: Config) -> anyhow::Result<()> {
    let size = Size::of(&args);
    VIDEOS.store(size.videos as u64, Ordering::Relaxed);
    let dir = tempfile::tempdir()?;
    let mut config = config;
    config.data_dir = dir.path().to_path_buf();
    config.listen = "127.0.0.1:0".parse()?;
    config.no_sample = true;
    // The no-op endpoint of the ceiling scenario, and no login quota in the way of the storm.
    config.bench_ceiling = true;
    config.login_attempts_per_user = u32::MAX;
    config.login_attempts_per_address = u32::MAX;
    config.registers_per_address = u32::MAX;
    config.namespace = format!("bench{}", titok_ports::now_ms());
    if let Some(url) = &config.mysql_url {
        let (base, _) = url
            .rsplit_once('/')
            .context("--mysql-url needs a database")?;
        config.mysql_url = Some(format!("{base}/{}", config.namespace));
    }
    // The replicas of that database: the same name on each replica server.
    for url in &mut config.mysql_read_urls {
        let (base, _) = url
            .rsplit_once('/')
            .context("--mysql-read-url needs a database")?;
        *url = format!("{base}/{}", config.namespace);
    }
    if config.token_secret.is_none()
        && (config.kafka_brokers.is_some()
            || config.redis_url.is_some()
            || config.mysql_url.is_some())
    {
        config.token_secret = Some(format!(
            "bench-secret-{}-0123456789abcdef",
            config.namespace
        ));
    }
    let backend = if config.kafka_brokers.is_some() {
        "Kafka API + MySQL + Redis"
    } else {
        "embedded (SQLite log and views, in-process counters)"
    };
    let running = titok::start(Role::All, config.clone()).await?;
    let base = format!("http://{}", running.addr);
    let deps = running.deps.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut report = Report::default();

    // Viewers: real accounts with tokens.
    let viewers = register_viewers(&client, &base, "viewer").await?;
    let ctx = Ctx {
        args,
        size,
        config,
        deps,
        client,
        base,
        viewers: Arc::new(viewers),
    };
    let loaded = load(&ctx).await?;
    if let Some(minutes) = ctx.args.soak {
        let verdict = soak(
            &ctx.client,
            &ctx.base,
            &ctx.viewers,
            &ctx.size,
            minutes,
            &ctx.args,
        )
        .await;
        running.stop().await?;
        return verdict;
    }
    projection(&ctx, &mut report, &loaded).await?;
    hot_key(&ctx, &mut report).await?;
    let baseline = Baseline::start(&ctx.deps.store, &ctx.config).await?;
    ceiling(&ctx, &mut report).await?;
    ingest(&ctx, &mut report, &baseline).await?;
    feed(&ctx, &mut report, &baseline).await?;
    chat(&ctx, &mut report, &baseline).await?;
    lag(&ctx, &mut report).await?;
    positions_check(&ctx, &mut report).await?;
    scale_out_row(&ctx, &mut report).await?;
    topology_rows(&ctx, &mut report).await?;
    media::media(&ctx, &mut report).await?;

    let machine = machine();
    report.results.insert("machine", json!(machine));
    report.results.insert("backend", json!(backend));
    report.results.insert(
        "date",
        json!(chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string()),
    );
    report.results.insert(
        "dataset",
        json!({"users": ctx.size.users, "videos": ctx.size.videos, "likes": ctx.size.likes,
        "follows": ctx.size.follows, "events": loaded.events, "phase_seconds": ctx.size.seconds,
        "concurrency": ctx.args.concurrency}),
    );
    print_table(&report.rows, backend, &machine, &ctx.size, loaded.events);
    if let Some(path) = &ctx.args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.results)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    baseline.stop().await;
    running.stop().await?;
    Ok(())
}

/// Load the data set through the log with the projections held, then time the fold from a full log.
async fn load(ctx: &Ctx) -> anyhow::Result<Loaded> {
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
    for chunk in events.chunks(2000) {
        deps.log
            .append(chunk)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let appended = append_started.elapsed().as_secs_f64();
    // Appended around the command API: tell the positions (the readiness lag watches them).
    let ends = deps
        .log
        .end_offsets(&titok_events::Topic::ALL)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    deps.positions.record_acked(&ends).await?;
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

/// Projection and replay against the raw inserts of the same rows, the bare log read, and sqlx
/// `Any` against the typed driver.
async fn projection(ctx: &Ctx, report: &mut Report, loaded: &Loaded) -> anyhow::Result<()> {
    let Ctx {
        args, config, deps, ..
    } = ctx;
    let projection_rate = loaded.events as f64 / loaded.seconds;
    eprintln!("bench: raw inserts of the views' rows");
    let raw = crate::fold::raw_same_rows(&deps.store).await?;
    let narrow_rate = raw_insert_rate(&deps.store, (loaded.events as usize).min(200_000)).await?;
    eprintln!("bench: sqlx Any vs the typed driver on the fold's statement shapes");
    let (any_rate, typed_rate) = crate::fold::any_vs_typed(
        &deps.store,
        config.mysql_url.as_deref(),
        &config.data_dir.join("views.db"),
        (loaded.events as usize).min(200_000),
        if args.quick { 1 } else { 3 },
    )
    .await?;
    eprintln!("bench: raw read of the log");
    let log_rate = crate::fold::log_read_rate(deps.log.as_ref()).await?;

    // Replay: rebuild every view from the log.
    eprintln!("bench: replay (rebuild all)");
    let mut replayed = 0;
    let mut replay_s = 0.0;
    for group in titok_projectors::catalog::groups() {
        let mut progress = titok_projectors::rebuild::LogProgress::new("bench");
        let report = titok_projectors::rebuild::rebuild(
            deps,
            &group,
            titok_projectors::rebuild::SWAP_WITHIN,
            &mut progress,
        )
        .await?;
        replayed += report.events;
        replay_s += report.seconds;
    }
    let replay_rate = replayed as f64 / replay_s.max(1e-9);
    // Both against the time the database takes for the rows the views end with.
    let projection_vs_raw = raw.seconds / loaded.seconds.max(1e-9);
    let replay_vs_raw = raw.seconds * (replayed as f64 / loaded.events as f64) / replay_s.max(1e-9);
    report
        .results
        .insert("projection_events_per_s", json!(projection_rate.round()));
    report
        .results
        .insert("loaded.secondseconds", json!(round3(loaded.seconds)));
    report
        .results
        .insert("load_append_seconds", json!(round3(loaded.appended)));
    report.results.insert("raw_insert_rows", json!(raw.rows));
    report
        .results
        .insert("raw_insert_seconds", json!(round3(raw.seconds)));
    report
        .results
        .insert("raw_insert_rows_per_s", json!(raw.rows_per_s().round()));
    report
        .results
        .insert("raw_insert_rows_per_s_narrow", json!(narrow_rate.round()));
    report
        .results
        .insert("projection_vs_raw", json!(round3(projection_vs_raw)));
    report
        .results
        .insert("log_read_events_per_s", json!(log_rate.round()));
    report.results.insert(
        "projection_vs_log_read",
        json!(round3(projection_rate / log_rate)),
    );
    report
        .results
        .insert("replay_events_per_s", json!(replay_rate.round()));
    report
        .results
        .insert("replay_seconds", json!(round3(replay_s)));
    report
        .results
        .insert("replay_vs_raw", json!(round3(replay_vs_raw)));
    report.rows.push([
        "projection: events/s; time vs raw inserts of the views' rows".into(),
        format!("{projection_rate:.0} ev/s in {:.1} s", loaded.seconds),
        format!("{} rows in {:.1} s", raw.rows, raw.seconds),
        format!("{projection_vs_raw:.2}×"),
        "≥ 0.5× raw".into(),
    ]);
    report.rows.push([
        "replay / rebuild: events/s; time vs raw inserts".into(),
        format!("{replay_rate:.0} ev/s in {replay_s:.1} s"),
        format!("{:.1} s", raw.seconds),
        format!("{replay_vs_raw:.2}×"),
        "≥ 0.5× raw".into(),
    ]);
    report.rows.push(row(
        "projection vs a bare read of the whole log (events/s)",
        projection_rate,
        log_rate,
        "reported (the log's own limit)",
    ));
    report
        .results
        .insert("fold_shapes_any_rows_per_s", json!(any_rate.round()));
    report
        .results
        .insert("fold_shapes_typed_rows_per_s", json!(typed_rate.round()));
    report
        .results
        .insert("any_vs_typed", json!(round3(any_rate / typed_rate)));
    report.rows.push(row(
        "fold's statement shapes: sqlx Any vs the typed driver (rows/s)",
        any_rate,
        typed_rate,
        "use typed if clearly faster",
    ));
    report.rows.push(row(
        "projection vs the old narrow baseline (3-column table, rows/s)",
        projection_rate,
        narrow_rate,
        "reported",
    ));
    Ok(())
}

/// Hot key: 90 % of the likes on one video, beside the same number spread uniformly.
async fn hot_key(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let Ctx {
        size,
        deps,
        client,
        base,
        ..
    } = ctx;
    // Hot key: 90 % of the likes on one video, beside the same number spread uniformly.
    eprintln!("bench: hot-key storm");
    let storm = (size.likes / 5).max(2_000);
    let vids = size.videos as i64;
    let mut storm_rates = Vec::new();
    for (hot, seed) in [(false, 1), (true, 2)] {
        let likes = crate::fold::like_storm(storm, vids, VIDEO_BASE, hot, seed);
        storm_rates.push(timed_projection(deps, client, base, likes).await?);
    }
    let (uniform_rate, hot_rate) = (storm_rates[0], storm_rates[1]);
    report
        .results
        .insert("hot_key_events_per_s", json!(hot_rate.round()));
    report
        .results
        .insert("uniform_likes_events_per_s", json!(uniform_rate.round()));
    report
        .results
        .insert("hot_key_vs_uniform", json!(round3(hot_rate / uniform_rate)));
    report.rows.push(row(
        &format!("hot key: {storm} likes, 90 % on one video vs uniform (events/s)"),
        hot_rate,
        uniform_rate,
        "≥ 0.8× uniform",
    ));
    Ok(())
}

/// Ingest of likes through the API against one transaction per like.
async fn ingest(ctx: &Ctx, report: &mut Report, baseline: &Baseline) -> anyhow::Result<()> {
    let Ctx {
        args,
        size,
        deps,
        client,
        base,
        viewers,
        ..
    } = ctx;
    // 1. Ingest. On the embedded log, how many events each group commit wrote meanwhile.
    eprintln!("bench: ingest vs direct write");
    let groups_before = group_commits(client, base).await?;
    let ingest = {
        let (client, base, viewers) = (client.clone(), base.clone(), viewers.clone());
        closed_loop(args.concurrency, size.seconds, move |worker, i| {
            let viewer = &viewers[worker % viewers.len()];
            let (video, action) = ingest_like(worker, i);
            let form = [
                ("token", viewer.token.clone()),
                ("video_id", video),
                ("action_type", action),
            ];
            let req = client
                .post(format!("{base}/douyin/favorite/action/"))
                .form(&form)
                .send();
            async move { ok_envelope(req.await).await }
        })
        .await
    };
    let groups = group_commits(client, base).await?.since(&groups_before);
    let direct = {
        let (client, base, viewers) = (client.clone(), baseline.base.clone(), viewers.clone());
        closed_loop(args.concurrency, size.seconds, move |worker, i| {
            let viewer = viewers[worker % viewers.len()].id;
            let (video, action) = ingest_like(worker, i);
            let form = [
                ("user_id", viewer.to_string()),
                ("video_id", video),
                ("action_type", action),
            ];
            let req = client
                .post(format!("{base}/direct/like"))
                .form(&form)
                .send();
            async move { ok_envelope(req.await).await }
        })
        .await
    };
    eprintln!("bench: waiting for the projections");
    wait_caught_up(client, base).await?;
    report.results.insert("ingest", ingest.json());
    report.results.insert("ingest_direct_write", direct.json());
    report.results.insert(
        "ingest_ratio",
        json!(round3(ingest.rate() / direct.rate().max(1e-9))),
    );
    report.rows.push(row(
        "ingest like/unlike (requests/s, durable)",
        ingest.rate(),
        direct.rate(),
        "≥ 10× direct write",
    ));
    if groups.commits > 0.0 {
        let mean = groups.events / groups.commits;
        report
            .results
            .insert("log_group_commit_mean_events", json!(round3(mean)));
        report.results.insert(
            "log_group_commit_buckets",
            json!(groups
                .buckets
                .iter()
                .map(|(le, n)| json!({"le": le, "commits": n}))
                .collect::<Vec<_>>()),
        );
        report.rows.push([
            "embedded log during ingest: events per group commit (mean; commits)".into(),
            format!("{mean:.1}; {:.0}", groups.commits),
            "—".into(),
            "—".into(),
            "groups under load".into(),
        ]);
    }
    let ingest_vs_ceiling = ingest.rate() / report.ceiling_rps.max(1e-9);
    report
        .results
        .insert("ingest_vs_ceiling", json!(round3(ingest_vs_ceiling)));
    report.rows.push(row(
        "ingest vs the no-op ceiling (requests/s)",
        ingest.rate(),
        report.ceiling_rps,
        "≥ 0.5× ceiling",
    ));
    // The same events appended straight to the log adapter (no HTTP), as many at once.
    eprintln!("bench: raw log appends of the same events");
    let append = {
        let log = deps.log.clone();
        let users = size.users;
        closed_loop(args.concurrency, size.seconds, move |worker, i| {
            let log = log.clone();
            let (video, action) = ingest_like(worker, i);
            let video: i64 = video.parse().unwrap_or(VIDEO_BASE);
            let user = USER_BASE + (worker % users) as i64;
            let fav = Favorite {
                user_id: user,
                video_id: video,
                author_id: USER_BASE + ((video - VIDEO_BASE) as usize % users) as i64,
            };
            let body = if action == "1" {
                EventBody::VideoLiked(fav)
            } else {
                EventBody::VideoUnliked(fav)
            };
            async move { log.append(&[Envelope::new(user, body)]).await.is_ok() }
        })
        .await
    };
    wait_caught_up(client, base).await?;
    let vs_append = ingest.rate() / append.rate().max(1e-9);
    report.results.insert("log_append", append.json());
    report
        .results
        .insert("ingest_vs_log_append", json!(round3(vs_append)));
    if ctx.config.kafka_brokers.is_some() {
        report
            .results
            .insert("kafka_ingest_vs_produce", json!(round3(vs_append)));
    }
    report.rows.push(row(
        "ingest vs raw appends of the same events to the log (no HTTP)",
        ingest.rate(),
        append.rate(),
        "≥ 0.5× raw produce (Kafka)",
    ));
    Ok(())
}

/// The HTTP stack's ceiling: `/bench/noop` (routing, request id, span, metrics, parameters, token
/// check; no work) driven by the same client at the same concurrency.
async fn ceiling(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let Ctx {
        args,
        size,
        client,
        base,
        viewers,
        ..
    } = ctx;
    eprintln!("bench: ceiling (no-op endpoint)");
    let noop = {
        let (client, base, viewers) = (client.clone(), base.clone(), viewers.clone());
        closed_loop(args.concurrency, size.seconds, move |worker, _i| {
            let viewer = &viewers[worker % viewers.len()];
            let req = client
                .get(format!("{base}/bench/noop"))
                .query(&[("token", viewer.token.clone())])
                .send();
            async move { ok_envelope(req.await).await }
        })
        .await
    };
    anyhow::ensure!(noop.ok > 0, "the no-op endpoint answered nothing");
    report.ceiling_rps = noop.rate();
    report.results.insert("ceiling", noop.json());
    report
        .results
        .insert("ceiling_rps", json!(noop.rate().round()));
    report.rows.push([
        format!(
            "ceiling: no-op endpoint, {} clients (requests/s, p99 ms)",
            args.concurrency
        ),
        format!("{:.0} rps, p99 {:.1}", noop.rate(), ms(&noop.latency, 0.99)),
        "—".into(),
        "—".into(),
        "reported".into(),
    ]);
    Ok(())
}

/// The feed: one client against the sequential baseline, then under concurrency.
async fn feed(ctx: &Ctx, report: &mut Report, baseline: &Baseline) -> anyhow::Result<()> {
    let Ctx {
        args,
        size,
        client,
        base,
        viewers,
        ..
    } = ctx;
    eprintln!("bench: feed");
    // 3. Feed: latency of one client (the join's speed-up), then throughput under concurrency.
    let feed_request = |client: reqwest::Client, url: String, viewers: Arc<Vec<Viewer>>| {
        move |worker: usize, _i: u64| {
            let viewer = &viewers[worker % viewers.len()];
            let req = client
                .get(&url)
                .query(&[
                    ("token", viewer.token.clone()),
                    ("user_id", viewer.id.to_string()),
                ])
                .send();
            async move { ok_envelope(req.await).await }
        }
    };
    let feed = || {
        feed_request(
            client.clone(),
            format!("{base}/douyin/feed/"),
            viewers.clone(),
        )
    };
    let feed_one = closed_loop(1, size.seconds, feed()).await;
    let seq_one = closed_loop(
        1,
        size.seconds,
        feed_request(
            client.clone(),
            format!("{}/sequential/feed", baseline.base),
            viewers.clone(),
        ),
    )
    .await;
    let feed_many = closed_loop(args.concurrency, size.seconds, feed()).await;
    // The target's own terms: 2,000 requests/s offered on schedule (open loop), not as fast as
    // 32 clients can go.
    eprintln!("bench: feed at 2,000 requests/s");
    let feed_rate = open_loop(2_000, size.seconds, feed()).await;
    let speedup = ms(&seq_one.latency, 0.5) / ms(&feed_one.latency, 0.5).max(1e-9);
    report.results.insert("feed_at_2000", feed_rate.json());
    report
        .results
        .insert("feed_p99_at_2000_ms", json!(ms(&feed_rate.latency, 0.99)));
    report.results.insert("feed_single_client", feed_one.json());
    report
        .results
        .insert("feed_sequential_single_client", seq_one.json());
    report.results.insert("feed_concurrent", feed_many.json());
    report
        .results
        .insert("feed_p99_ms", json!(ms(&feed_many.latency, 0.99)));
    report
        .results
        .insert("feed_join_speedup", json!(round3(speedup)));
    report.rows.push([
        "feed p50 latency, 30 videos, 1 client (ms)".into(),
        format!("{:.2}", ms(&feed_one.latency, 0.5)),
        format!("{:.2}", ms(&seq_one.latency, 0.5)),
        format!("{speedup:.2}× faster"),
        "≥ 5× faster".into(),
    ]);
    report.rows.push([
        format!(
            "feed under {} clients: requests/s, p99 ms",
            args.concurrency
        ),
        format!(
            "{:.0} rps, p99 {:.1}",
            feed_many.rate(),
            ms(&feed_many.latency, 0.99)
        ),
        "—".into(),
        "—".into(),
        "reported".into(),
    ]);
    report.rows.push([
        "feed at 2,000 requests/s offered (open loop): p50 / p99 ms; not answered".into(),
        format!(
            "{:.1} / {:.1}; {}",
            ms(&feed_rate.latency, 0.5),
            ms(&feed_rate.latency, 0.99),
            feed_rate.failed
        ),
        "—".into(),
        "—".into(),
        "p99 ≤ 10 ms at 2,000 rps".into(),
    ]);
    let feed_vs_ceiling = feed_many.rate() / report.ceiling_rps.max(1e-9);
    report
        .results
        .insert("feed_vs_ceiling", json!(round3(feed_vs_ceiling)));
    report.rows.push(row(
        "feed vs the no-op ceiling (requests/s)",
        feed_many.rate(),
        report.ceiling_rps,
        "≥ 0.3× ceiling",
    ));

    // The same feed load while 16 clients log in continuously (argon2id on the bounded blocking
    // pool): the feed's p99 must not suffer much.
    eprintln!("bench: feed during a login storm");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let logins = Arc::new(AtomicU64::new(0));
    let mut stormers = Vec::new();
    for i in 0..16 {
        let (client, base) = (client.clone(), base.clone());
        let (stop, logins) = (stop.clone(), logins.clone());
        stormers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let req = client
                    .post(format!("{base}/douyin/user/login/"))
                    .form(&[
                        ("username", format!("viewer{i}")),
                        ("password", "bench-password".to_owned()),
                    ])
                    .send();
                if ok_envelope(req.await).await {
                    logins.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let storm_started = Instant::now();
    let feed_storm = closed_loop(
        args.concurrency,
        size.seconds,
        feed_request(
            client.clone(),
            format!("{base}/douyin/feed/"),
            viewers.clone(),
        ),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for stormer in stormers {
        let _ = stormer.await;
    }
    let logins_per_s =
        logins.load(Ordering::Relaxed) as f64 / storm_started.elapsed().as_secs_f64();
    anyhow::ensure!(logins_per_s > 0.0, "no login succeeded during the storm");
    let (alone, stormed) = (ms(&feed_many.latency, 0.99), ms(&feed_storm.latency, 0.99));
    report.results.insert("feed_login_storm", feed_storm.json());
    report
        .results
        .insert("login_storm_logins_per_s", json!(logins_per_s.round()));
    report
        .results
        .insert("feed_p99_login_storm_ms", json!(stormed));
    report.results.insert(
        "feed_p99_login_storm_ratio",
        json!(round3(stormed / alone.max(1e-9))),
    );
    report.rows.push([
        format!(
            "feed p99 during a login storm (16 clients, {logins_per_s:.0} logins/s) vs alone (ms)"
        ),
        format!("{stormed:.1}"),
        format!("{alone:.1}"),
        format!("{:.2}×", stormed / alone.max(1e-9)),
        "≤ 2× alone".into(),
    ]);
    Ok(())
}

/// Idle chat polls with the shortcut against SQL on every poll.
async fn chat(ctx: &Ctx, report: &mut Report, baseline: &Baseline) -> anyhow::Result<()> {
    let Ctx {
        args,
        size,
        client,
        base,
        viewers,
        ..
    } = ctx;
    // 4. Chat polling: idle polls, shortcut vs SQL every time.
    eprintln!("bench: chat");
    for pair in viewers.chunks(2) {
        let form = [
            ("token", pair[0].token.clone()),
            ("to_user_id", pair[1].id.to_string()),
            ("action_type", "1".into()),
            ("content", "hello".into()),
        ];
        client
            .post(format!("{base}/douyin/message/action/"))
            .form(&form)
            .send()
            .await?;
    }
    wait_caught_up(client, base).await?;
    // Positive control: a poll with something to fetch queries SQL and is counted.
    let reply: Value = client
        .get(format!("{base}/douyin/message/chat/"))
        .query(&[
            ("token", viewers[1].token.clone()),
            ("to_user_id", viewers[0].id.to_string()),
            ("pre_msg_time", "0".into()),
        ])
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(
        reply["message_list"]
            .as_array()
            .is_some_and(|l| !l.is_empty()),
        "the chat poll found no message: {reply}"
    );
    let far_future = (titok_ports::now_ms() + 86_400_000).to_string();
    let queries_before = metric(client, base, "titok_chat_db_queries_total").await?;
    anyhow::ensure!(
        queries_before >= 1.0,
        "a non-idle chat poll was not counted"
    );
    let chat_request =
        |client: reqwest::Client, url: String, viewers: Arc<Vec<Viewer>>, since: String| {
            move |worker: usize, _i: u64| {
                let me = &viewers[(worker % (viewers.len() / 2)) * 2 + 1];
                let other = viewers[(worker % (viewers.len() / 2)) * 2].id;
                let req = client
                    .get(&url)
                    .query(&[
                        ("token", me.token.clone()),
                        ("user_id", me.id.to_string()),
                        ("to_user_id", other.to_string()),
                        ("pre_msg_time", since.clone()),
                    ])
                    .send();
                async move { ok_envelope(req.await).await }
            }
        };
    let chat = closed_loop(
        args.concurrency,
        size.seconds,
        chat_request(
            client.clone(),
            format!("{base}/douyin/message/chat/"),
            viewers.clone(),
            far_future.clone(),
        ),
    )
    .await;
    let queries = metric(client, base, "titok_chat_db_queries_total").await? - queries_before;
    let chat_sql = closed_loop(
        args.concurrency,
        size.seconds,
        chat_request(
            client.clone(),
            format!("{}/sql/chat", baseline.base),
            viewers.clone(),
            far_future,
        ),
    )
    .await;
    let per_poll = queries / (chat.ok.max(1) as f64);
    report.results.insert("chat", chat.json());
    report
        .results
        .insert("chat_sql_every_poll", chat_sql.json());
    report
        .results
        .insert("chat_db_queries_per_idle_poll", json!(per_poll));
    report.rows.push(row(
        "chat idle polls (polls/s)",
        chat.rate(),
        chat_sql.rate(),
        "0 DB queries per idle poll",
    ));
    report.rows.push([
        "chat DB queries per idle poll".into(),
        format!("{per_poll}"),
        "1".into(),
        "—".into(),
        "0".into(),
    ]);
    Ok(())
}

/// Ack → visible under steady write loads, against the log's own floor.
async fn lag(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let Ctx {
        args,
        size,
        deps,
        client,
        base,
        viewers,
        ..
    } = ctx;
    // 5. End-to-end lag under a steady write load: the configured rate, a light load (200/s),
    // and (full runs) a sweep for the highest rate at which p99 stays within 50 ms. The load
    // generator runs in this process, on the same cores as the server.
    eprintln!("bench: log floor (append → consume)");
    let floor = crate::fold::log_floor(deps.log.as_ref(), 200).await?;
    let mut floor_h = histogram();
    for ms in &floor {
        let _ = floor_h.record((ms * 1000.0).max(1.0) as u64);
    }
    let floor_p50 = ms(&floor_h, 0.5);
    report
        .results
        .insert("broker_floor_p50_ms", json!(floor_p50));
    report
        .results
        .insert("broker_floor_p99_ms", json!(ms(&floor_h, 0.99)));
    // The probes of the lag phases are new users with nothing in their lists, so a probe's read
    // costs the same in every phase (a data-set viewer's list holds thousands of likes).
    let mut probes = Vec::new();
    for name in ["probe-a", "probe-b"] {
        let body: Value = client
            .post(format!("{base}/douyin/user/register/"))
            .form(&[("username", name), ("password", "bench-password")])
            .send()
            .await?
            .json()
            .await?;
        probes.push(Viewer {
            id: body["user_id"].as_i64().context("register probe")?,
            token: body["token"].as_str().unwrap_or_default().to_owned(),
        });
    }
    for v in viewers.iter().skip(2) {
        probes.push(Viewer {
            id: v.id,
            token: v.token.clone(),
        });
    }
    let probes = Arc::new(probes);
    let mut rates = vec![size.rate];
    if !args.quick {
        rates.extend([200, 1_000, 2_000, 10_000]);
    } else if size.rate != 200 {
        rates.push(200);
    }
    rates.sort_unstable();
    rates.dedup();
    let mut sweep = Vec::new();
    for rate in rates {
        eprintln!("bench: lag at {rate} writes/s");
        let at = Size {
            rate,
            ..size.clone()
        };
        let (lag, plain, outcome) = lag_phase(client, base, &probes, &at).await;
        let failed = outcome.failed.load(Ordering::Relaxed);
        anyhow::ensure!(
            failed == 0,
            "{failed} writes failed during the lag phase at {rate}/s"
        );
        sweep.push(
            json!({"rate": rate, "lag_p50_ms": ms(&lag, 0.5), "lag_p99_ms": ms(&lag, 0.99),
            "plain_read_p50_ms": ms(&plain, 0.5), "samples": lag.len(),
            "skipped": outcome.skipped.load(Ordering::Relaxed)}),
        );
        if rate == 200 {
            report
                .results
                .insert("light_lag_p50_ms", json!(ms(&lag, 0.5)));
            report
                .results
                .insert("light_plain_read_p50_ms", json!(ms(&plain, 0.5)));
            report.rows.push([
                "ack → visible at 200 writes/s: p50 ms; plain read p50".into(),
                format!("{:.2}; plain {:.2}", ms(&lag, 0.5), ms(&plain, 0.5)),
                format!("log floor p50 {floor_p50:.2}"),
                format!("{:.2}× floor", ms(&lag, 0.5) / floor_p50.max(1e-9)),
                "≤ 5 ms embedded, ≤ 3× floor".into(),
            ]);
        }
        if rate == size.rate {
            report.results.insert("lag_p50_ms", json!(ms(&lag, 0.5)));
            report.results.insert("lag_p99_ms", json!(ms(&lag, 0.99)));
            report
                .results
                .insert("plain_read_p50_ms", json!(ms(&plain, 0.5)));
            report.results.insert(
                "consistency_wait_extra_p50_ms",
                json!(ms(&lag, 0.5) - ms(&plain, 0.5)),
            );
            report.results.insert("lag_write_rate", json!(size.rate));
            report.rows.push([
                format!("ack → visible at {} writes/s: p50 / p99 ms", size.rate),
                format!("{:.1} / {:.1}", ms(&lag, 0.5), ms(&lag, 0.99)),
                format!("plain read p50 {:.2}", ms(&plain, 0.5)),
                "—".into(),
                "p99 ≤ 50 ms at 5,000 events/s".into(),
            ]);
        }
    }
    let max_ok = sweep
        .iter()
        .filter(|p| p["lag_p99_ms"].as_f64().is_some_and(|v| v <= 50.0))
        .filter_map(|p| p["rate"].as_u64())
        .max()
        .unwrap_or(0);
    report
        .results
        .insert("max_rate_lag_p99_50ms", json!(max_ok));
    report.results.insert("lag_sweep", json!(sweep));
    report.rows.push([
        "highest write rate with ack → visible p99 ≤ 50 ms (of those run)".into(),
        format!("{max_ok}/s"),
        "—".into(),
        "—".into(),
        "reported".into(),
    ]);
    Ok(())
}

/// The scale-out row (real services only).
async fn scale_out_row(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let Ctx {
        args, size, config, ..
    } = ctx;
    eprintln!("bench: scale-out");
    match scale_out(config, size, args).await? {
        Some((one, two)) => {
            report
                .results
                .insert("scale_out_1_instance_events_per_s", json!(one.round()));
            report
                .results
                .insert("scale_out_2_instances_events_per_s", json!(two.round()));
            report.rows.push(row(
                "projector instances (events/s, 4 partitions): 2 vs 1",
                two,
                one,
                "reported",
            ));
        }
        None => report.rows.push([
            "scale-out (1 vs 2 projector instances)".into(),
            "not run".into(),
            "—".into(),
            "—".into(),
            "needs --kafka-brokers, --mysql-url, --redis-url".into(),
        ]),
    }
    Ok(())
}

/// What a read's consistency wait costs since positions prove which Redis they were recovered on
/// (issue 21): reading the acknowledged ends of every topic through the positions port (one
/// pipeline: the six hashes and `INFO server`, the incarnation compared) against the same
/// pipeline without `INFO` (what it was before), one after the other on one connection each,
/// same run. Real services only.
async fn positions_check(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let Some(url) = ctx.config.redis_url.clone() else {
        report.rows.push([
            "consistency check: acked ends read, µs p50".into(),
            "not run".into(),
            "—".into(),
            "—".into(),
            "needs --redis-url".into(),
        ]);
        return Ok(());
    };
    if url.starts_with(titok_adapters::redis_store::CLUSTER_SCHEME) {
        return Ok(()); // a cluster reads no INFO per read
    }
    let rounds = if ctx.args.quick { 500 } else { 5_000 };
    let mut with_check = histogram();
    for _ in 0..rounds {
        let started = Instant::now();
        ctx.deps
            .positions
            .acked_ends(&titok_events::Topic::ALL)
            .await?;
        with_check.record(started.elapsed().as_micros().max(1) as u64)?;
    }
    let client = redis::Client::open(url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut plain = histogram();
    for _ in 0..rounds {
        let started = Instant::now();
        let mut pipe = redis::pipe();
        for topic in titok_events::Topic::ALL {
            pipe.cmd("HGETALL")
                .arg(format!("{}:acked:{}", ctx.config.namespace, topic.name()));
        }
        let _: Vec<std::collections::HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        plain.record(started.elapsed().as_micros().max(1) as u64)?;
    }
    let (ours, theirs) = (
        with_check.value_at_quantile(0.5) as f64,
        plain.value_at_quantile(0.5) as f64,
    );
    report.results.insert(
        "positions_check_us",
        json!({"with_incarnation_p50": ours, "with_incarnation_p99": with_check.value_at_quantile(0.99),
               "without_p50": theirs, "without_p99": plain.value_at_quantile(0.99), "rounds": rounds}),
    );
    report.rows.push(row(
        "consistency check: acked ends read, µs p50 (with incarnation vs without)",
        ours,
        theirs,
        "reported",
    ));
    Ok(())
}

/// Scenario 6 (real backends only): the same events in Kafka (4 partitions) folded into a fresh
/// MySQL database by one, then by two `titok projectors` processes; events/s of each.
async fn scale_out(
    config: &Config,
    size: &Size,
    args: &BenchArgs,
) -> anyhow::Result<Option<(f64, f64)>> {
    let (Some(url), Some(_), Some(_)) =
        (&config.mysql_url, &config.redis_url, &config.kafka_brokers)
    else {
        return Ok(None);
    };
    let n = (size.likes / 5).max(5_000);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let events: Vec<Envelope> = (0..n)
        .map(|_| {
            let user = USER_BASE + rng.gen_range(0..size.users) as i64;
            let v = rng.gen_range(0..size.videos);
            Envelope::new(
                user,
                EventBody::VideoLiked(Favorite {
                    user_id: user,
                    video_id: VIDEO_BASE + v as i64,
                    author_id: USER_BASE + (v % size.users) as i64,
                }),
            )
        })
        .collect();
    let (base, _) = url
        .rsplit_once('/')
        .context("--mysql-url needs a database")?;
    let mut rates = Vec::new();
    for instances in [1, 2] {
        // Each run has its own topics, consumer groups, database and Redis keys.
        let mut settings = config.kafka_settings().context("kafka")?;
        settings.namespace = format!("{}so{instances}", config.namespace);
        settings.partitions = 4;
        let log = titok_adapters::kafka_log::KafkaLog::connect(settings.clone()).await?;
        for chunk in events.chunks(2000) {
            titok_ports::log::EventLog::append(&log, chunk)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let db_url = format!("{base}/{}", settings.namespace);
        let pool = titok_adapters::store::mysql_any(&db_url, 2).await?;
        let applied = || async {
            let rows: Result<Vec<(String, i64)>, _> = sqlx::query_as(
                "SELECT projection, next_offset FROM projection_offsets WHERE projection = 'favorites'",
            )
            .fetch_all(&pool)
            .await;
            rows.map(|rows| rows.iter().map(|r| r.1).sum::<i64>())
                .unwrap_or(0)
        };
        let started = Instant::now();
        let deadline = started + Duration::from_secs(1800);
        let mut children = Vec::new();
        for i in 0..instances {
            let mut cmd = tokio::process::Command::new(server_binary(&args.server_bin)?);
            cmd.arg("projectors")
                .args(["--listen", "127.0.0.1:0", "--partitions", "4"])
                .args(["--namespace", &settings.namespace])
                .args(["--kafka-brokers", &settings.brokers])
                .args(["--mysql-url", &db_url])
                .args([
                    "--redis-url",
                    config.redis_url.as_deref().unwrap_or_default(),
                ])
                .args([
                    "--token-secret",
                    config.token_secret.as_deref().unwrap_or_default(),
                ])
                .arg("--data-dir")
                .arg(config.data_dir.join(format!("so{instances}-{i}")))
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .kill_on_drop(true);
            children.push(cmd.spawn().context("start a projector process")?);
            // The next instance joins once this one consumes (joining a group together with a
            // member that is still starting is slow on some brokers).
            if i + 1 < instances {
                while applied().await == 0 {
                    anyhow::ensure!(Instant::now() < deadline, "scale-out run did not start");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        while applied().await < n as i64 {
            anyhow::ensure!(Instant::now() < deadline, "scale-out run did not finish");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        rates.push(n as f64 / started.elapsed().as_secs_f64());
        for mut child in children {
            let _ = child.kill().await;
        }
    }
    Ok(Some((rates[0], rates[1])))
}

/// Scenario 7 (real backends and haproxy only): the topology of README "Scaling out" — one, then
/// two instances of each role behind haproxy, each on its own topics, database and keys with the
/// data set loaded — measured through the balancer: feed and ingest requests/s, the CPU split of
/// each phase, and read-after-write probes (a like, then the liker's list) counted stale.
async fn topology_rows(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let config = &ctx.config;
    let missing = if config.mysql_url.is_none()
        || config.redis_url.is_none()
        || config.kafka_brokers.is_none()
    {
        Some("needs --kafka-brokers, --mysql-url, --redis-url")
    } else if !topology::haproxy_available() {
        Some("needs haproxy")
    } else {
        None
    };
    if let Some(why) = missing {
        report.rows.push([
            "scaled topology (2 vs 1 instance of each role, via haproxy)".into(),
            "not run".into(),
            "—".into(),
            "—".into(),
            why.into(),
        ]);
        return Ok(());
    }
    eprintln!("bench: scaled topology, 1 instance of each role");
    let one = run_topology(ctx, 1).await?;
    eprintln!("bench: scaled topology, 2 instances of each role");
    let two = run_topology(ctx, 2).await?;
    for (n, run) in [(1, &one), (2, &two)] {
        eprintln!(
            "bench: {n} of each role — feed CPU: titok {:.0} %, haproxy {:.0} %, services and client {:.0} %; ingest CPU: titok {:.0} %, haproxy {:.0} %, services and client {:.0} %",
            run.feed_cpu.0, run.feed_cpu.1, run.feed_cpu.2, run.ingest_cpu.0, run.ingest_cpu.1, run.ingest_cpu.2
        );
    }
    let as_json = |run: &TopologyRun| {
        json!({"feed": run.feed.json(), "ingest": run.ingest.json(),
               "feed_cpu_percent": {"titok": run.feed_cpu.0, "haproxy": run.feed_cpu.1, "services_and_client": run.feed_cpu.2},
               "ingest_cpu_percent": {"titok": run.ingest_cpu.0, "haproxy": run.ingest_cpu.1, "services_and_client": run.ingest_cpu.2},
               "raw_probes": run.probes, "raw_stale": run.stale})
    };
    report.results.insert("topology_1_of_each", as_json(&one));
    report.results.insert("topology_2_of_each", as_json(&two));
    report.rows.push(row(
        "feed via haproxy (requests/s): 2 vs 1 instance of each role",
        two.feed.rate(),
        one.feed.rate(),
        "reported (2 cores)",
    ));
    report.rows.push(row(
        "ingest via haproxy (requests/s): 2 vs 1 instance of each role",
        two.ingest.rate(),
        one.ingest.rate(),
        "reported (2 cores)",
    ));
    report.rows.push([
        format!(
            "read-after-write via haproxy, 2 of each: stale of {} probes",
            two.probes
        ),
        two.stale.to_string(),
        one.stale.to_string(),
        "—".into(),
        "0".into(),
    ]);
    Ok(())
}

/// One run of the scaled topology.
struct TopologyRun {
    feed: Phase,
    ingest: Phase,
    /// CPU of the phase, % of the machine's busy time: (titok processes, haproxy, the rest).
    feed_cpu: (f64, f64, f64),
    ingest_cpu: (f64, f64, f64),
    probes: usize,
    stale: usize,
}

/// Start `titok <role>` with `args`; its process and the address it listens on.
async fn spawn_role(
    bin: &std::path::Path,
    role: &str,
    args: &[String],
) -> anyhow::Result<(tokio::process::Child, String)> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(bin)
        .arg(role)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start titok {role}"))?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .with_context(|| format!("titok {role} did not start within 60 s"))??
        .with_context(|| format!("titok {role} exited at start"))?;
    let addr = first
        .strip_prefix("listening on http://")
        .with_context(|| format!("unexpected first line {first:?}"))?
        .to_owned();
    Ok((child, addr))
}

/// The CPU split of the time since `before` (per-process ticks, then the machine's busy ticks).
fn cpu_split(pids: &[u32], haproxy: u32, before: &(Vec<u64>, u64, u64)) -> (f64, f64, f64) {
    let titok: u64 = pids
        .iter()
        .map(|p| topology::process_ticks(*p))
        .sum::<u64>();
    let titok = titok.saturating_sub(before.0.iter().sum::<u64>()) as f64;
    let lb = topology::process_ticks(haproxy).saturating_sub(before.1) as f64;
    let busy = (topology::machine_busy_ticks().saturating_sub(before.2) as f64).max(1.0);
    let pct = |x: f64| (x / busy * 1000.0).round() / 10.0;
    (pct(titok), pct(lb), pct((busy - titok - lb).max(0.0)))
}

fn cpu_mark(pids: &[u32], haproxy: u32) -> (Vec<u64>, u64, u64) {
    (
        pids.iter().map(|p| topology::process_ticks(*p)).collect(),
        topology::process_ticks(haproxy),
        topology::machine_busy_ticks(),
    )
}

async fn run_topology(ctx: &Ctx, n: usize) -> anyhow::Result<TopologyRun> {
    let Ctx {
        args,
        size,
        config,
        client,
        viewers,
        ..
    } = ctx;
    let ns = format!("{}tp{n}", config.namespace);
    let mut settings = config.kafka_settings().context("kafka")?;
    settings.namespace = ns.clone();
    let log = titok_adapters::kafka_log::KafkaLog::connect(settings.clone()).await?;
    for chunk in dataset(size, viewers).chunks(2000) {
        titok_ports::log::EventLog::append(&log, chunk)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let mysql = config.mysql_url.as_deref().unwrap_or_default();
    let (base_url, _) = mysql
        .rsplit_once('/')
        .context("--mysql-url needs a database")?;
    let dir = config.data_dir.join(&ns);
    std::fs::create_dir_all(&dir)?;
    let common: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--no-sample",
        "--trusted-proxy",
        "127.0.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--partitions".into(),
        config.partitions.to_string(),
        "--namespace".into(),
        ns.clone(),
        "--kafka-brokers".into(),
        settings.brokers.clone(),
        "--kafka-fetch-wait-ms".into(),
        config.kafka_fetch_wait_ms.to_string(),
        "--kafka-linger-ms".into(),
        config.kafka_linger_ms.to_string(),
        "--mysql-url".into(),
        format!("{base_url}/{ns}"),
        "--redis-url".into(),
        config.redis_url.clone().unwrap_or_default(),
        "--token-secret".into(),
        config.token_secret.clone().unwrap_or_default(),
        "--login-attempts-per-user".into(),
        u32::MAX.to_string(),
        "--login-attempts-per-address".into(),
        u32::MAX.to_string(),
        "--registers-per-address".into(),
        u32::MAX.to_string(),
        "--data-dir".into(),
        dir.display().to_string(),
    ])
    .chain(config.mysql_read_urls.iter().flat_map(|url| {
        let (replica, _) = url.rsplit_once('/').unwrap_or((url, ""));
        ["--mysql-read-url".to_owned(), format!("{replica}/{ns}")]
    }))
    .collect();
    let bin = server_binary(&args.server_bin)?;
    let (mut children, mut commands, mut queries) = (Vec::new(), Vec::new(), Vec::new());
    for role in ["projectors", "command-api", "query-api"] {
        for i in 1..=n {
            let mut role_args = common.clone();
            if role == "command-api" {
                role_args.extend(["--node-id".into(), i.to_string()]);
            }
            let (child, addr) = spawn_role(&bin, role, &role_args).await?;
            match role {
                "command-api" => commands.push(addr),
                "query-api" => queries.push(addr),
                _ => {}
            }
            children.push(child);
        }
    }
    let pids: Vec<u32> = children.iter().filter_map(|c| c.id()).collect();
    let balancer = topology::Balancer::start(&dir, &commands, &queries).await?;
    let base = format!("http://127.0.0.1:{}", balancer.port);
    // `/readyz` is asked of a query API itself: the balancer does not route it.
    let ready_at = format!("http://{}", queries[0]);
    let fans = Arc::new(register_viewers(client, &base, "fan").await?);
    wait_caught_up(client, &ready_at).await?;

    let mark = cpu_mark(&pids, balancer.pid());
    let feed = {
        let (client, url, fans) = (client.clone(), format!("{base}/douyin/feed/"), fans.clone());
        closed_loop(args.concurrency, size.seconds, move |worker, _| {
            let fan = &fans[worker % fans.len()];
            let req = client
                .get(&url)
                .query(&[("token", fan.token.clone())])
                .send();
            async move { ok_envelope(req.await).await }
        })
        .await
    };
    let feed_cpu = cpu_split(&pids, balancer.pid(), &mark);
    let mark = cpu_mark(&pids, balancer.pid());
    let ingest = {
        let (client, url, fans) = (
            client.clone(),
            format!("{base}/douyin/favorite/action/"),
            fans.clone(),
        );
        closed_loop(args.concurrency, size.seconds, move |worker, i| {
            let fan = &fans[worker % fans.len()];
            let (video, action) = ingest_like(worker, i);
            let form = [
                ("token", fan.token.clone()),
                ("video_id", video),
                ("action_type", action),
            ];
            let req = client.post(&url).form(&form).send();
            async move { ok_envelope(req.await).await }
        })
        .await
    };
    let ingest_cpu = cpu_split(&pids, balancer.pid(), &mark);
    wait_caught_up(client, &ready_at).await?;

    // Read-after-write through the balancer: each read may land on another query instance than
    // the last, and follows a write another command instance acknowledged.
    let probes = if args.quick { 100 } else { 500 };
    let mut stale = 0;
    let fan = &fans[0];
    let video = VIDEO_BASE;
    for i in 0..probes {
        let like = i % 2 == 0;
        let acked = client
            .post(format!("{base}/douyin/favorite/action/"))
            .form(&[
                ("token", fan.token.clone()),
                ("video_id", video.to_string()),
                ("action_type", if like { "1" } else { "2" }.into()),
            ])
            .send()
            .await;
        anyhow::ensure!(
            ok_envelope(acked).await,
            "probe {i}: the like was not acknowledged"
        );
        let resp = client
            .get(format!("{base}/douyin/favorite/list/"))
            .query(&[
                ("token", fan.token.clone()),
                ("user_id", fan.id.to_string()),
            ])
            .send()
            .await?;
        let marked = resp.headers().contains_key("x-titok-stale");
        let body: Value = resp.json().await?;
        let listed = body["video_list"]
            .as_array()
            .is_some_and(|l| l.iter().any(|v| v["id"] == video));
        if marked || listed != like {
            stale += 1;
        }
    }
    drop(balancer);
    for mut child in children {
        let _ = child.kill().await;
    }
    Ok(TopologyRun {
        feed,
        ingest,
        feed_cpu,
        ingest_cpu,
        probes,
        stale,
    })
}

/// The `i`-th like/unlike of ingest client `worker` (the same sequence for titok-plus and the
/// direct-write baseline): video id and action type, each as a form value.
fn ingest_like(worker: usize, i: u64) -> (String, String) {
    let video = VIDEO_BASE + ((worker as u64 * 7919 + i) % videos()) as i64;
    let action = if (i / 64) & 1 == 0 { "1" } else { "2" };
    (video.to_string(), action.to_owned())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn row(name: &str, ours: f64, theirs: f64, target: &str) -> [String; 5] {
    [
        name.into(),
        format!("{ours:.0}"),
        format!("{theirs:.0}"),
        format!("{:.2}×", ours / theirs.max(1e-9)),
        target.into(),
    ]
}

fn print_table(rows: &[[String; 5]], backend: &str, machine: &str, size: &Size, events: u64) {
    println!(
        "titok-bench — {} — {backend}",
        chrono::Utc::now().format("%Y-%m-%d")
    );
    println!("machine: {machine}");
    println!(
        "data: {} users, {} videos, {} likes, {} follows ({events} events); {} s per phase",
        size.users, size.videos, size.likes, size.follows, size.seconds
    );
    println!();
    println!("| scenario | titok-plus | baseline | ratio | target |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!("| {} | {} | {} | {} | {} |", r[0], r[1], r[2], r[3], r[4]);
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cpus} cores ({model}), {mem_gib:.0} GiB")
}

/// The generated data set as events: users, videos (newest first in the feed), follows and likes.
fn dataset(size: &Size, viewers: &[Viewer]) -> Vec<Envelope> {
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
static VIDEOS: AtomicU64 = AtomicU64::new(1);
fn videos() -> u64 {
    VIDEOS.load(Ordering::Relaxed).max(1)
}

/// Set every projection's pause lease (0 releases it).
async fn hold_projections(store: &ViewStore, until_ms: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE projection_meta SET paused_until_ms = ?")
        .bind(until_ms)
        .execute(&store.write)
        .await?;
    Ok(())
}

/// Append `events` through the log and time until the projections have applied them; events/s.
async fn timed_projection(
    deps: &titok_projectors::ProjectorDeps,
    client: &reqwest::Client,
    base: &str,
    events: Vec<Envelope>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
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
    wait_caught_up(client, base).await?;
    Ok(events.len() as f64 / started.elapsed().as_secs_f64())
}

async fn wait_caught_up(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/readyz?max_lag=0")).send().await {
            if r.status() == 200 {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("projections did not catch up within an hour")
}

/// The sum of a Prometheus series of the server; an error when `/metrics` does not answer or the
/// series is absent (a missing series must not read as 0).
async fn metric(client: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<f64> {
    let resp = client.get(format!("{base}/metrics")).send().await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "/metrics answered {}",
        resp.status()
    );
    let text = resp.text().await?;
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .collect();
    anyhow::ensure!(!values.is_empty(), "no series {name} in /metrics");
    Ok(values.iter().sum())
}

/// The embedded log's group-commit histogram (`titok_log_group_commit_events`): commits, events
/// and cumulative bucket counts; all zero on Kafka, which has no such series.
#[derive(Default)]
struct GroupCommits {
    commits: f64,
    events: f64,
    buckets: Vec<(String, f64)>,
}

impl GroupCommits {
    fn since(self, before: &GroupCommits) -> GroupCommits {
        GroupCommits {
            commits: self.commits - before.commits,
            events: self.events - before.events,
            buckets: self
                .buckets
                .into_iter()
                .map(|(le, n)| {
                    let was = before
                        .buckets
                        .iter()
                        .find(|(l, _)| *l == le)
                        .map_or(0.0, |(_, n)| *n);
                    (le, n - was)
                })
                .collect(),
        }
    }
}

async fn group_commits(client: &reqwest::Client, base: &str) -> anyhow::Result<GroupCommits> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let mut out = GroupCommits::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("titok_log_group_commit_events") else {
            continue;
        };
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        if rest.starts_with("_count") {
            out.commits = value;
        } else if rest.starts_with("_sum") {
            out.events = value;
        } else if let Some(le) = rest
            .strip_prefix("_bucket{le=\"")
            .and_then(|r| r.split('"').next())
        {
            out.buckets.push((le.to_owned(), value));
        }
    }
    Ok(out)
}

/// Rows per second the view database takes as multi-row inserts (500 rows per statement, 1,000
/// rows per transaction — the projector's batch size), in a scratch table.
async fn raw_insert_rate(store: &ViewStore, rows: usize) -> anyhow::Result<f64> {
    let table = format!("bench_raw_{}", titok_ports::now_ms());
    sqlx::query(&format!("CREATE TABLE {table} (a BIGINT NOT NULL, b BIGINT NOT NULL, c BIGINT NOT NULL, PRIMARY KEY (a, b))"))
        .execute(&store.write)
        .await?;
    let started = Instant::now();
    let mut done = 0;
    while done < rows {
        let mut tx = store.write.begin().await?;
        for _ in 0..2 {
            let mut qb =
                sqlx::QueryBuilder::<sqlx::Any>::new(format!("INSERT INTO {table} (a, b, c) "));
            qb.push_values(done..done + 500, |mut b, i| {
                b.push_bind(i as i64)
                    .push_bind((i * 7) as i64)
                    .push_bind(1_i64);
            });
            qb.build().execute(&mut *tx).await?;
            done += 500;
        }
        tx.commit().await?;
    }
    let rate = done as f64 / started.elapsed().as_secs_f64();
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&store.write)
        .await?;
    Ok(rate)
}

/// Steady writes at `size.rate` for `size.seconds`; meanwhile one client likes and immediately
/// reads its favorite list (the read waits until the like is applied): ack → visible. Returns that
/// and the latency of plain reads with nothing to wait for.
async fn lag_phase(
    client: &reqwest::Client,
    base: &str,
    viewers: &Arc<Vec<Viewer>>,
    size: &Size,
) -> (Histogram<u64>, Histogram<u64>, Arc<LoadOutcome>) {
    let deadline = Instant::now() + Duration::from_secs(size.seconds);
    let outcome = Arc::new(LoadOutcome::default());
    let load = {
        let (client, base, viewers) = (client.clone(), base.to_owned(), viewers.clone());
        let rate = size.rate;
        let outcome = outcome.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let per_tick = (rate / 100).max(1);
            let mut n: u64 = 0;
            let inflight = Arc::new(tokio::sync::Semaphore::new(512));
            while Instant::now() < deadline {
                tick.tick().await;
                for _ in 0..per_tick {
                    n += 1;
                    let Ok(permit) = inflight.clone().try_acquire_owned() else {
                        outcome.skipped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let viewer = &viewers[2 + (n as usize % (viewers.len() - 2))];
                    let form = [
                        ("token", viewer.token.clone()),
                        ("video_id", (VIDEO_BASE + (n % videos()) as i64).to_string()),
                        (
                            "action_type",
                            if (n / 997) & 1 == 0 { "1" } else { "2" }.into(),
                        ),
                    ];
                    let req = client
                        .post(format!("{base}/douyin/favorite/action/"))
                        .form(&form)
                        .send();
                    let outcome = outcome.clone();
                    tokio::spawn(async move {
                        let counter = if ok_envelope(req.await).await {
                            &outcome.acked
                        } else {
                            &outcome.failed
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        drop(permit);
                    });
                }
            }
            // Every request of this phase answered before it counts.
            let _ = inflight.acquire_many(512).await;
        })
    };
    let (mut lag, mut plain) = (histogram(), histogram());
    let (sampler, reader) = (&viewers[0], &viewers[1]);
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let video = (VIDEO_BASE + ((n * 31) % videos()) as i64).to_string();
        let form = [
            ("token", sampler.token.clone()),
            ("video_id", video),
            ("action_type", if n % 2 == 0 { "2" } else { "1" }.into()),
        ];
        let acked = client
            .post(format!("{base}/douyin/favorite/action/"))
            .form(&form)
            .send()
            .await;
        let t0 = Instant::now();
        if !ok_envelope(acked).await {
            continue;
        }
        let read = client
            .get(format!("{base}/douyin/favorite/list/"))
            .query(&[
                ("token", sampler.token.clone()),
                ("user_id", sampler.id.to_string()),
            ])
            .send()
            .await;
        if let Ok(r) = read {
            let stale = r.headers().contains_key("x-titok-stale");
            if r.status().is_success() && !stale {
                let _ = lag.record(t0.elapsed().as_micros().max(1) as u64);
            }
        }
        let t = Instant::now();
        let plain_read = client
            .get(format!("{base}/douyin/favorite/list/"))
            .query(&[
                ("token", reader.token.clone()),
                ("user_id", reader.id.to_string()),
            ])
            .send()
            .await;
        if ok_envelope(plain_read).await {
            let _ = plain.record(t.elapsed().as_micros().max(1) as u64);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = load.await;
    (lag, plain, outcome)
}

/// What the steady write load of a lag phase got: acknowledged, refused or failed, and not sent
/// because 512 requests were already in flight (the server fell behind the rate).
#[derive(Debug, Default)]
struct LoadOutcome {
    acked: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

/// This process's resident memory, MiB (Linux).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The soak: `minutes` one-minute lag phases back to back; a line each; a verdict at the end.
async fn soak(
    client: &reqwest::Client,
    base: &str,
    viewers: &Arc<Vec<Viewer>>,
    size: &Size,
    minutes: u64,
    args: &BenchArgs,
) -> anyhow::Result<()> {
    println!(
        "titok soak — {} — {} min at {} writes/s — {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        minutes,
        size.rate,
        machine()
    );
    println!(
        "| minute | RSS MiB | acked | failed | not sent | lag p50 ms | lag p99 ms | read p50 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut rss = Vec::new();
    let mut worst_p99: f64 = 0.0;
    let mut failures = 0;
    for minute in 1..=minutes {
        let (lag, plain, load) = lag_phase(client, base, viewers, size).await;
        let now = rss_mib();
        rss.push(now);
        let p99 = ms(&lag, 0.99);
        worst_p99 = worst_p99.max(p99);
        let (acked, failed, skipped) = (
            load.acked.load(Ordering::Relaxed),
            load.failed.load(Ordering::Relaxed),
            load.skipped.load(Ordering::Relaxed),
        );
        failures += failed + skipped;
        println!(
            "| {minute} | {now:.0} | {acked} | {failed} | {skipped} | {:.1} | {p99:.1} | {:.2} |",
            ms(&lag, 0.5),
            ms(&plain, 0.5)
        );
    }
    // Memory after the first minute (caches warm) against the last minute.
    let (warm, last) = (
        rss.first().copied().unwrap_or(0.0),
        rss.last().copied().unwrap_or(0.0),
    );
    let growth = last - warm;
    let flat = growth <= (warm * 0.2).max(32.0);
    let bounded = worst_p99 <= args.soak_max_lag_ms;
    println!(
        "memory: {warm:.0} MiB after minute 1, {last:.0} MiB at the end ({growth:+.0} MiB): {}",
        if flat { "flat" } else { "GROWING" }
    );
    println!(
        "lag: worst per-minute p99 {worst_p99:.1} ms (bound {:.0} ms): {}",
        args.soak_max_lag_ms,
        if bounded { "bounded" } else { "EXCEEDED" }
    );
    println!("writes failed or not sent: {failures}");
    anyhow::ensure!(flat, "memory grew by {growth:.0} MiB during the soak");
    anyhow::ensure!(bounded, "lag p99 reached {worst_p99:.1} ms");
    anyhow::ensure!(failures == 0, "{failures} writes failed or were not sent");
    Ok(())
}

/// The baselines, served over HTTP from the same databases like the real endpoints.
struct Baseline {
    base: String,
    shutdown: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct BaselineState {
    direct: AnyPool,
    dialect: Dialect,
    views: ViewStore,
}

impl Baseline {
    async fn start(views: &ViewStore, config: &Config) -> anyhow::Result<Baseline> {
        let (direct, dialect) = match &config.mysql_url {
            Some(url) => (
                titok_adapters::store::mysql_any(url, 32).await?,
                Dialect::MySql,
            ),
            None => {
                // A monolith on SQLite: every like committed with fsync, like the event log.
                let path = config.data_dir.join("direct.db");
                let pool = sqlx::any::AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            use sqlx::Executor;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            Ok(())
                        })
                    })
                    .connect(&format!("sqlite://{}?mode=rwc", path.display()))
                    .await?;
                (pool, Dialect::Sqlite)
            }
        };
        for ddl in [
            "CREATE TABLE IF NOT EXISTS direct_favorites (user_id BIGINT NOT NULL, video_id BIGINT NOT NULL, PRIMARY KEY (user_id, video_id))",
            "CREATE TABLE IF NOT EXISTS direct_video_stats (video_id BIGINT NOT NULL PRIMARY KEY, favorite_count BIGINT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS direct_user_stats (user_id BIGINT NOT NULL PRIMARY KEY, favorite_count BIGINT NOT NULL, total_favorited BIGINT NOT NULL)",
        ] {
            sqlx::query(ddl).execute(&direct).await?;
        }
        let state = BaselineState {
            direct,
            dialect,
            views: views.clone(),
        };
        let app = Router::new()
            .route("/direct/like", post(direct_like))
            .route("/sequential/feed", get(sequential_feed))
            .route("/sql/chat", get(sql_chat))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (shutdown, stop) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await;
        });
        Ok(Baseline {
            base,
            shutdown,
            server,
        })
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.server.await;
    }
}

fn envelope(result: Result<Value, sqlx::Error>) -> Json<Value> {
    Json(match result {
        Ok(mut v) => {
            v["status_code"] = json!(0);
            v
        }
        Err(e) => json!({"status_code": 1, "status_msg": e.to_string()}),
    })
}

#[derive(Deserialize)]
struct LikeForm {
    user_id: i64,
    video_id: i64,
    action_type: i64,
}

/// What a monolith does per like before replying: look up the author, then in one transaction
/// insert/delete the like and update three counters.
async fn direct_like(State(s): State<BaselineState>, Form(f): Form<LikeForm>) -> Json<Value> {
    envelope(
        async {
            let (author,): (i64,) = sqlx::query_as("SELECT author_id FROM videos WHERE id = ?")
                .bind(f.video_id)
                .fetch_one(&s.views.read)
                .await?;
            let mut tx = s.direct.begin().await?;
            let sql = if f.action_type == 1 {
                format!(
                    "{} INTO direct_favorites (user_id, video_id) VALUES (?, ?)",
                    s.dialect.insert_ignore()
                )
            } else {
                "DELETE FROM direct_favorites WHERE user_id = ? AND video_id = ?".to_owned()
            };
            let changed = sqlx::query(&sql)
            .bind(f.user_id)
            .bind(f.video_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 {
                let delta: i64 = if f.action_type == 1 { 1 } else { -1 };
                sqlx::query(&format!(
                    "INSERT INTO direct_video_stats (video_id, favorite_count) VALUES (?, ?) {} favorite_count = favorite_count + {}",
                    s.dialect.on_conflict_update("video_id"),
                    s.dialect.new_value("favorite_count")
                ))
                .bind(f.video_id)
                .bind(delta)
                .execute(&mut *tx)
                .await?;
                for (user, fav, total) in [(f.user_id, delta, 0), (author, 0, delta)] {
                    sqlx::query(&format!(
                        "INSERT INTO direct_user_stats (user_id, favorite_count, total_favorited) VALUES (?, ?, ?) {} \
                         favorite_count = favorite_count + {}, total_favorited = total_favorited + {}",
                        s.dialect.on_conflict_update("user_id"),
                        s.dialect.new_value("favorite_count"),
                        s.dialect.new_value("total_favorited")
                    ))
                    .bind(user)
                    .bind(fav)
                    .bind(total)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(json!({}))
        }
        .await,
    )
}

#[derive(Deserialize)]
struct Viewed {
    user_id: i64,
}

/// The seed monolith's feed: the page, then for each video in turn its author, the author's
/// counts, the video's counts, is_favorite and is_follow — one query at a time.
async fn sequential_feed(State(s): State<BaselineState>, Query(q): Query<Viewed>) -> Json<Value> {
    let db = &s.views.read;
    envelope(
        async {
            let page: Vec<(i64, i64, String, i64)> = sqlx::query_as(
                "SELECT id, author_id, title, published_ms FROM videos ORDER BY published_ms DESC, id DESC LIMIT 30",
            )
            .fetch_all(db)
            .await?;
            let mut list = Vec::new();
            for (id, author, title, published) in page {
                let name: Option<(String,)> = sqlx::query_as("SELECT name FROM users WHERE id = ?").bind(author).fetch_optional(db).await?;
                let user: Option<(i64, i64, i64, i64, i64)> = sqlx::query_as(
                    "SELECT follow_count, follower_count, total_favorited, work_count, favorite_count FROM user_stats WHERE user_id = ?",
                )
                .bind(author)
                .fetch_optional(db)
                .await?;
                let video: Option<(i64, i64)> = sqlx::query_as("SELECT favorite_count, comment_count FROM video_stats WHERE video_id = ?")
                    .bind(id)
                    .fetch_optional(db)
                    .await?;
                let liked: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM favorites WHERE user_id = ? AND video_id = ?")
                    .bind(q.user_id)
                    .bind(id)
                    .fetch_optional(db)
                    .await?;
                let follows: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM follows WHERE follower_id = ? AND followee_id = ?")
                    .bind(q.user_id)
                    .bind(author)
                    .fetch_optional(db)
                    .await?;
                list.push(json!({"id": id, "title": title, "published": published,
                    "author": {"id": author, "name": name.map(|n| n.0), "counts": user.map(|u| [u.0, u.1, u.2, u.3, u.4]), "is_follow": follows.is_some()},
                    "counts": video.map(|v| [v.0, v.1]), "is_favorite": liked.is_some()}));
            }
            Ok(json!({"video_list": list}))
        }
        .await,
    )
}

#[derive(Deserialize)]
struct ChatQuery {
    user_id: i64,
    to_user_id: i64,
    pre_msg_time: i64,
}

/// Polling without the shortcut: the messages query on every poll.
async fn sql_chat(State(s): State<BaselineState>, Query(q): Query<ChatQuery>) -> Json<Value> {
    let (lo, hi) = (q.user_id.min(q.to_user_id), q.user_id.max(q.to_user_id));
    envelope(
        async {
            let rows: Vec<(i64, i64, i64, String, i64)> = sqlx::query_as(
                "SELECT id, from_user_id, to_user_id, content, created_ms FROM messages \
                 WHERE pair_lo = ? AND pair_hi = ? AND created_ms > ? ORDER BY created_ms, id",
            )
            .bind(lo)
            .bind(hi)
            .bind(q.pre_msg_time)
            .fetch_all(&s.views.read)
            .await?;
            Ok(json!({"message_list": rows.len()}))
        }
        .await,
    )
}

/// `titok-bench`'s command line: the server's configuration flags (backends, namespace, …) and
/// the bench's own.
#[derive(Debug, clap::Parser)]
#[command(
    name = "titok-bench",
    version,
    about = "Measure titok-plus against its baselines (starts its own system in a scratch dir)"
)]
pub struct BenchCli {
    #[command(flatten)]
    pub config: Config,
    #[command(flatten)]
    pub args: BenchArgs,
}

/// Parse the command line, set up logging and run the bench (or the soak).
pub async fn main_entry() -> anyhow::Result<()> {
    let cli = <BenchCli as clap::Parser>::parse();
    // The bench measures the request path: one log line per request would be part of it.
    titok::init_tracing(cli.config.log_json, "warn,titok_projectors::rebuild=info");
    run(cli.args, cli.config).await
}
