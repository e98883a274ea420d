//! [`InProcessCounters`]: the embedded adapter of the [`Counters`] port (see the port for how the
//! cache stays exactly equal to SQL).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;
use titok_ports::counters::{
    Counters, CountersError, UserCounts, Versioned, VideoCounts, CHAT_IDLE_EXPIRY,
};

#[derive(Default)]
struct Maps {
    users: HashMap<i64, Versioned<UserCounts>>,
    videos: HashMap<i64, Versioned<VideoCounts>>,
    chats: HashMap<(i64, i64), (i64, Instant)>,
    chat_writes: u64,
}

/// The embedded adapter: maps behind a std mutex (never held across an `.await`).
#[derive(Clone, Default)]
pub struct InProcessCounters {
    maps: Arc<Mutex<Maps>>,
}

impl InProcessCounters {
    fn maps(&self) -> MutexGuard<'_, Maps> {
        match self.maps.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

fn put_newer<T: Copy>(map: &mut HashMap<i64, Versioned<T>>, rows: &[(i64, Versioned<T>)]) {
    for (id, row) in rows {
        match map.get(id) {
            Some(held) if held.version >= row.version => {}
            _ => {
                map.insert(*id, *row);
            }
        }
    }
}

#[async_trait]
impl Counters for InProcessCounters {
    async fn users(&self, ids: &[i64]) -> Result<Vec<Option<UserCounts>>, CountersError> {
        let maps = self.maps();
        Ok(ids
            .iter()
            .map(|id| maps.users.get(id).map(|v| v.value))
            .collect())
    }

    async fn videos(&self, ids: &[i64]) -> Result<Vec<Option<VideoCounts>>, CountersError> {
        let maps = self.maps();
        Ok(ids
            .iter()
            .map(|id| maps.videos.get(id).map(|v| v.value))
            .collect())
    }

    async fn put_users(&self, rows: &[(i64, Versioned<UserCounts>)]) -> Result<(), CountersError> {
        put_newer(&mut self.maps().users, rows);
        Ok(())
    }

    async fn put_videos(
        &self,
        rows: &[(i64, Versioned<VideoCounts>)],
    ) -> Result<(), CountersError> {
        put_newer(&mut self.maps().videos, rows);
        Ok(())
    }

    async fn clear(&self) -> Result<(), CountersError> {
        let mut maps = self.maps();
        maps.users.clear();
        maps.videos.clear();
        maps.chats.clear();
        Ok(())
    }

    async fn chat_latest(&self, pair: (i64, i64)) -> Result<Option<i64>, CountersError> {
        let mut maps = self.maps();
        Ok(maps.chats.get_mut(&pair).map(|(latest, touched)| {
            *touched = Instant::now();
            *latest
        }))
    }

    async fn put_chat_latest(
        &self,
        pair: (i64, i64),
        created_ms: i64,
    ) -> Result<(), CountersError> {
        let mut maps = self.maps();
        let now = Instant::now();
        let entry = maps.chats.entry(pair).or_insert((created_ms, now));
        entry.0 = entry.0.max(created_ms);
        entry.1 = now;
        maps.chat_writes += 1;
        if maps.chat_writes.is_multiple_of(4096) {
            maps.chats
                .retain(|_, (_, touched)| now.duration_since(*touched) < CHAT_IDLE_EXPIRY);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(version: i64, likes: i64) -> Versioned<VideoCounts> {
        Versioned {
            version,
            value: VideoCounts {
                favorite_count: likes,
                comment_count: 0,
            },
        }
    }

    #[tokio::test]
    async fn an_older_version_never_replaces_a_newer_one() {
        let c = InProcessCounters::default();
        c.put_videos(&[(1, video(5, 50))]).await.expect("put");
        c.put_videos(&[(1, video(4, 40))]).await.expect("put");
        assert_eq!(
            c.videos(&[1, 2]).await.expect("get")[0].map(|v| v.favorite_count),
            Some(50)
        );
        c.put_videos(&[(1, video(6, 60))]).await.expect("put");
        assert_eq!(
            c.videos(&[1]).await.expect("get")[0].map(|v| v.favorite_count),
            Some(60)
        );
        assert_eq!(
            c.videos(&[2]).await.expect("get")[0],
            None,
            "unknown ids miss"
        );
    }

    #[tokio::test]
    async fn chat_latest_only_moves_forward() {
        let c = InProcessCounters::default();
        assert_eq!(c.chat_latest((1, 2)).await.expect("get"), None);
        c.put_chat_latest((1, 2), 100).await.expect("put");
        c.put_chat_latest((1, 2), 90).await.expect("put");
        assert_eq!(c.chat_latest((1, 2)).await.expect("get"), Some(100));
    }
}
