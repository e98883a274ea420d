//! [`RedisCounters`]: the counter cache and the chat-poll shortcut in Redis. One hash per user
//! or video, holding absolute values with the SQL row version they were read at, replaced only by
//! a newer version (`PUT_IF_NEWER`); a conversation's newest message time only rises
//! (`STRING_MAX`) and expires when the chat is idle.

use async_trait::async_trait;
use redis::Script;
use titok_ports::counters::{
    Counters, CountersError, UserCounts, Versioned, VideoCounts, CHAT_IDLE_EXPIRY,
};

use super::conn::{bounded, RedisConn};

/// `put_if_newer` for one hash. KEYS[1] = the hash; ARGV = version, then field, value, … The
/// hash is replaced only if its stored `v` is older.
const PUT_IF_NEWER: &str = r"
local held = tonumber(redis.call('HGET', KEYS[1], 'v') or '-1')
if held < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], unpack(ARGV, 2))
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
