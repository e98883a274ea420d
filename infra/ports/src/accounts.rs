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
