-- Command-side accounts (MySQL 8 / MariaDB). See sqlite/accounts/0001 for the meaning of `appended`.
-- utf8mb4_bin: usernames are compared exactly, as on SQLite.
CREATE TABLE accounts (
    user_id        BIGINT       NOT NULL PRIMARY KEY,
    username       VARCHAR(32)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    password_hash  VARCHAR(255) NOT NULL,
    created_ms     BIGINT       NOT NULL,
    appended       BIGINT       NOT NULL DEFAULT 0,
    UNIQUE KEY accounts_username (username),
    KEY accounts_pending (appended)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
