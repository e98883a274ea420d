//! [`RedisPositions`]: acknowledged and applied log positions in Redis, shared by split
//! processes; values only rise (`HASH_MAX`).
//!
//! **Redis may forget.** A restart (even from a snapshot), a failover or a flush can take back
//! what was written, and nothing in the rule that values only rise notices. So every acknowledged-ends hash
//! carries an `epoch` field: the Redis incarnation the projectors last recovered the positions
//! on (a single Redis's `run_id`, a cluster's master node ids). A read of the acknowledged ends
//! checks it in the same pipeline (`INFO server` rides along on a single Redis) and reports
//! [`PositionsUnknown`] when it is missing or another; the projectors' watch
//! (`titok_projectors::generations`) then recovers counters and positions from the views and the
//! log and writes the new incarnation.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Script};
use titok_events::Topic;
use titok_ports::log::Position;
use titok_ports::progress::{Positions, PositionsError, PositionsUnknown};

use super::conn::{bounded, RedisConn};

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
