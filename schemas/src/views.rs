//! The read-model tables, as the projectors of this binary expect them.
//!
//! Views are not migrated: they are disposable folds of the event log. Their DDL lives here (not in
//! the migrations) so a rebuild can create the current shape under another name (`{t}` is the table
//! name, shadow tables get a prefix), fold the log into it and swap it in. Index names derive from
//! the table name so a shadow's indexes never collide with the live ones in SQLite's single index
//! namespace. Both dialects have the same columns and indexes; column names avoid MySQL reserved
//! words so the queries are shared.

/// A view table. Every statement over the views names its tables through this enum (shadow tables
/// of a rebuild add a prefix to [`ViewTable::name`]), so a table's name lives here only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViewTable {
    Users,
    UserStats,
    Videos,
    VideoStats,
    Favorites,
    Comments,
    Follows,
    Friends,
    Messages,
    LatestMessages,
    AppliedEvents,
}

impl ViewTable {
    pub const ALL: [ViewTable; 11] = [
        ViewTable::Users,
        ViewTable::UserStats,
        ViewTable::Videos,
        ViewTable::VideoStats,
        ViewTable::Favorites,
        ViewTable::Comments,
        ViewTable::Follows,
        ViewTable::Friends,
        ViewTable::Messages,
        ViewTable::LatestMessages,
        ViewTable::AppliedEvents,
    ];

    /// The live name.
    pub fn name(self) -> &'static str {
        self.ddl().name
    }

    /// `CREATE … IF NOT EXISTS` statements (table and secondary indexes) under the name `table`.
    pub fn create(self, mysql: bool, table: &str) -> Vec<String> {
        let ddl = self.ddl();
        let statements = if mysql { ddl.mysql } else { ddl.sqlite };
        statements.iter().map(|s| s.replace("{t}", table)).collect()
    }

    fn ddl(self) -> &'static Ddl {
        &DDL[self as usize]
    }
}

impl std::fmt::Display for ViewTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One view table's DDL in both dialects, in [`ViewTable`] order.
#[derive(Debug)]
struct Ddl {
    name: &'static str,
    sqlite: &'static [&'static str],
    mysql: &'static [&'static str],
}

macro_rules! mysql_table {
    ($body:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS {t} (",
            $body,
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
        )
    };
}

