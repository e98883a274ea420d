-- Read models. Written only by the projectors; read by the query API.
-- Column names avoid MySQL reserved words (partition, key) so both dialects share the queries.
CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL
);

-- Counters live in their own rows so a like can be folded before its video or user (DESIGN.md §3).
-- `version` increases with every change; the counter cache only accepts newer versions.
CREATE TABLE user_stats (
    user_id          INTEGER PRIMARY KEY,
    follow_count     INTEGER NOT NULL DEFAULT 0,
    follower_count   INTEGER NOT NULL DEFAULT 0,
    total_favorited  INTEGER NOT NULL DEFAULT 0,
    work_count       INTEGER NOT NULL DEFAULT 0,
    favorite_count   INTEGER NOT NULL DEFAULT 0,
    version          INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE videos (
    id               INTEGER PRIMARY KEY,
    author_id        INTEGER NOT NULL,
    title            TEXT    NOT NULL,
    play_path        TEXT    NOT NULL,
    cover_path       TEXT    NOT NULL,
    published_ms     INTEGER NOT NULL
);
CREATE INDEX videos_feed ON videos (published_ms DESC, id DESC);
CREATE INDEX videos_author ON videos (author_id, published_ms DESC);

CREATE TABLE video_stats (
    video_id         INTEGER PRIMARY KEY,
    favorite_count   INTEGER NOT NULL DEFAULT 0,
    comment_count    INTEGER NOT NULL DEFAULT 0,
    version          INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE favorites (
    user_id    INTEGER NOT NULL,
    video_id   INTEGER NOT NULL,
    liked_ms   INTEGER NOT NULL,
    PRIMARY KEY (user_id, video_id)
) WITHOUT ROWID;
CREATE INDEX favorites_by_user_time ON favorites (user_id, liked_ms DESC);

CREATE TABLE comments (
    id          INTEGER PRIMARY KEY,
    video_id    INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    content     TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL
);
CREATE INDEX comments_by_video ON comments (video_id, id DESC);

CREATE TABLE follows (
    follower_id  INTEGER NOT NULL,
    followee_id  INTEGER NOT NULL,
    created_ms   INTEGER NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
) WITHOUT ROWID;
CREATE INDEX follows_by_followee ON follows (followee_id, created_ms DESC);
CREATE INDEX follows_by_follower_time ON follows (follower_id, created_ms DESC);

-- Friendship rows exist exactly while both follows exist; one row per direction.
CREATE TABLE friends (
    user_id     INTEGER NOT NULL,
    friend_id   INTEGER NOT NULL,
    since_ms    INTEGER NOT NULL,
    PRIMARY KEY (user_id, friend_id)
) WITHOUT ROWID;

CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    pair_lo       INTEGER NOT NULL,
    pair_hi       INTEGER NOT NULL,
    from_user_id  INTEGER NOT NULL,
    to_user_id    INTEGER NOT NULL,
    content       TEXT    NOT NULL,
    created_ms    INTEGER NOT NULL
);
CREATE INDEX messages_by_pair ON messages (pair_lo, pair_hi, created_ms, id);

-- The newest message of each conversation, for the friend list.
CREATE TABLE latest_messages (
    pair_lo       INTEGER NOT NULL,
    pair_hi       INTEGER NOT NULL,
    message_id    INTEGER NOT NULL,
    from_user_id  INTEGER NOT NULL,
    content       TEXT    NOT NULL,
    created_ms    INTEGER NOT NULL,
    PRIMARY KEY (pair_lo, pair_hi)
) WITHOUT ROWID;

-- Where each projection is in each partition: written in the same transaction as the view rows.
CREATE TABLE projection_offsets (
    projection   TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    part         INTEGER NOT NULL,
    next_offset  INTEGER NOT NULL,
    PRIMARY KEY (projection, topic, part)
) WITHOUT ROWID;

-- Poison events, and every later event of the same key (per-key order must hold).
CREATE TABLE parked_events (
    projection   TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    part         INTEGER NOT NULL,
    log_offset   INTEGER NOT NULL,
    event_key    TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    parked_ms    INTEGER NOT NULL,
    PRIMARY KEY (projection, topic, part, log_offset)
) WITHOUT ROWID;
CREATE INDEX parked_by_key ON parked_events (projection, topic, event_key);
