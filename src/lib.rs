//! # titok
//!
//! The launcher of titok-plus. `titok` (= `titok serve`) runs the command API, the query API and
//! the projectors in one process on the embedded default: event log, views and accounts in SQLite
//! files under `--data-dir`, counters in process, uploads on local disk.
//!
//! [`Config`] is the CLI/environment contract (every flag has an environment variable); [`start`] wires the ports, checks the
//! projection versions, spawns the projections, seeds sample content, binds the listener and
//! returns a [`Running`] server. The other subcommands: [`tap`] (read the log), [`rebuild`]
//! (rebuild views while serving) and [`bench`] (measure against baselines).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use axum::Router;
use clap::{Parser, Subcommand};
use titok_adapters::blobs::LocalBlobs;
use titok_command_api::CommandState;
use titok_ports::blobs::BlobStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The sample video shipped with the binary (1 s, 160×120 H.264 MP4).
pub const SAMPLE_VIDEO: &[u8] = include_bytes!("../assets/sample.mp4");
/// The web demo client served at `/` (no CDN; everything is in this one file).
pub const DEMO_PAGE: &str = include_str!("../web/index.html");
/// Username of the sample content's account.
pub const DEMO_USERNAME: &str = "titok-demo";

mod backends;
pub mod bench;
mod bench_fold;
pub mod parked;
pub use backends::Backends;
mod progress;
mod readiness;
pub mod rebuild;
pub mod tap;

#[derive(Debug, Parser)]
#[command(
    name = "titok",
    version,
    about = "titok-plus: an event-sourced Douyin-compatible backend"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the command API, query API and projectors in one process (the default).
    Serve,
    /// Run only the write endpoints (needs --kafka-brokers, --mysql-url, --redis-url).
    CommandApi,
    /// Run only the read endpoints and /static (needs --kafka-brokers, --mysql-url, --redis-url).
    QueryApi,
    /// Run only the projections (needs --kafka-brokers, --mysql-url, --redis-url).
    Projectors,
    /// Stream events from the log as JSON lines (read-only, own consumer group).
    Tap(tap::TapArgs),
    /// Rebuild views from the log into fresh tables and swap them in, while the system serves.
    Rebuild(rebuild::RebuildArgs),
    /// Show, retry or drop the records projections could not apply (poison events).
    Parked(parked::ParkedArgs),
    /// Measure the architecture against its baselines (starts its own system in a scratch dir).
    Bench(bench::BenchArgs),
}

/// A process role: what a serving process runs. Kept apart from the tool subcommands (`tap`,
/// `rebuild`, `parked`, `bench`), which run and exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Command API, query API and projectors in one process.
    All,
    CommandApi,
    QueryApi,
    Projectors,
}

impl Role {
    fn runs_commands(self) -> bool {
        matches!(self, Role::All | Role::CommandApi)
    }

    fn runs_queries(self) -> bool {
        matches!(self, Role::All | Role::QueryApi)
    }

    fn runs_projectors(self) -> bool {
        matches!(self, Role::All | Role::Projectors)
    }
}

