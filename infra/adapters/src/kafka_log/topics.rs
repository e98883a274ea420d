//! **Topics** are created by the application through the admin API with the configured partition
//! count (an existing topic keeps its count, read from the metadata) and the settings of a
//! database, not of a queue: `retention.ms=-1`, `retention.bytes=-1`, `cleanup.policy=delete`
//! and `min.insync.replicas` = min(2, replication). On connect the topics' configs are described
//! ([`KafkaLog::retention`]): a topic that would delete or compact events is reported as such
//! (the projector role refuses to run on it), and a broker that reports no configs (tansu) as
//! unverified.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use titok_events::Topic;

use titok_ports::log::{EventLog, LogError, Position, Retention};

use super::{unavailable, KafkaLog};

impl KafkaLog {
    fn admin(&self) -> Result<AdminClient<DefaultClientContext>, LogError> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.settings.brokers)
            .create()
            .map_err(unavailable)
    }

    /// What the brokers say about keeping the topics' events (see [`Retention`]).
    pub(super) async fn describe_retention(&self) -> Retention {
        let names: Vec<String> = Topic::ALL.iter().map(|t| self.topic_name(*t)).collect();
        let admin = match self.admin() {
            Ok(admin) => admin,
            Err(e) => return Retention::Unverified(format!("no admin client: {e}")),
        };
        let specifiers: Vec<ResourceSpecifier<'_>> =
            names.iter().map(|n| ResourceSpecifier::Topic(n)).collect();
        let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        let results = match admin.describe_configs(&specifiers, &options).await {
            Ok(results) => results,
            Err(e) => return Retention::Unverified(format!("DescribeConfigs failed: {e}")),
        };
        let mut configs = Vec::new();
        for (name, result) in names.iter().zip(results) {
            match result {
                Ok(resource) => configs.push((
                    name.clone(),
                    resource
                        .entries
                        .iter()
                        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                        .collect::<HashMap<String, String>>(),
                )),
                Err(code) => {
                    return Retention::Unverified(format!("DescribeConfigs of {name}: {code}"))
                }
            }
        }
        judge_retention(&configs)
    }

    pub(super) async fn create_topics(&self) -> Result<(), LogError> {
        let admin = self.admin()?;
        let names: Vec<String> = Topic::ALL.iter().map(|t| self.topic_name(*t)).collect();
        // The log is this system's database: nothing may expire or be compacted away, and an
        // acknowledged write must be on more than one replica where there are several.
        let min_insync = self.settings.replication.clamp(1, 2).to_string();
        let new: Vec<NewTopic> = names
            .iter()
            .map(|n| {
                NewTopic::new(
                    n,
                    self.settings.partitions as i32,
                    TopicReplication::Fixed(self.settings.replication),
                )
                .set("retention.ms", "-1")
                .set("retention.bytes", "-1")
                .set("cleanup.policy", "delete")
                .set("min.insync.replicas", &min_insync)
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin
            .create_topics(&new, &options)
            .await
            .map_err(unavailable)?
        {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(unavailable(format!("cannot create topic {name}: {code}")))
                }
            }
        }
        Ok(())
    }

    fn metadata_consumer(&self) -> Result<Arc<BaseConsumer>, LogError> {
        Ok(self.metadata.clone())
    }

    /// The low (`first`) or high watermark of every partition of `topics`: one blocking
    /// request per partition, all of them at once (one after the other they took a second for
    /// the 24 partitions on tansu).
    pub(super) async fn watermarks(
        &self,
        topics: &[Topic],
        first: bool,
    ) -> Result<Vec<Position>, LogError> {
        let consumer = self.metadata_consumer()?;
        let asks = topics.iter().flat_map(|&topic| {
            let name = self.topic_name(topic);
            let consumer = consumer.clone();
            (0..self.partitions(topic)).map(move |partition| {
                let (name, consumer) = (name.clone(), consumer.clone());
                tokio::task::spawn_blocking(move || {
                    let (low, high) = consumer
                        .fetch_watermarks(&name, partition as i32, Duration::from_secs(10))
                        .map_err(unavailable)?;
                    Ok::<_, LogError>(Position {
                        topic,
                        partition,
                        offset: if first { low } else { high },
                    })
                })
            })
        });
        let answers = futures::future::join_all(asks).await;
        answers
            .into_iter()
            .map(|answer| answer.map_err(unavailable)?)
            .collect()
    }

    pub(super) async fn read_partition_counts(&self) -> Result<HashMap<Topic, u32>, LogError> {
        let consumer = self.metadata_consumer()?;
        let names: Vec<(Topic, String)> = Topic::ALL
            .iter()
            .map(|t| (*t, self.topic_name(*t)))
            .collect();
        tokio::task::spawn_blocking(move || {
            let mut counts = HashMap::new();
            for (topic, name) in names {
                let meta = consumer
                    .fetch_metadata(Some(&name), Duration::from_secs(10))
                    .map_err(unavailable)?;
                let n = meta
                    .topics()
                    .first()
                    .map_or(0, |t| t.partitions().len() as u32);
                if n == 0 {
                    return Err(unavailable(format!("topic {name} has no partitions")));
                }
                counts.insert(topic, n);
            }
            Ok(counts)
        })
        .await
        .map_err(unavailable)?
    }
}

