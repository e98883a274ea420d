//! The `EventLog` port: where every command's event is made durable before the client hears "ok".

use async_trait::async_trait;
use titok_events::{Envelope, Topic};
use tokio::sync::watch;

/// Where one event landed (or, for [`EventLog::end_offsets`], the next offset to be written).
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
    /// The log cannot accept or serve events right now: the client gets a 503.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Append events, in order, and return once they are durable. All or nothing.
    async fn append(&self, events: &[Envelope]) -> Result<Vec<Position>, LogError>;
    /// Up to `max` records of one partition starting at `from`.
    async fn read(
        &self,
        topic: Topic,
        partition: u32,
        from: i64,
        max: usize,
    ) -> Result<Vec<LogRecord>, LogError>;
    /// For each partition of `topics`, the offset the next appended event will get: everything
    /// below it has been acknowledged.
    async fn end_offsets(&self, topics: &[Topic]) -> Result<Vec<Position>, LogError>;
    /// Partition count of a topic.
    fn partitions(&self, topic: Topic) -> u32;
    /// Ticks whenever something was appended, so consumers need not poll.
    fn subscribe(&self) -> watch::Receiver<u64>;
}
