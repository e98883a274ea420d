//! [`Config`]: every setting of a titok process, each a flag with an environment variable,
//! grouped under help headings; which of them each subcommand accepts after its name
//! ([`shared_flags`]); and `--stale-views`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// The help heading of every [`Config`] flag (by id, the field name), in the order `--help` shows
/// them: the groups in one place instead of on each flag.
pub(crate) const HEADINGS: &[(&str, &[&str])] = &[
    (
        "General",
        &[
            "data_dir",
            "namespace",
            "token_secret",
            "token_ttl_hours",
            "node_id",
            "no_sample",
            "log_json",
        ],
    ),
    (
        "HTTP",
        &["listen", "public_url", "admin_listen", "trusted_proxies"],
    ),
    (
        "Event log (embedded or Kafka)",
        &[
            "partitions",
            "kafka_brokers",
            "kafka_replication",
            "kafka_session_timeout_ms",
            "kafka_fetch_wait_ms",
            "kafka_linger_ms",
            "kafka_idempotence",
            "allow_log_retention",
        ],
    ),
    (
        "MySQL",
        &["mysql_url", "mysql_read_urls", "replica_wait_ms"],
    ),
    ("Redis", &["redis_url"]),
    (
        "Media",
        &[
            "blob_store",
            "media_url",
            "media_presign_secs",
            "ffmpeg",
            "orphan_sweep_secs",
            "orphan_age_secs",
        ],
    ),
    (
        "Limits",
        &[
            "max_upload_mb",
            "max_uploads",
            "max_uploads_per_user",
            "login_attempts_per_user",
            "login_attempts_per_address",
            "registers_per_address",
        ],
    ),
    (
        "Memory",
        &["feed_index_videos", "cache_entries", "render_cache_mib"],
    ),
    (
        "Streams",
        &[
            "streams",
            "streams_per_user",
            "stream_buffer",
            "stream_replay",
        ],
    ),
    (
        "Consistency and operations",
        &["consistency_timeout_ms", "ready_max_lag", "stale_views"],
    ),
];

/// `arg` under its help heading ([`HEADINGS`]); applied to the root command and to every
/// subcommand's copy of the flags.
pub(crate) fn with_heading(arg: clap::Arg) -> clap::Arg {
    let id = arg.get_id().as_str();
    match HEADINGS.iter().find(|(_, ids)| ids.contains(&id)) {
        Some((heading, _)) => arg.help_heading(*heading),
        None => arg,
    }
}

