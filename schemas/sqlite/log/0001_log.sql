-- The embedded event log: an append-only table per (topic, partition), offsets dense from 0.
CREATE TABLE log (
    topic        TEXT    NOT NULL,
    partition    INTEGER NOT NULL,
    offset       INTEGER NOT NULL,
    key          TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    appended_ms  INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, offset)
) WITHOUT ROWID;
