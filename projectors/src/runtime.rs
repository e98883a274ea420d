//! The projection runtime: consume a topic in batches, fold, checkpoint, publish progress.
//!
//! One loop per projection. Each round reads up to [`BATCH`] records from every partition starting
//! at the stored checkpoints, folds them in **one** transaction that also writes the new
//! checkpoints, reads back the absolute counter values it touched, commits, then refreshes the
//! counter cache and only then publishes the applied positions (which the consistency wait
//! watches). A crash anywhere before the commit replays the batch; after it, nothing repeats.
//! When a round finds nothing it sleeps until the log ticks, so lag stays in milliseconds.
//!
//! A record that cannot be decoded is parked with its reason, and so is every later record of the
//! same key (per-key order must hold); the rest of the partition flows on.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use titok_events::{Envelope, Topic};
use titok_infra::counters::Counters;
use titok_infra::log::{EventLog, LogRecord};
use titok_infra::progress::Progress;
use titok_infra::stats::{user_stats, video_stats};
use titok_infra::store::ViewStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::views::{self, Touched};

/// Most records read from one partition per round.
pub const BATCH: usize = 1000;

/// What every projection needs.
#[derive(Clone)]
pub struct ProjectorDeps {
    pub log: Arc<dyn EventLog>,
    pub store: ViewStore,
    pub counters: Arc<dyn Counters>,
    pub progress: Arc<Progress>,
}

/// The projection consuming `topic` (named after the topic's family).
pub fn projection_name(topic: Topic) -> &'static str {
    topic.name().trim_start_matches("titok.")
}

