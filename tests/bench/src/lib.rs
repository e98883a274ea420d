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
//! One concern per file: what it shares with the black-box suites (launching the binary, haproxy
//! and the topologies, the Prometheus parser) is the test kit's (`tests/kit`, `titok-kit`).
//!
//! | file | what |
//! |---|---|
//! | `lib.rs` | the command line and [`run`]: the scenarios in order |
//! | `context.rs` | what every scenario needs: the running system, the binary, `/metrics` |
//! | `dataset.rs` | the data set: size, events, accounts, loading it through the log |
//! | `load.rs` | the load generators: closed loop, open loop, steady writes with probes |
//! | `baseline.rs` | the baseline server: one transaction per like, a query at a time |
//! | `scenarios/` | one module per scenario (projection … media) |
//! | `fold.rs` | the projection scenarios' measurements of the database and the log |
//! | `report.rs` | the table's rows and the typed JSON report |
//! | `soak.rs` | `--soak`: minutes of steady writes and a verdict |

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use titok::{Config, Role};

mod baseline;
mod context;
mod dataset;
pub mod fold;
mod load;
mod report;
mod scenarios;
mod soak;
mod wrk;

use baseline::Baseline;
use context::{machine, Ctx};
use dataset::{load, register_viewers, Size, VIDEOS};
use report::{print_table, Dataset, Report};
use scenarios::{
    ceiling, chat, feed, hot_key, ingest, lag, media, positions_check, projection, scale_out_row,
    stream, topology_rows,
};
use soak::soak;

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
    stream(&ctx, &mut report).await?;
    positions_check(&ctx, &mut report).await?;
    scale_out_row(&ctx, &mut report).await?;
    topology_rows(&ctx, &mut report).await?;
    media(&ctx, &mut report).await?;

    let machine = machine();
    report.results.machine = Some(machine.clone());
    report.results.backend = Some(backend.to_owned());
    report.results.date = Some(chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string());
    report.results.dataset = Some(Dataset {
        users: ctx.size.users,
        videos: ctx.size.videos,
        likes: ctx.size.likes,
        follows: ctx.size.follows,
        events: loaded.events,
        phase_seconds: ctx.size.seconds,
        concurrency: ctx.args.concurrency,
    });
    print_table(&report.rows, backend, &machine, &ctx.size, loaded.events);
    if let Some(path) = &ctx.args.json {
        std::fs::write(path, report.json()?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    baseline.stop().await;
    running.stop().await?;
    Ok(())
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
