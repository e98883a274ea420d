//! The Redis adapters: [`RedisCounters`] (the counter cache and the chat-poll shortcut),
//! [`RedisPositions`] (acknowledged and applied log positions shared by split processes) and
//! [`RedisAttempts`] (login quotas shared by several command APIs).
//!
//! **One Redis or a Redis Cluster.** [`connect`] opens either (`redis://…`, or
//! `redis+cluster://host:port,host:port,…` for a cluster) as a [`RedisConn`]. Every key and script
//! is cluster-safe: a script touches one key only, so no call spans hash slots; counters are one
//! hash per user or video and positions one hash per topic, so both spread over the masters.
//! Commands on several keys go out as one pipeline to a single Redis and as concurrent
//! single-key commands to a cluster (whose client routes each to its slot's master and follows
//! MOVED/ASK redirections and failovers).
//!
//! Exactness rests on the same rule as the in-process cache (see `titok_ports::counters`): entries are
//! absolute values with the SQL row version they were read at, written by a Lua script that
//! replaces an entry only with a newer version; positions and chat times only ever rise (`max`).
//! So redelivery, crashes and several projector instances cannot make Redis drift from SQL.
//!
//! **Redis may forget.** A restart (even from a snapshot), a failover or a flush can take back
//! what was written, and nothing in the rule above notices. So every acknowledged-ends hash
//! carries an `epoch` field: the Redis incarnation the projectors last recovered the positions
//! on (a single Redis's `run_id`, a cluster's master node ids). A read of the acknowledged ends
//! checks it in the same pipeline (`INFO server` rides along on a single Redis) and reports
//! [`PositionsUnknown`] when it is missing or another; the projectors' watch
//! (`titok_projectors::generations`) then recovers counters and positions from the views and the
//! log and writes the new incarnation.
//!
//! Every call is bounded by a short timeout; callers treat errors as "cache unavailable" and fall
//! back to SQL, so a query API keeps answering while Redis is down and uses it again once back.
//!
//! **Size.** Over 450 lines, four concerns (connection/cluster, counters, positions with their
//! incarnation, attempts/GCRA): issue 24 splits it along exactly these seams.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, Script, ScriptInvocation};
use titok_events::Topic;

use titok_ports::counters::{
    Counters, CountersError, UserCounts, Versioned, VideoCounts, CHAT_IDLE_EXPIRY,
};
use titok_ports::limits::{AttemptLimits, LimitsError};
use titok_ports::log::Position;
use titok_ports::progress::{Positions, PositionsError, PositionsUnknown};

/// Longest any single Redis round trip may take before it counts as unavailable.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// `put_if_newer` for one hash. KEYS[1] = the hash; ARGV = version, then field, value, … The
/// hash is replaced only if its stored `v` is older.
const PUT_IF_NEWER: &str = r"
local held = tonumber(redis.call('HGET', KEYS[1], 'v') or '-1')
if held < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], unpack(ARGV, 2))
end
return 0
";

/// Raise fields of one hash to at least the given values. KEYS[1] = hash; ARGV = field, value, …
const HASH_MAX: &str = r"
for i = 1, #ARGV, 2 do
  local held = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if held < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 0
";

/// Raise a string key to at least ARGV[1] and (re)set its expiry to ARGV[2] seconds.
const STRING_MAX: &str = r"
local held = tonumber(redis.call('GET', KEYS[1]) or '-1')
if held < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// One login attempt under a GCRA quota (KEYS[1]; ARGV = emission interval ms, burst), in
/// Redis' clock: returns 0 when allowed (and counts it), else the milliseconds to wait.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + interval
local allowed_at = next_tat - interval * burst
if allowed_at > now then
  return allowed_at - now
end
redis.call('SET', KEYS[1], next_tat, 'PX', next_tat - now)
return 0
";

const USER_FIELDS: [&str; 5] = ["fo", "fr", "tf", "w", "fa"];
const VIDEO_FIELDS: [&str; 2] = ["fa", "c"];

/// A connection to one Redis (reconnecting by itself) or to a Redis Cluster (routing each
/// command to its slot's master, following redirections, refreshing its slot map after a
/// failover). Cheap to clone: clones share the connections.
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

