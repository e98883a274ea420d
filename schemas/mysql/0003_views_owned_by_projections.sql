-- From here on the projectors own the view tables: they create them in the shape their code
-- expects (titok_schemas::views) and rebuild them from the event log when that shape changes
-- (projection versions, `titok rebuild`). The tables created by 0001 are dropped; the projectors
-- recreate them and fold the whole log into them on first start.
DROP TABLE users;
DROP TABLE user_stats;
DROP TABLE videos;
DROP TABLE video_stats;
DROP TABLE favorites;
DROP TABLE comments;
DROP TABLE follows;
DROP TABLE friends;
DROP TABLE messages;
DROP TABLE latest_messages;
DELETE FROM projection_offsets;
DELETE FROM parked_events;

-- Per projection: the version of the view shape its tables were built for, how often they were
-- rebuilt (projectors refresh their counter cache when it changes), and a pause lease a rebuild
-- takes while it swaps tables (a crashed rebuild's pause expires by itself).
CREATE TABLE projection_meta (
    projection       VARCHAR(64) NOT NULL PRIMARY KEY,
    version          BIGINT  NOT NULL,
    generation       BIGINT  NOT NULL DEFAULT 0,
    paused_until_ms  BIGINT  NOT NULL DEFAULT 0
) ENGINE=InnoDB;
