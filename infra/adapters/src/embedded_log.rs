//! The embedded event log: topics and partitions in one SQLite file, with group commit.
//!
//! Appends go through one writer task. It takes every request waiting in its queue (up to
//! [`MAX_GROUP`] events), writes them in one transaction with `synchronous=FULL`, and only after the
//! commit (the fsync) answers each request with its positions. One fsync thus covers many concurrent
//! commands, which is where the ingest rate comes from. Offsets are dense per partition from 0, kept
//! in memory after a start-up scan, and advanced only after a successful commit, so a failed commit
//! leaves no gap and nothing half-done.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Connection, SqliteConnection, SqlitePool};
use titok_events::{partition_for, Envelope, Topic};
use tokio::sync::{mpsc, oneshot, watch};

use crate::store::{open_sqlite, sqlite_options, Durability};
use titok_ports::log::{EventLog, LogConsumer, LogError, LogRecord, Position};

/// Most events written in one group-commit transaction.
pub const MAX_GROUP: usize = 2048;

type Offsets = HashMap<(Topic, u32), i64>;

struct AppendRequest {
    records: Vec<(Topic, String, Vec<u8>)>,
    reply: oneshot::Sender<Result<Vec<Position>, LogError>>,
}

/// Cheap-clone handle to the embedded log.
#[derive(Clone)]
pub struct EmbeddedLog {
    partitions: u32,
    reads: SqlitePool,
    next: Arc<Mutex<Offsets>>,
    appends: mpsc::Sender<AppendRequest>,
    ticks: watch::Receiver<u64>,
    /// Read-only handles keep a sender that never ticks, so consumers poll on their wait timeout.
    _idle_ticks: Option<Arc<watch::Sender<u64>>>,
}

impl EmbeddedLog {
    /// Open (or create) the log at `path` with `partitions` partitions per topic.
    pub async fn open(path: &Path, partitions: u32) -> Result<EmbeddedLog, sqlx::Error> {
        let reads = open_sqlite(path, Durability::Full, 4, &titok_schemas::SQLITE_LOG).await?;
        let next = scan_ends(&reads).await?;
        let writer =
            SqliteConnection::connect_with(&sqlite_options(path, Durability::Full)?).await?;
        let next = Arc::new(Mutex::new(next));
        let (appends, queue) = mpsc::channel(4096);
        let (tick_tx, ticks) = watch::channel(0);
        let partitions = partitions.max(1);
        tokio::spawn(writer_task(
            writer,
            queue,
            next.clone(),
            tick_tx,
            partitions,
        ));
        Ok(EmbeddedLog {
            _idle_ticks: None,
            partitions,
            reads,
            next,
            appends,
            ticks,
        })
    }
}

impl EmbeddedLog {
    /// Open an existing log for reading only (another process owns the writer): for `titok tap`.
    /// Appends fail; consumers see new records by polling.
    pub async fn open_read_only(path: &Path, partitions: u32) -> Result<EmbeddedLog, sqlx::Error> {
        let options = sqlite_options(path, Durability::Full)?
            .create_if_missing(false)
            .read_only(true);
        let reads = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        let (appends, _) = mpsc::channel(1);
        let (idle, ticks) = watch::channel(0);
        let next = Arc::new(Mutex::new(scan_ends(&reads).await?));
        Ok(EmbeddedLog {
            partitions: partitions.max(1),
            reads,
            next,
            appends,
            ticks,
            _idle_ticks: Some(Arc::new(idle)),
        })
    }
}

/// The next offset of every (topic, partition) in the log file.
async fn scan_ends(reads: &SqlitePool) -> Result<Offsets, sqlx::Error> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT topic, partition, MAX(offset) + 1 FROM log GROUP BY topic, partition",
    )
    .fetch_all(reads)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(topic, partition, end)| {
            Some((
                (Topic::from_name(&topic)?, u32::try_from(partition).ok()?),
                end,
            ))
        })
        .collect())
}

fn lock(next: &Mutex<Offsets>) -> std::sync::MutexGuard<'_, Offsets> {
    match next.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

