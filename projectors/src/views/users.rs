//! `UserRegistered` → `users` (and an all-zero `user_stats` row).

use sqlx::SqliteConnection;
use titok_events::UserRegistered;

use super::Touched;

pub async fn registered(
    conn: &mut SqliteConnection,
    e: &UserRegistered,
    at: i64,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, name, created_ms) VALUES (?, ?, ?) ON CONFLICT(id) DO NOTHING",
    )
    .bind(e.user_id)
    .bind(&e.username)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO user_stats (user_id) VALUES (?) ON CONFLICT(user_id) DO NOTHING")
        .bind(e.user_id)
        .execute(&mut *conn)
        .await?;
    touched.users.insert(e.user_id);
    Ok(())
}
