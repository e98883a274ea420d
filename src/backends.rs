//! Opening the adapters the configuration asks for, and building each role's state from them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use titok_adapters::accounts::SqlAccounts;
use titok_adapters::blobs::ObjectBlobs;
use titok_adapters::counters::InProcessCounters;
use titok_adapters::embedded_log::EmbeddedLog;
use titok_adapters::kafka_log::KafkaLog;
use titok_adapters::progress::InProcessPositions;
use titok_adapters::redis_store::{self, RedisAttempts, RedisCounters, RedisPositions};
use titok_adapters::store::ViewStore;
use titok_command_api::CommandState;
use titok_events::{IdGenerator, Topic};
use titok_ports::accounts::{AccountStore, CommandKeys};
use titok_ports::blobs::BlobStore;
use titok_ports::counters::Counters;
use titok_ports::known::KnownIds;
use titok_ports::limits::AttemptLimits;
use titok_ports::log::EventLog;
use titok_ports::progress::{Consistency, Positions};
use titok_projectors::ProjectorDeps;
use titok_query_api::QueryState;
use titok_views::reads::{Immutable, Reader, RenderCache};
use titok_views::replicas::ReadPools;
use titok_web::auth::{load_or_create_secret, Authenticator, TokenKeys};

use crate::{Config, Role};

/// Every port, opened on the adapters the configuration names.
pub struct Backends {
    pub log: Arc<dyn EventLog>,
    /// The log for the feed index's tail, which tolerates lag (it falls back to SQL until it
    /// catches up): on Kafka its consumer waits longer at the broker when idle ([`TAIL_FETCH_WAIT_MS`]).
    pub tail_log: Arc<dyn EventLog>,
    pub accounts: Arc<dyn AccountStore>,
    /// Idempotency keys of commands, in the accounts database.
    pub command_keys: Arc<dyn CommandKeys>,
    pub store: ViewStore,
    pub counters: Arc<dyn Counters>,
    pub positions: Arc<dyn Positions>,
    /// Videos and covers: a directory under the data dir or an S3 bucket (`--blob-store`).
    pub blobs: Arc<dyn BlobStore>,
    pub keys: TokenKeys,
    /// The query API's pools: the primary's read pool and any read replicas.
    pub read_pools: ReadPools,
    /// Login quotas shared by instances (Redis), if configured.
    pub attempts: Option<Arc<dyn AttemptLimits>>,
    /// The projections of this process that stopped on a hole in the log (`/readyz` shows them).
    pub halts: titok_projectors::continuity::Halts,
}

/// Fewer distinct bytes than this in a configured secret: a placeholder ("aaaa…", "changeme…"),
/// not a random value.
const MIN_DISTINCT_SECRET_BYTES: usize = 10;

/// The token-signing secret: the configured one (at least 32 bytes, not a placeholder), required
/// once any production service is configured; otherwise the data dir's own random secret.
fn token_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    let production =
        config.kafka_brokers.is_some() || config.mysql_url.is_some() || config.redis_url.is_some();
    match &config.token_secret {
        Some(secret) if secret.len() < 32 => {
            anyhow::bail!("--token-secret must be at least 32 bytes")
        }
        Some(secret) => {
            let distinct: std::collections::HashSet<u8> = secret.bytes().collect();
            let lower = secret.to_ascii_lowercase();
            if distinct.len() < MIN_DISTINCT_SECRET_BYTES
                || ["change", "example", "default", "placeholder"]
                    .iter()
                    .any(|w| lower.contains(w))
            {
                anyhow::bail!(
                    "--token-secret looks like a placeholder, not a random secret; generate one, e.g. `openssl rand -hex 32`"
                );
            }
            Ok(secret.clone().into_bytes())
        }
        None if production => {
            anyhow::bail!(
                "--token-secret (TITOK_TOKEN_SECRET) is required with Kafka, MySQL or Redis"
            )
        }
        None => load_or_create_secret(&config.data_dir)
            .context("cannot read or create the token secret"),
    }
}