async fn writer_task(
    mut conn: SqliteConnection,
    mut queue: mpsc::Receiver<AppendRequest>,
    next: Arc<Mutex<Offsets>>,
    ticks: watch::Sender<u64>,
    partitions: u32,
) {
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        let mut count = group[0].records.len();
        while count < MAX_GROUP {
            match queue.try_recv() {
                Ok(req) => {
                    count += req.records.len();
                    group.push(req);
                }
                Err(_) => break,
            }
        }
        metrics::histogram!("titok_log_group_commit_events").record(count as f64);
        let mut tentative = lock(&next).clone();
        let result = write_group(&mut conn, &group, &mut tentative, partitions).await;
        match result {
            Ok(positions) => {
                *lock(&next) = tentative;
                ticks.send_modify(|t| *t = t.wrapping_add(1));
                for (req, pos) in group.into_iter().zip(positions) {
                    let _ = req.reply.send(Ok(pos));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, events = count, "event log group commit failed");
                // Every request of the group fails with the same cause.
                let err = Arc::new(err);
                for req in group {
                    let _ = req
                        .reply
                        .send(Err(LogError::Unavailable(Box::new(err.clone()))));
                }
            }
        }
    }
}

async fn write_group(
    conn: &mut SqliteConnection,
    group: &[AppendRequest],
    next: &mut Offsets,
    partitions: u32,
) -> Result<Vec<Vec<Position>>, sqlx::Error> {
    let now = titok_ports::now_ms();
    let mut all = Vec::with_capacity(group.len());
    let mut rows = Vec::new();
    for req in group {
        let mut positions = Vec::with_capacity(req.records.len());
        for (topic, key, payload) in &req.records {
            let partition = partition_for(key, partitions);
            let offset = next.entry((*topic, partition)).or_insert(0);
            positions.push(Position {
                topic: *topic,
                partition,
                offset: *offset,
            });
            rows.push((*topic, partition, *offset, key, payload));
            *offset += 1;
        }
        all.push(positions);
    }
    // One multi-row statement per `ROWS_PER_INSERT` records: the whole group in one transaction,
    // with plain BEGIN / COMMIT / ROLLBACK statements rather than sqlx's `Transaction`: after a
    // failed COMMIT (SQLITE_FULL on a full disk) SQLite may or may not have rolled back, sqlx's
    // own rollback then fails, its transaction depth stays at 1, and its next `begin()` became a
    // SAVEPOINT inside a transaction that never commits — groups were acknowledged that no other
    // connection could see and a restart lost (found by the disk-full test). Here an open
    // transaction is always rolled back, and a BEGIN inside one fails instead of nesting.
    if sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .is_err()
    {
        // A transaction left open (a failed ROLLBACK): end it, then begin once more.
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    }
    let written = insert_rows(conn, &rows, now).await;
    let committed = match written {
        Ok(()) => sqlx::query("COMMIT").execute(&mut *conn).await.map(|_| ()),
        Err(err) => Err(err),
    };
    if let Err(err) = committed {
        // Fails harmlessly when SQLite already rolled back by itself.
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        return Err(err);
    }
    Ok(all)
}

