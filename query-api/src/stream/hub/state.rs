//! The hub's bookkeeping, with no I/O: subscribing at a cursor (caps, resume or reset, the
//! replay from the ring), releasing a batch into the ring and the streams, ending a stream whose
//! buffer is full, resetting every stream, forgetting one. The hub ([`super::Hub`]) calls these
//! under its lock; `tests.rs` drives them directly.

use std::sync::Arc;

use titok_web::http::ApiError;
use tokio::sync::mpsc;

use super::{items, Item, Pending, State, StreamLimits, Subscriber};

impl State {
    /// Subscribe `user` at `resume` (or at `ends`, the log's end offsets, for a new stream):
    /// the cursor it starts at, why its resume point could not be honoured, the ring's events it
    /// missed, its live channel and its subscriber id.
    #[allow(clippy::type_complexity)]
    pub(super) fn open(
        &mut self,
        user: i64,
        resume: Option<Vec<i64>>,
        ends: Vec<i64>,
        limits: StreamLimits,
    ) -> Result<
        (
            Vec<i64>,
            Option<String>,
            Vec<Arc<Item>>,
            mpsc::Receiver<Arc<Item>>,
            u64,
        ),
        ApiError,
    > {
        if self.open >= limits.max_streams {
            metrics::counter!("titok_streams_refused_total", "reason" => "server").increment(1);
            return Err(ApiError::Busy(format!(
                "this server holds its maximum of {} streams; try another or poll",
                limits.max_streams
            )));
        }
        let held = self.subscribers.get(&user).map_or(0, Vec::len);
        if held >= limits.per_user {
            metrics::counter!("titok_streams_refused_total", "reason" => "user").increment(1);
            return Err(ApiError::TooManyRequests(format!(
                "a user holds at most {} streams at once; close one first",
                limits.per_user
            )));
        }
        let (cursor, reset) = match resume {
            None => (ends, None),
            Some(c) if c.iter().zip(&self.low).any(|(c, low)| c < low) => (
                ends,
                Some("the events since last_event_id are no longer held; re-read with the polling API".to_owned()),
            ),
            Some(c) if c.iter().zip(&ends).any(|(c, end)| c > end) => (
                ends,
                Some("last_event_id is ahead of this log; re-read with the polling API".to_owned()),
            ),
            Some(c) => (c, None),
        };
        let replay: Vec<Arc<Item>> = self
            .ring
            .iter()
            .filter(|i| i.pushed.users.contains(&user) && i.offset >= cursor[i.slot])
            .cloned()
            .collect();
        let (tx, live) = mpsc::channel(limits.buffer.max(1));
        self.next_id += 1;
        let id = self.next_id;
        self.subscribers.entry(user).or_default().push(Subscriber {
            id,
            tx,
            floor: cursor.clone(),
        });
        self.open += 1;
        metrics::gauge!("titok_streams_open").set(self.open as f64);
        Ok((cursor, reset, replay, live, id))
    }

    /// Release `batch` (with what each pushes) into the ring (at most `replay` events) and the
    /// streams.
    pub(super) fn publish(
        &mut self,
        batch: Vec<(usize, Pending)>,
        pushed: Vec<Option<items::Pushed>>,
        replay: usize,
    ) {
        for ((slot, pending), pushed) in batch.into_iter().zip(pushed) {
            if pending.gap {
                tracing::error!(
                    slot,
                    offset = pending.offset,
                    "a streamed topic has a gap; open streams are reset"
                );
                self.low[slot] = self.low[slot].max(pending.offset);
                self.released[slot] = pending.offset;
                self.reset_all(&format!(
                    "the log lost events before offset {} of a partition; re-read with the polling API",
                    pending.offset
                ));
            }
            self.released[slot] = pending.offset + 1;
            let Some(pushed) = pushed else {
                continue;
            };
            metrics::counter!("titok_stream_events_total", "kind" => pushed.kind).increment(1);
            let item = Arc::new(Item {
                slot,
                offset: pending.offset,
                pushed,
                cursor: self.released.clone().into(),
            });
            self.ring.push_back(item.clone());
            while self.ring.len() > replay.max(1) {
                if let Some(old) = self.ring.pop_front() {
                    self.low[old.slot] = self.low[old.slot].max(old.offset + 1);
                }
            }
            for user in &item.pushed.users {
                self.deliver(*user, &item);
            }
        }
    }

    /// Send `item` to `user`'s streams; a stream whose buffer is full is ended.
    fn deliver(&mut self, user: i64, item: &Arc<Item>) {
        let Some(subs) = self.subscribers.get_mut(&user) else {
            return;
        };
        let before = subs.len();
        subs.retain(|s| {
            if item.offset < s.floor[item.slot] {
                return true; // the client had it (from another instance)
            }
            match s.tx.try_send(item.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics::counter!("titok_streams_overflowed_total").increment(1);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        let gone = before - subs.len();
        if subs.is_empty() {
            self.subscribers.remove(&user);
        }
        if gone > 0 {
            self.open -= gone;
            metrics::gauge!("titok_streams_open").set(self.open as f64);
        }
    }

    /// Tell every open stream to re-read (a `reset` item each), from the current position.
    fn reset_all(&mut self, reason: &str) {
        let data = serde_json::to_string(&items::ResetPush {
            reason: reason.to_owned(),
        })
        .unwrap_or_default();
        let users: Vec<i64> = self.subscribers.keys().copied().collect();
        for user in users {
            let item = Arc::new(Item {
                slot: 0,
                offset: i64::MAX,
                pushed: items::Pushed {
                    users: vec![user],
                    kind: "reset",
                    data: data.clone(),
                },
                cursor: self.released.clone().into(),
            });
            self.deliver(user, &item);
        }
    }

    /// Forget subscriber `id` of `user` (its client went away).
    pub(super) fn remove(&mut self, user: i64, id: u64) {
        if let Some(subs) = self.subscribers.get_mut(&user) {
            let before = subs.len();
            subs.retain(|s| s.id != id);
            self.open -= before - subs.len();
            if subs.is_empty() {
                self.subscribers.remove(&user);
            }
        }
        metrics::gauge!("titok_streams_open").set(self.open as f64);
    }
}
