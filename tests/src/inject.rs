//! [`crate::TestApp::inject`]: raw records appended to a topic of the server's log as a foreign
//! producer would — through Kafka, or into the embedded log file with the server stopped.

use std::time::Duration;

use crate::services::on_real_services;
use crate::TestApp;

impl TestApp {
    /// Append raw records (`(key, payload)`) to a topic of the server's log, as a foreign producer
    /// would: with Kafka through a producer of its own; on the embedded log the server is stopped
    /// for it (the log file has one writer), and started again when all are written.
    pub async fn inject(&mut self, topic: titok_events::Topic, records: &[(String, Vec<u8>)]) {
        use titok_events::partition_for;
        match self.arg("--namespace").filter(|_| on_real_services()) {
            Some(namespace) => {
                use rdkafka::producer::{FutureProducer, FutureRecord};
                let producer: FutureProducer = rdkafka::ClientConfig::new()
                    .set(
                        "bootstrap.servers",
                        std::env::var("TITOK_TEST_KAFKA_BROKERS").expect("brokers"),
                    )
                    .create()
                    .expect("producer");
                let name = format!("{namespace}.{}", topic.name().trim_start_matches("titok."));
                let mut ends: std::collections::HashMap<u32, i64> = Default::default();
                for (key, payload) in records {
                    let partition = partition_for(key, 4);
                    let record = FutureRecord::to(&name)
                        .key(key)
                        .payload(payload)
                        .partition(partition as i32);
                    let delivered = producer
                        .send(record, Duration::from_secs(10))
                        .await
                        .map_err(|(e, _)| e)
                        .expect("produce");
                    let end = ends.entry(partition).or_default();
                    *end = (*end).max(delivered.offset + 1);
                }
                // Acknowledge them as a command API would, so that reads wait for them.
                let redis = self.arg("--redis-url").expect("--redis-url").to_owned();
                let positions = titok_adapters::redis_store::RedisPositions::new(
                    titok_adapters::redis_store::connect(&redis)
                        .await
                        .expect("redis"),
                    namespace,
                );
                let ends: Vec<titok_ports::log::Position> = ends
                    .into_iter()
                    .map(|(partition, offset)| titok_ports::log::Position {
                        topic,
                        partition,
                        offset,
                    })
                    .collect();
                titok_ports::progress::Positions::record_acked(&positions, &ends)
                    .await
                    .expect("record acked");
            }
            None => {
                assert!(self.terminate().await, "clean stop");
                let log = sqlx::SqlitePool::connect(&format!(
                    "sqlite://{}",
                    self.data_dir.join("log.db").display()
                ))
                .await
                .expect("log.db");
                for (key, payload) in records {
                    let partition = i64::from(partition_for(key, 4));
                    sqlx::query(
                        "INSERT INTO log (topic, partition, offset, key, payload, appended_ms) \
                         SELECT ?, ?, COALESCE(MAX(offset) + 1, 0), ?, ?, 0 FROM log \
                         WHERE topic = ? AND partition = ?",
                    )
                    .bind(topic.name())
                    .bind(partition)
                    .bind(key)
                    .bind(payload)
                    .bind(topic.name())
                    .bind(partition)
                    .execute(&log)
                    .await
                    .expect("append");
                }
                log.close().await;
                self.respawn().await;
                self.wait_ready().await;
            }
        }
    }
}