/// The group's rows, as multi-row inserts into the open transaction.
async fn insert_rows(
    conn: &mut SqliteConnection,
    rows: &[(Topic, u32, i64, &String, &Vec<u8>)],
    now: i64,
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO log (topic, partition, offset, key, payload, appended_ms) ",
        );
        insert.push_values(
            chunk,
            |mut row, (topic, partition, offset, key, payload)| {
                row.push_bind(topic.name())
                    .push_bind(i64::from(*partition))
                    .push_bind(*offset)
                    .push_bind(key.as_str())
                    .push_bind(payload.as_slice())
                    .push_bind(now);
            },
        );
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Records per `INSERT` of a group commit (6 parameters each, far below SQLite's limit).
const ROWS_PER_INSERT: usize = 512;

#[async_trait]
impl EventLog for EmbeddedLog {
    async fn append(&self, events: &[Envelope]) -> Result<Vec<Position>, LogError> {
        let records = events
            .iter()
            .map(|e| (e.topic(), e.key(), e.encode()))
            .collect();
        let (reply, answer) = oneshot::channel();
        self.appends
            .send(AppendRequest { records, reply })
            .await
            .map_err(|_| LogError::Unavailable("log writer stopped".into()))?;
        answer
            .await
            .map_err(|_| LogError::Unavailable("log writer stopped".into()))?
    }

    async fn end_offsets(&self, topics: &[Topic]) -> Result<Vec<Position>, LogError> {
        let next = lock(&self.next);
        Ok(topics
            .iter()
            .flat_map(|&topic| (0..self.partitions).map(move |partition| (topic, partition)))
            .map(|(topic, partition)| Position {
                topic,
                partition,
                offset: next.get(&(topic, partition)).copied().unwrap_or(0),
            })
            .collect())
    }

    async fn start_offsets(&self, topics: &[Topic]) -> Result<Vec<Position>, LogError> {
        let mut first: HashMap<(Topic, u32), i64> = HashMap::new();
        for &topic in topics {
            let rows: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT partition, MIN(offset) FROM log WHERE topic = ? GROUP BY partition",
            )
            .bind(topic.name())
            .fetch_all(&self.reads)
            .await
            .map_err(|e| LogError::Unavailable(Box::new(e)))?;
            for (partition, offset) in rows {
                if let Ok(partition) = u32::try_from(partition) {
                    first.insert((topic, partition), offset);
                }
            }
        }
        // A partition without rows starts where its next event will go.
        let mut starts = self.end_offsets(topics).await?;
        for start in &mut starts {
            if let Some(&offset) = first.get(&(start.topic, start.partition)) {
                start.offset = offset;
            }
        }
        Ok(starts)
    }

    async fn holds(&self, topic: Topic, partition: u32, offset: i64) -> Result<bool, LogError> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT offset FROM log WHERE topic = ? AND partition = ? AND offset = ?",
        )
        .bind(topic.name())
        .bind(i64::from(partition))
        .bind(offset)
        .fetch_optional(&self.reads)
        .await
        .map_err(|e| LogError::Unavailable(Box::new(e)))?;
        Ok(row.is_some())
    }

    fn partitions(&self, _topic: Topic) -> u32 {
        self.partitions
    }

    async fn consumer(
        &self,
        _group: &str,
        topic: Topic,
        start: Vec<i64>,
    ) -> Result<Box<dyn LogConsumer>, LogError> {
        let mut next = start;
        next.resize(self.partitions as usize, 0);
        Ok(Box::new(EmbeddedConsumer {
            log: self.clone(),
            topic,
            next,
            ticks: self.ticks.clone(),
        }))
    }
}

impl EmbeddedLog {
    /// Up to `max` records of one partition starting at `from`.
    pub async fn read(
        &self,
        topic: Topic,
        partition: u32,
        from: i64,
        max: usize,
    ) -> Result<Vec<LogRecord>, LogError> {
        let rows: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
            "SELECT offset, key, payload FROM log WHERE topic = ? AND partition = ? AND offset >= ? \
             ORDER BY offset LIMIT ?",
        )
        .bind(topic.name())
        .bind(i64::from(partition))
        .bind(from)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .fetch_all(&self.reads)
        .await
        .map_err(|e| LogError::Unavailable(Box::new(e)))?;
        Ok(rows
            .into_iter()
            .map(|(offset, key, payload)| LogRecord {
                topic,
                partition,
                offset,
                key,
                payload,
            })
            .collect())
    }
}

/// Reads every partition of one topic from its own positions; wakes on the writer's ticks.
struct EmbeddedConsumer {
    log: EmbeddedLog,
    topic: Topic,
    next: Vec<i64>,
    ticks: watch::Receiver<u64>,
}

impl EmbeddedConsumer {
    async fn read_all(&mut self, max: usize) -> Result<Vec<LogRecord>, LogError> {
        let mut batch = Vec::new();
        for (partition, from) in self.next.iter_mut().enumerate() {
            let records = self
                .log
                .read(self.topic, partition as u32, *from, max)
                .await?;
            if let Some(last) = records.last() {
                *from = last.offset + 1;
            }
            batch.extend(records);
        }
        Ok(batch)
    }
}

#[async_trait]
impl LogConsumer for EmbeddedConsumer {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<LogRecord>, LogError> {
        self.ticks.borrow_and_update();
        let batch = self.read_all(max).await?;
        if !batch.is_empty() {
            return Ok(batch);
        }
        // Nothing yet: sleep until the writer commits something (or the wait ends), then look again.
        let _ = tokio::time::timeout(wait, self.ticks.changed()).await;
        self.read_all(max).await
    }

    async fn commit(&mut self, _applied: &[(u32, i64)]) -> Result<(), LogError> {
        // The caller's SQL checkpoint is the only record of progress the embedded log needs.
        Ok(())
    }
}