/// Start one projection loop per topic; they stop after their current batch once `shutdown` is true.
pub async fn spawn_all(
    deps: ProjectorDeps,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, sqlx::Error> {
    let mut handles = Vec::new();
    for topic in Topic::ALL {
        let projection = Projection::load(deps.clone(), topic).await?;
        handles.push(tokio::spawn(projection.run(shutdown.clone())));
    }
    Ok(handles)
}

struct Projection {
    name: &'static str,
    topic: Topic,
    deps: ProjectorDeps,
    next: Vec<i64>,
    parked_keys: HashSet<String>,
}

impl Projection {
    async fn load(deps: ProjectorDeps, topic: Topic) -> Result<Projection, sqlx::Error> {
        let name = projection_name(topic);
        let partitions = deps.log.partitions(topic);
        let mut next = vec![0_i64; partitions as usize];
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT partition, next_offset FROM projection_offsets WHERE projection = ? AND topic = ?",
        )
        .bind(name)
        .bind(topic.name())
        .fetch_all(&deps.store.write)
        .await?;
        for (partition, offset) in rows {
            if let Some(slot) = usize::try_from(partition)
                .ok()
                .and_then(|p| next.get_mut(p))
            {
                *slot = offset;
            }
        }
        for (partition, offset) in next.iter().enumerate() {
            deps.progress.advance(topic, partition as u32, *offset);
        }
        let parked: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT key FROM parked_events WHERE projection = ? AND topic = ?",
        )
        .bind(name)
        .bind(topic.name())
        .fetch_all(&deps.store.write)
        .await?;
        let parked_keys = parked.into_iter().map(|(k,)| k).collect();
        Ok(Projection {
            name,
            topic,
            deps,
            next,
            parked_keys,
        })
    }

    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut ticks = self.deps.log.subscribe();
        let mut backoff = Duration::from_millis(50);
        tracing::info!(projection = self.name, positions = ?self.next, "projection started");
        while !*shutdown.borrow() {
            ticks.borrow_and_update();
            match self.step().await {
                Ok(0) => {
                    backoff = Duration::from_millis(50);
                    tokio::select! {
                        _ = ticks.changed() => {}
                        _ = shutdown.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                Ok(_) => backoff = Duration::from_millis(50),
                Err(err) => {
                    tracing::warn!(projection = self.name, error = %err, ?backoff, "projection batch failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        tracing::info!(projection = self.name, positions = ?self.next, "projection stopped");
    }

    /// One round: read, fold, commit. Returns how many records were applied.
    async fn step(&mut self) -> anyhow::Result<usize> {
        let mut batch = Vec::new();
        for (partition, from) in self.next.iter().enumerate() {
            batch.extend(
                self.deps
                    .log
                    .read(self.topic, partition as u32, *from, BATCH)
                    .await?,
            );
        }
        if batch.is_empty() {
            return Ok(0);
        }
        let count = batch.len();
        self.apply(batch).await?;
        Ok(count)
    }

    async fn apply(&mut self, batch: Vec<LogRecord>) -> anyhow::Result<()> {
        let mut tx = self.deps.store.write.begin().await?;
        let mut touched = Touched::default();
        let mut advanced = BTreeMap::new();
        let mut parked = HashSet::new();
        for rec in &batch {
            let blocked = self.parked_keys.contains(&rec.key) || parked.contains(&rec.key);
            let outcome = if blocked {
                Err("an earlier event of this key is parked".to_owned())
            } else {
                Envelope::decode(&rec.payload).map_err(|e| e.to_string())
            };
            match outcome {
                Ok(event) => views::fold(&mut tx, &event, &mut touched).await?,
                Err(reason) => {
                    park(&mut tx, self.name, rec, &reason).await?;
                    tracing::warn!(projection = self.name, topic = %rec.topic, partition = rec.partition,
                        offset = rec.offset, key = rec.key, reason, "event parked");
                    parked.insert(rec.key.clone());
                }
            }
            advanced.insert(rec.partition, rec.offset + 1);
        }
        for (partition, next) in &advanced {
            sqlx::query(
                "INSERT INTO projection_offsets (projection, topic, partition, next_offset) VALUES (?, ?, ?, ?) \
                 ON CONFLICT(projection, topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
            )
            .bind(self.name)
            .bind(self.topic.name())
            .bind(i64::from(*partition))
            .bind(next)
            .execute(&mut *tx)
            .await?;
        }
        let users: Vec<i64> = touched.users.iter().copied().collect();
        let videos: Vec<i64> = touched.videos.iter().copied().collect();
        let user_rows = user_stats(&mut *tx, &users).await?;
        let video_rows = video_stats(&mut *tx, &videos).await?;
        tx.commit().await?;

        for (partition, next) in &advanced {
            self.next[*partition as usize] = *next;
        }
        self.parked_keys.extend(parked);
        let user_rows: Vec<_> = user_rows.into_iter().collect();
        let video_rows: Vec<_> = video_rows.into_iter().collect();
        self.refresh_cache(&user_rows, &video_rows, &touched.chats)
            .await;
        for (partition, next) in advanced {
            self.deps.progress.advance(self.topic, partition, next);
        }
        Ok(())
    }

    /// Write the committed absolute values into the counter cache, retrying until it accepts them:
    /// progress is published only afterwards, so no read can see the view ahead of the cache.
    async fn refresh_cache(
        &self,
        users: &[(
            i64,
            titok_infra::counters::Versioned<titok_infra::counters::UserCounts>,
        )],
        videos: &[(
            i64,
            titok_infra::counters::Versioned<titok_infra::counters::VideoCounts>,
        )],
        chats: &[((i64, i64), i64)],
    ) {
        let counters = &self.deps.counters;
        let mut delay = Duration::from_millis(50);
        loop {
            let result = async {
                counters.put_users(users).await?;
                counters.put_videos(videos).await?;
                for (pair, created) in chats {
                    counters.put_chat_latest(*pair, *created).await?;
                }
                Ok::<_, titok_infra::counters::CountersError>(())
            }
            .await;
            match result {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(projection = self.name, error = %err, "counter cache refresh failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

async fn park(
    conn: &mut sqlx::SqliteConnection,
    projection: &str,
    rec: &LogRecord,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO parked_events (projection, topic, partition, offset, key, reason, payload, parked_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(projection)
    .bind(rec.topic.name())
    .bind(i64::from(rec.partition))
    .bind(rec.offset)
    .bind(&rec.key)
    .bind(reason)
    .bind(&rec.payload)
    .bind(titok_infra::now_ms())
    .execute(conn)
    .await?;
    Ok(())
}
