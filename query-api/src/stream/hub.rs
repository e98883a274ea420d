//! The stream hub of one query process: its own tail of the streamed topics, the release of each
//! event once its projection applied it, a bounded ring of recent events for resumes, and the
//! fan-out to the streams open on this process.
//!
//! - **Fan-out across instances**: every query process tails the log itself (a consumer group
//!   per process and topic, committing nothing), so a message accepted by any command API
//!   reaches streams on every query API, with no other moving part (no Redis pub/sub to lose
//!   messages while a subscriber reconnects). Cost: four consumers per query process — started
//!   at the first stream, so a process nobody streams from pays nothing.
//! - **Consistent with reads**: a consumed event waits until the applied positions (the ones the
//!   consistency wait reads, DESIGN.md §7) pass it; a read made after receiving it sees it.
//! - **Resume**: released events that concern someone are kept in a ring (`--stream-replay`
//!   events; at start the ring is filled from the log's recent events, so resumes work across
//!   restarts and instances). A stream id is a position per partition ([`super::cursor`]); a
//!   resume replays the ring's events at or above it, or says `reset` when the ring no longer
//!   reaches back to it.
//! - **Bounded**: each stream has a buffer of `--stream-buffer` events; a stream whose buffer is
//!   full is dropped (its client resumes with the last id it got). Streams per server and per
//!   user are capped. An idle stream costs nothing but its buffer: the hub polls the applied
//!   positions only while events are pending.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use titok_events::{Envelope, EventBody, Topic};
use titok_ports::log::{EventLog, LogConsumer, LogError};
use titok_ports::progress::Positions;
use titok_ports::Position;
use titok_views::reads::Reader;
use titok_web::http::ApiError;
use tokio::sync::{mpsc, watch, Notify, OnceCell};

use super::cursor::{Layout, STREAMED};
use super::items::{self, Item};

/// Bounds of the streams of one process (`titok --help`, heading Streams).
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Streams open at once on this process.
    pub max_streams: usize,
    /// Streams one user holds at once.
    pub per_user: usize,
    /// Events buffered per stream before a slow client's stream is ended.
    pub buffer: usize,
    /// Recent events kept for resumes.
    pub replay: usize,
}

/// How often pending events look at the applied positions again.
const RELEASE_POLL: Duration = Duration::from_millis(3);

/// The hub; cheap to clone.
#[derive(Clone)]
pub struct Hub(Arc<Shared>);

struct Shared {
    limits: StreamLimits,
    log: Arc<dyn EventLog>,
    positions: Arc<dyn Positions>,
    reader: Reader,
    group: String,
    shutdown: watch::Receiver<bool>,
    layout: Layout,
    started: OnceCell<()>,
    state: Mutex<State>,
    /// Records were consumed.
    consumed: Notify,
}

/// A record consumed and not yet released.
struct Pending {
    offset: i64,
    /// `None`: undecodable (or of a parked key): advances positions, pushes nothing.
    event: Option<EventBody>,
    /// Offsets below it were never seen (the log lost them).
    gap: bool,
}

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<Arc<Item>>,
    /// What the client already has: events below these offsets are not sent.
    floor: Vec<i64>,
}

#[derive(Default)]
struct State {
    pending: Vec<VecDeque<Pending>>,
    /// Per slot: the next offset expected from the consumer.
    consumed: Vec<i64>,
    /// Per slot: the next offset to release.
    released: Vec<i64>,
    /// Per slot: the ring holds every released event concerning someone from here on.
    low: Vec<i64>,
    ring: VecDeque<Arc<Item>>,
    /// Keys with an undecodable record, by topic: the projection parks their later records too.
    parked: HashSet<(Topic, String)>,
    subscribers: HashMap<i64, Vec<Subscriber>>,
    open: usize,
    next_id: u64,
}

