//! The `EventLog` on Kafka (rdkafka / librdkafka), for production and the real-service tests.
//!
//! - **Append:** an idempotent producer with `acks=all`; the reply waits for the broker's delivery
//!   report. The partition is computed with [`titok_events::partition_for`], the same rule as the
//!   embedded log, and set explicitly. A broker that cannot take the write within
//!   `message.timeout.ms` makes the command fail with a 503 (the outcome is then unknown to the
//!   client, as with any log: a retry is safe because likes/follows are idempotent).
//! - **Topics** (`topics`): created by the application with the settings of a database, not of
//!   a queue, and checked for retention on connect ([`KafkaLog::retention`]); partition counts and
//!   watermarks.
//! - **Consumers** (`consumer`): one consumer group per projection, resuming at the projection's
//!   SQL checkpoint, never at the log's start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use titok_events::{partition_for, Envelope, Topic};

use titok_ports::log::{EventLog, LogConsumer, LogError, Position, Retention};

mod consumer;
mod topics;

/// How to reach and use the brokers.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    /// Topic names are `<namespace>.<family>` (e.g. `titok.favorites`).
    pub namespace: String,
    pub partitions: u32,
    pub replication: i32,
    /// Consumer group session timeout; short in tests so a killed member's partitions move fast.
    pub session_timeout_ms: u32,
    /// `fetch.wait.max.ms` of the projection consumers.
    pub fetch_wait_ms: u32,
    /// Idempotent producer (the default). Off only for brokers that mishandle it.
    pub idempotence: bool,
    /// `linger.ms` of the producer: how long a send may wait for others to share its batch.
    pub linger_ms: u32,
}

/// Cheap-clone handle to the Kafka log.
#[derive(Clone)]
pub struct KafkaLog {
    settings: KafkaSettings,
    producer: FutureProducer,
    partitions: HashMap<Topic, u32>,
    /// What the topics' configs said at connect time.
    retention: Retention,
    /// One client for metadata and watermarks (a librdkafka client per call cost a connection
    /// and threads each time `/readyz` was probed).
    metadata: Arc<BaseConsumer>,
}

/// Longest an append waits for the broker's acknowledgement before answering "unavailable".
pub const APPEND_TIMEOUT: Duration = Duration::from_secs(5);

fn unavailable(e: impl Into<titok_ports::BoxError>) -> LogError {
    LogError::Unavailable(e.into())
}

impl KafkaLog {
    /// The same log (its producer and clients shared) whose new consumers wait up to `ms` at the
    /// broker when there is nothing new: for tails that tolerate lag on brokers that answer a
    /// waiting fetch only at the end of its wait (tansu), each of whose fetches costs it a round
    /// of storage reads.
    pub fn with_fetch_wait(&self, ms: u32) -> KafkaLog {
        let mut log = self.clone();
        log.settings.fetch_wait_ms = ms;
        log
    }

    /// Connect, create the topics if needed, and learn their partition counts.
    pub async fn connect(settings: KafkaSettings) -> Result<KafkaLog, LogError> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &settings.brokers)
            .set("enable.idempotence", settings.idempotence.to_string())
            // Without idempotence, one request in flight keeps a retried event next to its
            // original, so a duplicate can only repeat an event the folds already treat as a no-op.
            .set(
                "max.in.flight.requests.per.connection",
                if settings.idempotence { "5" } else { "1" },
            )
            .set("acks", "all")
            .set("linger.ms", settings.linger_ms.to_string())
            .set("message.timeout.ms", "5000")
            // A request already sent is not covered by `message.timeout.ms`: on a stalled
            // connection it waited for the request timeout (30 s by default), and commands
            // answered after 10 s instead of 5 (found by the network-stall test).
            .set("request.timeout.ms", "4000")
            .create()
            .map_err(unavailable)?;
        let metadata = Arc::new(
            ClientConfig::new()
                .set("bootstrap.servers", &settings.brokers)
                .create()
                .map_err(unavailable)?,
        );
        let log = KafkaLog {
            settings,
            producer,
            partitions: HashMap::new(),
            retention: Retention::Kept,
            metadata,
        };
        log.create_topics().await?;
        let partitions = log.read_partition_counts().await?;
        let retention = log.describe_retention().await;
        match &retention {
            Retention::Kept => {}
            Retention::Unverified(why) => tracing::warn!(
                why = why.as_str(),
                "cannot verify that the event log keeps every event: check the topics' \
                 retention.ms=-1, retention.bytes=-1 and cleanup.policy=delete by hand"
            ),
            Retention::Deletes(what) => {
                tracing::error!(what = what.as_str(), "the event log deletes events")
            }
        }
        Ok(KafkaLog {
            partitions,
            retention,
            ..log
        })
    }

    pub fn topic_name(&self, topic: Topic) -> String {
        format!(
            "{}.{}",
            self.settings.namespace,
            topic.name().trim_start_matches("titok.")
        )
    }

    fn topic_of(&self, name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| self.topic_name(*t) == name)
    }
}