/// Settings, each with an environment variable equivalent.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(
        long,
        env = "TITOK_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,
    /// Directory for the embedded log, views, accounts, uploads and the token secret.
    #[arg(long, env = "TITOK_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// Base of the absolute play/cover URLs in replies (default: http://<listen address>).
    #[arg(long, env = "TITOK_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Partitions per topic of the embedded log (fixed when the log is created).
    #[arg(long, env = "TITOK_PARTITIONS", default_value_t = 4, global = true)]
    pub partitions: u32,
    /// Do not load the sample account and video into an empty store.
    #[arg(long, env = "TITOK_NO_SAMPLE", global = true)]
    pub no_sample: bool,
    /// Largest accepted video upload, MiB.
    #[arg(long, env = "TITOK_MAX_UPLOAD_MB", default_value_t = 64, global = true)]
    pub max_upload_mb: usize,
    /// How long a read waits for the views to reflect acknowledged writes before answering stale.
    #[arg(
        long,
        env = "TITOK_CONSISTENCY_TIMEOUT_MS",
        default_value_t = 2000,
        global = true
    )]
    pub consistency_timeout_ms: u64,
    /// Token lifetime, hours.
    #[arg(
        long,
        env = "TITOK_TOKEN_TTL_HOURS",
        default_value_t = 720,
        global = true
    )]
    pub token_ttl_hours: u64,
    /// This instance's id for id generation (0–15, unique per running command API).
    #[arg(long, env = "TITOK_NODE_ID", default_value_t = 0, global = true)]
    pub node_id: u8,
    /// MySQL/MariaDB URL for accounts and views (e.g. mysql://user:pass@host:3306/titok);
    /// the database is created if missing. Default: SQLite files in the data dir.
    #[arg(long, env = "TITOK_MYSQL_URL", global = true)]
    pub mysql_url: Option<String>,
    /// Prefix of Kafka topics and consumer groups and of Redis keys, so several deployments (or
    /// test runs) can share brokers and a Redis.
    #[arg(long, env = "TITOK_NAMESPACE", default_value = "titok", global = true)]
    pub namespace: String,
    /// Secret that signs tokens (at least 32 bytes). Required with Kafka/MySQL/Redis; the embedded
    /// default generates one into the data dir.
    #[arg(
        long,
        env = "TITOK_TOKEN_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub token_secret: Option<String>,
    /// Login attempts allowed per username per minute (then HTTP 429).
    #[arg(
        long,
        env = "TITOK_LOGIN_ATTEMPTS_PER_USER",
        default_value_t = 10,
        global = true
    )]
    pub login_attempts_per_user: u32,
    /// Login attempts allowed per client address per minute (then HTTP 429).
    #[arg(
        long,
        env = "TITOK_LOGIN_ATTEMPTS_PER_ADDRESS",
        default_value_t = 60,
        global = true
    )]
    pub login_attempts_per_address: u32,
    /// `/readyz` answers 503 while the projections are more than this many events behind.
    #[arg(
        long,
        env = "TITOK_READY_MAX_LAG",
        default_value_t = 1000,
        global = true
    )]
    pub ready_max_lag: i64,
    /// Kafka bootstrap servers (host:port,…); switches the event log from the embedded one to Kafka.
    #[arg(long, env = "TITOK_KAFKA_BROKERS", global = true)]
    pub kafka_brokers: Option<String>,
    /// Replication factor of the topics titok creates.
    #[arg(
        long,
        env = "TITOK_KAFKA_REPLICATION",
        default_value_t = 1,
        global = true
    )]
    pub kafka_replication: i32,
    /// Consumer-group session timeout: how fast a dead projector's partitions move to another.
    #[arg(
        long,
        env = "TITOK_KAFKA_SESSION_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub kafka_session_timeout_ms: u32,
    /// Longest a projection's fetch waits at the broker when idle (bounds lag on brokers that
    /// answer fetches only at the end of the wait).
    #[arg(
        long,
        env = "TITOK_KAFKA_FETCH_WAIT_MS",
        default_value_t = 10,
        global = true
    )]
    pub kafka_fetch_wait_ms: u32,
    /// Use Kafka's idempotent producer (default true). tansu 0.6 crashes on an idempotent
    /// producer that outlives a broker restart, so the broker-outage test turns it off.
    #[arg(long, env = "TITOK_KAFKA_IDEMPOTENCE", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub kafka_idempotence: bool,
    /// Redis URL for the counter cache, the chat-poll shortcut and shared log positions.
    #[arg(long, env = "TITOK_REDIS_URL", global = true)]
    pub redis_url: Option<String>,
    /// At start-up, when a stored view is older than this binary's projection: rebuild it from
    /// the log before serving, or refuse to start.
    #[arg(
        long,
        env = "TITOK_STALE_VIEWS",
        value_enum,
        default_value = "rebuild",
        global = true
    )]
    pub stale_views: StaleViewsArg,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "TITOK_LOG_JSON", global = true)]
    pub log_json: bool,
}

