//! `UserRegistered` → `users` (and an all-zero `user_stats` row).

use sqlx::AnyConnection;
use titok_events::UserRegistered;

use titok_infra::store::Dialect;

use super::Touched;

pub async fn registered(
    conn: &mut AnyConnection,
    dialect: Dialect,
    e: &UserRegistered,
    at: i64,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "{} INTO users (id, name, created_ms) VALUES (?, ?, ?)",
        dialect.insert_ignore()
    ))
    .bind(e.user_id)
    .bind(&e.username)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!(
        "{} INTO user_stats (user_id) VALUES (?)",
        dialect.insert_ignore()
    ))
    .bind(e.user_id)
    .execute(&mut *conn)
    .await?;
    touched.users.insert(e.user_id);
    Ok(())
}
