//! [`RedisAttempts`]: login (and other) attempt quotas in Redis, shared by several command APIs:
//! a GCRA in one Lua script per attempt, on Redis' clock.

use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use titok_ports::limits::{AttemptLimits, LimitsError};

use super::conn::{bounded, RedisConn};

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
