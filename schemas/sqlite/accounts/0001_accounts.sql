-- Command-side accounts: the only synchronous state (unique usernames, password hashes).
-- `appended` = 0 while the UserRegistered event is not yet acknowledged by the log; such rows are
-- re-appended at start-up so a crash between the insert and the append loses nothing.
CREATE TABLE accounts (
    user_id        INTEGER PRIMARY KEY,
    username       TEXT    NOT NULL UNIQUE,
    password_hash  TEXT    NOT NULL,
    created_ms     INTEGER NOT NULL,
    appended       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX accounts_pending ON accounts (appended) WHERE appended = 0;
