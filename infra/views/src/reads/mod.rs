//! Reads of the views that both APIs need, and the join that turns view rows into Douyin objects.
//!
//! - `rows`: the row reads, one query each (a video's author, a comment's owner, the feed, a
//!   user's videos and likes, comments, follows, friends, a conversation's messages);
//! - `join`: the Douyin [`User`](crate::model::User) and [`Video`](crate::model::Video) objects,
//!   assembled from rows, counters and the viewer's relations;
//! - `feed_index`: the newest videos in memory ([`FeedIndex`]), so that a feed page costs no
//!   query;
//! - `rendered`: videos' JSON kept ready ([`RenderCache`]), so that a page of unchanged videos
//!   is copied, not built and serialised again.
//!
//! Facts that never change once a view holds them — a video's author, a user's name (there is no
//! rename and no delete of either) — are kept in a bounded in-process cache ([`Immutable`],
//! quick_cache):
//! a page of videos then skips the names query, and a like whose video was seen before skips both
//! the consistency wait and the author query.
//!
//! The command API uses the narrow part: [`Reader::video_author`] (and [`Reader::known_author`]),
//! [`Reader::comment_owner`] and [`Reader::user_object`]. None of these wait for the projections;
//! callers wait first (the consistency wait) and decide what a stale answer means for them.

use std::sync::Arc;

use sqlx::AnyPool;
use titok_ports::counters::Counters;

mod feed_index;
mod join;
mod rendered;
mod rows;

pub use feed_index::{FeedIndex, FeedIndexError};
pub use rendered::{RenderCache, Rendered, Stamp, VideoJson};
pub use rows::{media_paths, VideoRow, MAX_SAME_MS_PAGE, VIDEO_COLUMNS};

/// The read side of the views: the read pool, the counter cache, the cache of immutable facts and
/// the base URL that media URLs are built on.
#[derive(Clone)]
pub struct Reader {
    pub pool: AnyPool,
    pub counters: Arc<dyn Counters>,
    /// Base of absolute play/cover/avatar URLs, without a trailing slash: the query API's own
    /// `/static` (the default), or a CDN / public bucket (`--media-url`).
    pub media_url: Arc<str>,
    pub immutable: Immutable,
    /// Videos' JSON kept ready for pages that serve them again unchanged.
    pub rendered: RenderCache,
}

/// Video authors and user names, which never change once written: a bounded cache (quick_cache:
/// S3-FIFO eviction, which keeps a one-off scan from flushing the hot entries), filled from the
/// rows every read fetches anyway.
#[derive(Clone)]
pub struct Immutable {
    authors: Arc<quick_cache::sync::Cache<i64, i64>>,
    names: Arc<quick_cache::sync::Cache<i64, Arc<str>>>,
}

impl Immutable {
    /// At most `entries` authors and `entries` names.
    pub fn with_capacity(entries: u64) -> Immutable {
        let entries = usize::try_from(entries).unwrap_or(usize::MAX).max(1);
        Immutable {
            authors: Arc::new(quick_cache::sync::Cache::new(entries)),
            names: Arc::new(quick_cache::sync::Cache::new(entries)),
        }
    }
}

impl Default for Immutable {
    /// A million of each (tens of MiB at most).
    fn default() -> Self {
        Immutable::with_capacity(1 << 20)
    }
}

impl Reader {
    /// The pool, for one statement: every read here goes through it, so a request's statements
    /// are counted ([`titok_ports::statements`]).
    fn sql(&self) -> &AnyPool {
        titok_ports::statements::one();
        &self.pool
    }

    /// The absolute URL of a blob path (`videos/1.mp4` → `{media_url}/videos/1.mp4`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.media_url, path.trim_start_matches('/'))
    }

    /// The author of a video, if this process has seen the video (no query, no wait needed: a
    /// video's author never changes).
    pub fn known_author(&self, video_id: i64) -> Option<i64> {
        self.immutable.authors.get(&video_id)
    }
}
