//! Folding a topic's records into a set of view tables: decode each record, park what cannot be
//! applied (and every later record of a parked key, so per-key order holds), fold the rest as one
//! batch with `titok_views::fold`. Used by the live runtime, the rebuild's replay and the tests.

use std::collections::HashSet;

use sqlx::AnyConnection;
use titok_events::{Envelope, Topic};
use titok_ports::log::LogRecord;
use titok_views::fold::{fold_batch, FoldSql, Touched};
use titok_views::{ledger, Tables};

/// Most records per round. A projection that is caught up polls what arrived since its last round
/// (a few records); one that is behind folds this many at once, in one transaction.
pub const BATCH: usize = 20_000;

/// The projection consuming `topic` (named after the topic's family).
pub fn projection_name(topic: Topic) -> &'static str {
    crate::catalog::view_of(topic).projection
}

/// Folds one topic's records into a set of tables (the live ones, or a rebuild's shadow copies),
/// parking what cannot be applied.
pub(crate) struct Folder {
    pub name: &'static str,
    pub sql: FoldSql,
    /// Keys with a parked event: their later events are parked too.
    pub parked_keys: HashSet<String>,
}

impl Folder {
    pub(crate) fn new(topic: Topic, tables: Tables) -> Folder {
        Folder {
            name: projection_name(topic),
            sql: FoldSql::new(tables),
            parked_keys: HashSet::new(),
        }
    }

    /// Fold records (in log order) inside the caller's transaction as one batch: decode each,
    /// park what cannot be applied (and every later record of a parked key), fold the rest with
    /// [`fold_batch`]. Keys parked here go to `parked` (the caller adds them to `parked_keys`
    /// once the transaction commits).
    pub(crate) async fn fold_records(
        &self,
        conn: &mut AnyConnection,
        records: &[&LogRecord],
        touched: &mut Touched,
        parked: &mut HashSet<String>,
    ) -> anyhow::Result<()> {
        let mut events = Vec::with_capacity(records.len());
        for rec in records {
            let blocked = self.parked_keys.contains(&rec.key) || parked.contains(&rec.key);
            let outcome = if blocked {
                Err("an earlier event of this key is parked".to_owned())
            } else {
                decode_checked(rec)
            };
            match outcome {
                Ok(event) => {
                    tracing::debug!(projection = self.name, event_id = %event.event_id,
                        trace_id = event.trace_id.as_deref().unwrap_or(""), partition = rec.partition,
                        offset = rec.offset, "event applied");
                    let at = event.occurred_at.timestamp_millis();
                    touched.newest_event_ms =
                        Some(touched.newest_event_ms.map_or(at, |t| t.max(at)));
                    events.push(event);
                }
                Err(reason) => {
                    ledger::park(conn, self.sql.tables(), self.name, rec, &reason).await?;
                    if self.sql.tables().is_live() {
                        tracing::warn!(projection = self.name, topic = %rec.topic, partition = rec.partition,
                            offset = rec.offset, key = rec.key, reason, "event parked");
                    }
                    parked.insert(rec.key.clone());
                }
            }
        }
        fold_batch(conn, &self.sql, &events, touched).await?;
        Ok(())
    }
}

/// The event in a log record, or why it cannot be applied: undecodable, of an unknown type or
/// version, breaking an invariant of its type, or on another type's topic.
pub(crate) fn decode_checked(rec: &LogRecord) -> Result<Envelope, String> {
    let event = Envelope::decode(&rec.payload).map_err(|e| e.to_string())?;
    if let Some(why) = titok_views::fold::unstorable(&event) {
        return Err(why);
    }
    if event.topic() != rec.topic {
        return Err(format!(
            "a {} event does not belong on {}",
            event.body.type_name(),
            rec.topic
        ));
    }
    Ok(event)
}