/// A stream just subscribed.
pub struct Opened {
    /// Where the stream starts (its `ready` or `reset` event's id).
    pub cursor: Vec<i64>,
    /// Why the client's resume point could not be honoured (send `reset`), if it could not.
    pub reset: Option<String>,
    /// Missed events to send first, in order.
    pub replay: Vec<Arc<Item>>,
    /// The live events that follow.
    pub live: mpsc::Receiver<Arc<Item>>,
    /// Unsubscribes when dropped.
    pub guard: Subscription,
}

/// Holds a stream's place in the hub; dropping it (the client went away) frees it.
pub struct Subscription {
    hub: Hub,
    user: i64,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        state.remove(self.user, self.id);
    }
}

/// The released positions of `ends` (a log's end offsets of [`STREAMED`]) as a cursor.
fn slots_of(layout: &Layout, positions: &[Position]) -> Vec<i64> {
    let mut out = vec![0; layout.slots()];
    for p in positions {
        if let Some(slot) = layout.slot(p.topic, p.partition) {
            out[slot] = p.offset;
        }
    }
    out
}

impl Hub {
    pub fn new(
        limits: StreamLimits,
        log: Arc<dyn EventLog>,
        positions: Arc<dyn Positions>,
        reader: Reader,
        group: String,
        shutdown: watch::Receiver<bool>,
    ) -> Hub {
        let layout = Layout::new(|t| log.partitions(t));
        Hub(Arc::new(Shared {
            limits,
            log,
            positions,
            reader,
            group,
            shutdown,
            layout,
            started: OnceCell::new(),
            state: Mutex::new(State::default()),
            consumed: Notify::new(),
        }))
    }

    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }

    /// Whether the server is stopping (streams end).
    pub fn shutdown(&self) -> watch::Receiver<bool> {
        self.0.shutdown.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribe `user`, resuming after `resume` (a parsed stream id) when given.
    pub async fn subscribe(&self, user: i64, resume: Option<Vec<i64>>) -> Result<Opened, ApiError> {
        self.0
            .started
            .get_or_try_init(|| self.start())
            .await
            .map_err(|e| ApiError::unavailable("the event log", e))?;
        let ends = slots_of(&self.0.layout, &self.0.log.end_offsets(&STREAMED).await?);
        let (cursor, reset, replay, live, id) =
            self.lock().open(user, resume, ends, self.0.limits)?;
        Ok(Opened {
            cursor,
            reset,
            replay,
            live,
            guard: Subscription {
                hub: self.clone(),
                user,
                id,
            },
        })
    }

    /// Fill the ring from the log's recent events and start tailing.
    async fn start(&self) -> Result<(), LogError> {
        let shared = &self.0;
        let layout = &shared.layout;
        let starts = slots_of(layout, &shared.log.start_offsets(&STREAMED).await?);
        let ends = slots_of(layout, &shared.log.end_offsets(&STREAMED).await?);
        let per_slot = (shared.limits.replay / layout.slots().max(1)).max(1) as i64;
        let from: Vec<i64> = starts
            .iter()
            .zip(&ends)
            .map(|(start, end)| (*start).max(end - per_slot))
            .collect();
        let parked = self.parked_keys().await;
        {
            let mut state = self.lock();
            state.pending = (0..layout.slots()).map(|_| VecDeque::new()).collect();
            state.consumed = from.clone();
            state.released = from.clone();
            state.low = from.clone();
            state.parked = parked;
        }
        for topic in STREAMED {
            let start: Vec<i64> = layout
                .each()
                .zip(&from)
                .filter(|((t, _), _)| *t == topic)
                .map(|(_, o)| *o)
                .collect();
            let group = format!("{}.{}", shared.group, topic.name());
            let consumer = shared.log.consumer(&group, topic, start).await?;
            tokio::spawn(self.clone().consume(topic, consumer));
        }
        tokio::spawn(self.clone().release());
        tracing::info!(from = ?from, "stream hub tailing the log");
        Ok(())
    }

    /// Keys the projections parked in the streamed topics (their records are not applied).
    async fn parked_keys(&self) -> HashSet<(Topic, String)> {
        let rows: Result<Vec<(String, String)>, sqlx::Error> =
            sqlx::query_as("SELECT DISTINCT topic, event_key FROM parked_events")
                .fetch_all(&self.0.reader.pool)
                .await;
        match rows {
            Ok(rows) => rows
                .into_iter()
                .filter_map(|(t, k)| Topic::from_name(&t).map(|t| (t, k)))
                .filter(|(t, _)| STREAMED.contains(t))
                .collect(),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the parked keys; streams may push an event a projection parked");
                HashSet::new()
            }
        }
    }

    async fn consume(self, topic: Topic, mut consumer: Box<dyn LogConsumer>) {
        let mut shutdown = self.0.shutdown.clone();
        while !*shutdown.borrow() {
            let batch = tokio::select! {
                batch = consumer.poll(1000, Duration::from_millis(500)) => batch,
                _ = shutdown.changed() => break,
            };
            let records = match batch {
                Ok(records) => records,
                Err(err) => {
                    tracing::warn!(error = %err, topic = %topic, "the stream hub cannot read the log; streams wait");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if records.is_empty() {
                continue;
            }
            let mut state = self.lock();
            for rec in records {
                let Some(slot) = self.0.layout.slot(topic, rec.partition) else {
                    continue;
                };
                let next = state.consumed[slot];
                if rec.offset < next {
                    continue; // delivered again
                }
                state.consumed[slot] = rec.offset + 1;
                let parked_key = (topic, rec.key);
                let event = if state.parked.contains(&parked_key) {
                    None
                } else {
                    match Envelope::decode(&rec.payload) {
                        Ok(envelope) => Some(envelope.body),
                        Err(_) => {
                            state.parked.insert(parked_key);
                            None
                        }
                    }
                };
                state.pending[slot].push_back(Pending {
                    offset: rec.offset,
                    event,
                    gap: rec.offset > next,
                });
            }
            drop(state);
            self.0.consumed.notify_one();
        }
    }

    /// The pending events' targets: per slot with any, the position after its last.
    fn targets(&self) -> Vec<(usize, Position)> {
        let state = self.lock();
        self.0
            .layout
            .each()
            .enumerate()
            .filter_map(|(slot, (topic, partition))| {
                state.pending[slot].back().map(|p| {
                    let offset = p.offset + 1;
                    let at = Position {
                        topic,
                        partition,
                        offset,
                    };
                    (slot, at)
                })
            })
            .collect()
    }

    async fn release(self) {
        let mut shutdown = self.0.shutdown.clone();
        while !*shutdown.borrow() {
            let targets = self.targets();
            if targets.is_empty() {
                tokio::select! {
                    _ = self.0.consumed.notified() => {}
                    _ = shutdown.changed() => break,
                }
                continue;
            }
            let positions: Vec<Position> = targets.iter().map(|(_, p)| *p).collect();
            let applied = match self.0.positions.applied_of(&positions).await {
                Ok(applied) => applied,
                Err(err) => {
                    tracing::warn!(error = %err, "the stream hub cannot read the applied positions; streams wait");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let batch: Vec<(usize, Pending)> = {
                let mut state = self.lock();
                let mut batch = Vec::new();
                for ((slot, _), applied) in targets.iter().zip(applied) {
                    while state.pending[*slot]
                        .front()
                        .is_some_and(|p| p.offset < applied)
                    {
                        if let Some(p) = state.pending[*slot].pop_front() {
                            batch.push((*slot, p));
                        }
                    }
                }
                batch
            };
            if batch.is_empty() {
                tokio::time::sleep(RELEASE_POLL).await;
                continue;
            }
            let events: Vec<Option<&EventBody>> =
                batch.iter().map(|(_, p)| p.event.as_ref()).collect();
            let pushed = loop {
                match items::complete(&self.0.reader, &events).await {
                    Ok(pushed) => break pushed,
                    Err(err) => {
                        tracing::warn!(error = %err, "the stream hub cannot read the views; streams wait");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                            _ = shutdown.changed() => return,
                        }
                    }
                }
            };
            self.lock().publish(batch, pushed, self.0.limits.replay);
        }
    }
}

mod state;

#[cfg(test)]
mod tests;
