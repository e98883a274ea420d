//! # titok-model
//!
//! The tests' one model of the domain's rules: what every view table holds after a sequence of
//! events, folded one event at a time and written independently of the projectors' batch fold
//! (`titok-views`). Two tests compare the real system against it:
//!
//! - the projectors' property test (`projectors/src/fold_property.rs`): random event sequences,
//!   with poison records, folded through the real `Folder` into SQLite in batches of every size
//!   must give exactly these tables, counters, versions and parked records ([`Fold`]);
//! - the chaos suite (`tests/tests/suite/chaos/`): after processes were killed under load, what
//!   the API serves must equal the whole log (read with `titok tap`) folded into [`Views`].
//!
//! The rules: a registration, a publication, a like, a follow, a comment and a message take
//! effect once (an existing row keeps its first value and counts nothing); an unlike or unfollow
//! counts only when it removes a row; a comment is deleted only by its author on its video;
//! follows both ways make friends; a message is always later than its conversation's previous one
//! (moved to a millisecond after it if it was not). Every counter change bumps its row's version.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use titok_events::{EventBody, Favorite, Topic};

/// Every view table's rows and the parked `(topic, partition, offset)`s, as comparable values.
#[derive(Debug, Default, PartialEq)]
pub struct Views {
    /// id → (name, created_ms)
    pub users: BTreeMap<i64, (String, i64)>,
    /// follow, follower, total_favorited, work, favorite, version
    pub user_stats: BTreeMap<i64, [i64; 6]>,
    /// favorite, comment, version
    pub video_stats: BTreeMap<i64, [i64; 3]>,
    /// id → (author, title, published_ms)
    pub videos: BTreeMap<i64, (i64, String, i64)>,
    /// (user, video) → liked_ms
    pub favorites: BTreeMap<(i64, i64), i64>,
    /// id → (video, user, content, created_ms)
    pub comments: BTreeMap<i64, (i64, i64, String, i64)>,
    /// (follower, followee) → created_ms
    pub follows: BTreeMap<(i64, i64), i64>,
    /// (user, friend) → since_ms
    pub friends: BTreeMap<(i64, i64), i64>,
    /// id → (pair_lo, pair_hi, from, to, content, created_ms)
    pub messages: BTreeMap<i64, (i64, i64, i64, i64, String, i64)>,
    /// (pair_lo, pair_hi) → (message, from, content, created_ms)
    pub latest: BTreeMap<(i64, i64), (i64, i64, String, i64)>,
    /// (topic, partition, offset)
    pub parked: BTreeSet<(String, i64, i64)>,
}

impl Views {
    fn user(&mut self, id: i64, col: usize, delta: i64) {
        let row = self.user_stats.entry(id).or_default();
        row[col] += delta;
        row[5] += 1;
    }

    fn video(&mut self, id: i64, col: usize, delta: i64) {
        let row = self.video_stats.entry(id).or_default();
        row[col] += delta;
        row[2] += 1;
    }

    /// The rules, one event (that occurred at `at` ms) at a time, written independently of the
    /// batch fold.
    pub fn apply(&mut self, body: &EventBody, at: i64) {
        match body {
            EventBody::UserRegistered(e) => {
                self.users
                    .entry(e.user_id)
                    .or_insert((e.username.clone(), at));
                self.user_stats.entry(e.user_id).or_default();
            }
            EventBody::VideoPublished(e) => {
                if let Entry::Vacant(slot) = self.videos.entry(e.video_id) {
                    slot.insert((e.author_id, e.title.clone(), e.published_at_ms));
                    self.user(e.author_id, 3, 1);
                    self.video_stats.entry(e.video_id).or_default();
                }
            }
            EventBody::VideoLiked(e) => {
                // An existing like keeps its time and counts nothing.
                if let Entry::Vacant(slot) = self.favorites.entry((e.user_id, e.video_id)) {
                    slot.insert(at);
                    self.like(e, 1);
                }
            }
            EventBody::VideoUnliked(e) => {
                if self.favorites.remove(&(e.user_id, e.video_id)).is_some() {
                    self.like(e, -1);
                }
            }
            EventBody::CommentAdded(e) => {
                if let Entry::Vacant(slot) = self.comments.entry(e.comment_id) {
                    slot.insert((e.video_id, e.user_id, e.content.clone(), e.created_at_ms));
                    self.video(e.video_id, 1, 1);
                }
            }
            EventBody::CommentDeleted(e) => {
                let own = self
                    .comments
                    .get(&e.comment_id)
                    .is_some_and(|c| c.0 == e.video_id && c.1 == e.user_id);
                if own {
                    self.comments.remove(&e.comment_id);
                    self.video(e.video_id, 1, -1);
                }
            }
            EventBody::UserFollowed(e) => {
                let (a, b) = (e.follower_id, e.followee_id);
                if let Entry::Vacant(slot) = self.follows.entry((a, b)) {
                    slot.insert(at);
                    self.user(a, 0, 1);
                    self.user(b, 1, 1);
                    if self.follows.contains_key(&(b, a)) {
                        self.friends.entry((a, b)).or_insert(at);
                        self.friends.entry((b, a)).or_insert(at);
                    }
                }
            }
            EventBody::UserUnfollowed(e) => {
                let (a, b) = (e.follower_id, e.followee_id);
                if self.follows.remove(&(a, b)).is_some() {
                    self.user(a, 0, -1);
                    self.user(b, 1, -1);
                    self.friends.remove(&(a, b));
                    self.friends.remove(&(b, a));
                }
            }
            EventBody::MessageSent(e) => {
                if self.messages.contains_key(&e.message_id) {
                    return;
                }
                let (lo, hi) = (
                    e.from_user_id.min(e.to_user_id),
                    e.from_user_id.max(e.to_user_id),
                );
                let created = self
                    .latest
                    .get(&(lo, hi))
                    .map_or(e.created_at_ms, |l| e.created_at_ms.max(l.3 + 1));
                let row = (
                    lo,
                    hi,
                    e.from_user_id,
                    e.to_user_id,
                    e.content.clone(),
                    created,
                );
                self.messages.insert(e.message_id, row);
                let latest = (e.message_id, e.from_user_id, e.content.clone(), created);
                self.latest.insert((lo, hi), latest);
            }
        }
    }

