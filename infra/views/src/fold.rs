//! The batch fold: a batch of events (one projection's poll, a rebuild's replay step, a parked
//! key's retry) becomes the **net effect** on the view tables, written in a few statements.
//!
//! 1. **Load** — one query per table (chunked) reads the rows the batch's rules depend on: the
//!    `(user, video)` likes, the follow and friend pairs in both directions, the comment ids, the
//!    message ids and each conversation's newest message, the video ids already published.
//! 2. **Apply** — the domain rules run in memory, event by event in log order:
//!    - a like that exists adds nothing, an unlike of nothing subtracts nothing; a counted like
//!      bumps the video's `favorite_count`, the liker's `favorite_count` and the author's
//!      `total_favorited`;
//!    - a follow that exists adds nothing; a new one bumps both follow counts and, when the reverse
//!      follow exists, makes the pair friends (one row per direction); an unfollow removes the
//!      friendship, so friend rows exist exactly while both follows exist;
//!    - a comment id that exists adds nothing; a deletion takes effect only for the comment's own
//!      author on its own video (the command side checks that too);
//!    - a message id that exists adds nothing; a conversation's `create_time` is strictly
//!      increasing (`max(sent, previous + 1)`), because clients poll with the newest time they hold;
//!    - a registration or publication creates the (all-zero) counter row.
//! 3. **Write** — per table one multi-row upsert of the rows that differ from what was loaded and
//!    one multi-row delete of the rows that went away; per counter table one upsert carrying the
//!    summed deltas and the number of bumps as the version increase (exactly what bumping once per
//!    rule would give). Rows are written in key order, so two projections bumping the same counter
//!    rows on MySQL lock them in the same order. Statements are chunked below the databases'
//!    parameter limits.
//!
//! Everything happens on the caller's connection, inside its transaction: the caller commits the
//! checkpoints with it, which is what makes every event take effect exactly once.
//!
//! **Once by event id, too.** A keyed retry whose first attempt's outcome was unknown re-appends
//! the very same event (same id) at the log's end, after anything the user did in between. Like,
//! comment and follow events are therefore remembered by id (`applied_events`, in the same
//! transaction) and a second copy is skipped — so the retry does not bring back a deleted comment
//! or undo an unlike or unfollow made meanwhile (`crate::applied`). Ids are kept for 48 h of
//! event time (twice the idempotency keys' 24 hours), pruned as the fold moves on; messages,
//! videos and registrations need no memory (their own ids dedupe them, and nothing undoes them).
//!
//! **Size.** Over 450 lines: the statements (`FoldSql`), the pure rules (`Batch::apply`) and
//! load/write are still one file (issue 24 splits them); the applied-event memory lives in
//! `applied.rs` already.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;

use sqlx::query_builder::Separated;
use sqlx::{Any, AnyConnection, QueryBuilder};
use titok_events::{Envelope, EventBody};

use crate::{Dialect, Tables, ViewTable};

/// What a batch touched, so the runtime can refresh the counter cache after commit.
#[derive(Debug, Default)]
pub struct Touched {
    pub users: HashSet<i64>,
    pub videos: HashSet<i64>,
    /// Conversations and the `create_time` of their newest message.
    pub chats: Vec<((i64, i64), i64)>,
    /// `occurred_at` (epoch ms) of the newest event folded, for the lag metric.
    pub newest_event_ms: Option<i64>,
}

/// Most bound parameters per statement: below SQLite's 32,766 and MySQL's 65,535.
const MAX_PARAMS: usize = 30_000;
/// Most rows per statement.
pub(crate) const MAX_ROWS: usize = 4_000;
/// Most bytes of text per statement (MariaDB's default `max_allowed_packet` is 16 MiB).
const MAX_TEXT_BYTES: usize = 4 << 20;
/// Most keys per lookup query (`(a = ? AND b = ?) OR …` chains stay cheap to plan).
pub(crate) const LOOKUP_KEYS: usize = 500;

