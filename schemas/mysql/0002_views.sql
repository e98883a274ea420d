-- Read models (MySQL 8 / MariaDB): the same tables and indexes as sqlite/views/0001.
CREATE TABLE users (
    id          BIGINT        NOT NULL PRIMARY KEY,
    name        VARCHAR(32)   NOT NULL,
    created_ms  BIGINT        NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE user_stats (
    user_id          BIGINT NOT NULL PRIMARY KEY,
    follow_count     BIGINT NOT NULL DEFAULT 0,
    follower_count   BIGINT NOT NULL DEFAULT 0,
    total_favorited  BIGINT NOT NULL DEFAULT 0,
    work_count       BIGINT NOT NULL DEFAULT 0,
    favorite_count   BIGINT NOT NULL DEFAULT 0,
    version          BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB;

CREATE TABLE videos (
    id            BIGINT        NOT NULL PRIMARY KEY,
    author_id     BIGINT        NOT NULL,
    title         VARCHAR(400)  NOT NULL,
    play_path     VARCHAR(255)  NOT NULL,
    cover_path    VARCHAR(255)  NOT NULL,
    published_ms  BIGINT        NOT NULL,
    KEY videos_feed (published_ms, id),
    KEY videos_author (author_id, published_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE video_stats (
    video_id        BIGINT NOT NULL PRIMARY KEY,
    favorite_count  BIGINT NOT NULL DEFAULT 0,
    comment_count   BIGINT NOT NULL DEFAULT 0,
    version         BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB;

CREATE TABLE favorites (
    user_id   BIGINT NOT NULL,
    video_id  BIGINT NOT NULL,
    liked_ms  BIGINT NOT NULL,
    PRIMARY KEY (user_id, video_id),
    KEY favorites_by_user_time (user_id, liked_ms)
) ENGINE=InnoDB;

CREATE TABLE comments (
    id          BIGINT         NOT NULL PRIMARY KEY,
    video_id    BIGINT         NOT NULL,
    user_id     BIGINT         NOT NULL,
    content     VARCHAR(2000)  NOT NULL,
    created_ms  BIGINT         NOT NULL,
    KEY comments_by_video (video_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE follows (
    follower_id  BIGINT NOT NULL,
    followee_id  BIGINT NOT NULL,
    created_ms   BIGINT NOT NULL,
    PRIMARY KEY (follower_id, followee_id),
    KEY follows_by_followee (followee_id, created_ms),
    KEY follows_by_follower_time (follower_id, created_ms)
) ENGINE=InnoDB;

CREATE TABLE friends (
    user_id    BIGINT NOT NULL,
    friend_id  BIGINT NOT NULL,
    since_ms   BIGINT NOT NULL,
    PRIMARY KEY (user_id, friend_id)
) ENGINE=InnoDB;

CREATE TABLE messages (
    id            BIGINT         NOT NULL PRIMARY KEY,
    pair_lo       BIGINT         NOT NULL,
    pair_hi       BIGINT         NOT NULL,
    from_user_id  BIGINT         NOT NULL,
    to_user_id    BIGINT         NOT NULL,
    content       VARCHAR(4000)  NOT NULL,
    created_ms    BIGINT         NOT NULL,
    KEY messages_by_pair (pair_lo, pair_hi, created_ms, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE latest_messages (
    pair_lo       BIGINT         NOT NULL,
    pair_hi       BIGINT         NOT NULL,
    message_id    BIGINT         NOT NULL,
    from_user_id  BIGINT         NOT NULL,
    content       VARCHAR(4000)  NOT NULL,
    created_ms    BIGINT         NOT NULL,
    PRIMARY KEY (pair_lo, pair_hi)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE projection_offsets (
    projection   VARCHAR(64) NOT NULL,
    topic        VARCHAR(128) NOT NULL,
    part         BIGINT      NOT NULL,
    next_offset  BIGINT      NOT NULL,
    PRIMARY KEY (projection, topic, part)
) ENGINE=InnoDB;

CREATE TABLE parked_events (
    projection  VARCHAR(64)   NOT NULL,
    topic       VARCHAR(128)  NOT NULL,
    part        BIGINT        NOT NULL,
    log_offset  BIGINT        NOT NULL,
    event_key   VARCHAR(128)  NOT NULL,
    reason      VARCHAR(1000) NOT NULL,
    payload     MEDIUMBLOB    NOT NULL,
    parked_ms   BIGINT        NOT NULL,
    PRIMARY KEY (projection, topic, part, log_offset),
    KEY parked_by_key (projection, topic, event_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