/// The URL scheme of a cluster: `redis+cluster://[user:password@]host:port,host:port,…` (any
/// reachable nodes; the client discovers the rest).
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// The node URLs (`redis://…`) of a `redis+cluster://` URL, or `None` for a single Redis URL.
pub fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let rest = url.strip_prefix(CLUSTER_SCHEME)?;
    let rest = rest.split(['/', '?']).next().unwrap_or_default();
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    };
    Some(
        hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("redis://{auth}{h}"))
            .collect(),
    )
}

/// Connect with bounded connection and response times (reconnects automatically afterwards): a
/// single Redis for `redis://` (or `rediss://`, `unix://`) URLs, a cluster for `redis+cluster://`.
pub async fn connect(url: &str) -> redis::RedisResult<RedisConn> {
    if let Some(nodes) = cluster_nodes(url) {
        if nodes.is_empty() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "redis+cluster:// URL names no nodes",
            )));
        }
        let client = ClusterClientBuilder::new(nodes)
            .connection_timeout(CALL_TIMEOUT)
            .response_timeout(CALL_TIMEOUT)
            .retries(3)
            .min_retry_wait(10)
            .max_retry_wait(200)
            .build()?;
        return Ok(RedisConn::Cluster(client.get_async_connection().await?));
    }
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(CALL_TIMEOUT)
        .set_response_timeout(CALL_TIMEOUT)
        .set_number_of_retries(1);
    Ok(RedisConn::Single(
        ConnectionManager::new_with_config(client, config).await?,
    ))
}

impl RedisConn {
    /// Run single-key commands: one pipeline on a single Redis, concurrently on a cluster (a
    /// cluster pipeline must stay within one slot).
    async fn each<T: FromRedisValue + Send>(&self, cmds: Vec<Cmd>) -> redis::RedisResult<Vec<T>> {
        match self {
            RedisConn::Single(_) => {
                let mut pipe = redis::pipe();
                for cmd in cmds {
                    pipe.add_command(cmd);
                }
                let mut conn = self.clone();
                pipe.query_async(&mut conn).await
            }
            RedisConn::Cluster(_) => {
                try_join_all(cmds.into_iter().map(|cmd| {
                    let mut conn = self.clone();
                    async move { cmd.query_async::<T>(&mut conn).await }
                }))
                .await
            }
        }
    }

    /// Run prepared script invocations (each on one key) concurrently.
    async fn scripts(&self, invocations: Vec<ScriptInvocation<'_>>) -> redis::RedisResult<()> {
        try_join_all(invocations.into_iter().map(|invocation| {
            let mut conn = self.clone();
            async move { invocation.invoke_async::<i64>(&mut conn).await }
        }))
        .await?;
        Ok(())
    }

    /// The masters (`host`, `port`) of a cluster, from `CLUSTER NODES`; one entry (routing
    /// `None`) for a single Redis.
    async fn masters(&self) -> redis::RedisResult<Vec<Option<(String, u16)>>> {
        let RedisConn::Cluster(cluster) = self else {
            return Ok(vec![None]);
        };
        let mut cluster = cluster.clone();
        let nodes: String = redis::from_redis_value(
            &cluster
                .route_command(
                    &redis::cmd("CLUSTER").arg("NODES").to_owned(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                )
                .await?,
        )?;
        Ok(masters_of(&nodes).into_iter().map(Some).collect())
    }

    /// Run `cmd` on one node (`None`: wherever a single Redis or the cluster routes it).
    async fn on_node<T: FromRedisValue>(
        &self,
        node: &Option<(String, u16)>,
        cmd: &Cmd,
    ) -> redis::RedisResult<T> {
        match (self, node) {
            (RedisConn::Cluster(cluster), Some((host, port))) => {
                let mut cluster = cluster.clone();
                let value = cluster
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        }),
                    )
                    .await?;
                redis::from_redis_value(&value)
            }
            _ => {
                let mut conn = self.clone();
                cmd.query_async(&mut conn).await
            }
        }
    }
}

/// The field of an acknowledged-ends hash that says which Redis incarnation the positions were
/// last recovered on ([`RedisPositions::identity`]).
const EPOCH_FIELD: &str = "epoch";

/// `run_id` from `INFO server` output.
fn run_id(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned())
}

/// The ids of the masters in `CLUSTER NODES` output, sorted and joined.
fn master_ids(nodes: &str) -> String {
    let mut ids: Vec<&str> = nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let id = fields.next()?;
            let flags = fields.nth(1)?;
            flags.split(',').any(|f| f == "master").then_some(id)
        })
        .collect();
    ids.sort_unstable();
    ids.join(",")
}