/// `--stale-views`: what to do at start-up when a stored view is older than this binary's
/// projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StaleViewsArg {
    /// Rebuild the view from the log before serving.
    Rebuild,
    /// Refuse to start; the operator runs `titok rebuild`.
    Refuse,
}

impl From<StaleViewsArg> for titok_projectors::rebuild::StaleViews {
    fn from(arg: StaleViewsArg) -> Self {
        match arg {
            StaleViewsArg::Rebuild => titok_projectors::rebuild::StaleViews::Rebuild,
            StaleViewsArg::Refuse => titok_projectors::rebuild::StaleViews::Refuse,
        }
    }
}

impl Config {
    /// The Kafka settings, when `--kafka-brokers` is given.
    pub fn kafka_settings(&self) -> Option<titok_adapters::kafka_log::KafkaSettings> {
        self.kafka_brokers
            .as_ref()
            .map(|brokers| titok_adapters::kafka_log::KafkaSettings {
                brokers: brokers.clone(),
                namespace: self.namespace.clone(),
                partitions: self.partitions,
                replication: self.kafka_replication,
                session_timeout_ms: self.kafka_session_timeout_ms,
                fetch_wait_ms: self.kafka_fetch_wait_ms,
                idempotence: self.kafka_idempotence,
            })
    }
}

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    /// The ports the projections use (the bench loads and rebuilds through them).
    pub deps: titok_projectors::ProjectorDeps,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    projectors: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stop accepting, finish in-flight requests, let projections finish their batch.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.server.await??;
        for p in self.projectors {
            p.await?;
        }
        Ok(())
    }

    /// Run until SIGINT/SIGTERM, then stop gracefully.
    pub async fn until_signalled(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.stop().await
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Open the adapters, start what `role` runs (projections, command and/or query endpoints) and
/// the HTTP server.
pub async fn start(role: Role, config: Config) -> anyhow::Result<Running> {
    let data = &config.data_dir;
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create data dir {}", data.display()))?;
    titok_web::telemetry::prometheus();
    let backends = Backends::open(&config, role).await?;
    titok_projectors::rebuild::prepare(
        &backends.projector_deps(&config),
        config.stale_views.into(),
        role.runs_projectors(),
        &progress::for_rebuild,
    )
    .await?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let projectors = if role.runs_projectors() {
        titok_projectors::spawn_all(backends.projector_deps(&config), shutdown_rx.clone()).await?
    } else {
        Vec::new()
    };

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let query = backends.query_state(&config, &public_url);
    let mut app = Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/readyz",
            axum::routing::get(readiness::readyz).with_state(readiness::Readiness {
                log: backends.log.clone(),
                store: backends.store.clone(),
                positions: backends.positions.clone(),
                max_lag: config.ready_max_lag,
            }),
        );
    if role.runs_commands() {
        let command = backends.command_state(&config, query.clone());
        titok_command_api::recover_pending_registrations(&command).await?;
        if !config.no_sample {
            seed_sample(&command, data).await?;
        }
        app = app.merge(titok_command_api::router(command));
    }
    if role.runs_queries() {
        write_static_images(&backends.blobs).await?;
        app = app.route(
            "/",
            axum::routing::get(|| async { axum::response::Html(DEMO_PAGE) }),
        );
        app = app.merge(titok_query_api::router(query));
    }
    let mut documented = Vec::new();
    if role.runs_commands() {
        documented.extend(titok_command_api::endpoints());
    }
    if role.runs_queries() {
        documented.extend(titok_query_api::endpoints());
    }
    let openapi = std::sync::Arc::new(titok_web::openapi::document(&documented));
    app = app.route(
        "/openapi.json",
        axum::routing::get(move || async move { axum::Json((*openapi).clone()) }),
    );
    if role.runs_commands() || role.runs_queries() {
        app = app.nest_service(
            "/static",
            tower_http::services::ServeDir::new(backends.blobs.root()),
        );
    }
    let pools = [
        ("read", backends.store.read.clone()),
        ("write", backends.store.write.clone()),
    ];
    let metrics = move || {
        let pools = pools.clone();
        async move {
            for (name, pool) in &pools {
                titok_adapters::store::record_pool(name, pool);
            }
            titok_web::telemetry::prometheus().render()
        }
    };
    let app = app
        .route("/metrics", axum::routing::get(metrics))
        .fallback(titok_web::http::unknown_path)
        .method_not_allowed_fallback(titok_web::http::unsupported_method)
        .layer(axum::middleware::from_fn(titok_web::telemetry::observe));
    let mut stop = shutdown_rx;
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
    });
    tracing::info!(?role, %addr, public_url, data_dir = %data.display(), "titok-plus running");
    Ok(Running {
        addr,
        deps: backends.projector_deps(&config),
        shutdown,
        server,
        projectors,
    })
}

