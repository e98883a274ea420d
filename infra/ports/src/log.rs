//! The `EventLog` port: where every command's event is made durable before the client hears "ok",
//! and where projections consume from.

use std::time::Duration;

use async_trait::async_trait;
use titok_events::{Envelope, Topic};

/// Where one event landed (or, for end offsets, the next offset to be written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    pub topic: Topic,
    pub partition: u32,
    pub offset: i64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

/// One stored event, as bytes: projectors decode, and park what they cannot.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub topic: Topic,
    pub partition: u32,
    pub offset: i64,
    pub key: String,
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log cannot accept or serve events right now: the client gets a 503. The source is the
    /// adapter's own error (an rdkafka or sqlx error, or a message where there is none).
    #[error("event log unavailable: {0}")]
    Unavailable(#[source] crate::BoxError),
}

/// What the log's own configuration says about keeping events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retention {
    /// Every event is kept until deleted by hand (the embedded log; Kafka topics with
    /// `retention.ms=-1`, `retention.bytes=-1` and `cleanup.policy=delete`).
    Kept,
    /// The broker did not say (tansu answers DescribeConfigs with no entries): why.
    Unverified(String),
    /// The topics' settings delete or compact events: which, and how to fix it.
    Deletes(String),
}

#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Append events, in order, and return once they are durable. All or nothing.
    async fn append(&self, events: &[Envelope]) -> Result<Vec<Position>, LogError>;
    /// For each partition of `topics`, the offset the next appended event will get.
    async fn end_offsets(&self, topics: &[Topic]) -> Result<Vec<Position>, LogError>;
    /// For each partition of `topics`, the first offset the log still holds: 0 unless events were
    /// deleted (a broker's retention, `DeleteRecords`, rows removed from the embedded file); the
    /// end offset where a partition holds nothing. A fold that must start below it cannot be
    /// complete.
    async fn start_offsets(&self, topics: &[Topic]) -> Result<Vec<Position>, LogError>;
    /// Whether the log serves the record at `offset` of a partition (a check of what
    /// [`EventLog::start_offsets`] reports: some brokers misreport their low watermark).
    async fn holds(&self, topic: Topic, partition: u32, offset: i64) -> Result<bool, LogError>;
    /// Whether the log keeps every event for good, as far as the log can tell (checked when it
    /// was opened).
    fn retention(&self) -> Retention {
        Retention::Kept
    }
    /// Partition count of a topic.
    fn partitions(&self, topic: Topic) -> u32;
    /// A consumer of `topic` in consumer group `group`. `start[p]` is where the caller's own
    /// checkpoint says partition `p` continues; the consumer may deliver earlier records again
    /// (the caller skips them), never skip later ones.
    async fn consumer(
        &self,
        group: &str,
        topic: Topic,
        start: Vec<i64>,
    ) -> Result<Box<dyn LogConsumer>, LogError>;
}

/// A stateful reader of one topic.
#[async_trait]
pub trait LogConsumer: Send {
    /// The next records (per partition in offset order), waiting up to `wait` when there are none.
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<LogRecord>, LogError>;
    /// Everything below these `(partition, next offset)` pairs is durably applied by the caller.
    async fn commit(&mut self, applied: &[(u32, i64)]) -> Result<(), LogError>;
}
