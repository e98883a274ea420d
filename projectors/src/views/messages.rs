//! `MessageSent` → `messages`, `latest_messages`, and the chat-poll shortcut.
//!
//! `create_time` must be strictly increasing within a conversation: clients poll with the newest
//! `create_time` they hold and are sent strictly newer messages only, so two messages in the same
//! millisecond would lose one. The fold therefore stores `max(sent time, previous + 1)`. A
//! conversation lives in one partition, so replays compute the same times.

use sqlx::AnyConnection;
use titok_events::MessageSent;

use titok_infra::store::Dialect;

use super::Touched;

pub async fn sent(
    conn: &mut AnyConnection,
    dialect: Dialect,
    e: &MessageSent,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    let (lo, hi) = (
        e.from_user_id.min(e.to_user_id),
        e.from_user_id.max(e.to_user_id),
    );
    let exists: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM messages WHERE id = ?")
        .bind(e.message_id)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_some() {
        return Ok(());
    }
    let previous: Option<(i64,)> =
        sqlx::query_as("SELECT created_ms FROM latest_messages WHERE pair_lo = ? AND pair_hi = ?")
            .bind(lo)
            .bind(hi)
            .fetch_optional(&mut *conn)
            .await?;
    let created = previous.map_or(e.created_at_ms, |(p,)| e.created_at_ms.max(p + 1));
    sqlx::query(
        "INSERT INTO messages (id, pair_lo, pair_hi, from_user_id, to_user_id, content, created_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.message_id)
    .bind(lo)
    .bind(hi)
    .bind(e.from_user_id)
    .bind(e.to_user_id)
    .bind(&e.content)
    .bind(created)
    .execute(&mut *conn)
    .await?;
    let assign = |col: &str| format!("{col} = {}", dialect.new_value(col));
    let upsert = format!(
        "INSERT INTO latest_messages (pair_lo, pair_hi, message_id, from_user_id, content, created_ms) \
         VALUES (?, ?, ?, ?, ?, ?) {} {}, {}, {}, {}",
        dialect.on_conflict_update("pair_lo, pair_hi"),
        assign("message_id"),
        assign("from_user_id"),
        assign("content"),
        assign("created_ms"),
    );
    sqlx::query(&upsert)
        .bind(lo)
        .bind(hi)
        .bind(e.message_id)
        .bind(e.from_user_id)
        .bind(&e.content)
        .bind(created)
        .execute(&mut *conn)
        .await?;
    touched.chats.push(((lo, hi), created));
    Ok(())
}
