//! The statements of the fold ([`FoldSql`]), built once per table set (live or shadow): the fold
//! only appends each batch's `VALUES` tuples and key lists, in chunks below the databases'
//! parameter limits.

use sqlx::{Any, QueryBuilder};

use crate::{Dialect, Tables, ViewTable};

/// Most bound parameters per statement: below SQLite's 32,766 and MySQL's 65,535.
pub(super) const MAX_PARAMS: usize = 30_000;
/// Most rows per statement.
pub(crate) const MAX_ROWS: usize = 4_000;
/// Most bytes of text per statement (MariaDB's default `max_allowed_packet` is 16 MiB).
pub(super) const MAX_TEXT_BYTES: usize = 4 << 20;
/// Most keys per lookup query (`(a = ? AND b = ?) OR …` chains stay cheap to plan).
pub(crate) const LOOKUP_KEYS: usize = 500;

/// The statements of one table set (live or shadow), built once: the fold only appends the
/// `VALUES` tuples and key lists of each batch.
#[derive(Debug, Clone)]
pub struct FoldSql {
    tables: Tables,
    pub(super) users_insert: String,
    pub(super) user_stats_upsert: (String, String),
    pub(super) video_stats_upsert: (String, String),
    pub(super) videos_insert: String,
    pub(super) videos_lookup: String,
    pub(super) favorites: PairTable,
    pub(super) follows: PairTable,
    pub(super) friends: PairTable,
    pub(super) comments_upsert: (String, String),
    pub(super) comments_lookup: String,
    pub(super) comments_delete: String,
    pub(super) messages_insert: String,
    pub(super) messages_lookup: String,
    pub(super) latest_upsert: (String, String),
    pub(super) latest_lookup: String,
    pub(crate) applied_lookup: String,
    pub(crate) applied_insert: String,
    pub(crate) applied_prune: String,
    /// Event time of the last prune of `applied_events` (0: not yet).
    pub(crate) pruned_at: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

/// Statements of a table keyed by a pair of ids with one time column.
#[derive(Debug, Clone)]
pub(super) struct PairTable {
    pub(super) keys: (&'static str, &'static str),
    pub(super) upsert: (String, String),
    pub(super) lookup: String,
    pub(super) delete: String,
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

/// `prefix` (ending in `IN (`) followed by the bound ids and `)`.
pub(super) fn in_list<'a>(prefix: &str, ids: &[i64]) -> QueryBuilder<'a, Any> {
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
pub(super) fn pair_list<'a>(
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
