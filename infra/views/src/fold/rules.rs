//! **Apply** — the domain rules run in memory, event by event in log order:
//! - a like that exists adds nothing, an unlike of nothing subtracts nothing; a counted like
//!   bumps the video's `favorite_count`, the liker's `favorite_count` and the author's
//!   `total_favorited`;
//! - a follow that exists adds nothing; a new one bumps both follow counts and, when the reverse
//!   follow exists, makes the pair friends (one row per direction); an unfollow removes the
//!   friendship, so friend rows exist exactly while both follows exist;
//! - a comment id that exists adds nothing; a deletion takes effect only for the comment's own
//!   author on its own video (the command side checks that too);
//! - a message id that exists adds nothing; a conversation's `create_time` is strictly
//!   increasing (`max(sent, previous + 1)`), because clients poll with the newest time they hold;
//! - a registration or publication creates the (all-zero) counter row.
//!
//! Also here: the state a batch works on (the rows it loaded and what it changed), whether the
//! views can hold an event at all ([`unstorable`]), and what an event may have changed
//! ([`touched_by`]).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;

use titok_events::{Envelope, EventBody};

use super::Touched;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct VideoRow {
    pub(super) author_id: i64,
    pub(super) title: String,
    pub(super) play_path: String,
    pub(super) cover_path: String,
    pub(super) published_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct CommentRow {
    pub(super) video_id: i64,
    pub(super) user_id: i64,
    pub(super) content: String,
    pub(super) created_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct LatestRow {
    pub(super) message_id: i64,
    pub(super) from_user_id: i64,
    pub(super) content: String,
    pub(super) created_ms: i64,
}

#[derive(Debug, Clone)]
pub(super) struct MessageRow {
    pub(super) id: i64,
    pub(super) pair: (i64, i64),
    pub(super) from_user_id: i64,
    pub(super) to_user_id: i64,
    pub(super) content: String,
    pub(super) created_ms: i64,
}

/// Summed changes to one `user_stats` row; `bumps` is how many rule applications touched it.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct UserDelta {
    pub(super) follow: i64,
    pub(super) follower: i64,
    pub(super) total_favorited: i64,
    pub(super) work: i64,
    pub(super) favorite: i64,
    pub(super) bumps: i64,
}

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct VideoDelta {
    pub(super) favorite: i64,
    pub(super) comment: i64,
    pub(super) bumps: i64,
}

/// A table's rows as loaded (`before`) and as the batch leaves them (`now`), for the keys the
/// batch's rules look at. Keys absent from the map were looked up and do not exist.
#[derive(Debug)]
pub(super) struct Rows<K, V> {
    map: HashMap<K, (Option<V>, Option<V>)>,
}

impl<K: Hash + Eq + Ord + Copy, V: Clone + PartialEq> Rows<K, V> {
    pub(super) fn new() -> Self {
        Rows {
            map: HashMap::new(),
        }
    }

    pub(super) fn loaded(&mut self, key: K, value: V) {
        self.map.insert(key, (Some(value.clone()), Some(value)));
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key).and_then(|(_, now)| now.as_ref())
    }

    fn set(&mut self, key: K, value: Option<V>) {
        match self.map.entry(key) {
            Entry::Occupied(mut e) => e.get_mut().1 = value,
            Entry::Vacant(e) => {
                e.insert((None, value));
            }
        }
    }

    /// Rows to upsert and keys to delete, each in key order.
    pub(super) fn net(self) -> (Vec<(K, V)>, Vec<K>) {
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        for (key, (before, now)) in self.map {
            if before == now {
                continue;
            }
            match now {
                Some(v) => upserts.push((key, v)),
                None => deletes.push(key),
            }
        }
        upserts.sort_by_key(|(key, _)| *key);
        deletes.sort();
        (upserts, deletes)
    }
}

/// The state a batch works on: what it loaded and what it changed.
pub(super) struct Batch {
    pub(super) users: BTreeMap<i64, (String, i64)>,
    pub(super) user_stats: BTreeMap<i64, UserDelta>,
    pub(super) video_stats: BTreeMap<i64, VideoDelta>,
    pub(super) videos_existing: HashSet<i64>,
    pub(super) videos_new: BTreeMap<i64, VideoRow>,
    pub(super) favorites: Rows<(i64, i64), i64>,
    pub(super) follows: Rows<(i64, i64), i64>,
    pub(super) friends: Rows<(i64, i64), i64>,
    pub(super) comments: Rows<i64, CommentRow>,
    pub(super) messages_existing: HashSet<i64>,
    pub(super) messages_new: Vec<MessageRow>,
    pub(super) latest: Rows<(i64, i64), LatestRow>,
}

