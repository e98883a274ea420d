//! `UserRegistered` → `users` (and an all-zero `user_stats` row).

use sqlx::AnyConnection;
use titok_events::UserRegistered;

use titok_infra::store::Tables;

use super::Touched;

pub async fn registered(
    conn: &mut AnyConnection,
    t: &Tables,
    e: &UserRegistered,
    at: i64,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "{} INTO {} (id, name, created_ms) VALUES (?, ?, ?)",
        t.dialect.insert_ignore(),
        t.name("users")
    ))
    .bind(e.user_id)
    .bind(&e.username)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!(
        "{} INTO {} (user_id) VALUES (?)",
        t.dialect.insert_ignore(),
        t.name("user_stats")
    ))
    .bind(e.user_id)
    .execute(&mut *conn)
    .await?;
    touched.users.insert(e.user_id);
    Ok(())
}
