//! `MessageSent` → `messages`, `latest_messages`, and the chat-poll shortcut.
//!
//! `create_time` must be strictly increasing within a conversation: clients poll with the newest
//! `create_time` they hold and are sent strictly newer messages only, so two messages in the same
//! millisecond would lose one. The fold therefore stores `max(sent time, previous + 1)`. A
//! conversation lives in one partition, so replays compute the same times.

use sqlx::AnyConnection;
use titok_events::MessageSent;

use titok_infra::store::Tables;

use super::Touched;

pub async fn sent(
    conn: &mut AnyConnection,
    t: &Tables,
    e: &MessageSent,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    let (lo, hi) = (
        e.from_user_id.min(e.to_user_id),
        e.from_user_id.max(e.to_user_id),
    );
    let exists: Option<(i64,)> = sqlx::query_as(&format!(
        "SELECT 1 FROM {} WHERE id = ?",
        t.name("messages")
    ))
    .bind(e.message_id)
    .fetch_optional(&mut *conn)
    .await?;
    if exists.is_some() {
        return Ok(());
    }
    let previous: Option<(i64,)> = sqlx::query_as(&format!(
        "SELECT created_ms FROM {} WHERE pair_lo = ? AND pair_hi = ?",
        t.name("latest_messages")
    ))
    .bind(lo)
    .bind(hi)
    .fetch_optional(&mut *conn)
    .await?;
    let created = previous.map_or(e.created_at_ms, |(p,)| e.created_at_ms.max(p + 1));
    sqlx::query(&format!(
        "INSERT INTO {} (id, pair_lo, pair_hi, from_user_id, to_user_id, content, created_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        t.name("messages")
    ))
    .bind(e.message_id)
    .bind(lo)
    .bind(hi)
    .bind(e.from_user_id)
    .bind(e.to_user_id)
    .bind(&e.content)
    .bind(created)
    .execute(&mut *conn)
    .await?;
    let assign = |col: &str| format!("{col} = {}", t.dialect.new_value(col));
    let upsert = format!(
        "INSERT INTO {} (pair_lo, pair_hi, message_id, from_user_id, content, created_ms) \
         VALUES (?, ?, ?, ?, ?, ?) {} {}, {}, {}, {}",
        t.name("latest_messages"),
        t.dialect.on_conflict_update("pair_lo, pair_hi"),
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
