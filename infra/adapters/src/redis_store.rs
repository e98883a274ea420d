//! The Redis adapters: [`RedisCounters`] (the counter cache and the chat-poll shortcut) and
//! [`RedisPositions`] (acknowledged and applied log positions shared by split processes).
//!
//! Exactness rests on the same rule as the in-process cache (see `titok_ports::counters`): entries are
//! absolute values with the SQL row version they were read at, written by a Lua script that
//! replaces an entry only with a newer version; positions and chat times only ever rise (`max`).
//! So redelivery, crashes and several projector instances cannot make Redis drift from SQL.
//!
//! Every call is bounded by a short timeout; callers treat errors as "cache unavailable" and fall
//! back to SQL, so a query API keeps answering while Redis is down and uses it again once back.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use titok_events::Topic;

use titok_ports::counters::{
    Counters, CountersError, UserCounts, Versioned, VideoCounts, CHAT_IDLE_EXPIRY,
};
use titok_ports::log::Position;
use titok_ports::progress::{Positions, PositionsError};

/// Longest any single Redis round trip may take before it counts as unavailable.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// `put_if_newer` for a batch of hashes. KEYS = hashes; ARGV = n, n field names, then per key its
/// version followed by its n values. A hash is replaced only if its stored `v` is older.
const PUT_IF_NEWER: &str = r"
local n = tonumber(ARGV[1])
local pos = 2 + n
for k = 1, #KEYS do
  local version = tonumber(ARGV[pos])
  local held = tonumber(redis.call('HGET', KEYS[k], 'v') or '-1')
  if held < version then
    local args = {'v', ARGV[pos]}
    for i = 1, n do
      args[#args + 1] = ARGV[1 + i]
      args[#args + 1] = ARGV[pos + i]
    end
    redis.call('HSET', KEYS[k], unpack(args))
  end
  pos = pos + 1 + n
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

const USER_FIELDS: [&str; 5] = ["fo", "fr", "tf", "w", "fa"];
const VIDEO_FIELDS: [&str; 2] = ["fa", "c"];

/// Connect with bounded connection and response times (reconnects automatically afterwards).
pub async fn connect(url: &str) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(CALL_TIMEOUT)
        .set_response_timeout(CALL_TIMEOUT)
        .set_number_of_retries(1);
    ConnectionManager::new_with_config(client, config).await
}

async fn bounded<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, titok_ports::BoxError> {
    match tokio::time::timeout(CALL_TIMEOUT * 2, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Box::new(e)),
        Err(_) => Err("redis call timed out".into()),
    }
}

/// Counters and chat shortcut in Redis, under `<namespace>:`.
#[derive(Clone)]
pub struct RedisCounters {
    conn: ConnectionManager,
    ns: String,
    put_if_newer: Script,
    string_max: Script,
}

impl RedisCounters {
    pub fn new(conn: ConnectionManager, namespace: &str) -> RedisCounters {
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
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET")
                .arg(format!("{}:{prefix}:{id}", self.ns))
                .arg(fields);
        }
        let mut conn = self.conn.clone();
        let rows: Vec<Vec<Option<i64>>> = bounded(pipe.query_async(&mut conn))
            .await
            .map_err(CountersError)?;
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
        let mut invocation = self.put_if_newer.prepare_invoke();
        invocation.arg(fields.len()).arg(fields);
        for (id, version, values) in &rows {
            invocation
                .key(format!("{}:{prefix}:{id}", self.ns))
                .arg(version)
                .arg(values);
        }
        let mut conn = self.conn.clone();
        bounded(invocation.invoke_async::<i64>(&mut conn))
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

    /// SCAN the namespace's counter and chat keys and UNLINK them, a page at a time.
    async fn clear(&self) -> Result<(), CountersError> {
        let mut conn = self.conn.clone();
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
                let (next, keys): (u64, Vec<String>) = bounded(scan.query_async(&mut conn))
                    .await
                    .map_err(CountersError)?;
                if !keys.is_empty() {
                    let unlink = redis::cmd("UNLINK").arg(&keys).to_owned();
                    bounded(unlink.query_async::<i64>(&mut conn))
                        .await
                        .map_err(CountersError)?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
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

/// Acknowledged and applied positions in two Redis hashes (`<ns>:acked`, `<ns>:applied`), field
/// `<topic>:<partition>`. Waits poll the applied hash with a short backoff.
#[derive(Clone)]
pub struct RedisPositions {
    conn: ConnectionManager,
    acked_key: String,
    applied_key: String,
    hash_max: Script,
}

fn field(topic: Topic, partition: u32) -> String {
    format!("{}:{partition}", topic.name())
}

impl RedisPositions {
    pub fn new(conn: ConnectionManager, namespace: &str) -> RedisPositions {
        RedisPositions {
            conn,
            acked_key: format!("{namespace}:acked"),
            applied_key: format!("{namespace}:applied"),
            hash_max: Script::new(HASH_MAX),
        }
    }

    async fn raise(&self, key: &str, values: &[(String, i64)]) -> Result<(), PositionsError> {
        if values.is_empty() {
            return Ok(());
        }
        let mut invocation = self.hash_max.prepare_invoke();
        invocation.key(key);
        for (field, value) in values {
            invocation.arg(field).arg(value);
        }
        let mut conn = self.conn.clone();
        bounded(invocation.invoke_async::<i64>(&mut conn))
            .await
            .map_err(PositionsError)?;
        Ok(())
    }
}

#[async_trait]
impl Positions for RedisPositions {
    async fn record_acked(&self, ends: &[Position]) -> Result<(), PositionsError> {
        let values: Vec<(String, i64)> = ends
            .iter()
            .map(|e| (field(e.topic, e.partition), e.offset))
            .collect();
        self.raise(&self.acked_key, &values).await
    }

    async fn acked_ends(&self, topics: &[Topic]) -> Result<Vec<Position>, PositionsError> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("HGETALL").arg(&self.acked_key).to_owned();
        let all: Vec<(String, i64)> = bounded(cmd.query_async(&mut conn))
            .await
            .map_err(PositionsError)?;
        Ok(all
            .into_iter()
            .filter_map(|(field, offset)| {
                let (topic, partition) = field.rsplit_once(':')?;
                let topic = Topic::from_name(topic).filter(|t| topics.contains(t))?;
                Some(Position {
                    topic,
                    partition: partition.parse().ok()?,
                    offset,
                })
            })
            .collect())
    }

    async fn applied_of(&self, targets: &[Position]) -> Result<Vec<i64>, PositionsError> {
        let fields: Vec<String> = targets
            .iter()
            .map(|t| field(t.topic, t.partition))
            .collect();
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("HMGET")
            .arg(&self.applied_key)
            .arg(&fields)
            .to_owned();
        let values: Vec<Option<i64>> = bounded(cmd.query_async(&mut conn))
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
        self.raise(&self.applied_key, &[(field(topic, partition), next)])
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
