-- Idempotency keys of commands (the `Idempotency-Key` header): per user and key, the request's
-- fingerprint, the event as first decided, the reply, and where the log acknowledged the event
-- (NULL while unknown: the append failed or timed out). A retry re-appends the same event and
-- answers the same reply; the folds are idempotent on the event's ids.
CREATE TABLE command_keys (
    user_id      INTEGER NOT NULL,
    idem_key     TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    event        BLOB    NOT NULL,
    reply        BLOB    NOT NULL,
    acked_topic  TEXT,
    acked_partition INTEGER,
    acked_offset INTEGER,
    created_ms   INTEGER NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
CREATE INDEX command_keys_created ON command_keys (created_ms);
