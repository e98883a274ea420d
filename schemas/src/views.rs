//! The read-model tables, as the projectors of this binary expect them.
//!
//! Views are not migrated: they are disposable folds of the event log. Their DDL lives here (not in
//! the migrations) so a rebuild can create the current shape under another name (`{t}` is the table
//! name, shadow tables get a prefix), fold the log into it and swap it in. Index names derive from
//! the table name so a shadow's indexes never collide with the live ones in SQLite's single index
//! namespace. Both dialects have the same columns and indexes; column names avoid MySQL reserved
//! words so the queries are shared.

/// One view table in both dialects.
#[derive(Debug)]
pub struct ViewTable {
    /// The live name.
    pub name: &'static str,
    sqlite: &'static [&'static str],
    mysql: &'static [&'static str],
}

impl ViewTable {
    /// `CREATE … IF NOT EXISTS` statements for this table under the name `table`.
    pub fn create(&self, mysql: bool, table: &str) -> Vec<String> {
        let statements = if mysql { self.mysql } else { self.sqlite };
        statements.iter().map(|s| s.replace("{t}", table)).collect()
    }
}

/// The view table called `name`.
pub fn view_table(name: &str) -> Option<&'static ViewTable> {
    VIEW_TABLES.iter().find(|t| t.name == name)
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

/// Every view table. Counters live in their own rows (`user_stats`, `video_stats`) so a like can be
/// folded before its video or user; `version` rises with every change and the counter cache only
/// accepts newer versions.
pub static VIEW_TABLES: &[ViewTable] = &[
    ViewTable {
        name: "users",
        sqlite: &["CREATE TABLE IF NOT EXISTS {t} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_ms INTEGER NOT NULL)"],
        mysql: &[mysql_table!("id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(32) NOT NULL, created_ms BIGINT NOT NULL")],
    },
    ViewTable {
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
    ViewTable {
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
    ViewTable {
        name: "video_stats",
        sqlite: &["CREATE TABLE IF NOT EXISTS {t} (video_id INTEGER PRIMARY KEY, favorite_count INTEGER NOT NULL DEFAULT 0, \
                   comment_count INTEGER NOT NULL DEFAULT 0, version INTEGER NOT NULL DEFAULT 0)"],
        mysql: &[mysql_table!("video_id BIGINT NOT NULL PRIMARY KEY, favorite_count BIGINT NOT NULL DEFAULT 0, \
                   comment_count BIGINT NOT NULL DEFAULT 0, version BIGINT NOT NULL DEFAULT 0")],
    },
    ViewTable {
        name: "favorites",
        sqlite: &[
            "CREATE TABLE IF NOT EXISTS {t} (user_id INTEGER NOT NULL, video_id INTEGER NOT NULL, liked_ms INTEGER NOT NULL, \
             PRIMARY KEY (user_id, video_id)) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS {t}_by_user_time ON {t} (user_id, liked_ms DESC)",
        ],
        mysql: &[mysql_table!("user_id BIGINT NOT NULL, video_id BIGINT NOT NULL, liked_ms BIGINT NOT NULL, \
                   PRIMARY KEY (user_id, video_id), KEY by_user_time (user_id, liked_ms)")],
    },
    ViewTable {
        name: "comments",
        sqlite: &[
            "CREATE TABLE IF NOT EXISTS {t} (id INTEGER PRIMARY KEY, video_id INTEGER NOT NULL, user_id INTEGER NOT NULL, \
             content TEXT NOT NULL, created_ms INTEGER NOT NULL)",
            "CREATE INDEX IF NOT EXISTS {t}_by_video ON {t} (video_id, id DESC)",
        ],
        mysql: &[mysql_table!("id BIGINT NOT NULL PRIMARY KEY, video_id BIGINT NOT NULL, user_id BIGINT NOT NULL, \
                   content VARCHAR(2000) NOT NULL, created_ms BIGINT NOT NULL, KEY by_video (video_id, id)")],
    },
    ViewTable {
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
    ViewTable {
        name: "friends",
        sqlite: &["CREATE TABLE IF NOT EXISTS {t} (user_id INTEGER NOT NULL, friend_id INTEGER NOT NULL, \
                   since_ms INTEGER NOT NULL, PRIMARY KEY (user_id, friend_id)) WITHOUT ROWID"],
        mysql: &[mysql_table!("user_id BIGINT NOT NULL, friend_id BIGINT NOT NULL, since_ms BIGINT NOT NULL, \
                   PRIMARY KEY (user_id, friend_id)")],
    },
    ViewTable {
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
    ViewTable {
        name: "latest_messages",
        sqlite: &["CREATE TABLE IF NOT EXISTS {t} (pair_lo INTEGER NOT NULL, pair_hi INTEGER NOT NULL, \
                   message_id INTEGER NOT NULL, from_user_id INTEGER NOT NULL, content TEXT NOT NULL, \
                   created_ms INTEGER NOT NULL, PRIMARY KEY (pair_lo, pair_hi)) WITHOUT ROWID"],
        mysql: &[mysql_table!("pair_lo BIGINT NOT NULL, pair_hi BIGINT NOT NULL, message_id BIGINT NOT NULL, \
                   from_user_id BIGINT NOT NULL, content VARCHAR(4000) NOT NULL, created_ms BIGINT NOT NULL, \
                   PRIMARY KEY (pair_lo, pair_hi)")],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_names_its_table_and_mysql_tables_use_utf8mb4() {
        for table in VIEW_TABLES {
            for mysql in [false, true] {
                for s in table.create(mysql, "r1_x") {
                    assert!(s.contains("r1_x"), "{s}");
                    assert!(!s.contains("{t}"), "{s}");
                }
            }
            assert!(table.create(true, "x")[0]
                .ends_with("ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"));
        }
    }
}