#[async_trait]
impl EventLog for KafkaLog {
    async fn append(&self, events: &[Envelope]) -> Result<Vec<Position>, LogError> {
        let sends = events.iter().map(|event| async move {
            let topic = event.topic();
            let name = self.topic_name(topic);
            let key = event.key();
            let payload = event.encode();
            let partition = partition_for(&key, self.partitions(topic));
            let record = FutureRecord::to(&name)
                .key(&key)
                .payload(&payload)
                .partition(partition as i32);
            let delivery = self
                .producer
                .send(record, Duration::from_secs(5))
                .await
                .map_err(|(e, _)| unavailable(e))?;
            Ok(Position {
                topic,
                partition: delivery.partition as u32,
                offset: delivery.offset,
            })
        });
        // One bound for the whole append, whatever librdkafka is waiting on (a full local queue,
        // a stalled connection, a broker that cannot be reached): the reply is a 503 with the
        // outcome unknown, as for a delivery timeout (under a reset network it took 11 s before).
        match tokio::time::timeout(APPEND_TIMEOUT, futures::future::try_join_all(sends)).await {
            Ok(result) => result,
            Err(_) => Err(unavailable(format!(
                "no acknowledgement from the broker within {APPEND_TIMEOUT:?} (the event may still be written)"
            ))),
        }
    }

    async fn end_offsets(&self, topics: &[Topic]) -> Result<Vec<Position>, LogError> {
        self.watermarks(topics, false).await
    }

    async fn start_offsets(&self, topics: &[Topic]) -> Result<Vec<Position>, LogError> {
        self.watermarks(topics, true).await
    }

    fn retention(&self) -> Retention {
        self.retention.clone()
    }

    async fn holds(&self, topic: Topic, partition: u32, offset: i64) -> Result<bool, LogError> {
        let name = self.topic_name(topic);
        let brokers = self.settings.brokers.clone();
        tokio::task::spawn_blocking(move || {
            // An assigned (not subscribed) consumer: it joins no group and commits nothing.
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", "titok-probe")
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "error")
                .set("enable.partition.eof", "true")
                .create()
                .map_err(unavailable)?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&name, partition as i32, Offset::Offset(offset))
                .map_err(unavailable)?;
            consumer.assign(&tpl).map_err(unavailable)?;
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                match consumer.poll(Duration::from_millis(200)) {
                    None => {}
                    Some(Ok(msg)) => return Ok(msg.offset() == offset),
                    Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return Ok(false),
                    Some(Err(e)) => {
                        let gone = matches!(
                            e.rdkafka_error_code(),
                            Some(RDKafkaErrorCode::OffsetOutOfRange)
                                | Some(RDKafkaErrorCode::AutoOffsetReset)
                        );
                        return if gone { Ok(false) } else { Err(unavailable(e)) };
                    }
                }
            }
            Err(unavailable(format!(
                "no answer for {name}/{partition}@{offset} within 10 s"
            )))
        })
        .await
        .map_err(unavailable)?
    }

    fn partitions(&self, topic: Topic) -> u32 {
        self.partitions
            .get(&topic)
            .copied()
            .unwrap_or(self.settings.partitions)
    }

    async fn consumer(
        &self,
        group: &str,
        topic: Topic,
        start: Vec<i64>,
    ) -> Result<Box<dyn LogConsumer>, LogError> {
        self.group_consumer(group, topic, start)
    }
}