/// Default avatar and background images, served at `/static/avatar.png` and `/static/background.png`.
async fn write_static_images(blobs: &LocalBlobs) -> anyhow::Result<()> {
    for (name, w, h, seed) in [("avatar.png", 96, 96, 11), ("background.png", 480, 270, 5)] {
        if !blobs.local_path(name).exists() {
            blobs
                .put(name, &titok_command_api::media::placeholder_png(w, h, seed))
                .await?;
        }
    }
    Ok(())
}

/// Load a demo account with one sample video when the store has no accounts at all.
async fn seed_sample(command: &CommandState, data_dir: &std::path::Path) -> anyhow::Result<()> {
    if command.accounts.count().await? > 0 {
        return Ok(());
    }
    let password: String = {
        use rand::Rng;
        rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(16)
            .map(char::from)
            .collect()
    };
    let (user_id, _) = titok_command_api::register_user(command, DEMO_USERNAME, &password)
        .await
        .map_err(|e| anyhow::anyhow!("cannot register the demo account: {e}"))?;
    titok_command_api::publish_video(command, user_id, "Welcome to titok-plus", SAMPLE_VIDEO)
        .await
        .map_err(|e| anyhow::anyhow!("cannot publish the sample video: {e}"))?;
    // The password goes to a file readable by the operator, never into the logs.
    let file = data_dir.join("demo-credentials.txt");
    std::fs::write(
        &file,
        format!("username: {DEMO_USERNAME}\npassword: {password}\n"),
    )?;
    tracing::info!(username = DEMO_USERNAME, credentials = %file.display(), "sample content loaded (disable with --no-sample)");
    Ok(())
}

/// Set up tracing to stderr: text, or JSON lines with `--log-json`. `RUST_LOG` filters.
pub fn init_tracing(json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The whole CLI: parse, start, print the address, run until signalled.
pub async fn main_entry() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The bench measures the request path: one log line per request would be part of it.
    let default_filter = match cli.command {
        Some(Command::Bench(_)) => "warn,titok_projectors::rebuild=info",
        _ => "info,sqlx=warn,tower_http=warn",
    };
    init_tracing(cli.config.log_json, default_filter);
    let role = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => Role::All,
        Command::CommandApi => Role::CommandApi,
        Command::QueryApi => Role::QueryApi,
        Command::Projectors => Role::Projectors,
        Command::Tap(args) => return tap::run(args, cli.config).await,
        Command::Rebuild(args) => return rebuild::run(args, cli.config).await,
        Command::Parked(args) => return parked::run(args, cli.config).await,
        Command::Bench(args) => return bench::run(args, cli.config).await,
    };
    let running = start(role, cli.config).await?;
    // The first line on stdout is the address: scripts and the test harness read it.
    println!("listening on http://{}", running.addr);
    running.until_signalled().await
}
