//! The command line: subcommands, process roles and the configuration (every flag has an
//! environment variable), logging set-up, and the entry point that dispatches to a role or a tool.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{parked, rebuild, start, tap};

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
}

/// A process role: what a serving process runs. Kept apart from the tool subcommands (`tap`,
/// `rebuild`, `parked`), which run and exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Command API, query API and projectors in one process.
    All,
    CommandApi,
    QueryApi,
    Projectors,
}

impl Role {
    pub(crate) fn runs_commands(self) -> bool {
        matches!(self, Role::All | Role::CommandApi)
    }

    pub(crate) fn runs_queries(self) -> bool {
        matches!(self, Role::All | Role::QueryApi)
    }

    pub(crate) fn runs_projectors(self) -> bool {
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
    /// Where uploaded videos and covers are stored: `s3://BUCKET[/PREFIX]` (endpoint, region and
    /// credentials from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_ALLOW_HTTP) or a directory (default: `<data dir>/blobs`).
    #[arg(long, env = "TITOK_BLOB_STORE", global = true)]
    pub blob_store: Option<String>,
    /// Base of play/cover URLs when media is served by a CDN or a public bucket (e.g.
    /// `https://cdn.example/titok`; an object `videos/1.mp4` is `<media url>/videos/1.mp4`).
    /// Default: the query API streams objects from the store at `<public url>/static/`.
    #[arg(long, env = "TITOK_MEDIA_URL", global = true)]
    pub media_url: Option<String>,
    /// Answer `/static/…` with a redirect (307) to a presigned GET URL of the S3 object, valid this
    /// many seconds, so that clients fetch (and seek in) videos straight from the bucket. S3 only.
    #[arg(
        long,
        env = "TITOK_MEDIA_PRESIGN_SECS",
        global = true,
        value_parser = clap::value_parser!(u64).range(60..=604_800)
    )]
    pub media_presign_secs: Option<u64>,
    /// The ffmpeg that takes each video's first frame as its cover (a name on PATH or a path;
    /// `off`: none). Without one that runs, covers are generated placeholders.
    #[arg(long, env = "TITOK_FFMPEG", default_value = "ffmpeg", global = true)]
    pub ffmpeg: String,
    /// How often a projector process sweeps the blob store for orphaned uploads (objects no
    /// published video points at, left by a crash between storing an upload and appending its
    /// event), in seconds; 0 turns the sweep off.
    #[arg(
        long,
        env = "TITOK_ORPHAN_SWEEP_SECS",
        default_value_t = 3600,
        global = true
    )]
    pub orphan_sweep_secs: u64,
    /// How old an orphaned upload must be before the sweep removes it, in seconds (a publish
    /// appends its event right after its upload is stored: keep this well above a request's
    /// lifetime).
    #[arg(
        long,
        env = "TITOK_ORPHAN_AGE_SECS",
        default_value_t = 86_400,
        global = true,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub orphan_age_secs: u64,
    /// Uploads this process receives at once; more are refused with 503 until one ends.
    #[arg(long, env = "TITOK_MAX_UPLOADS", default_value_t = 16, global = true)]
    pub max_uploads: usize,
    /// Uploads one user sends at once (when the token comes before the video in the form, or in
    /// the query string); more are refused with 429.
    #[arg(
        long,
        env = "TITOK_MAX_UPLOADS_PER_USER",
        default_value_t = 2,
        global = true
    )]
    pub max_uploads_per_user: usize,
    /// Partitions per topic of the embedded log (fixed when the log is created).
    #[arg(long, env = "TITOK_PARTITIONS", default_value_t = 4, global = true)]
    pub partitions: u32,
    /// Do not load the sample account and video into an empty store.
    #[arg(long, env = "TITOK_NO_SAMPLE", global = true)]
    pub no_sample: bool,
    /// Serve `/bench/noop` (token check, empty reply) through the same router, middleware and
    /// parameter parsing as the API: the benchmark's ceiling. Off unless the bench sets it.
    #[arg(long, hide = true, global = true)]
    pub bench_ceiling: bool,
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
    #[arg(long, env = "TITOK_NODE_ID", default_value_t = 0, global = true,
          value_parser = clap::value_parser!(u8).range(0..=titok_events::MAX_NODE_ID as i64))]
    pub node_id: u8,
    /// MySQL/MariaDB URL for accounts and views (e.g. mysql://user:pass@host:3306/titok);
    /// the database is created if missing. Default: SQLite files in the data dir.
    #[arg(long, env = "TITOK_MYSQL_URL", global = true)]
    pub mysql_url: Option<String>,
    /// A MySQL/MariaDB read replica of --mysql-url's database (repeatable, or comma-separated in
    /// the variable). The query API reads from a replica that already shows every write the read
    /// must see, else from the primary; writes, accounts and projections stay on the primary.
    #[arg(
        long = "mysql-read-url",
        env = "TITOK_MYSQL_READ_URLS",
        value_delimiter = ',',
        global = true
    )]
    pub mysql_read_urls: Vec<String>,
    /// Longest a read waits for a read replica to catch up before reading the primary instead.
    #[arg(
        long,
        env = "TITOK_REPLICA_WAIT_MS",
        default_value_t = 100,
        global = true
    )]
    pub replica_wait_ms: u64,
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
    /// Sign-ups allowed per client address per hour (then HTTP 429); shared by every instance
    /// with Redis, like the login quotas.
    #[arg(
        long,
        env = "TITOK_REGISTERS_PER_ADDRESS",
        default_value_t = titok_command_api::limits::DEFAULT_REGISTERS_PER_HOUR,
        global = true
    )]
    pub registers_per_address: u32,
    /// A load balancer's address or network (repeatable, or comma-separated in the variable):
    /// requests from it are attributed to the client its `X-Forwarded-For` names (login limits
    /// per address).
    #[arg(
        long = "trusted-proxy",
        env = "TITOK_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_proxies: Vec<titok_command_api::limits::TrustedProxy>,
    /// Serve `/metrics` and `/readyz` (and `/healthz`) on this address instead of the public one,
    /// so that a balancer in front of the public address never exposes them.
    #[arg(long, env = "TITOK_ADMIN_LISTEN", global = true)]
    pub admin_listen: Option<std::net::SocketAddr>,
    /// `/readyz` answers 503 while the projections are more than this many events behind.
    #[arg(
        long,
        env = "TITOK_READY_MAX_LAG",
        default_value_t = 1000,
        global = true
    )]
    pub ready_max_lag: i64,
    /// Run projections and rebuilds even when the Kafka topics' settings delete events
    /// (`retention.ms`/`retention.bytes` not -1, or compaction): only for deployments that
    /// archive the log elsewhere and never rebuild views from this one.
    #[arg(long, env = "TITOK_ALLOW_LOG_RETENTION", global = true)]
    pub allow_log_retention: bool,
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
    /// The producer's `linger.ms`: how long an append may wait for others to share its batch
    /// (higher: fewer, larger produce requests; each acknowledgement later by up to this much).
    #[arg(
        long,
        env = "TITOK_KAFKA_LINGER_MS",
        default_value_t = 5,
        global = true
    )]
    pub kafka_linger_ms: u32,
    /// Use Kafka's idempotent producer (default true). tansu 0.6 crashes on an idempotent
    /// producer that outlives a broker restart, so the broker-outage test turns it off.
    #[arg(long, env = "TITOK_KAFKA_IDEMPOTENCE", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub kafka_idempotence: bool,
    /// Redis URL for the counter cache, the chat-poll shortcut, shared log positions and login
    /// limits: `redis://host:port`, or a Redis Cluster as `redis+cluster://host:port,host:port,…`.
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
                linger_ms: self.kafka_linger_ms,
            })
    }
}