/// Settings, each with an environment variable equivalent, grouped under help headings.
//
// All of them are accepted before a subcommand (and with none: the default `serve`). After a
// serving role's name (`serve`, `command-api`, `query-api`, `projectors`) all of them are accepted
// too; after a tool's name (`tap`, `rebuild`, `parked`) only those it uses, plus the few the test
// harness passes to every `titok` it runs (see `shared_flags`). (A comment, not doc: a flattened
// struct's second doc paragraph would become the root command's long help.)
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Directory for the embedded log, views, accounts, uploads and the token secret.
    #[arg(long, env = "TITOK_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Prefix of Kafka topics and consumer groups and of Redis keys, so several deployments (or
    /// test runs) can share brokers and a Redis.
    #[arg(long, env = "TITOK_NAMESPACE", default_value = "titok")]
    pub namespace: String,
    /// Secret that signs tokens (at least 32 bytes). Required with Kafka/MySQL/Redis; the embedded
    /// default generates one into the data dir.
    #[arg(long, env = "TITOK_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// Token lifetime, hours.
    #[arg(long, env = "TITOK_TOKEN_TTL_HOURS", default_value_t = 720)]
    pub token_ttl_hours: u64,
    /// This instance's id for id generation (0–15, unique per running command API).
    #[arg(long, env = "TITOK_NODE_ID", default_value_t = 0 ,
          value_parser = clap::value_parser!(u8).range(0..=titok_events::MAX_NODE_ID as i64))]
    pub node_id: u8,
    /// Do not load the sample account and video into an empty store.
    #[arg(long, env = "TITOK_NO_SAMPLE")]
    pub no_sample: bool,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "TITOK_LOG_JSON")]
    pub log_json: bool,

    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "TITOK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Base of the absolute play/cover URLs in replies (default: http://<listen address>).
    #[arg(long, env = "TITOK_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Serve `/metrics` and `/readyz` (and `/healthz`) on this address instead of the public one,
    /// so that a balancer in front of the public address never exposes them.
    #[arg(long, env = "TITOK_ADMIN_LISTEN")]
    pub admin_listen: Option<std::net::SocketAddr>,
    /// A load balancer's address or network (repeatable, or comma-separated in the variable):
    /// requests from it are attributed to the client its `X-Forwarded-For` names (login limits
    /// per address).
    #[arg(
        long = "trusted-proxy",
        env = "TITOK_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<titok_command_api::limits::TrustedProxy>,
    /// Serve `/bench/noop` (token check, empty reply) through the same router, middleware and
    /// parameter parsing as the API: the benchmark's ceiling. Off unless the bench sets it.
    #[arg(long, hide = true)]
    pub bench_ceiling: bool,

    /// Partitions per topic of the embedded log (fixed when the log is created), or of the Kafka
    /// topics titok creates.
    #[arg(long, env = "TITOK_PARTITIONS", default_value_t = 4)]
    pub partitions: u32,
    /// Kafka bootstrap servers (host:port,…); switches the event log from the embedded one to Kafka.
    #[arg(long, env = "TITOK_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Replication factor of the topics titok creates.
    #[arg(long, env = "TITOK_KAFKA_REPLICATION", default_value_t = 1)]
    pub kafka_replication: i32,
    /// Consumer-group session timeout: how fast a dead projector's partitions move to another.
    #[arg(long, env = "TITOK_KAFKA_SESSION_TIMEOUT_MS", default_value_t = 10_000)]
    pub kafka_session_timeout_ms: u32,
    /// Longest a projection's fetch waits at the broker when idle (bounds lag on brokers that
    /// answer fetches only at the end of the wait).
    #[arg(long, env = "TITOK_KAFKA_FETCH_WAIT_MS", default_value_t = 10)]
    pub kafka_fetch_wait_ms: u32,
    /// The producer's `linger.ms`: how long an append may wait for others to share its batch
    /// (higher: fewer, larger produce requests; each acknowledgement later by up to this much).
    #[arg(long, env = "TITOK_KAFKA_LINGER_MS", default_value_t = 5)]
    pub kafka_linger_ms: u32,
    /// Use Kafka's idempotent producer (default true). tansu 0.6 crashes on an idempotent
    /// producer that outlives a broker restart, so the broker-outage test turns it off.
    #[arg(long, env = "TITOK_KAFKA_IDEMPOTENCE", default_value_t = true, action = clap::ArgAction::Set )]
    pub kafka_idempotence: bool,
    /// Run projections and rebuilds even when the Kafka topics' settings delete events
    /// (`retention.ms`/`retention.bytes` not -1, or compaction): only for deployments that
    /// archive the log elsewhere and never rebuild views from this one.
    #[arg(long, env = "TITOK_ALLOW_LOG_RETENTION")]
    pub allow_log_retention: bool,

    /// MySQL/MariaDB URL for accounts and views (e.g. mysql://user:pass@host:3306/titok);
    /// the database is created if missing. Default: SQLite files in the data dir.
    #[arg(long, env = "TITOK_MYSQL_URL")]
    pub mysql_url: Option<String>,
    /// A MySQL/MariaDB read replica of --mysql-url's database (repeatable, or comma-separated in
    /// the variable). The query API reads from a replica that already shows every write the read
    /// must see, else from the primary; writes, accounts and projections stay on the primary.
    #[arg(
        long = "mysql-read-url",
        env = "TITOK_MYSQL_READ_URLS",
        value_delimiter = ','
    )]
    pub mysql_read_urls: Vec<String>,
    /// Longest a read waits for a read replica to catch up before reading the primary instead.
    #[arg(long, env = "TITOK_REPLICA_WAIT_MS", default_value_t = 100)]
    pub replica_wait_ms: u64,

    /// Redis URL for the counter cache, the chat-poll shortcut, shared log positions and login
    /// limits: `redis://host:port`, or a Redis Cluster as `redis+cluster://host:port,host:port,…`.
    #[arg(long, env = "TITOK_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Where uploaded videos and covers are stored: `s3://BUCKET[/PREFIX]` (endpoint, region and
    /// credentials from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_ALLOW_HTTP) or a directory (default: `<data dir>/blobs`).
    #[arg(long, env = "TITOK_BLOB_STORE")]
    pub blob_store: Option<String>,
    /// Base of play/cover URLs when media is served by a CDN or a public bucket (e.g.
    /// `https://cdn.example/titok`; an object `videos/1.mp4` is `<media url>/videos/1.mp4`).
    /// Default: the query API streams objects from the store at `<public url>/static/`.
    #[arg(long, env = "TITOK_MEDIA_URL")]
    pub media_url: Option<String>,
    /// Answer `/static/…` with a redirect (307) to a presigned GET URL of the S3 object, valid this
    /// many seconds, so that clients fetch (and seek in) videos straight from the bucket. S3 only.
    #[arg(
        long,
        env = "TITOK_MEDIA_PRESIGN_SECS" ,
        value_parser = clap::value_parser!(u64).range(60..=604_800)
    )]
    pub media_presign_secs: Option<u64>,
    /// The ffmpeg that takes each video's first frame as its cover (a name on PATH or a path;
    /// `off`: none). Without one that runs, covers are generated placeholders.
    #[arg(long, env = "TITOK_FFMPEG", default_value = "ffmpeg")]
    pub ffmpeg: String,
    /// How often a projector process sweeps the blob store for orphaned uploads (objects no
    /// published video points at, left by a crash between storing an upload and appending its
    /// event), in seconds; 0 turns the sweep off.
    #[arg(long, env = "TITOK_ORPHAN_SWEEP_SECS", default_value_t = 3600)]
    pub orphan_sweep_secs: u64,
    /// How old an orphaned upload must be before the sweep removes it, in seconds (a publish
    /// appends its event right after its upload is stored: keep this well above a request's
    /// lifetime).
    #[arg(
        long,
        env = "TITOK_ORPHAN_AGE_SECS",
        default_value_t = 86_400 ,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub orphan_age_secs: u64,

    /// Largest accepted video upload, MiB.
    #[arg(long, env = "TITOK_MAX_UPLOAD_MB", default_value_t = 64)]
    pub max_upload_mb: usize,
    /// Uploads this process receives at once; more are refused with 503 until one ends.
    #[arg(long, env = "TITOK_MAX_UPLOADS", default_value_t = 16)]
    pub max_uploads: usize,
    /// Uploads one user sends at once (when the token comes before the video in the form, or in
    /// the query string); more are refused with 429.
    #[arg(long, env = "TITOK_MAX_UPLOADS_PER_USER", default_value_t = 2)]
    pub max_uploads_per_user: usize,
    /// Login attempts allowed per username per minute (then HTTP 429).
    #[arg(long, env = "TITOK_LOGIN_ATTEMPTS_PER_USER", default_value_t = 10)]
    pub login_attempts_per_user: u32,
    /// Login attempts allowed per client address per minute (then HTTP 429).
    #[arg(long, env = "TITOK_LOGIN_ATTEMPTS_PER_ADDRESS", default_value_t = 60)]
    pub login_attempts_per_address: u32,
    /// Sign-ups allowed per client address per hour (then HTTP 429); shared by every instance
    /// with Redis, like the login quotas.
    #[arg(
        long,
        env = "TITOK_REGISTERS_PER_ADDRESS",
        default_value_t = titok_command_api::limits::DEFAULT_REGISTERS_PER_HOUR )]
    pub registers_per_address: u32,

    /// Newest videos the query API keeps in memory for the feed (0 = none: every page from SQL).
    #[arg(long, env = "TITOK_FEED_INDEX_VIDEOS", default_value_t = 100_000)]
    pub feed_index_videos: usize,
    /// Video authors and user names cached in memory, each (facts that never change).
    #[arg(long, env = "TITOK_CACHE_ENTRIES", default_value_t = 1 << 20)]
    pub cache_entries: u64,
    /// MiB of videos' JSON each query API keeps ready for pages that serve them again unchanged
    /// (0 = off: every video built and serialised on every page).
    #[arg(long, env = "TITOK_RENDER_CACHE_MIB", default_value_t = 64)]
    pub render_cache_mib: u64,

    /// Live streams (`/douyin/stream/`) this process holds at once; more are refused with 503
    /// (0 = streams off).
    #[arg(long, env = "TITOK_STREAMS", default_value_t = 20_000)]
    pub streams: usize,
    /// Streams one user holds at once; more are refused with 429.
    #[arg(long, env = "TITOK_STREAMS_PER_USER", default_value_t = 8)]
    pub streams_per_user: usize,
    /// Events buffered per stream: a client that falls further behind is disconnected (it
    /// resumes with its last event id).
    #[arg(long, env = "TITOK_STREAM_BUFFER", default_value_t = 256)]
    pub stream_buffer: usize,
    /// Recent events each query process keeps for resumes (`Last-Event-ID`); a resume point
    /// older than they reach gets `reset`.
    #[arg(long, env = "TITOK_STREAM_REPLAY", default_value_t = 10_000)]
    pub stream_replay: usize,

    /// How long a read waits for the views to reflect acknowledged writes before answering stale.
    #[arg(long, env = "TITOK_CONSISTENCY_TIMEOUT_MS", default_value_t = 2000)]
    pub consistency_timeout_ms: u64,
    /// `/readyz` answers 503 while the projections are more than this many events behind.
    #[arg(long, env = "TITOK_READY_MAX_LAG", default_value_t = 1000)]
    pub ready_max_lag: i64,
    /// At start-up, when a stored view is older than this binary's projection: rebuild it from
    /// the log before serving, or refuse to start.
    #[arg(long, env = "TITOK_STALE_VIEWS", value_enum, default_value = "rebuild")]
    pub stale_views: StaleViewsArg,
}