/// The reachable masters in `CLUSTER NODES` output (`<id> <ip:port@cport[,hostname]> <flags> …`).
fn masters_of(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?;
            let flags = fields.next()?;
            let flags: Vec<&str> = flags.split(',').collect();
            if !flags.contains(&"master") || flags.iter().any(|f| f.starts_with("fail")) {
                return None;
            }
            let address = address.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

/// A Redis call bounded by `2 × CALL_TIMEOUT`; failures count in `titok_redis_errors_total`.
async fn bounded<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, titok_ports::BoxError> {
    let failed = |kind: &'static str| {
        metrics::counter!("titok_redis_errors_total", "kind" => kind).increment(1);
    };
    match tokio::time::timeout(CALL_TIMEOUT * 2, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            failed("error");
            Err(Box::new(e))
        }
        Err(_) => {
            failed("timeout");
            Err("redis call timed out".into())
        }
    }
}

/// Counters and chat shortcut in Redis, under `<namespace>:`.
#[derive(Clone)]
pub struct RedisCounters {
    conn: RedisConn,
    ns: String,
    put_if_newer: Script,
    string_max: Script,
}

impl RedisCounters {
    pub fn new(conn: RedisConn, namespace: &str) -> RedisCounters {
        RedisCounters {
            conn,
            ns: namespace.to_owned(),
            put_if_newer: Script::new(PUT_IF_NEWER),
            string_max: Script::new(STRING_MAX),
        }
    }

    async fn get_hashes(
        &self,
        prefix: &str,
        ids: &[i64],
        fields: &[&str],
    ) -> Result<Vec<Option<Vec<i64>>>, CountersError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let cmds = ids
            .iter()
            .map(|id| {
                redis::cmd("HMGET")
                    .arg(format!("{}:{prefix}:{id}", self.ns))
                    .arg(fields)
                    .to_owned()
            })
            .collect();
        let rows: Vec<Vec<Option<i64>>> =
            bounded(self.conn.each(cmds)).await.map_err(CountersError)?;
        Ok(rows
            .into_iter()
            .map(|row| row.into_iter().collect::<Option<Vec<i64>>>())
            .collect())
    }

    async fn put_hashes(
        &self,
        prefix: &str,
        fields: &[&str],
        rows: Vec<(i64, i64, Vec<i64>)>,
    ) -> Result<(), CountersError> {
        if rows.is_empty() {
            return Ok(());
        }
        let invocations = rows
            .iter()
            .map(|(id, version, values)| {
                let mut invocation = self.put_if_newer.prepare_invoke();
                invocation
                    .key(format!("{}:{prefix}:{id}", self.ns))
                    .arg(version);
                for (field, value) in fields.iter().zip(values) {
                    invocation.arg(field).arg(value);
                }
                invocation
            })
            .collect();
        bounded(self.conn.scripts(invocations))
            .await
            .map_err(CountersError)?;
        Ok(())
    }

    fn chat_key(&self, (lo, hi): (i64, i64)) -> String {
        format!("{}:chat:{lo}:{hi}", self.ns)
    }
}