/// Every view table's DDL, in [`ViewTable`] order. Counters live in their own rows (`user_stats`, `video_stats`) so a like can be
/// folded before its video or user; `version` rises with every change and the counter cache only
/// accepts newer versions.
static DDL: [Ddl; 11] = [
    Ddl {
        name: "users",
        sqlite: &["CREATE TABLE IF NOT EXISTS {t} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_ms INTEGER NOT NULL)"],
        mysql: &[mysql_table!("id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(32) NOT NULL, created_ms BIGINT NOT NULL")],
    },
    Ddl {
        name: "user_stats",
        sqlite: &["CREATE TABLE IF NOT EXISTS {t} (user_id INTEGER PRIMARY KEY, follow_count INTEGER NOT NULL DEFAULT 0, \
                   follower_count INTEGER NOT NULL DEFAULT 0, total_favorited INTEGER NOT NULL DEFAULT 0, \
                   work_count INTEGER NOT NULL DEFAULT 0, favorite_count INTEGER NOT NULL DEFAULT 0, \
                   version INTEGER NOT NULL DEFAULT 0)"],
        mysql: &[mysql_table!("user_id BIGINT NOT NULL PRIMARY KEY, follow_count BIGINT NOT NULL DEFAULT 0, \
                   follower_count BIGINT NOT NULL DEFAULT 0, total_favorited BIGINT NOT NULL DEFAULT 0, \
                   work_count BIGINT NOT NULL DEFAULT 0, favorite_count BIGINT NOT NULL DEFAULT 0, \
                   version BIGINT NOT NULL DEFAULT 0")],
    },
    Ddl {
        name: "videos",
        sqlite: &[
            "CREATE TABLE IF NOT EXISTS {t} (id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL, title TEXT NOT NULL, \
             play_path TEXT NOT NULL, cover_path TEXT NOT NULL, published_ms INTEGER NOT NULL)",
            "CREATE INDEX IF NOT EXISTS {t}_feed ON {t} (published_ms DESC, id DESC)",
            "CREATE INDEX IF NOT EXISTS {t}_author ON {t} (author_id, published_ms DESC)",
        ],
        mysql: &[mysql_table!("id BIGINT NOT NULL PRIMARY KEY, author_id BIGINT NOT NULL, title VARCHAR(400) NOT NULL, \
                   play_path VARCHAR(255) NOT NULL, cover_path VARCHAR(255) NOT NULL, published_ms BIGINT NOT NULL, \
                   KEY feed (published_ms, id), KEY author (author_id, published_ms)")],
    },
    Ddl {
        name: "video_stats",
        sqlite: &["CREATE TABLE IF NOT EXISTS {t} (video_id INTEGER PRIMARY KEY, favorite_count INTEGER NOT NULL DEFAULT 0, \
                   comment_count INTEGER NOT NULL DEFAULT 0, version INTEGER NOT NULL DEFAULT 0)"],
        mysql: &[mysql_table!("video_id BIGINT NOT NULL PRIMARY KEY, favorite_count BIGINT NOT NULL DEFAULT 0, \
                   comment_count BIGINT NOT NULL DEFAULT 0, version BIGINT NOT NULL DEFAULT 0")],
    },
    Ddl {
        name: "favorites",
        sqlite: &[
            "CREATE TABLE IF NOT EXISTS {t} (user_id INTEGER NOT NULL, video_id INTEGER NOT NULL, liked_ms INTEGER NOT NULL, \
             PRIMARY KEY (user_id, video_id)) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS {t}_by_user_time ON {t} (user_id, liked_ms DESC)",
        ],
        mysql: &[mysql_table!("user_id BIGINT NOT NULL, video_id BIGINT NOT NULL, liked_ms BIGINT NOT NULL, \
                   PRIMARY KEY (user_id, video_id), KEY by_user_time (user_id, liked_ms)")],
    },
    Ddl {
        name: "comments",
        sqlite: &[
            "CREATE TABLE IF NOT EXISTS {t} (id INTEGER PRIMARY KEY, video_id INTEGER NOT NULL, user_id INTEGER NOT NULL, \
             content TEXT NOT NULL, created_ms INTEGER NOT NULL)",
            "CREATE INDEX IF NOT EXISTS {t}_by_video ON {t} (video_id, id DESC)",
        ],
        mysql: &[mysql_table!("id BIGINT NOT NULL PRIMARY KEY, video_id BIGINT NOT NULL, user_id BIGINT NOT NULL, \
                   content VARCHAR(2000) NOT NULL, created_ms BIGINT NOT NULL, KEY by_video (video_id, id)")],
    },
    Ddl {
        name: "follows",
        sqlite: &[
            "CREATE TABLE IF NOT EXISTS {t} (follower_id INTEGER NOT NULL, followee_id INTEGER NOT NULL, \
             created_ms INTEGER NOT NULL, PRIMARY KEY (follower_id, followee_id)) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS {t}_by_followee ON {t} (followee_id, created_ms DESC)",
            "CREATE INDEX IF NOT EXISTS {t}_by_follower_time ON {t} (follower_id, created_ms DESC)",
        ],
        mysql: &[mysql_table!("follower_id BIGINT NOT NULL, followee_id BIGINT NOT NULL, created_ms BIGINT NOT NULL, \
                   PRIMARY KEY (follower_id, followee_id), KEY by_followee (followee_id, created_ms), \
                   KEY by_follower_time (follower_id, created_ms)")],
    },
    // Friendship rows exist exactly while both follows exist; one row per direction.
    Ddl {
        name: "friends",
        sqlite: &["CREATE TABLE IF NOT EXISTS {t} (user_id INTEGER NOT NULL, friend_id INTEGER NOT NULL, \
                   since_ms INTEGER NOT NULL, PRIMARY KEY (user_id, friend_id)) WITHOUT ROWID"],
        mysql: &[mysql_table!("user_id BIGINT NOT NULL, friend_id BIGINT NOT NULL, since_ms BIGINT NOT NULL, \
                   PRIMARY KEY (user_id, friend_id)")],
    },
    Ddl {
        name: "messages",
        sqlite: &[
            "CREATE TABLE IF NOT EXISTS {t} (id INTEGER PRIMARY KEY, pair_lo INTEGER NOT NULL, pair_hi INTEGER NOT NULL, \
             from_user_id INTEGER NOT NULL, to_user_id INTEGER NOT NULL, content TEXT NOT NULL, created_ms INTEGER NOT NULL)",
            "CREATE INDEX IF NOT EXISTS {t}_by_pair ON {t} (pair_lo, pair_hi, created_ms, id)",
        ],
        mysql: &[mysql_table!("id BIGINT NOT NULL PRIMARY KEY, pair_lo BIGINT NOT NULL, pair_hi BIGINT NOT NULL, \
                   from_user_id BIGINT NOT NULL, to_user_id BIGINT NOT NULL, content VARCHAR(4000) NOT NULL, \
                   created_ms BIGINT NOT NULL, KEY by_pair (pair_lo, pair_hi, created_ms, id)")],
    },
    // The newest message of each conversation, for the friend list.
    Ddl {
        name: "latest_messages",
        sqlite: &["CREATE TABLE IF NOT EXISTS {t} (pair_lo INTEGER NOT NULL, pair_hi INTEGER NOT NULL, \
                   message_id INTEGER NOT NULL, from_user_id INTEGER NOT NULL, content TEXT NOT NULL, \
                   created_ms INTEGER NOT NULL, PRIMARY KEY (pair_lo, pair_hi)) WITHOUT ROWID"],
        mysql: &[mysql_table!("pair_lo BIGINT NOT NULL, pair_hi BIGINT NOT NULL, message_id BIGINT NOT NULL, \
                   from_user_id BIGINT NOT NULL, content VARCHAR(4000) NOT NULL, created_ms BIGINT NOT NULL, \
                   PRIMARY KEY (pair_lo, pair_hi)")],
    },
    // The ids of the like, comment and follow events folded in the last days: a keyed retry
    // re-appends its event (same id) at the log's end, which must not take effect again.
    Ddl {
        name: "applied_events",
        sqlite: &[
            "CREATE TABLE IF NOT EXISTS {t} (event_id TEXT NOT NULL PRIMARY KEY, occurred_ms INTEGER NOT NULL) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS {t}_by_time ON {t} (occurred_ms)",
        ],
        mysql: &[mysql_table!("event_id CHAR(36) NOT NULL PRIMARY KEY, occurred_ms BIGINT NOT NULL, \
                   KEY by_time (occurred_ms)")],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_is_in_enum_order() {
        let names: Vec<&str> = ViewTable::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(
            names,
            [
                "users",
                "user_stats",
                "videos",
                "video_stats",
                "favorites",
                "comments",
                "follows",
                "friends",
                "messages",
                "latest_messages",
                "applied_events"
            ]
        );
        for (i, t) in ViewTable::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
        }
    }

    #[test]
    fn every_statement_names_its_table_and_mysql_tables_use_utf8mb4() {
        for table in ViewTable::ALL {
            for mysql in [false, true] {
                for s in table.create(mysql, "r1_x") {
                    assert!(s.contains("r1_x"), "{s}");
                    assert!(!s.contains("{t}"), "{s}");
                }
            }
            assert!(table.create(true, "x")[0].contains("EXISTS x ("));
            assert!(table.create(true, "x")[0]
                .ends_with("ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"));
        }
    }
}
