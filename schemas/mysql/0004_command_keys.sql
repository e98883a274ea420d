-- Idempotency keys of commands; see sqlite/accounts/0002_command_keys.sql. Event and reply are
-- bytes (UTF-8 JSON): sqlx's Any driver reads MySQL TEXT columns as BLOB.
CREATE TABLE command_keys (
    user_id         BIGINT       NOT NULL,
    idem_key        VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    fingerprint     CHAR(64)     NOT NULL,
    event           MEDIUMBLOB   NOT NULL,
    reply           MEDIUMBLOB   NOT NULL,
    acked_topic     VARCHAR(64)  NULL,
    acked_partition BIGINT       NULL,
    acked_offset    BIGINT       NULL,
    created_ms      BIGINT       NOT NULL,
    PRIMARY KEY (user_id, idem_key),
    KEY command_keys_created (created_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