#[async_trait]
impl Counters for RedisCounters {
    async fn users(&self, ids: &[i64]) -> Result<Vec<Option<UserCounts>>, CountersError> {
        let rows = self.get_hashes("u", ids, &USER_FIELDS).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                row.map(|v| UserCounts {
                    follow_count: v[0],
                    follower_count: v[1],
                    total_favorited: v[2],
                    work_count: v[3],
                    favorite_count: v[4],
                })
            })
            .collect())
    }

    async fn videos(&self, ids: &[i64]) -> Result<Vec<Option<VideoCounts>>, CountersError> {
        let rows = self.get_hashes("v", ids, &VIDEO_FIELDS).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                row.map(|v| VideoCounts {
                    favorite_count: v[0],
                    comment_count: v[1],
                })
            })
            .collect())
    }

    async fn put_users(&self, rows: &[(i64, Versioned<UserCounts>)]) -> Result<(), CountersError> {
        let rows = rows
            .iter()
            .map(|(id, r)| {
                let c = r.value;
                (
                    *id,
                    r.version,
                    vec![
                        c.follow_count,
                        c.follower_count,
                        c.total_favorited,
                        c.work_count,
                        c.favorite_count,
                    ],
                )
            })
            .collect();
        self.put_hashes("u", &USER_FIELDS, rows).await
    }

    async fn put_videos(
        &self,
        rows: &[(i64, Versioned<VideoCounts>)],
    ) -> Result<(), CountersError> {
        let rows = rows
            .iter()
            .map(|(id, r)| {
                (
                    *id,
                    r.version,
                    vec![r.value.favorite_count, r.value.comment_count],
                )
            })
            .collect();
        self.put_hashes("v", &VIDEO_FIELDS, rows).await
    }

    /// SCAN the namespace's counter and chat keys and UNLINK them, a page at a time (on every
    /// master of a cluster; each key unlinked on its own, as a page spans slots).
    async fn clear(&self) -> Result<(), CountersError> {
        let masters = bounded(self.conn.masters()).await.map_err(CountersError)?;
        for node in &masters {
            for kind in ["u", "v", "chat"] {
                let pattern = format!("{}:{kind}:*", self.ns);
                let mut cursor: u64 = 0;
                loop {
                    let scan = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .to_owned();
                    let (next, keys): (u64, Vec<String>) = bounded(self.conn.on_node(node, &scan))
                        .await
                        .map_err(CountersError)?;
                    if !keys.is_empty() {
                        let unlinks = keys
                            .iter()
                            .map(|key| redis::cmd("UNLINK").arg(key).to_owned())
                            .collect();
                        bounded(self.conn.each::<i64>(unlinks))
                            .await
                            .map_err(CountersError)?;
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
        }
        Ok(())
    }

    async fn chat_latest(&self, pair: (i64, i64)) -> Result<Option<i64>, CountersError> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("GETEX")
            .arg(self.chat_key(pair))
            .arg("EX")
            .arg(CHAT_IDLE_EXPIRY.as_secs())
            .to_owned();
        bounded(cmd.query_async(&mut conn))
            .await
            .map_err(CountersError)
    }

    async fn put_chat_latest(
        &self,
        pair: (i64, i64),
        created_ms: i64,
    ) -> Result<(), CountersError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.string_max.prepare_invoke();
        invocation
            .key(self.chat_key(pair))
            .arg(created_ms)
            .arg(CHAT_IDLE_EXPIRY.as_secs());
        bounded(invocation.invoke_async::<i64>(&mut conn))
            .await
            .map_err(CountersError)?;
        Ok(())
    }

    fn outlives_process(&self) -> bool {
        true
    }
}

/// Acknowledged and applied positions, one Redis hash per topic and kind
/// (`<ns>:acked:<topic>`, `<ns>:applied:<topic>`), field = partition; values only rise. One hash
/// per topic spreads them over a cluster's masters. Waits poll the applied hashes with a short
/// backoff.
#[derive(Clone)]
pub struct RedisPositions {
    conn: RedisConn,
    ns: String,
    hash_max: Script,
}

impl RedisPositions {
    pub fn new(conn: RedisConn, namespace: &str) -> RedisPositions {
        RedisPositions {
            conn,
            ns: namespace.to_owned(),
            hash_max: Script::new(HASH_MAX),
        }
    }

    fn key(&self, kind: &str, topic: Topic) -> String {
        format!("{}:{kind}:{}", self.ns, topic.name())
    }

    /// Who holds the positions now: a single Redis's `run_id` (new at every restart, whatever it
    /// reloaded), or a cluster's master node ids (a failover promotes another node). Stored in
    /// every acknowledged-ends hash when the projectors recover the positions; a hash without it,
    /// or with another one, is from before a loss.
    async fn identity(&self) -> Result<String, PositionsError> {
        match &self.conn {
            RedisConn::Single(_) => {
                let info: Vec<String> = bounded(
                    self.conn
                        .each(vec![redis::cmd("INFO").arg("server").to_owned()]),
                )
                .await
                .map_err(PositionsError)?;
                run_id(info.first().map(String::as_str).unwrap_or_default())
                    .ok_or_else(|| PositionsError("INFO server has no run_id".into()))
            }
            RedisConn::Cluster(cluster) => {
                let mut cluster = cluster.clone();
                let nodes: String = bounded(async {
                    redis::from_redis_value(
                        &cluster
                            .route_command(
                                &redis::cmd("CLUSTER").arg("NODES").to_owned(),
                                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                            )
                            .await?,
                    )
                })
                .await
                .map_err(PositionsError)?;
                Ok(master_ids(&nodes))
            }
        }
    }