/// The [`Config`] flags (by id, the field name) a tool accepts after its name: the ones it uses
/// (to open the log, the read store, Redis), and those the test harness adds to every `titok` it
/// runs, the same service arguments as the server's (`--no-sample`, `--token-secret`,
/// `--blob-store`, `--mysql-read-url`, and for `parked` the log's and Redis's): refusing them
/// would break `titok rebuild all --data-dir D <the server's arguments>`.
pub(crate) const TOOL_FLAGS: &[(&str, &[&str])] = &[
    (
        "tap",
        &[
            // used: the log
            "data_dir",
            "log_json",
            "namespace",
            "partitions",
            "kafka_brokers",
            "kafka_replication",
            "kafka_session_timeout_ms",
            "kafka_fetch_wait_ms",
            "kafka_linger_ms",
            "kafka_idempotence",
            // passed by the harness
            "no_sample",
            "token_secret",
            "mysql_url",
            "mysql_read_urls",
            "redis_url",
            "blob_store",
        ],
    ),
    (
        "rebuild",
        &[
            // used: the log, the read store, the counter cache
            "data_dir",
            "log_json",
            "namespace",
            "partitions",
            "kafka_brokers",
            "kafka_replication",
            "kafka_session_timeout_ms",
            "kafka_fetch_wait_ms",
            "kafka_linger_ms",
            "kafka_idempotence",
            "allow_log_retention",
            "mysql_url",
            "redis_url",
            // passed by the harness
            "no_sample",
            "token_secret",
            "mysql_read_urls",
            "blob_store",
        ],
    ),
    (
        "parked",
        &[
            // used: the read store
            "data_dir",
            "log_json",
            "mysql_url",
            // passed by the harness
            "no_sample",
            "namespace",
            "token_secret",
            "mysql_read_urls",
            "redis_url",
            "blob_store",
            "kafka_brokers",
            "kafka_session_timeout_ms",
        ],
    ),
];

