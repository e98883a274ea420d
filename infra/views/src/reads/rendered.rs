//! Rendered videos: the JSON of a [`Video`] object kept ready, so that a page whose videos have
//! not changed since they were last served costs a lookup and a copy per video instead of
//! building and serialising every object (and its author) again.
//!
//! A rendered video is kept with everything it was made from — its [`Stamp`]: the view row, the
//! author's name and counters, `is_follow`, the video's counters and `is_favorite` — and served
//! again only when a new page's stamp for that video is **equal**, so a reply is byte for byte
//! what a fresh render would be (a like, a follow or a rebuild that changed a row changes the
//! stamp, and the video is rendered anew). Entries are keyed by video id and the viewer's two
//! bits (at most four per video) and bounded by their bytes (`--render-cache-mib`; 0 = off, every
//! video rendered each time).
//!
//! Measured with the profile that motivated it: building the `Video` objects and serialising them
//! were ~30 % of an anonymous feed page's CPU (docs/performance.md).

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use titok_ports::counters::{UserCounts, VideoCounts};

use crate::model::Video;

use super::VideoRow;

/// Everything a rendered [`Video`] is made from (its URLs are the row's paths on a base that is
/// fixed for the process).
#[derive(Debug, Clone, PartialEq)]
pub struct Stamp {
    pub row: VideoRow,
    pub author_name: Option<Arc<str>>,
    pub author: UserCounts,
    pub is_follow: bool,
    pub counts: VideoCounts,
    pub is_favorite: bool,
}

/// A video of a reply: its ready JSON, or (render cache off, or a render that failed) the object.
#[derive(Debug, Clone)]
pub enum VideoJson {
    Rendered(Arc<Rendered>),
    Object(Box<Video>),
}

/// A video's JSON and the stamp it was rendered from.
#[derive(Debug)]
pub struct Rendered {
    stamp: Stamp,
    json: Box<RawValue>,
}

impl Serialize for VideoJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            VideoJson::Rendered(rendered) => rendered.json.serialize(serializer),
            VideoJson::Object(video) => video.serialize(serializer),
        }
    }
}

/// Bytes an entry costs besides its JSON: the key, the stamp's row and the cache's bookkeeping.
const ENTRY_OVERHEAD: u64 = 256;

/// An entry's weight: its bytes.
#[derive(Clone)]
struct Bytes;

impl quick_cache::Weighter<Key, Arc<Rendered>> for Bytes {
    fn weight(&self, _: &Key, rendered: &Arc<Rendered>) -> u64 {
        let row = &rendered.stamp.row;
        (rendered.json.get().len() + row.title.len() + row.play_path.len() + row.cover_path.len())
            as u64
            + ENTRY_OVERHEAD
    }
}

/// Video id, `is_favorite`, `is_follow`.
type Key = (i64, bool, bool);

/// The cache of rendered videos (cheap to clone; shared by the process's requests).
#[derive(Clone)]
pub struct RenderCache {
    cache: Option<Arc<quick_cache::sync::Cache<Key, Arc<Rendered>, Bytes>>>,
}

impl RenderCache {
    /// At most about `bytes` of rendered videos; 0 turns the cache off.
    pub fn with_capacity_bytes(bytes: u64) -> RenderCache {
        let cache = (bytes > 0).then(|| {
            // quick_cache sizes its tables from an estimate of the entries: ~1 KiB each.
            let estimated = usize::try_from(bytes / 1024).unwrap_or(usize::MAX).max(16);
            Arc::new(quick_cache::sync::Cache::with_weighter(
                estimated, bytes, Bytes,
            ))
        });
        RenderCache { cache }
    }