/// Set up tracing to stderr: text, or JSON lines with `--log-json`. `RUST_LOG` filters.
pub fn init_tracing(json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A log line that cannot be written (stderr redirected to a full disk) is dropped. With
    // internal-error logging on, tracing-subscriber reports it with `eprintln!`, which panics
    // when stderr fails too: the request being served died without a reply (found by the
    // disk-full test).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The whole CLI: parse, start, print the address, run until signalled.
pub async fn main_entry() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.config.log_json, "info,sqlx=warn");
    // Test builds only: fault points from the FAILPOINTS variable (e.g.
    // `rebuild::before_swap_ms=return(4000)`), kept for the life of the process.
    #[cfg(feature = "failpoints")]
    std::mem::forget(fail::FailScenario::setup());
    let role = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => Role::All,
        Command::CommandApi => Role::CommandApi,
        Command::QueryApi => Role::QueryApi,
        Command::Projectors => Role::Projectors,
        Command::Tap(args) => return tap::run(args, cli.config).await,
        Command::Rebuild(args) => return rebuild::run(args, cli.config).await,
        Command::Parked(args) => return parked::run(args, cli.config).await,
    };
    let running = start(role, cli.config).await?;
    // The first line on stdout is the address: scripts and the test harness read it.
    println!("listening on http://{}", running.addr);
    running.until_signalled().await
}