    /// Set (or, with `None`, remove) the epoch field of the acknowledged-ends hashes of `topics`.
    async fn set_epochs(
        &self,
        topics: &[Topic],
        identity: Option<&str>,
    ) -> Result<(), PositionsError> {
        let cmds = topics
            .iter()
            .map(|t| {
                let mut cmd = redis::cmd(if identity.is_some() { "HSET" } else { "HDEL" });
                cmd.arg(self.key("acked", *t)).arg(EPOCH_FIELD);
                if let Some(identity) = identity {
                    cmd.arg(identity);
                }
                cmd
            })
            .collect();
        let _: Vec<i64> = bounded(self.conn.each(cmds))
            .await
            .map_err(PositionsError)?;
        Ok(())
    }

    /// The acknowledged-ends hashes of `topics` (field → value), and on a single Redis its
    /// current identity, read in the same pipeline (a read checks it at no extra round trip).
    async fn acked_hashes(
        &self,
        topics: &[Topic],
    ) -> Result<(Option<String>, Vec<HashMap<String, String>>), PositionsError> {
        let mut cmds: Vec<Cmd> = topics
            .iter()
            .map(|t| redis::cmd("HGETALL").arg(self.key("acked", *t)).to_owned())
            .collect();
        let single = matches!(self.conn, RedisConn::Single(_));
        if single {
            cmds.push(redis::cmd("INFO").arg("server").to_owned());
        }
        let mut values: Vec<redis::Value> = bounded(self.conn.each(cmds))
            .await
            .map_err(PositionsError)?;
        let identity = if single {
            let info: String = values
                .pop()
                .map(|v| redis::from_redis_value(&v))
                .transpose()
                .map_err(|e| PositionsError(Box::new(e)))?
                .unwrap_or_default();
            Some(run_id(&info).ok_or_else(|| PositionsError("INFO server has no run_id".into()))?)
        } else {
            None
        };
        let hashes = values
            .iter()
            .map(redis::from_redis_value)
            .collect::<Result<Vec<HashMap<String, String>>, _>>()
            .map_err(|e| PositionsError(Box::new(e)))?;
        Ok((identity, hashes))
    }

    /// Raise the given partitions' values of `kind` (one script per topic hash).
    async fn raise(&self, kind: &str, ends: &[Position]) -> Result<(), PositionsError> {
        let mut by_topic: Vec<(Topic, Vec<(u32, i64)>)> = Vec::new();
        for end in ends {
            match by_topic.iter_mut().find(|(t, _)| *t == end.topic) {
                Some((_, values)) => values.push((end.partition, end.offset)),
                None => by_topic.push((end.topic, vec![(end.partition, end.offset)])),
            }
        }
        let invocations = by_topic
            .iter()
            .map(|(topic, values)| {
                let mut invocation = self.hash_max.prepare_invoke();
                invocation.key(self.key(kind, *topic));
                for (partition, offset) in values {
                    invocation.arg(partition).arg(offset);
                }
                invocation
            })
            .collect();
        bounded(self.conn.scripts(invocations))
            .await
            .map_err(PositionsError)
    }
}

#[async_trait]
impl Positions for RedisPositions {
    async fn record_acked(&self, ends: &[Position]) -> Result<(), PositionsError> {
        self.raise("acked", ends).await
    }

    async fn acked_ends(&self, topics: &[Topic]) -> Result<Vec<Position>, PositionsError> {
        let (identity, hashes) = self.acked_hashes(topics).await?;
        let mut ends = Vec::new();
        for (topic, fields) in topics.iter().zip(hashes) {
            match fields.get(EPOCH_FIELD) {
                Some(epoch) if identity.as_ref().is_none_or(|id| id == epoch) => {}
                _ => {
                    return Err(PositionsError(Box::new(PositionsUnknown(format!(
                        "positions of {topic} are unknown: Redis restarted, failed over or lost \
                         data since the projectors last recovered them"
                    )))))
                }
            }
            ends.extend(fields.iter().filter_map(|(field, value)| {
                Some(Position {
                    topic: *topic,
                    partition: field.parse().ok()?,
                    offset: value.parse().ok()?,
                })
            }));
        }
        Ok(ends)
    }