/// Give a subcommand the [`Config`] flags it accepts after its name ([`TOOL_FLAGS`] for a tool,
/// all of them for a serving role or any other subcommand), as global arguments: clap merges a value given after the
/// name with the same flag before it (the later one wins, as with one flag given twice), so
/// `Cli::config` holds the whole configuration whichever side a flag was given on.
pub(crate) fn shared_flags(subcommand: clap::Command) -> clap::Command {
    let only = TOOL_FLAGS
        .iter()
        .find(|(tool, _)| *tool == subcommand.get_name())
        .map(|(_, ids)| *ids);
    let config = <Config as clap::Args>::augment_args(clap::Command::new("config"));
    let flags: Vec<clap::Arg> = config
        .get_arguments()
        .filter(|arg| only.is_none_or(|ids| ids.contains(&arg.get_id().as_str())))
        .map(|arg| with_heading(arg.clone()).global(true))
        .collect();
    subcommand.args(flags)
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

impl From<StaleViewsArg> for titok_projectors::version_check::StaleViews {
    fn from(arg: StaleViewsArg) -> Self {
        match arg {
            StaleViewsArg::Rebuild => titok_projectors::version_check::StaleViews::Rebuild,
            StaleViewsArg::Refuse => titok_projectors::version_check::StaleViews::Refuse,
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