/// The statements of one table set (live or shadow), built once: the fold only appends the
/// `VALUES` tuples and key lists of each batch.
#[derive(Debug, Clone)]
pub struct FoldSql {
    tables: Tables,
    users_insert: String,
    user_stats_upsert: (String, String),
    video_stats_upsert: (String, String),
    videos_insert: String,
    videos_lookup: String,
    favorites: PairTable,
    follows: PairTable,
    friends: PairTable,
    comments_upsert: (String, String),
    comments_lookup: String,
    comments_delete: String,
    messages_insert: String,
    messages_lookup: String,
    latest_upsert: (String, String),
    latest_lookup: String,
    pub(crate) applied_lookup: String,
    pub(crate) applied_insert: String,
    pub(crate) applied_prune: String,
    /// Event time of the last prune of `applied_events` (0: not yet).
    pub(crate) pruned_at: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

/// Statements of a table keyed by a pair of ids with one time column.
#[derive(Debug, Clone)]
struct PairTable {
    keys: (&'static str, &'static str),
    upsert: (String, String),
    lookup: String,
    delete: String,
}

impl PairTable {
    fn new(
        tables: &Tables,
        table: ViewTable,
        keys: (&'static str, &'static str),
        time: &str,
    ) -> PairTable {
        let name = tables.name(table);
        let d = tables.dialect;
        PairTable {
            keys,
            upsert: (
                format!("INSERT INTO {name} ({}, {}, {time})", keys.0, keys.1),
                format!(
                    " {} {time} = {}",
                    d.on_conflict_update(&format!("{}, {}", keys.0, keys.1)),
                    d.new_value(time)
                ),
            ),
            lookup: format!("SELECT {}, {}, {time} FROM {name} WHERE ", keys.0, keys.1),
            delete: format!("DELETE FROM {name} WHERE "),
        }
    }
}

/// `INSERT … ON CONFLICT … SET counter = counter + new, …` for a counter table.
fn counter_upsert(tables: &Tables, table: ViewTable, key: &str, cols: &[&str]) -> (String, String) {
    let d = tables.dialect;
    let assign: Vec<String> = cols
        .iter()
        .chain(["version"].iter())
        .map(|c| format!("{c} = {c} + {}", d.new_value(c)))
        .collect();
    (
        format!(
            "INSERT INTO {} ({key}, {}, version)",
            tables.name(table),
            cols.join(", ")
        ),
        format!(" {} {}", d.on_conflict_update(key), assign.join(", ")),
    )
}

/// `INSERT … ON CONFLICT(key) … SET col = new, …` replacing a row's other columns.
fn replace_upsert(tables: &Tables, table: ViewTable, key: &str, cols: &[&str]) -> (String, String) {
    let d = tables.dialect;
    let assign: Vec<String> = cols
        .iter()
        .map(|c| format!("{c} = {}", d.new_value(c)))
        .collect();
    (
        format!(
            "INSERT INTO {} ({key}, {})",
            tables.name(table),
            cols.join(", ")
        ),
        format!(" {} {}", d.on_conflict_update(key), assign.join(", ")),
    )
}

impl FoldSql {
    pub fn new(tables: Tables) -> FoldSql {
        let t = &tables;
        let ignore = t.dialect.insert_ignore();
        FoldSql {
            users_insert: format!(
                "{ignore} INTO {} (id, name, created_ms)",
                t.name(ViewTable::Users)
            ),
            user_stats_upsert: counter_upsert(
                t,
                ViewTable::UserStats,
                "user_id",
                &[
                    "follow_count",
                    "follower_count",
                    "total_favorited",
                    "work_count",
                    "favorite_count",
                ],
            ),
            video_stats_upsert: counter_upsert(
                t,
                ViewTable::VideoStats,
                "video_id",
                &["favorite_count", "comment_count"],
            ),
            videos_insert: format!(
                "{ignore} INTO {} (id, author_id, title, play_path, cover_path, published_ms)",
                t.name(ViewTable::Videos)
            ),
            videos_lookup: format!("SELECT id FROM {} WHERE id IN (", t.name(ViewTable::Videos)),
            favorites: PairTable::new(t, ViewTable::Favorites, ("user_id", "video_id"), "liked_ms"),
            follows: PairTable::new(
                t,
                ViewTable::Follows,
                ("follower_id", "followee_id"),
                "created_ms",
            ),
            friends: PairTable::new(t, ViewTable::Friends, ("user_id", "friend_id"), "since_ms"),
            comments_upsert: replace_upsert(
                t,
                ViewTable::Comments,
                "id",
                &["video_id", "user_id", "content", "created_ms"],
            ),
            comments_lookup: format!(
                "SELECT id, video_id, user_id, content, created_ms FROM {} WHERE id IN (",
                t.name(ViewTable::Comments)
            ),
            comments_delete: format!("DELETE FROM {} WHERE id IN (", t.name(ViewTable::Comments)),
            messages_insert: format!(
                "INSERT INTO {} (id, pair_lo, pair_hi, from_user_id, to_user_id, content, created_ms)",
                t.name(ViewTable::Messages)
            ),
            messages_lookup: format!(
                "SELECT id FROM {} WHERE id IN (",
                t.name(ViewTable::Messages)
            ),
            latest_upsert: replace_upsert(
                t,
                ViewTable::LatestMessages,
                "pair_lo, pair_hi",
                &["message_id", "from_user_id", "content", "created_ms"],
            ),
            latest_lookup: format!(
                "SELECT pair_lo, pair_hi, message_id, from_user_id, content, created_ms FROM {} WHERE ",
                t.name(ViewTable::LatestMessages)
            ),
            applied_lookup: format!(
                "SELECT event_id FROM {} WHERE event_id IN (",
                t.name(ViewTable::AppliedEvents)
            ),
            applied_insert: format!(
                "INSERT INTO {} (event_id, occurred_ms) ",
                t.name(ViewTable::AppliedEvents)
            ),
            applied_prune: format!(
                "DELETE FROM {} WHERE occurred_ms < ?",
                t.name(ViewTable::AppliedEvents)
            ),
            pruned_at: Default::default(),
            tables,
        }
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    pub fn dialect(&self) -> Dialect {
        self.tables.dialect
    }
}

/// Fold `events` (in log order) into the tables of `sql`, on the caller's transaction.
pub async fn fold_batch(
    conn: &mut AnyConnection,
    sql: &FoldSql,
    events: &[Envelope],
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let kept = sql.skip_applied(conn, events).await?;
    let events = kept.as_deref().unwrap_or(events);
    let mut batch = Batch::load(conn, sql, events).await?;
    for event in events {
        batch.apply(event, touched);
    }
    batch.write(conn, sql).await
}

#[derive(Debug, Clone, PartialEq)]
struct VideoRow {
    author_id: i64,
    title: String,
    play_path: String,
    cover_path: String,
    published_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
struct CommentRow {
    video_id: i64,
    user_id: i64,
    content: String,
    created_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
struct LatestRow {
    message_id: i64,
    from_user_id: i64,
    content: String,
    created_ms: i64,
}

#[derive(Debug, Clone)]
struct MessageRow {
    id: i64,
    pair: (i64, i64),
    from_user_id: i64,
    to_user_id: i64,
    content: String,
    created_ms: i64,
}

/// Summed changes to one `user_stats` row; `bumps` is how many rule applications touched it.
#[derive(Debug, Default, Clone, Copy)]
struct UserDelta {
    follow: i64,
    follower: i64,
    total_favorited: i64,
    work: i64,
    favorite: i64,
    bumps: i64,
}

#[derive(Debug, Default, Clone, Copy)]
struct VideoDelta {
    favorite: i64,
    comment: i64,
    bumps: i64,
}

/// A table's rows as loaded (`before`) and as the batch leaves them (`now`), for the keys the
/// batch's rules look at. Keys absent from the map were looked up and do not exist.
#[derive(Debug)]
struct Rows<K, V> {
    map: HashMap<K, (Option<V>, Option<V>)>,
}

impl<K: Hash + Eq + Ord + Copy, V: Clone + PartialEq> Rows<K, V> {
    fn new() -> Self {
        Rows {
            map: HashMap::new(),
        }
    }

