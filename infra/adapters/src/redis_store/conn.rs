//! **One Redis or a Redis Cluster.** [`connect`] opens either (`redis://…`, or
//! `redis+cluster://host:port,host:port,…` for a cluster) as a [`RedisConn`]. Every key and script
//! is cluster-safe: a script touches one key only, so no call spans hash slots; counters are one
//! hash per user or video and positions one hash per topic, so both spread over the masters.
//! Commands on several keys go out as one pipeline to a single Redis and as concurrent
//! single-key commands to a cluster (whose client routes each to its slot's master and follows
//! MOVED/ASK redirections and failovers).
//!
//! Every call is bounded by a short timeout ([`bounded`]); failures count in
//! `titok_redis_errors_total`.

use std::time::Duration;

use futures::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, ScriptInvocation};

/// Longest any single Redis round trip may take before it counts as unavailable.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

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
    pub(super) async fn each<T: FromRedisValue + Send>(
        &self,
        cmds: Vec<Cmd>,
    ) -> redis::RedisResult<Vec<T>> {
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
    pub(super) async fn scripts(
        &self,
        invocations: Vec<ScriptInvocation<'_>>,
    ) -> redis::RedisResult<()> {
        try_join_all(invocations.into_iter().map(|invocation| {
            let mut conn = self.clone();
            async move { invocation.invoke_async::<i64>(&mut conn).await }
        }))
        .await?;
        Ok(())
    }

    /// The masters (`host`, `port`) of a cluster, from `CLUSTER NODES`; one entry (routing
    /// `None`) for a single Redis.
    pub(super) async fn masters(&self) -> redis::RedisResult<Vec<Option<(String, u16)>>> {
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
    pub(super) async fn on_node<T: FromRedisValue>(
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
pub(super) async fn bounded<T>(
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
