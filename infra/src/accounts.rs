//! The command side's only synchronous state: accounts with a unique username and a password hash.
//!
//! Register inserts the account as *pending*, appends `UserRegistered`, then marks it appended.
//! [`AccountStore::pending`] lists accounts whose append may not have happened (a crash in between);
//! the command API re-appends them at start-up and before a pending account logs in. The projection
//! of `UserRegistered` is idempotent, so a second append is harmless.

use std::path::Path;

use sqlx::AnyPool;

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
    #[error("account store unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
}

#[derive(Clone, Debug)]
pub struct AccountStore {
    pool: AnyPool,
}

type AccountRow = (i64, String, String, i64);

fn account((user_id, username, password_hash, appended): AccountRow) -> Account {
    Account {
        user_id,
        username,
        password_hash,
        appended: appended != 0,
    }
}

impl AccountStore {
    /// The embedded accounts database.
    pub async fn open_sqlite(path: &Path) -> Result<AccountStore, sqlx::Error> {
        let pool = crate::store::sqlite_accounts(path).await?;
        Ok(AccountStore { pool })
    }

    /// Accounts in an already-migrated MySQL database.
    pub fn mysql(pool: AnyPool) -> AccountStore {
        AccountStore { pool }
    }

    /// Insert a pending account; fails with [`AccountError::UsernameTaken`] on a duplicate name.
    pub async fn create(
        &self,
        user_id: i64,
        username: &str,
        hash: &str,
    ) -> Result<(), AccountError> {
        let res = sqlx::query(
            "INSERT INTO accounts (user_id, username, password_hash, created_ms, appended) VALUES (?, ?, ?, ?, 0)",
        )
        .bind(user_id)
        .bind(username)
        .bind(hash)
        .bind(crate::now_ms())
        .execute(&self.pool)
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                Err(AccountError::UsernameTaken)
            }
            Err(e) => Err(AccountError::Unavailable(e)),
        }
    }

    pub async fn by_username(&self, username: &str) -> Result<Option<Account>, AccountError> {
        let row: Option<AccountRow> = sqlx::query_as(
            "SELECT user_id, username, password_hash, appended FROM accounts WHERE username = ?",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(account))
    }

    pub async fn exists(&self, user_id: i64) -> Result<bool, AccountError> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM accounts WHERE user_id = ?")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    pub async fn mark_appended(&self, user_id: i64) -> Result<(), AccountError> {
        sqlx::query("UPDATE accounts SET appended = 1 WHERE user_id = ?")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Accounts whose `UserRegistered` append is not confirmed.
    pub async fn pending(&self) -> Result<Vec<Account>, AccountError> {
        let rows: Vec<AccountRow> = sqlx::query_as(
            "SELECT user_id, username, password_hash, appended FROM accounts WHERE appended = 0",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(account).collect())
    }

    pub async fn count(&self) -> Result<i64, AccountError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM accounts")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }
}
