//! **Consumers:** one consumer group per projection (`<namespace>.projector.<projection>`),
//! auto-commit off. Where to resume is the projection's SQL checkpoint: records below the
//! checkpoint the projection passed in are skipped here, and the projection's transaction skips
//! anything another instance applied meanwhile. Kafka's group offsets are committed after the SQL
//! commit, so they are never ahead of it and only save re-reading. `auto.offset.reset` is
//! `error`: a checkpoint the broker no longer holds is an error the projection reports
//! (through [`EventLog::start_offsets`](titok_ports::log::EventLog::start_offsets)), never a
//! silent jump to the log's start.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use titok_events::Topic;

use titok_ports::log::{LogConsumer, LogError, LogRecord};

use super::{unavailable, KafkaLog};

impl KafkaLog {
    /// The consumer of `topic` in `group`, starting at the checkpoints `start` (one per partition):
    /// [`EventLog::consumer`](titok_ports::log::EventLog::consumer).
    pub(super) fn group_consumer(
        &self,
        group: &str,
        topic: Topic,
        start: Vec<i64>,
    ) -> Result<Box<dyn LogConsumer>, LogError> {
        let name = self.topic_name(topic);
        let consumer: StreamConsumer<ResumeAtCheckpoints> = ClientConfig::new()
            .set("bootstrap.servers", &self.settings.brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            // Never jump: a start offset the broker no longer holds (retention, deleted records) is
            // an error, and the projection checks the log's first offsets itself.
            .set("auto.offset.reset", "error")
            .set(
                "session.timeout.ms",
                self.settings.session_timeout_ms.to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (self.settings.session_timeout_ms / 3).max(100).to_string(),
            )
            // Also the rebalance timeout: how long a join waits for members that do not rejoin.
            // A SIGKILLed member's join slot otherwise stalls the group for librdkafka's default
            // 300 s on brokers that do not expire it by the session timeout during a rebalance
            // (tansu). A projection polls at least every few seconds, or its round fails and it
            // reconnects anyway.
            .set("max.poll.interval.ms", "20000")
            .set("enable.partition.eof", "false")
            // How long a fetch may wait at the broker when there is nothing new. Brokers answer a
            // waiting fetch as soon as data arrives, but some Kafka-API brokers (tansu) only at the
            // end of the wait, so keep it short: it bounds projection lag when traffic is light.
            .set("fetch.wait.max.ms", self.settings.fetch_wait_ms.to_string())
            .create_with_context(ResumeAtCheckpoints {
                next: Arc::new(Mutex::new(start.clone())),
            })
            .map_err(unavailable)?;
        consumer.subscribe(&[&name]).map_err(unavailable)?;
        Ok(Box::new(KafkaConsumer {
            log: self.clone(),
            consumer,
            name,
            start,
        }))
    }
}

/// Partitions assigned by the group start at the caller's checkpoints, not at the group's
/// committed offsets: those are only a hint, and may be ahead of the checkpoints when the views
/// were restored, wiped or rebuilt — resuming there would skip events.
struct ResumeAtCheckpoints {
    /// Per partition: the connect-time checkpoint, raised by every commit of this consumer.
    next: Arc<Mutex<Vec<i64>>>,
}

impl ClientContext for ResumeAtCheckpoints {}

impl ConsumerContext for ResumeAtCheckpoints {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            let next = match self.next.lock() {
                Ok(next) => next.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            };
            let assigned: Vec<(String, i32)> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect();
            for (topic, partition) in assigned {
                let at = usize::try_from(partition)
                    .ok()
                    .and_then(|p| next.get(p).copied())
                    .unwrap_or(0);
                if let Err(e) = tpl.set_partition_offset(&topic, partition, Offset::Offset(at)) {
                    tracing::warn!(error = %e, topic, partition, "cannot set the start offset");
                }
            }
            if let Err(e) = consumer.assign(tpl) {
                tracing::warn!(error = %e, "kafka partition assignment failed");
            }
        } else if let Err(e) = consumer.unassign() {
            tracing::warn!(error = %e, "kafka partition revocation failed");
        }
    }
}

struct KafkaConsumer {
    log: KafkaLog,
    consumer: StreamConsumer<ResumeAtCheckpoints>,
    name: String,
    /// Checkpoints at connect time: records below them are known to be applied.
    start: Vec<i64>,
}

impl KafkaConsumer {
    fn record(&self, msg: &rdkafka::message::BorrowedMessage<'_>) -> Option<LogRecord> {
        let topic = self.log.topic_of(msg.topic())?;
        let partition = u32::try_from(msg.partition()).ok()?;
        if msg.offset() < self.start.get(partition as usize).copied().unwrap_or(0) {
            return None;
        }
        Some(LogRecord {
            topic,
            partition,
            offset: msg.offset(),
            key: msg
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default(),
            payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        })
    }
}

#[async_trait]
impl LogConsumer for KafkaConsumer {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<LogRecord>, LogError> {
        let mut batch = Vec::new();
        let mut linger = wait;
        while batch.len() < max {
            match tokio::time::timeout(linger, self.consumer.recv()).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(unavailable(e)),
                Ok(Ok(msg)) => {
                    if let Some(rec) = self.record(&msg) {
                        batch.push(rec);
                    }
                    // After the first record, take only what is already there: lag stays low.
                    // (A zero timeout still polls `recv` once, so buffered messages come along.)
                    linger = Duration::ZERO;
                }
            }
        }
        Ok(batch)
    }

    async fn commit(&mut self, applied: &[(u32, i64)]) -> Result<(), LogError> {
        if let Ok(mut next) = self.consumer.context().next.lock() {
            for (partition, offset) in applied {
                if let Some(slot) = next.get_mut(*partition as usize) {
                    *slot = (*slot).max(*offset);
                }
            }
        }
        let mut tpl = TopicPartitionList::new();
        for (partition, next) in applied {
            tpl.add_partition_offset(&self.name, *partition as i32, Offset::Offset(*next))
                .map_err(unavailable)?;
        }
        // Advisory only (the SQL checkpoint decides): a failed commit costs a re-read, nothing more.
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(error = %e, "kafka offset commit failed");
        }
        Ok(())
    }
}
