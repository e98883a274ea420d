//! Read replicas for the query API, with read-after-write kept.
//!
//! The projections commit each batch's view rows **and** its checkpoints (`projection_offsets`)
//! in one transaction on the primary, and replication applies that transaction whole; so a
//! replica whose checkpoints are at or beyond an offset holds every view row of the events below
//! it. A read has first waited until the primary applied everything acknowledged before it (the
//! targets of `titok_ports::progress::Consistency`); [`ReadPools::choose`] then picks a replica,
//! round robin, whose checkpoints cover those targets — checking its checkpoints with one small
//! query when the last look was not enough — and gives up on the replicas after `patience`,
//! reading the primary instead. A replica that fails or does not answer is left alone for a
//! second. Nothing is read from a replica that would miss an acknowledged write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use titok_events::Topic;
use titok_ports::log::Position;

/// Longest a checkpoint query on one replica may take before the replica counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a replica that failed is skipped.
const DOWN_FOR: Duration = Duration::from_secs(1);

/// One replica: its pool and what its checkpoints were at the last look.
struct Replica {
    name: String,
    pool: AnyPool,
    state: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// `(topic, partition)` → next offset applied, as of the last look.
    checkpoints: HashMap<(Topic, u32), i64>,
    down_until: Option<Instant>,
}

impl Replica {
    fn is_down(&self, now: Instant) -> bool {
        self.state
            .lock()
            .map(|s| s.down_until.is_some_and(|t| t > now))
            .unwrap_or(false)
    }

    fn covers(&self, targets: &[Position]) -> bool {
        let Ok(seen) = self.state.lock() else {
            return false;
        };
        // Every target partition must have been seen, even at offset 0: a replica without the
        // checkpoint rows has not replicated the tables yet.
        targets.iter().all(|t| {
            seen.checkpoints
                .get(&(t.topic, t.partition))
                .is_some_and(|applied| *applied >= t.offset)
        })
    }

    /// Read the replica's checkpoints of `topics` (the least over projections of a partition).
    async fn look(&self, topics: &[Topic]) -> Result<(), String> {
        let list = vec!["?"; topics.len()].join(", ");
        let sql = format!(
            "SELECT topic, part, MIN(next_offset) FROM projection_offsets WHERE topic IN ({list}) GROUP BY topic, part"
        );
        let mut query = sqlx::query_as::<_, (String, i64, i64)>(&sql);
        for topic in topics {
            query = query.bind(topic.name());
        }
        let rows = match tokio::time::timeout(CHECK_TIMEOUT, query.fetch_all(&self.pool)).await {
            Ok(Ok(rows)) => rows,
            Ok(Err(err)) => return Err(err.to_string()),
            Err(_) => return Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        };
        if let Ok(mut seen) = self.state.lock() {
            for (topic, part, next) in rows {
                if let (Some(topic), Ok(part)) = (Topic::from_name(&topic), u32::try_from(part)) {
                    seen.checkpoints.insert((topic, part), next);
                }
            }
        }
        Ok(())
    }

    fn mark_down(&self, why: &str) {
        tracing::warn!(replica = %self.name, error = why, "read replica unavailable; skipping it for {DOWN_FOR:?}");
        metrics::counter!("titok_replica_errors_total", "replica" => self.name.clone())
            .increment(1);
        if let Ok(mut seen) = self.state.lock() {
            seen.down_until = Some(Instant::now() + DOWN_FOR);
        }
    }
}

/// Where the query API's reads go: the primary, or read replicas that have caught up.
#[derive(Clone)]
pub struct ReadPools {
    primary: AnyPool,
    replicas: Arc<[Replica]>,
    next: Arc<AtomicUsize>,
    patience: Duration,
}

/// Which pool a read was given, for its metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chosen {
    Primary,
    Replica(String),
}

impl Chosen {
    /// `primary`, or the replica's `host:port` (the `x-titok-read-from` header).
    pub fn name(self) -> String {
        match self {
            Chosen::Primary => "primary".into(),
            Chosen::Replica(name) => name,
        }
    }
}

impl ReadPools {
    /// The primary and replicas (`(name, pool)`); a read waits at most `patience` for a replica
    /// to catch up before reading the primary.
    pub fn new(
        primary: AnyPool,
        replicas: Vec<(String, AnyPool)>,
        patience: Duration,
    ) -> ReadPools {
        ReadPools {
            primary,
            replicas: replicas
                .into_iter()
                .map(|(name, pool)| Replica {
                    name,
                    pool,
                    state: Mutex::new(Seen::default()),
                })
                .collect(),
            next: Arc::new(AtomicUsize::new(0)),
            patience,
        }
    }

    /// Whether any replica is configured.
    pub fn has_replicas(&self) -> bool {
        !self.replicas.is_empty()
    }

    /// The pool for a read that must reflect `targets` (acknowledged ends the primary has
    /// applied) of `topics`. Without replicas, or without targets, the primary at once.
    pub async fn choose(&self, topics: &[Topic], targets: &[Position]) -> (AnyPool, Chosen) {
        let n = self.replicas.len();
        if n == 0 || targets.is_empty() {
            // Nothing to compare a replica's checkpoints with: only the primary is known to do.
            return self.on_primary();
        }
        let deadline = Instant::now() + self.patience;
        let mut pause = Duration::from_millis(1);
        loop {
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            let order: Vec<&Replica> = (0..n)
                .map(|i| &self.replicas[(start + i) % n])
                .filter(|r| !r.is_down(now))
                .collect();
            if let Some(r) = order.iter().find(|r| r.covers(targets)) {
                return self.replica(r);
            }
            let mut answering = 0;
            for r in &order {
                match r.look(topics).await {
                    Ok(()) if r.covers(targets) => return self.replica(r),
                    Ok(()) => answering += 1,
                    Err(why) => r.mark_down(&why),
                }
            }
            // Waiting is for replicas that answer but lag; with none answering, read the primary
            // at once.
            if answering == 0 || Instant::now() + pause > deadline {
                metrics::counter!("titok_replica_fallbacks_total").increment(1);
                return self.on_primary();
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    fn replica(&self, r: &Replica) -> (AnyPool, Chosen) {
        metrics::counter!("titok_reads_total", "pool" => r.name.clone()).increment(1);
        (r.pool.clone(), Chosen::Replica(r.name.clone()))
    }

    fn on_primary(&self) -> (AnyPool, Chosen) {
        metrics::counter!("titok_reads_total", "pool" => "primary").increment(1);
        (self.primary.clone(), Chosen::Primary)
    }
}