/// Whether topic configs (name → config entries) keep every event; a broker that reports no
/// entries at all cannot be judged.
fn judge_retention(configs: &[(String, HashMap<String, String>)]) -> Retention {
    if configs.is_empty() || configs.iter().all(|(_, entries)| entries.is_empty()) {
        return Retention::Unverified(
            "the broker reported no topic configs (DescribeConfigs answered empty)".into(),
        );
    }
    let mut problems = Vec::new();
    for (name, entries) in configs {
        for key in ["retention.ms", "retention.bytes"] {
            match entries.get(key).map(String::as_str) {
                Some("-1") => {}
                Some(value) => problems.push(format!("{name}: {key}={value}")),
                None => problems.push(format!("{name}: {key} not reported")),
            }
        }
        if let Some(policy) = entries.get("cleanup.policy") {
            if policy.split(',').any(|p| p.trim() == "compact") {
                problems.push(format!("{name}: cleanup.policy={policy}"));
            }
        }
    }
    if problems.is_empty() {
        Retention::Kept
    } else {
        Retention::Deletes(format!(
            "{} — the event log is this system's database and must keep every event: run \
             `kafka-configs.sh --alter --entity-type topics --entity-name <topic> --add-config \
             retention.ms=-1,retention.bytes=-1,cleanup.policy=delete` for each topic (or start \
             with --allow-log-retention if the events are archived elsewhere and views are never \
             rebuilt from this log)",
            problems.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(entries: &[(&str, &str)]) -> (String, HashMap<String, String>) {
        (
            "t.favorites".to_owned(),
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn retention_is_judged_from_the_topic_configs() {
        let kept = topic(&[
            ("retention.ms", "-1"),
            ("retention.bytes", "-1"),
            ("cleanup.policy", "delete"),
        ]);
        assert_eq!(
            judge_retention(std::slice::from_ref(&kept)),
            Retention::Kept
        );
        let week = topic(&[("retention.ms", "604800000"), ("retention.bytes", "-1")]);
        assert!(
            matches!(judge_retention(&[kept.clone(), week]), Retention::Deletes(w) if w.contains("retention.ms=604800000"))
        );
        let compacted = topic(&[
            ("retention.ms", "-1"),
            ("retention.bytes", "-1"),
            ("cleanup.policy", "compact,delete"),
        ]);
        assert!(matches!(
            judge_retention(&[compacted]),
            Retention::Deletes(_)
        ));
        assert!(matches!(
            judge_retention(&[topic(&[])]),
            Retention::Unverified(_)
        ));
    }
}