    fn loaded(&mut self, key: K, value: V) {
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
    fn net(self) -> (Vec<(K, V)>, Vec<K>) {
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
struct Batch {
    users: BTreeMap<i64, (String, i64)>,
    user_stats: BTreeMap<i64, UserDelta>,
    video_stats: BTreeMap<i64, VideoDelta>,
    videos_existing: HashSet<i64>,
    videos_new: BTreeMap<i64, VideoRow>,
    favorites: Rows<(i64, i64), i64>,
    follows: Rows<(i64, i64), i64>,
    friends: Rows<(i64, i64), i64>,
    comments: Rows<i64, CommentRow>,
    messages_existing: HashSet<i64>,
    messages_new: Vec<MessageRow>,
    latest: Rows<(i64, i64), LatestRow>,
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

fn ordered(a: i64, b: i64) -> (i64, i64) {
    (a.min(b), a.max(b))
}

impl Batch {
    async fn load(
        conn: &mut AnyConnection,
        sql: &FoldSql,
        events: &[Envelope],
    ) -> Result<Batch, sqlx::Error> {
        let mut videos = Vec::new();
        let mut likes = Vec::new();
        let mut follows = Vec::new();
        let mut comments = Vec::new();
        let mut messages = Vec::new();
        let mut pairs = Vec::new();
        for event in events {
            match &event.body {
                EventBody::VideoPublished(e) => videos.push(e.video_id),
                EventBody::VideoLiked(e) | EventBody::VideoUnliked(e) => {
                    likes.push((e.user_id, e.video_id))
                }
                EventBody::UserFollowed(e) | EventBody::UserUnfollowed(e) => {
                    follows.push((e.follower_id, e.followee_id));
                    follows.push((e.followee_id, e.follower_id));
                }
                EventBody::CommentAdded(e) => comments.push(e.comment_id),
                EventBody::CommentDeleted(e) => comments.push(e.comment_id),
                EventBody::MessageSent(e) => {
                    messages.push(e.message_id);
                    pairs.push(ordered(e.from_user_id, e.to_user_id));
                }
                EventBody::UserRegistered(_) => {}
            }
        }
        for keys in [&mut videos, &mut comments, &mut messages] {
            keys.sort_unstable();
            keys.dedup();
        }
        for keys in [&mut likes, &mut follows, &mut pairs] {
            keys.sort_unstable();
            keys.dedup();
        }
        let mut batch = Batch {
            users: BTreeMap::new(),
            user_stats: BTreeMap::new(),
            video_stats: BTreeMap::new(),
            videos_existing: HashSet::new(),
            videos_new: BTreeMap::new(),
            favorites: Rows::new(),
            follows: Rows::new(),
            friends: Rows::new(),
            comments: Rows::new(),
            messages_existing: HashSet::new(),
            messages_new: Vec::new(),
            latest: Rows::new(),
        };
        for chunk in videos.chunks(LOOKUP_KEYS) {
            let rows: Vec<(i64,)> = in_list(&sql.videos_lookup, chunk)
                .build_query_as()
                .fetch_all(&mut *conn)
                .await?;
            batch
                .videos_existing
                .extend(rows.into_iter().map(|(id,)| id));
        }
        for chunk in messages.chunks(LOOKUP_KEYS) {
            let rows: Vec<(i64,)> = in_list(&sql.messages_lookup, chunk)
                .build_query_as()
                .fetch_all(&mut *conn)
                .await?;
            batch
                .messages_existing
                .extend(rows.into_iter().map(|(id,)| id));
        }
        for chunk in comments.chunks(LOOKUP_KEYS) {
            let rows: Vec<(i64, i64, i64, String, i64)> = in_list(&sql.comments_lookup, chunk)
                .build_query_as()
                .fetch_all(&mut *conn)
                .await?;
            for (id, video_id, user_id, content, created_ms) in rows {
                let row = CommentRow {
                    video_id,
                    user_id,
                    content,
                    created_ms,
                };
                batch.comments.loaded(id, row);
            }
        }
        for (table, keys, rows) in [
            (&sql.favorites, &likes, &mut batch.favorites),
            (&sql.follows, &follows, &mut batch.follows),
            (&sql.friends, &follows, &mut batch.friends),
        ] {
            for chunk in keys.chunks(LOOKUP_KEYS) {
                let found: Vec<(i64, i64, i64)> = pair_list(&table.lookup, table.keys, chunk)
                    .build_query_as()
                    .fetch_all(&mut *conn)
                    .await?;
                for (a, b, at) in found {
                    rows.loaded((a, b), at);
                }
            }
        }
        for chunk in pairs.chunks(LOOKUP_KEYS) {
            let found: Vec<(i64, i64, i64, i64, String, i64)> =
                pair_list(&sql.latest_lookup, ("pair_lo", "pair_hi"), chunk)
                    .build_query_as()
                    .fetch_all(&mut *conn)
                    .await?;
            for (lo, hi, message_id, from_user_id, content, created_ms) in found {
                let row = LatestRow {
                    message_id,
                    from_user_id,
                    content,
                    created_ms,
                };
                batch.latest.loaded((lo, hi), row);
            }
        }
        Ok(batch)
    }

    fn user(&mut self, id: i64) -> &mut UserDelta {
        self.user_stats.entry(id).or_default()
    }

    fn video(&mut self, id: i64) -> &mut VideoDelta {
        self.video_stats.entry(id).or_default()
    }

    /// One event's rules, in memory.
    fn apply(&mut self, event: &Envelope, touched: &mut Touched) {
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

    /// The net effect, table by table, rows in key order.
    async fn write(self, conn: &mut AnyConnection, sql: &FoldSql) -> Result<(), sqlx::Error> {
        let users: Vec<_> = self.users.into_iter().collect();
        insert_rows(
            conn,
            (&sql.users_insert, ""),
            3,
            &users,
            |(_, (name, _))| name.len(),
            |mut b, (id, (name, at))| {
                b.push_bind(*id).push_bind(name.clone()).push_bind(*at);
            },
        )
        .await?;
        let videos: Vec<_> = self.videos_new.into_iter().collect();
        insert_rows(
            conn,
            (&sql.videos_insert, ""),
            6,
            &videos,
            |(_, v)| v.title.len() + v.play_path.len() + v.cover_path.len(),
            |mut b, (id, v)| {
                b.push_bind(*id)
                    .push_bind(v.author_id)
                    .push_bind(v.title.clone())
                    .push_bind(v.play_path.clone())
                    .push_bind(v.cover_path.clone())
                    .push_bind(v.published_ms);
            },
        )
        .await?;
        for (table, rows) in [
            (&sql.favorites, self.favorites),
            (&sql.follows, self.follows),
            (&sql.friends, self.friends),
        ] {
            let (upserts, deletes) = rows.net();
            let (head, tail) = (&table.upsert.0, &table.upsert.1);
            insert_rows(
                conn,
                (head, tail),
                3,
                &upserts,
                |_| 0,
                |mut b, ((x, y), at)| {
                    b.push_bind(*x).push_bind(*y).push_bind(*at);
                },
            )
            .await?;
            for chunk in deletes.chunks(LOOKUP_KEYS) {
                pair_list(&table.delete, table.keys, chunk)
                    .build()
                    .execute(&mut *conn)
                    .await?;
            }
        }
        let (upserts, deletes) = self.comments.net();
        let (head, tail) = (&sql.comments_upsert.0, &sql.comments_upsert.1);
        insert_rows(
            conn,
            (head, tail),
            5,
            &upserts,
            |(_, c)| c.content.len(),
            |mut b, (id, c)| {
                b.push_bind(*id)
                    .push_bind(c.video_id)
                    .push_bind(c.user_id)
                    .push_bind(c.content.clone())
                    .push_bind(c.created_ms);
            },
        )
        .await?;
        for chunk in deletes.chunks(LOOKUP_KEYS) {
            in_list(&sql.comments_delete, chunk)
                .build()
                .execute(&mut *conn)
                .await?;
        }
        let mut messages = self.messages_new;
        messages.sort_by_key(|m| m.id);
        insert_rows(
            conn,
            (&sql.messages_insert, ""),
            7,
            &messages,
            |m| m.content.len(),
            |mut b, m| {
                b.push_bind(m.id)
                    .push_bind(m.pair.0)
                    .push_bind(m.pair.1)
                    .push_bind(m.from_user_id)
                    .push_bind(m.to_user_id)
                    .push_bind(m.content.clone())
                    .push_bind(m.created_ms);
            },
        )
        .await?;
        let (latest, _) = self.latest.net();
        let (head, tail) = (&sql.latest_upsert.0, &sql.latest_upsert.1);
        insert_rows(
            conn,
            (head, tail),
            6,
            &latest,
            |(_, l)| l.content.len(),
            |mut b, ((lo, hi), l)| {
                b.push_bind(*lo)
                    .push_bind(*hi)
                    .push_bind(l.message_id)
                    .push_bind(l.from_user_id)
                    .push_bind(l.content.clone())
                    .push_bind(l.created_ms);
            },
        )
        .await?;
        let user_stats: Vec<_> = self.user_stats.into_iter().collect();
        let (head, tail) = (&sql.user_stats_upsert.0, &sql.user_stats_upsert.1);
        insert_rows(
            conn,
            (head, tail),
            7,
            &user_stats,
            |_| 0,
            |mut b, (id, d)| {
                b.push_bind(*id)
                    .push_bind(d.follow)
                    .push_bind(d.follower)
                    .push_bind(d.total_favorited)
                    .push_bind(d.work)
                    .push_bind(d.favorite)
                    .push_bind(d.bumps);
            },
        )
        .await?;
        let video_stats: Vec<_> = self.video_stats.into_iter().collect();
        let (head, tail) = (&sql.video_stats_upsert.0, &sql.video_stats_upsert.1);
        insert_rows(
            conn,
            (head, tail),
            4,
            &video_stats,
            |_| 0,
            |mut b, (id, d)| {
                b.push_bind(*id)
                    .push_bind(d.favorite)
                    .push_bind(d.comment)
                    .push_bind(d.bumps);
            },
        )
        .await?;
        Ok(())
    }
}

/// `head VALUES (…), (…) tail` for `rows`, in as few statements as the limits allow.
async fn insert_rows<R>(
    conn: &mut AnyConnection,
    (head, tail): (&str, &str),
    columns: usize,
    rows: &[R],
    text_bytes: impl Fn(&R) -> usize,
    bind: impl Fn(Separated<'_, '_, Any, &'static str>, &R),
) -> Result<(), sqlx::Error> {
    let max_rows = (MAX_PARAMS / columns).min(MAX_ROWS);
    let mut rest = rows;
    while !rest.is_empty() {
        let mut n = 0;
        let mut bytes = 0;
        while n < rest.len()
            && n < max_rows
            && (n == 0 || bytes + text_bytes(&rest[n]) <= MAX_TEXT_BYTES)
        {
            bytes += text_bytes(&rest[n]);
            n += 1;
        }
        let (chunk, later) = rest.split_at(n);
        let mut qb = QueryBuilder::<Any>::new(head);
        qb.push_values(chunk, &bind);
        qb.push(tail);
        qb.build().execute(&mut *conn).await?;
        rest = later;
    }
    Ok(())
}

/// `prefix` (ending in `IN (`) followed by the bound ids and `)`.
fn in_list<'a>(prefix: &str, ids: &[i64]) -> QueryBuilder<'a, Any> {
    let mut qb = QueryBuilder::new(prefix);
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(*id);
    }
    qb.push(")");
    qb
}

/// `prefix` followed by `(a = ? AND b = ?) OR …` for the pairs: both SQLite (multi-index OR) and
/// MySQL (range access) answer it from the primary key.
fn pair_list<'a>(
    prefix: &str,
    (a, b): (&str, &str),
    pairs: &[(i64, i64)],
) -> QueryBuilder<'a, Any> {
    let mut qb = QueryBuilder::new(prefix);
    for (i, (x, y)) in pairs.iter().enumerate() {
        if i > 0 {
            qb.push(" OR ");
        }
        qb.push(format_args!("({a} = "));
        qb.push_bind(*x);
        qb.push(format_args!(" AND {b} = "));
        qb.push_bind(*y);
        qb.push(")");
    }
    qb
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