    /// The videos of `stamps`, in order: each the cached JSON when it was rendered from an equal
    /// stamp, else `render(&stamp)`, serialised and kept.
    pub fn videos(
        &self,
        stamps: impl IntoIterator<Item = Stamp>,
        render: impl Fn(&Stamp) -> Video,
    ) -> Vec<VideoJson> {
        let Some(cache) = &self.cache else {
            return stamps
                .into_iter()
                .map(|stamp| VideoJson::Object(Box::new(render(&stamp))))
                .collect();
        };
        let (mut hits, mut renders) = (0, 0);
        let videos = stamps
            .into_iter()
            .map(|stamp| {
                let key = (stamp.row.id, stamp.is_favorite, stamp.is_follow);
                match cache.get(&key) {
                    Some(hit) if hit.stamp == stamp => {
                        hits += 1;
                        VideoJson::Rendered(hit)
                    }
                    _ => {
                        renders += 1;
                        Self::render(cache, key, stamp, &render)
                    }
                }
            })
            .collect();
        metrics::counter!("titok_rendered_videos_total", "result" => "hit").increment(hits);
        metrics::counter!("titok_rendered_videos_total", "result" => "render").increment(renders);
        videos
    }

    fn render(
        cache: &quick_cache::sync::Cache<Key, Arc<Rendered>, Bytes>,
        key: Key,
        stamp: Stamp,
        render: impl Fn(&Stamp) -> Video,
    ) -> VideoJson {
        let video = render(&stamp);
        match serde_json::value::to_raw_value(&video) {
            Ok(json) => {
                let rendered = Arc::new(Rendered { stamp, json });
                cache.insert(key, rendered.clone());
                VideoJson::Rendered(rendered)
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot render a video's JSON; serving the object");
                VideoJson::Object(Box::new(video))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::User;

    fn stamp(likes: i64) -> Stamp {
        Stamp {
            row: VideoRow {
                id: 7,
                author_id: 3,
                title: "a \"quoted\" title".into(),
                play_path: "videos/7.mp4".into(),
                cover_path: "covers/7.jpg".into(),
                published_ms: 1,
            },
            author_name: Some("ann".into()),
            author: UserCounts::default(),
            is_follow: false,
            counts: VideoCounts {
                favorite_count: likes,
                comment_count: 0,
            },
            is_favorite: false,
        }
    }

    fn render(stamp: &Stamp) -> Video {
        Video {
            id: stamp.row.id,
            author: User {
                id: stamp.row.author_id,
                name: stamp.author_name.as_deref().unwrap_or_default().to_owned(),
                ..User::default()
            },
            favorite_count: stamp.counts.favorite_count,
            title: stamp.row.title.to_string(),
            ..Video::default()
        }
    }

    fn json(video: &VideoJson) -> String {
        serde_json::to_string(video).expect("serialises")
    }

    #[test]
    fn an_equal_stamp_is_served_from_the_cache_and_a_changed_one_is_rendered_again() {
        let cache = RenderCache::with_capacity_bytes(1 << 20);
        let one = |stamp: Stamp, render: &dyn Fn(&Stamp) -> Video| {
            cache.videos([stamp], render).pop().expect("one video")
        };
        let first = one(stamp(1), &render);
        assert!(matches!(first, VideoJson::Rendered(_)));
        assert_eq!(
            json(&first),
            serde_json::to_string(&render(&stamp(1))).expect("serialises")
        );

        let again = one(stamp(1), &|_| panic!("rendered again"));
        assert_eq!(json(&again), json(&first));

        let liked = one(stamp(2), &render);
        assert!(
            json(&liked).contains("\"favorite_count\":2"),
            "{}",
            json(&liked)
        );
        let mut renamed = stamp(2);
        renamed.row.title = "another".into();
        assert!(json(&one(renamed, &render)).contains("another"));
    }

    #[test]
    fn with_no_room_every_video_is_rendered() {
        let cache = RenderCache::with_capacity_bytes(0);
        let renders = std::cell::Cell::new(0);
        for _ in 0..2 {
            let video = cache.videos([stamp(1)], |s| {
                renders.set(renders.get() + 1);
                render(s)
            });
            assert!(matches!(video[..], [VideoJson::Object(_)]));
        }
        assert_eq!(renders.get(), 2);
    }
}
