//! The feed from memory: the newest videos in an ordered in-process index, so that a feed page
//! is a lookup, not a query.
//!
//! The index is loaded from the videos view together with the videos projection's checkpoints,
//! in one snapshot (one read transaction), and then kept current by a tail of its own on the
//! videos topic (a consumer group per process that commits nothing), which it folds as the
//! projection does: the first `VideoPublished` of an id wins, an undecodable record parks its
//! key and every later record of that key. It knows, per partition, the offset up to which it
//! holds every video — its **coverage** — so a read that waited for the acknowledged ends of the
//! videos topic (DESIGN.md §7) serves a page from memory only when the index covers those ends
//! too; otherwise (a tail still joining its group, a burst of publishes it has not folded yet)
//! the page comes from SQL as before. A gap in the topic stops the index for good (SQL from then
//! on, and an error in the log).
//!
//! Memory is bounded: at most `capacity` videos (`--feed-index-videos`). The oldest are dropped
//! first, and the index then answers only pages that lie wholly above the newest video it
//! dropped; older pages (`latest_time` far back) fall back to SQL.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::AnyPool;
use titok_events::{Envelope, EventBody, Topic};
use titok_ports::log::{EventLog, LogRecord};
use titok_ports::Position;
use tokio::sync::watch;

use crate::ViewTable;

use super::{VideoRow, MAX_SAME_MS_PAGE, VIDEO_COLUMNS};

/// Feed order: publish time, then id (both descending on a page).
type Key = (i64, i64);

/// The newest videos, their coverage of the videos topic, and a signal for readers that wait for
/// coverage. Cheap to clone.
#[derive(Clone)]
pub struct FeedIndex {
    inner: Arc<RwLock<Inner>>,
    folded: watch::Sender<u64>,
}

struct Inner {
    capacity: usize,
    videos: BTreeMap<Key, VideoRow>,
    ids: HashSet<i64>,
    /// Per partition of the videos topic: every video below this offset is held (or was dropped
    /// below `floor`).
    covered: Vec<i64>,
    /// The newest key dropped for room (or left out of the snapshot): videos at or below it may
    /// be missing.
    floor: Option<Key>,
    /// Keys with an undecodable record: their later records are skipped, as the projection parks
    /// them.
    parked: HashSet<String>,
    /// A gap in the topic was met: the index answers nothing any more.
    broken: bool,
    /// An estimate of the heap the videos take ([`FeedIndex::bytes`]).
    bytes: usize,
}

/// Heap per held video besides its strings: the tree's entry (key and row, with node slack) and
/// the id set's.
const ENTRY_BYTES: usize = 2 * (std::mem::size_of::<Key>() + std::mem::size_of::<VideoRow>()) + 16;

fn heap_of(row: &VideoRow) -> usize {
    ENTRY_BYTES + row.title.len() + row.play_path.len() + row.cover_path.len()
}

/// Why the index could not start.
#[derive(Debug, thiserror::Error)]
pub enum FeedIndexError {
    #[error("cannot load the feed index from the views: {0}")]
    Load(#[from] sqlx::Error),
    #[error("cannot tail the videos topic for the feed index: {0}")]
    Log(#[from] titok_ports::log::LogError),
}

impl FeedIndex {
    /// Load the newest `capacity` videos and the coverage they stand for (the projection
    /// `projection`'s checkpoints of the videos topic, read in the same snapshot).
    pub async fn load(
        pool: &AnyPool,
        projection: &str,
        partitions: u32,
        capacity: usize,
    ) -> Result<FeedIndex, sqlx::Error> {
        let mut tx = pool.begin().await?;
        let checkpoints: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT part, next_offset FROM projection_offsets WHERE projection = ? AND topic = ?",
        )
        .bind(projection)
        .bind(Topic::Videos.name())
        .fetch_all(&mut *tx)
        .await?;
        let rows: Vec<VideoRow> = sqlx::query_as(&format!(
            "SELECT {VIDEO_COLUMNS} FROM {} ORDER BY published_ms DESC, id DESC LIMIT ?",
            ViewTable::Videos
        ))
        .bind(capacity as i64)
        .fetch_all(&mut *tx)
        .await?;
        let parked: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT event_key FROM parked_events WHERE projection = ? AND topic = ?",
        )
        .bind(projection)
        .bind(Topic::Videos.name())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut covered = vec![0; partitions as usize];
        for (part, next) in checkpoints {
            if let Some(slot) = usize::try_from(part).ok().and_then(|p| covered.get_mut(p)) {
                *slot = next;
            }
        }
        // A full snapshot may have left older videos out: the oldest it holds is the floor.
        let floor = (rows.len() >= capacity)
            .then(|| rows.last().map(|r| (r.published_ms, r.id)))
            .flatten();
        let mut inner = Inner {
            capacity: capacity.max(1),
            videos: BTreeMap::new(),
            ids: HashSet::new(),
            covered,
            floor: None,
            parked: parked.into_iter().map(|(k,)| k).collect(),
            broken: false,
            bytes: 0,
        };
        for row in rows {
            inner.insert(row);
        }
        inner.floor = floor;
        inner.gauges();
        Ok(FeedIndex::of(inner))
    }

