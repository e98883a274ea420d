//! The command side's only synchronous state: accounts with a unique username and a password hash.
//!
//! Register inserts the account as *pending*, appends `UserRegistered`, then marks it appended.
//! [`AccountStore::pending`] lists accounts whose append may not have happened (a crash in between);
//! the command API re-appends them at start-up and before a pending account logs in. The projection
//! of `UserRegistered` is idempotent, so a second append is harmless.

use async_trait::async_trait;

#[derive(Debug, Clone)]
pub struct Account {
    pub user_id: i64,
    pub username: String,
    pub password_hash: String,
    pub appended: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("username is already taken")]
    UsernameTaken,
    /// The store could not answer; the source is the adapter's own error.
    #[error("account store unavailable: {0}")]
    Unavailable(#[source] crate::BoxError),
}

/// Accounts with a unique username (SQLite embedded, MySQL in production: `titok_adapters::accounts`).
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Insert a pending account; fails with [`AccountError::UsernameTaken`] on a duplicate name.
    async fn create(&self, user_id: i64, username: &str, hash: &str) -> Result<(), AccountError>;
    async fn by_username(&self, username: &str) -> Result<Option<Account>, AccountError>;
    async fn exists(&self, user_id: i64) -> Result<bool, AccountError>;
    /// The account's `UserRegistered` is known to be in the log.
    async fn mark_appended(&self, user_id: i64) -> Result<(), AccountError>;
    /// Accounts whose `UserRegistered` append is not confirmed.
    async fn pending(&self) -> Result<Vec<Account>, AccountError>;
    async fn count(&self) -> Result<i64, AccountError>;
}

/// A command sent with an idempotency key, as first decided: kept per `(user, key)` so that a
/// retry — on any command API instance, after a restart — re-appends the very same event (same
/// event id, same comment/message/video id) and answers the very same reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedCommand {
    /// SHA-256 (hex) of the command's name and parameters: a key reused for another request is
    /// refused.
    pub fingerprint: String,
    /// The encoded event envelope.
    pub event: Vec<u8>,
    /// The reply's JSON body.
    pub reply: String,
    /// Where the log acknowledged the event; `None` while that is not known (the append failed or
    /// timed out, and may or may not have written it).
    pub acked: Option<crate::log::Position>,
}

/// The idempotency keys of commands, kept beside the accounts (the same database, shared by every
/// command API instance).
#[async_trait]
pub trait CommandKeys: Send + Sync + 'static {
    async fn get(&self, user_id: i64, key: &str) -> Result<Option<KeyedCommand>, AccountError>;
    /// Store `command` under `(user_id, key)` unless the key is taken; returns what is stored
    /// when it was (a concurrent attempt got there first).
    async fn claim(
        &self,
        user_id: i64,
        key: &str,
        command: &KeyedCommand,
    ) -> Result<Option<KeyedCommand>, AccountError>;
    /// Record where the log acknowledged the key's event.
    async fn acknowledge(
        &self,
        user_id: i64,
        key: &str,
        at: &crate::log::Position,
    ) -> Result<(), AccountError>;
    /// Forget keys first used before `before_ms`; returns how many.
    async fn prune(&self, before_ms: i64) -> Result<u64, AccountError>;
}