impl Backends {
    pub async fn open(config: &Config, role: Role) -> anyhow::Result<Backends> {
        let data = &config.data_dir;
        let split = role != Role::All;
        if split
            && (config.kafka_brokers.is_none()
                || config.mysql_url.is_none()
                || config.redis_url.is_none())
        {
            anyhow::bail!("{role:?} runs alone against shared services: give --kafka-brokers, --mysql-url and --redis-url");
        }
        // Checked before connecting anywhere: a bad secret fails fast.
        let secret = token_secret(config)?;
        let (log, tail_log) = open_logs(config, Access::ReadWrite).await?;
        let (sql_accounts, store) = match &config.mysql_url {
            Some(url) => {
                let pool = open_mysql(url, 16).await?;
                (
                    Arc::new(SqlAccounts::mysql(pool.clone())),
                    ViewStore::mysql(pool),
                )
            }
            None => (
                Arc::new(
                    SqlAccounts::open_sqlite(&data.join("accounts.db"))
                        .await
                        .context("cannot open accounts")?,
                ),
                open_views(config).await?,
            ),
        };
        if !config.mysql_read_urls.is_empty() && config.mysql_url.is_none() {
            anyhow::bail!("--mysql-read-url names replicas of --mysql-url: give --mysql-url too");
        }
        let read_pools = ReadPools::new(
            store.read.clone(),
            read_replicas(&config.mysql_read_urls)?,
            Duration::from_millis(config.replica_wait_ms),
        );
        let accounts: Arc<dyn AccountStore> = sql_accounts.clone();
        let command_keys: Arc<dyn CommandKeys> = sql_accounts;
        type Shared = (
            Arc<dyn Counters>,
            Arc<dyn Positions>,
            Option<Arc<dyn AttemptLimits>>,
        );
        let (counters, positions, attempts): Shared = match &config.redis_url {
            Some(url) => {
                let conn = redis_store::connect(url)
                    .await
                    .context("cannot connect to Redis")?;
                (
                    Arc::new(RedisCounters::new(conn.clone(), &config.namespace)),
                    Arc::new(RedisPositions::new(conn.clone(), &config.namespace)),
                    Some(Arc::new(RedisAttempts::new(conn, &config.namespace))),
                )
            }
            None => (
                Arc::new(InProcessCounters::default()),
                Arc::new(InProcessPositions::default()),
                None,
            ),
        };
        // Writes acknowledged before this process started count as acknowledged for its reads.
        positions
            .record_acked(&log.end_offsets(&Topic::ALL).await?)
            .await?;
        let keys = TokenKeys::new(&secret, Duration::from_secs(config.token_ttl_hours * 3600));
        Ok(Backends {
            log,
            tail_log,
            accounts,
            command_keys,
            store,
            counters,
            positions,
            blobs: Arc::new(open_blobs(config)?),
            keys,
            read_pools,
            attempts,
            halts: Default::default(),
        })
    }

    pub fn projector_deps(&self, config: &Config) -> ProjectorDeps {
        ProjectorDeps {
            log: self.log.clone(),
            store: self.store.clone(),
            counters: self.counters.clone(),
            positions: self.positions.clone(),
            group_prefix: format!("{}.projector", config.namespace),
            halts: self.halts.clone(),
        }
    }

    pub fn query_state(&self, config: &Config, media_url: &str) -> QueryState {
        QueryState {
            reader: Reader {
                pool: self.store.read.clone(),
                counters: self.counters.clone(),
                media_url: media_url.trim_end_matches('/').into(),
                immutable: Immutable::with_capacity(config.cache_entries),
                rendered: RenderCache::with_capacity_bytes(config.render_cache_mib << 20),
            },
            feed: None,
            stream: None,
            auth: Authenticator {
                keys: self.keys.clone(),
                accounts: self.accounts.clone(),
                known: KnownIds::default(),
            },
            consistency: Consistency {
                positions: self.positions.clone(),
                timeout: Duration::from_millis(config.consistency_timeout_ms),
            },
            pools: self.read_pools.clone(),
        }
    }

    /// The command side shares the query side's reader, consistency wait and authenticator (with
    /// its positive user-id cache), but not its handlers.
    pub fn command_state(&self, config: &Config, query: QueryState) -> CommandState {
        CommandState {
            log: self.log.clone(),
            accounts: self.accounts.clone(),
            ids: Arc::new(IdGenerator::new(config.node_id)),
            blobs: self.blobs.clone(),
            uploads: titok_command_api::limits::Uploads::new(
                config.max_uploads,
                config.max_uploads_per_user,
            ),
            auth: query.auth,
            consistency: query.consistency,
            reader: query.reader,
            max_upload_bytes: config.max_upload_mb * 1024 * 1024,
            ffmpeg: find_ffmpeg(&config.ffmpeg),
            login_limits: self.login_limits(config),
            hashing: Arc::new(tokio::sync::Semaphore::new(
                titok_command_api::default_hashing_permits(),
            )),
            keys: self.command_keys.clone(),
        }
    }
}

impl Backends {
    fn login_limits(&self, config: &Config) -> titok_command_api::limits::LoginLimits {
        let limits = titok_command_api::limits::LoginLimits::per_minute(
            config.login_attempts_per_user,
            config.login_attempts_per_address,
        )
        .registers_per_hour(config.registers_per_address)
        .behind(config.trusted_proxies.clone());
        match &self.attempts {
            Some(shared) => limits.shared(shared.clone()),
            None => limits,
        }
    }
}