/// Longest text per view column, in characters: MySQL's `VARCHAR(n)` of `titok-schemas` (SQLite's
/// `TEXT` holds anything, but one store's rules must not depend on the engine).
pub const COLUMN_CHARS: [(&str, usize); 6] = [
    ("username", 32),
    ("title", 400),
    ("play_path", 255),
    ("cover_path", 255),
    ("comment content", 2000),
    ("message content", 4000),
];

/// Why the views cannot hold this event (a text longer than its column), if they cannot: such an
/// event is parked with the reason instead of failing its batch again and again. Ids and times
/// are 64-bit integers in every column, and ids are range-checked when decoded.
pub fn unstorable(event: &Envelope) -> Option<String> {
    let texts: Vec<(&str, &str)> = match &event.body {
        EventBody::UserRegistered(e) => vec![("username", &e.username)],
        EventBody::VideoPublished(e) => vec![
            ("title", &e.title),
            ("play_path", &e.play_path),
            ("cover_path", &e.cover_path),
        ],
        EventBody::CommentAdded(e) => vec![("comment content", &e.content)],
        EventBody::MessageSent(e) => vec![("message content", &e.content)],
        _ => Vec::new(),
    };
    texts.into_iter().find_map(|(field, text)| {
        let limit = COLUMN_CHARS.iter().find(|(f, _)| *f == field)?.1;
        let chars = text.chars().count();
        (chars > limit).then(|| {
            format!("{field} has {chars} characters; the view column holds at most {limit}")
        })
    })
}

/// Every counter row and conversation an event may have changed (a superset: whether it did
/// depends on the rows it met), for refreshing the cache after another instance's batch whose
/// own refresh may not have happened. Chats are recorded with time 0: read their newest
/// message time from the views ([`crate::stats::latest_messages_of`]).
pub fn touched_by(event: &Envelope, touched: &mut Touched) {
    match &event.body {
        EventBody::UserRegistered(e) => {
            touched.users.insert(e.user_id);
        }
        EventBody::VideoPublished(e) => {
            touched.users.insert(e.author_id);
            touched.videos.insert(e.video_id);
        }
        EventBody::VideoLiked(e) | EventBody::VideoUnliked(e) => {
            touched.videos.insert(e.video_id);
            touched.users.insert(e.user_id);
            touched.users.insert(e.author_id);
        }
        EventBody::CommentAdded(e) => {
            touched.videos.insert(e.video_id);
        }
        EventBody::CommentDeleted(e) => {
            touched.videos.insert(e.video_id);
        }
        EventBody::UserFollowed(e) | EventBody::UserUnfollowed(e) => {
            touched.users.insert(e.follower_id);
            touched.users.insert(e.followee_id);
        }
        EventBody::MessageSent(e) => {
            touched
                .chats
                .push((ordered(e.from_user_id, e.to_user_id), 0));
        }
    }
}

pub(super) fn ordered(a: i64, b: i64) -> (i64, i64) {
    (a.min(b), a.max(b))
}

impl Batch {
    fn user(&mut self, id: i64) -> &mut UserDelta {
        self.user_stats.entry(id).or_default()
    }

    fn video(&mut self, id: i64) -> &mut VideoDelta {
        self.video_stats.entry(id).or_default()
    }