    fn of(inner: Inner) -> FeedIndex {
        FeedIndex {
            inner: Arc::new(RwLock::new(inner)),
            folded: watch::Sender::new(0),
        }
    }

    /// Load, then keep the index current from a tail of the videos topic (in a consumer group
    /// of its own, `group`) until `shutdown` turns true.
    pub async fn start(
        pool: &AnyPool,
        log: Arc<dyn EventLog>,
        projection: &str,
        group: &str,
        capacity: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Result<FeedIndex, FeedIndexError> {
        let index =
            FeedIndex::load(pool, projection, log.partitions(Topic::Videos), capacity).await?;
        let start = index.read().covered.clone();
        let consumer = log.consumer(group, Topic::Videos, start).await?;
        tokio::spawn(index.clone().tail(consumer, shutdown));
        Ok(index)
    }

    async fn tail(
        self,
        mut consumer: Box<dyn titok_ports::log::LogConsumer>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        while !*shutdown.borrow() {
            let batch = tokio::select! {
                batch = consumer.poll(1000, Duration::from_millis(500)) => batch,
                _ = shutdown.changed() => break,
            };
            match batch {
                Ok(records) if records.is_empty() => {}
                Ok(records) => {
                    if !self.fold(&records) {
                        return;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "the feed index cannot read the videos topic; feeds come from SQL meanwhile");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Fold records of the videos topic; false once the index is broken (a gap).
    fn fold(&self, records: &[LogRecord]) -> bool {
        let mut inner = self.write();
        for rec in records {
            let Some(next) = inner.covered.get(rec.partition as usize).copied() else {
                continue;
            };
            if rec.offset < next {
                continue; // delivered again
            }
            if rec.offset > next {
                tracing::error!(
                    partition = rec.partition,
                    from = next,
                    to = rec.offset,
                    "the videos topic has a gap; the feed index stops (feeds come from SQL)"
                );
                inner.broken = true;
                return false;
            }
            inner.covered[rec.partition as usize] = rec.offset + 1;
            if inner.parked.contains(&rec.key) {
                continue;
            }
            match Envelope::decode(&rec.payload) {
                Ok(Envelope {
                    body: EventBody::VideoPublished(e),
                    ..
                }) => inner.insert(VideoRow {
                    id: e.video_id,
                    author_id: e.author_id,
                    title: e.title.into(),
                    play_path: e.play_path.into(),
                    cover_path: e.cover_path.into(),
                    published_ms: e.published_at_ms,
                }),
                Ok(_) => {}
                Err(_) => {
                    inner.parked.insert(rec.key.clone());
                }
            }
        }
        inner.gauges();
        drop(inner);
        self.folded.send_modify(|n| *n += 1);
        true
    }

    /// Whether every video below `targets` (the videos topic's entries; others are ignored) is
    /// in the index.
    pub fn covers(&self, targets: &[Position]) -> bool {
        self.read().covers(targets)
    }

    /// Wait up to `wait` until the index covers `targets`.
    pub async fn covering(&self, targets: &[Position], wait: Duration) -> bool {
        let mut folded = self.folded.subscribe();
        let check = async {
            loop {
                if self.covers(targets) {
                    return true;
                }
                if folded.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout(wait, check).await.unwrap_or(false)
    }

    /// The feed page of [`super::Reader::feed_page`], from memory: `None` when the index cannot
    /// tell (broken, or the page reaches below the newest video it dropped).
    pub fn page(&self, before_ms: i64, limit: usize) -> Option<Vec<VideoRow>> {
        self.read().page(before_ms, limit)
    }

    /// Videos held now.
    pub fn len(&self) -> usize {
        self.read().videos.len()
    }

    /// An estimate of the memory the held videos take, in bytes (their rows, strings and the
    /// tree's and id set's entries).
    pub fn bytes(&self) -> usize {
        self.read().bytes
    }

    /// Whether the index holds no video.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn gauges(&self) {
        metrics::gauge!("titok_feed_index_videos").set(self.videos.len() as f64);
        metrics::gauge!("titok_feed_index_bytes").set(self.bytes as f64);
    }

    fn insert(&mut self, row: VideoRow) {
        let key = (row.published_ms, row.id);
        if self.floor.is_some_and(|floor| key <= floor) || !self.ids.insert(row.id) {
            return;
        }
        self.bytes += heap_of(&row);
        self.videos.insert(key, row);
        while self.videos.len() > self.capacity {
            let Some((dropped, row)) = self.videos.pop_first() else {
                break;
            };
            self.bytes -= heap_of(&row);
            self.ids.remove(&row.id);
            self.floor = Some(self.floor.map_or(dropped, |f| f.max(dropped)));
        }
    }

    fn covers(&self, targets: &[Position]) -> bool {
        !self.broken
            && targets
                .iter()
                .filter(|t| t.topic == Topic::Videos)
                .all(|t| {
                    self.covered
                        .get(t.partition as usize)
                        .is_some_and(|c| *c >= t.offset)
                })
    }

    /// Whether every video of millisecond `ms` is held.
    fn whole(&self, ms: i64) -> bool {
        self.floor.is_none_or(|(floor_ms, _)| ms > floor_ms)
    }

    fn page(&self, before_ms: i64, limit: usize) -> Option<Vec<VideoRow>> {
        let limit = limit.max(1);
        if self.broken {
            return None;
        }
        let below = (Bound::Unbounded, Bound::Excluded((before_ms, i64::MIN)));
        let mut rows: Vec<&VideoRow> = self
            .videos
            .range(below)
            .rev()
            .take(limit + 1)
            .map(|(_, r)| r)
            .collect();
        let Some(last) = rows.last() else {
            // Nothing held below `before_ms`: the answer is empty only if nothing was dropped.
            return self.floor.is_none().then(Vec::new);
        };
        if rows.len() <= limit {
            // The page ran out of held videos: it is the oldest page if none was dropped; else a
            // full page whose next video (the newest dropped) is a millisecond older is whole.
            let whole = match self.floor {
                None => true,
                Some((floor_ms, _)) => rows.len() == limit && last.published_ms != floor_ms,
            };
            return whole.then(|| owned(&rows));
        }
        // As in SQL: a page never ends inside a millisecond the next video shares.
        let edge = rows[limit - 1].published_ms;
        let next = last.published_ms;
        rows.truncate(limit);
        if next != edge {
            return Some(owned(&rows));
        }
        rows.retain(|r| r.published_ms != edge);
        if !rows.is_empty() {
            return Some(owned(&rows));
        }
        if !self.whole(edge) {
            return None;
        }
        let ms = (
            Bound::Included((edge, i64::MIN)),
            Bound::Included((edge, i64::MAX)),
        );
        Some(
            self.videos
                .range(ms)
                .rev()
                .take(MAX_SAME_MS_PAGE as usize)
                .map(|(_, r)| r.clone())
                .collect(),
        )
    }
}

fn owned(rows: &[&VideoRow]) -> Vec<VideoRow> {
    rows.iter().map(|r| (*r).clone()).collect()
}

#[cfg(test)]
mod tests;