    async fn acked_ends_when_known(
        &self,
        topics: &[Topic],
        timeout: Duration,
    ) -> Result<Vec<Position>, PositionsError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            match self.acked_ends(topics).await {
                Err(err) if err.unknown() && tokio::time::Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                result => return result,
            }
        }
    }

    async fn lost(&self, topics: &[Topic]) -> Result<bool, PositionsError> {
        let identity = self.identity().await?;
        let (_, hashes) = self.acked_hashes(topics).await?;
        Ok(hashes
            .iter()
            .any(|fields| fields.get(EPOCH_FIELD) != Some(&identity)))
    }

    async fn mark_unknown(&self, topics: &[Topic]) -> Result<(), PositionsError> {
        self.set_epochs(topics, None).await
    }

    async fn mark_known(&self, topics: &[Topic]) -> Result<(), PositionsError> {
        let identity = self.identity().await?;
        self.set_epochs(topics, Some(&identity)).await
    }

    async fn applied_of(&self, targets: &[Position]) -> Result<Vec<i64>, PositionsError> {
        let cmds = targets
            .iter()
            .map(|t| {
                redis::cmd("HGET")
                    .arg(self.key("applied", t.topic))
                    .arg(t.partition)
                    .to_owned()
            })
            .collect();
        let values: Vec<Option<i64>> = bounded(self.conn.each(cmds))
            .await
            .map_err(PositionsError)?;
        Ok(values.into_iter().map(|v| v.unwrap_or(0)).collect())
    }

    async fn record_applied(
        &self,
        topic: Topic,
        partition: u32,
        next: i64,
    ) -> Result<(), PositionsError> {
        self.raise(
            "applied",
            &[Position {
                topic,
                partition,
                offset: next,
            }],
        )
        .await
    }

    async fn wait_applied(
        &self,
        targets: &[Position],
        timeout: Duration,
    ) -> Result<bool, PositionsError> {
        if targets.is_empty() {
            return Ok(true);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            let applied = self.applied_of(targets).await?;
            if targets.iter().zip(&applied).all(|(t, a)| *a >= t.offset) {
                return Ok(true);
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Ok(false);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

/// Login (and other) attempt quotas in Redis: one GCRA key per quota key, `<ns>:limit:<key>`,
/// expiring when its quota is whole again.
#[derive(Clone)]
pub struct RedisAttempts {
    conn: RedisConn,
    ns: String,
    gcra: Script,
}

impl RedisAttempts {
    pub fn new(conn: RedisConn, namespace: &str) -> RedisAttempts {
        RedisAttempts {
            conn,
            ns: namespace.to_owned(),
            gcra: Script::new(GCRA),
        }
    }
}

#[async_trait]
impl AttemptLimits for RedisAttempts {
    async fn attempt(
        &self,
        key: &str,
        quota: u32,
        per: Duration,
    ) -> Result<Option<Duration>, LimitsError> {
        let quota = quota.max(1);
        let interval_ms = (per.as_millis() as u64 / u64::from(quota)).max(1);
        let mut invocation = self.gcra.prepare_invoke();
        invocation
            .key(format!("{}:limit:{key}", self.ns))
            .arg(interval_ms)
            .arg(quota);
        let mut conn = self.conn.clone();
        let wait_ms: i64 = bounded(invocation.invoke_async(&mut conn))
            .await
            .map_err(LimitsError)?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_every_node_with_the_credentials() {
        assert_eq!(cluster_nodes("redis://127.0.0.1:6379"), None);
        assert_eq!(
            cluster_nodes("redis+cluster://u:p@10.0.0.1:7000,10.0.0.2:7001/"),
            Some(vec![
                "redis://u:p@10.0.0.1:7000".to_owned(),
                "redis://u:p@10.0.0.2:7001".to_owned()
            ])
        );
        assert_eq!(
            cluster_nodes("redis+cluster://h:1"),
            Some(vec!["redis://h:1".to_owned()])
        );
    }

    #[test]
    fn cluster_nodes_output_yields_the_live_masters() {
        let nodes = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001 master - 0 1 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master,fail - 0 1 3 disconnected
d4 127.0.0.1:7003@17003 slave a1 0 1 1 connected
e5 127.0.0.1:7004@17004,host5 master - 0 1 4 connected 10923-16383
";
        assert_eq!(
            masters_of(nodes),
            vec![
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7001),
                ("127.0.0.1".to_owned(), 7004)
            ]
        );
    }
}