    /// One event's rules, in memory.
    pub(super) fn apply(&mut self, event: &Envelope, touched: &mut Touched) {
        let at = event.occurred_at.timestamp_millis();
        match &event.body {
            EventBody::UserRegistered(e) => {
                self.users
                    .entry(e.user_id)
                    .or_insert_with(|| (e.username.clone(), at));
                self.user(e.user_id);
                touched.users.insert(e.user_id);
            }
            EventBody::VideoPublished(e) => {
                if self.videos_existing.contains(&e.video_id)
                    || self.videos_new.contains_key(&e.video_id)
                {
                    return;
                }
                self.videos_new.insert(
                    e.video_id,
                    VideoRow {
                        author_id: e.author_id,
                        title: e.title.clone(),
                        play_path: e.play_path.clone(),
                        cover_path: e.cover_path.clone(),
                        published_ms: e.published_at_ms,
                    },
                );
                let author = self.user(e.author_id);
                author.work += 1;
                author.bumps += 1;
                self.video(e.video_id);
                touched.users.insert(e.author_id);
                touched.videos.insert(e.video_id);
            }
            EventBody::VideoLiked(e) | EventBody::VideoUnliked(e) => {
                let like = matches!(event.body, EventBody::VideoLiked(_));
                let key = (e.user_id, e.video_id);
                if self.favorites.get(&key).is_some() == like {
                    return; // a like that exists, or an unlike of nothing
                }
                self.favorites.set(key, like.then_some(at));
                let delta = if like { 1 } else { -1 };
                let video = self.video(e.video_id);
                video.favorite += delta;
                video.bumps += 1;
                let liker = self.user(e.user_id);
                liker.favorite += delta;
                liker.bumps += 1;
                let author = self.user(e.author_id);
                author.total_favorited += delta;
                author.bumps += 1;
                touched.videos.insert(e.video_id);
                touched.users.insert(e.user_id);
                touched.users.insert(e.author_id);
            }
            EventBody::CommentAdded(e) => {
                if self.comments.get(&e.comment_id).is_some() {
                    return;
                }
                let row = CommentRow {
                    video_id: e.video_id,
                    user_id: e.user_id,
                    content: e.content.clone(),
                    created_ms: e.created_at_ms,
                };
                self.comments.set(e.comment_id, Some(row));
                let video = self.video(e.video_id);
                video.comment += 1;
                video.bumps += 1;
                touched.videos.insert(e.video_id);
            }
            EventBody::CommentDeleted(e) => {
                // The author check repeats the command side's: anyone else's deletion changes nothing.
                let own = self
                    .comments
                    .get(&e.comment_id)
                    .is_some_and(|c| c.video_id == e.video_id && c.user_id == e.user_id);
                if !own {
                    return;
                }
                self.comments.set(e.comment_id, None);
                let video = self.video(e.video_id);
                video.comment -= 1;
                video.bumps += 1;
                touched.videos.insert(e.video_id);
            }
            EventBody::UserFollowed(e) | EventBody::UserUnfollowed(e) => {
                let follow = matches!(event.body, EventBody::UserFollowed(_));
                let (a, b) = (e.follower_id, e.followee_id);
                if self.follows.get(&(a, b)).is_some() == follow {
                    return;
                }
                self.follows.set((a, b), follow.then_some(at));
                let delta = if follow { 1 } else { -1 };
                let follower = self.user(a);
                follower.follow += delta;
                follower.bumps += 1;
                let followee = self.user(b);
                followee.follower += delta;
                followee.bumps += 1;
                touched.users.insert(a);
                touched.users.insert(b);
                if !follow {
                    self.friends.set((a, b), None);
                    self.friends.set((b, a), None);
                } else if self.follows.get(&(b, a)).is_some() {
                    for key in [(a, b), (b, a)] {
                        if self.friends.get(&key).is_none() {
                            self.friends.set(key, Some(at));
                        }
                    }
                }
            }
            EventBody::MessageSent(e) => {
                if !self.messages_existing.insert(e.message_id) {
                    return;
                }
                let pair = ordered(e.from_user_id, e.to_user_id);
                let previous = self.latest.get(&pair).map(|l| l.created_ms);
                let created_ms = previous.map_or(e.created_at_ms, |p| e.created_at_ms.max(p + 1));
                self.latest.set(
                    pair,
                    Some(LatestRow {
                        message_id: e.message_id,
                        from_user_id: e.from_user_id,
                        content: e.content.clone(),
                        created_ms,
                    }),
                );
                self.messages_new.push(MessageRow {
                    id: e.message_id,
                    pair,
                    from_user_id: e.from_user_id,
                    to_user_id: e.to_user_id,
                    content: e.content.clone(),
                    created_ms,
                });
                touched.chats.push((pair, created_ms));
            }
        }
    }
}

#[cfg(test)]
mod column_limits {
    use super::COLUMN_CHARS;
    use crate::ViewTable;

    #[test]
    fn the_limits_are_the_mysql_columns() {
        let ddl = |table: ViewTable| table.create(true, "t").join(" ");
        for (field, table, column) in [
            ("username", ViewTable::Users, "name"),
            ("title", ViewTable::Videos, "title"),
            ("play_path", ViewTable::Videos, "play_path"),
            ("cover_path", ViewTable::Videos, "cover_path"),
            ("comment content", ViewTable::Comments, "content"),
            ("message content", ViewTable::Messages, "content"),
        ] {
            let limit = COLUMN_CHARS
                .iter()
                .find(|(f, _)| *f == field)
                .expect("a limit")
                .1;
            assert!(
                ddl(table).contains(&format!("{column} VARCHAR({limit})")),
                "{field}: {}",
                ddl(table)
            );
        }
    }
}
