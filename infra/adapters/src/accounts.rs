//! [`SqlAccounts`]: the [`AccountStore`] and [`CommandKeys`] ports on SQLite (embedded) or MySQL,
//! through sqlx `Any`.

use std::path::Path;

use async_trait::async_trait;
use sqlx::AnyPool;
use titok_events::Topic;
use titok_ports::accounts::{Account, AccountError, AccountStore, CommandKeys, KeyedCommand};
use titok_ports::log::Position;

fn unavailable(e: sqlx::Error) -> AccountError {
    AccountError::Unavailable(Box::new(e))
}

#[derive(Clone, Debug)]
pub struct SqlAccounts {
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

impl SqlAccounts {
    /// The embedded accounts database.
    pub async fn open_sqlite(path: &Path) -> Result<SqlAccounts, sqlx::Error> {
        let pool = crate::store::sqlite_accounts(path).await?;
        Ok(SqlAccounts { pool })
    }

    /// Accounts in an already-migrated MySQL database.
    pub fn mysql(pool: AnyPool) -> SqlAccounts {
        SqlAccounts { pool }
    }
}

#[async_trait]
impl AccountStore for SqlAccounts {
    /// Insert a pending account; fails with [`AccountError::UsernameTaken`] on a duplicate name.
    async fn create(&self, user_id: i64, username: &str, hash: &str) -> Result<(), AccountError> {
        let res = sqlx::query(
            "INSERT INTO accounts (user_id, username, password_hash, created_ms, appended) VALUES (?, ?, ?, ?, 0)",
        )
        .bind(user_id)
        .bind(username)
        .bind(hash)
        .bind(titok_ports::now_ms())
        .execute(&self.pool)
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                Err(AccountError::UsernameTaken)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn by_username(&self, username: &str) -> Result<Option<Account>, AccountError> {
        let row: Option<AccountRow> = sqlx::query_as(
            "SELECT user_id, username, password_hash, appended FROM accounts WHERE username = ?",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(row.map(account))
    }

    async fn exists(&self, user_id: i64) -> Result<bool, AccountError> {
        titok_ports::statements::one();
        let row: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM accounts WHERE user_id = ?")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(row.is_some())
    }

    async fn mark_appended(&self, user_id: i64) -> Result<(), AccountError> {
        sqlx::query("UPDATE accounts SET appended = 1 WHERE user_id = ?")
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Accounts whose `UserRegistered` append is not confirmed.
    async fn pending(&self) -> Result<Vec<Account>, AccountError> {
        let rows: Vec<AccountRow> = sqlx::query_as(
            "SELECT user_id, username, password_hash, appended FROM accounts WHERE appended = 0",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(rows.into_iter().map(account).collect())
    }

    async fn count(&self) -> Result<i64, AccountError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM accounts")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(n)
    }
}

/// fingerprint, event, reply, acknowledged topic/partition/offset.
type KeyRow = (
    String,
    Vec<u8>,
    Vec<u8>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

fn keyed((fingerprint, event, reply, topic, partition, offset): KeyRow) -> KeyedCommand {
    let acked = match (
        topic.as_deref().and_then(Topic::from_name),
        partition,
        offset,
    ) {
        (Some(topic), Some(partition), Some(offset)) => Some(Position {
            topic,
            partition: u32::try_from(partition).unwrap_or_default(),
            offset,
        }),
        _ => None,
    };
    KeyedCommand {
        fingerprint,
        event,
        reply: String::from_utf8_lossy(&reply).into_owned(),
        acked,
    }
}

#[async_trait]
impl CommandKeys for SqlAccounts {
    async fn get(&self, user_id: i64, key: &str) -> Result<Option<KeyedCommand>, AccountError> {
        let row: Option<KeyRow> = sqlx::query_as(
            "SELECT fingerprint, event, reply, acked_topic, acked_partition, acked_offset \
             FROM command_keys WHERE user_id = ? AND idem_key = ?",
        )
        .bind(user_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(row.map(keyed))
    }

    async fn claim(
        &self,
        user_id: i64,
        key: &str,
        command: &KeyedCommand,
    ) -> Result<Option<KeyedCommand>, AccountError> {
        let res = sqlx::query(
            "INSERT INTO command_keys (user_id, idem_key, fingerprint, event, reply, created_ms) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(user_id)
        .bind(key)
        .bind(&command.fingerprint)
        .bind(command.event.as_slice())
        .bind(command.reply.as_bytes())
        .bind(titok_ports::now_ms())
        .execute(&self.pool)
        .await;
        match res {
            Ok(_) => Ok(None),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                match self.get(user_id, key).await? {
                    Some(stored) => Ok(Some(stored)),
                    // Pruned in between: not ours either; the client retries.
                    None => Err(AccountError::Unavailable(
                        "idempotency key changed during the claim".into(),
                    )),
                }
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn acknowledge(
        &self,
        user_id: i64,
        key: &str,
        at: &Position,
    ) -> Result<(), AccountError> {
        sqlx::query(
            "UPDATE command_keys SET acked_topic = ?, acked_partition = ?, acked_offset = ? \
             WHERE user_id = ? AND idem_key = ?",
        )
        .bind(at.topic.name())
        .bind(i64::from(at.partition))
        .bind(at.offset)
        .bind(user_id)
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn prune(&self, before_ms: i64) -> Result<u64, AccountError> {
        let done = sqlx::query("DELETE FROM command_keys WHERE created_ms < ?")
            .bind(before_ms)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port error keeps the adapter's error as its source (logs show the sqlx cause).
    #[tokio::test]
    async fn an_unavailable_store_reports_the_sqlx_error_as_the_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let accounts = SqlAccounts::open_sqlite(&dir.path().join("accounts.db"))
            .await
            .expect("open");
        accounts.create(1, "ann", "hash").await.expect("create");
        assert!(accounts.exists(1).await.expect("exists"));
        accounts.pool.close().await;
        let err = accounts.exists(1).await.expect_err("closed pool");
        let AccountError::Unavailable(source) = &err else {
            panic!("expected Unavailable, got {err:?}");
        };
        assert!(
            source.downcast_ref::<sqlx::Error>().is_some(),
            "source is the sqlx error: {source:?}"
        );
        assert!(std::error::Error::source(&err).is_some());
    }
}