    fn like(&mut self, e: &Favorite, delta: i64) {
        self.video(e.video_id, 0, delta);
        self.user(e.user_id, 4, delta);
        self.user(e.author_id, 2, delta);
    }

    /// A user's counters (zero for a user no event touched): follow, follower, total_favorited,
    /// work, favorite, version.
    pub fn user_counts(&self, user: i64) -> [i64; 6] {
        self.user_stats.get(&user).copied().unwrap_or_default()
    }

    /// A video's counters (zero for a video no event touched): favorite, comment, version.
    pub fn video_counts(&self, video: i64) -> [i64; 3] {
        self.video_stats.get(&video).copied().unwrap_or_default()
    }

    /// The videos `user` likes.
    pub fn liked_by(&self, user: i64) -> BTreeSet<i64> {
        let likes = self.favorites.keys();
        likes.filter(|(u, _)| *u == user).map(|(_, v)| *v).collect()
    }

    /// The users `user` follows.
    pub fn following(&self, user: i64) -> BTreeSet<i64> {
        let follows = self.follows.keys();
        follows
            .filter(|(a, _)| *a == user)
            .map(|(_, b)| *b)
            .collect()
    }

    /// The users following `user`.
    pub fn followers(&self, user: i64) -> BTreeSet<i64> {
        let follows = self.follows.keys();
        follows
            .filter(|(_, b)| *b == user)
            .map(|(a, _)| *a)
            .collect()
    }

    /// The friends of `user`.
    pub fn friends_of(&self, user: i64) -> BTreeSet<i64> {
        let friends = self.friends.keys();
        friends
            .filter(|(a, _)| *a == user)
            .map(|(_, b)| *b)
            .collect()
    }

    /// The comments on `video`.
    pub fn comments_on(&self, video: i64) -> BTreeSet<i64> {
        let comments = self.comments.iter();
        comments
            .filter(|(_, c)| c.0 == video)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The contents of the conversation between `a` and `b`, oldest first.
    pub fn chat(&self, a: i64, b: i64) -> Vec<String> {
        let pair = (a.min(b), a.max(b));
        let mut messages: Vec<_> = self
            .messages
            .iter()
            .filter(|(_, m)| (m.0, m.1) == pair)
            .map(|(id, m)| (m.5, *id, m.4.clone()))
            .collect();
        messages.sort();
        messages
            .into_iter()
            .map(|(_, _, content)| content)
            .collect()
    }
}

/// The projectors' fold of a log, record by record in log order: events apply to the views, except
/// that a record that cannot be decoded (poison) and every later record of its key (per topic) are
/// parked.
#[derive(Debug, Default)]
pub struct Fold {
    pub views: Views,
    parked_keys: HashSet<(Topic, String)>,
}

impl Fold {
    /// The record at `(topic, partition, offset)` under `key`: its event and the time it occurred,
    /// or `None` if it cannot be decoded.
    pub fn record(
        &mut self,
        topic: Topic,
        partition: u32,
        offset: i64,
        key: &str,
        event: Option<(&EventBody, i64)>,
    ) {
        let blocked = self.parked_keys.contains(&(topic, key.to_owned()));
        match event {
            Some((body, at)) if !blocked => self.views.apply(body, at),
            _ => {
                self.parked_keys.insert((topic, key.to_owned()));
                let row = (topic.name().to_owned(), i64::from(partition), offset);
                self.views.parked.insert(row);
            }
        }
    }
}