/// Lazily connecting pools on the read replicas, each named `host:port` (for metrics and the
/// `x-titok-read-from` header).
fn read_replicas(urls: &[String]) -> anyhow::Result<Vec<(String, sqlx::AnyPool)>> {
    urls.iter()
        .map(|url| {
            let options: sqlx::mysql::MySqlConnectOptions = url
                .parse()
                .with_context(|| "--mysql-read-url is not a MySQL URL".to_owned())?;
            let name = format!("{}:{}", options.get_host(), options.get_port());
            let pool = titok_adapters::store::mysql_replica(url, 16)
                .context("cannot open a read replica pool")?;
            Ok((name, pool))
        })
        .collect()
}

/// How a process uses the event log: the server appends; the tools (`tap`, `rebuild`) only read,
/// and on the embedded log open it read-only beside a running server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    ReadWrite,
    ReadOnly,
}

/// The ffmpeg of `--ffmpeg`, and a log line saying where covers come from.
fn find_ffmpeg(program: &str) -> titok_command_api::media::Ffmpeg {
    let ffmpeg = titok_command_api::media::Ffmpeg::find(program);
    if ffmpeg.installed() {
        tracing::info!(ffmpeg = program, "covers are the first frame of each video");
    } else {
        tracing::info!(
            ffmpeg = program,
            "no ffmpeg runs: covers are generated placeholders"
        );
    }
    ffmpeg
}

/// The blob store of `--blob-store`; `--media-presign-secs` needs one that signs URLs (S3).
fn open_blobs(config: &Config) -> anyhow::Result<ObjectBlobs> {
    let blobs = ObjectBlobs::open(config.blob_store.as_deref(), config.data_dir.join("blobs"))
        .map_err(anyhow::Error::msg)?;
    if config.media_presign_secs.is_some() && !blobs.describe().starts_with("s3://") {
        anyhow::bail!(
            "--media-presign-secs needs an S3 blob store (--blob-store s3://BUCKET); {} cannot sign URLs",
            blobs.describe()
        );
    }
    Ok(blobs)
}

/// The event log of this configuration: Kafka, or the data dir's `log.db`. The one place that
/// opens it (server roles and tools alike).
pub(crate) async fn open_log(config: &Config, access: Access) -> anyhow::Result<Arc<dyn EventLog>> {
    Ok(open_logs(config, access).await?.0)
}

/// How long the feed index's Kafka consumer waits at the broker when idle, at least. Its lag
/// costs nothing but SQL pages (the index serves only what it covers), while on tansu every
/// fetch is a round of storage reads: at the projections' 10 ms an idle tail costs the broker
/// ~15 % of a core, at 250 ms ~1 % (measured on 2026-12-06, one idle server: 108 % → 22 % of
/// a core for all its consumers from 10 ms to 250 ms). Kafka answers a waiting fetch as soon as
/// data arrives, so there it costs no lag at all.
pub const TAIL_FETCH_WAIT_MS: u32 = 250;

/// [`open_log`], and the same log for the feed index's tail (see [`Backends::tail_log`]).
pub(crate) async fn open_logs(
    config: &Config,
    access: Access,
) -> anyhow::Result<(Arc<dyn EventLog>, Arc<dyn EventLog>)> {
    let path = config.data_dir.join("log.db");
    let log: Arc<dyn EventLog> = match (config.kafka_settings(), access) {
        (Some(settings), _) => {
            let kafka = KafkaLog::connect(settings.clone())
                .await
                .context("cannot connect to Kafka")?;
            let tail = kafka.with_fetch_wait(settings.fetch_wait_ms.max(TAIL_FETCH_WAIT_MS));
            return Ok((Arc::new(kafka), Arc::new(tail)));
        }
        (None, Access::ReadWrite) => Arc::new(
            EmbeddedLog::open(&path, config.partitions)
                .await
                .context("cannot open the embedded event log")?,
        ),
        (None, Access::ReadOnly) => Arc::new(
            EmbeddedLog::open_read_only(&path, config.partitions)
                .await
                .context("cannot open the embedded log (is --data-dir right?)")?,
        ),
    };
    Ok((log.clone(), log))
}

/// The MySQL database of `url` (created if missing), migrated.
async fn open_mysql(url: &str, max_connections: u32) -> anyhow::Result<sqlx::AnyPool> {
    let pool = titok_adapters::store::mysql_any(url, max_connections)
        .await
        .context("cannot connect to MySQL")?;
    titok_adapters::store::migrate_mysql(&pool)
        .await
        .context("cannot migrate MySQL")?;
    Ok(pool)
}

/// The read store of this configuration (MySQL, or the data dir's `views.db`), migrated.
pub(crate) async fn open_views(config: &Config) -> anyhow::Result<ViewStore> {
    Ok(match &config.mysql_url {
        Some(url) => ViewStore::mysql(open_mysql(url, 4).await?),
        None => ViewStore::open_sqlite(&config.data_dir.join("views.db"))
            .await
            .context("cannot open the read store (is --data-dir right?)")?,
    })
}
