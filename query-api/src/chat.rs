//! Row 16: chat polling, with the seed's shortcut.
//!
//! Clients poll every second or so with the `create_time` of the newest message they hold. The
//! counter cache keeps, per conversation, the `create_time` of its newest message (set by the
//! messages projection before it publishes progress). A poll whose `pre_msg_time` is not older
//! than that answers `[]` without any SQL; only a cache miss or a conversation with news reads SQL.

use axum::extract::State;
use titok_events::Topic;
use titok_infra::http::{ApiError, Params, Reply};

use crate::lists::ensure_user;
use crate::model::{ChatBody, Message};
use crate::{answer, normalize_ms, QueryState};

pub async fn chat(State(state): State<QueryState>, params: Params) -> Reply<ChatBody> {
    answer(&state, &[Topic::Messages], async {
        let viewer = state.auth.require(&params).await?;
        let other = params.id("to_user_id")?;
        if other == viewer {
            return Err(ApiError::bad(
                "to_user_id must be another user: there is no chat with yourself",
            ));
        }
        let pre = normalize_ms(params.int_or_zero("pre_msg_time")?);
        ensure_user(&state, other).await?;
        let pair = (viewer.min(other), viewer.max(other));
        let cached = state
            .counters
            .chat_latest(pair)
            .await
            .unwrap_or_else(|err| {
                tracing::warn!(error = %err, "chat shortcut unavailable; polling SQL");
                None
            });
        let latest = match cached {
            Some(latest) => latest,
            None => {
                state.count_chat_query();
                let row: Option<(i64,)> = sqlx::query_as(
                    "SELECT created_ms FROM latest_messages WHERE pair_lo = ? AND pair_hi = ?",
                )
                .bind(pair.0)
                .bind(pair.1)
                .fetch_optional(&state.store.read)
                .await?;
                let latest = row.map_or(0, |(t,)| t);
                if let Err(err) = state.counters.put_chat_latest(pair, latest).await {
                    tracing::warn!(error = %err, "cannot refill the chat shortcut");
                }
                latest
            }
        };
        if pre >= latest {
            metrics::counter!("titok_chat_polls_total", "answer" => "shortcut").increment(1);
            return Ok(ChatBody::default());
        }
        metrics::counter!("titok_chat_polls_total", "answer" => "sql").increment(1);
        state.count_chat_query();
        let rows: Vec<(i64, i64, i64, String, i64)> = sqlx::query_as(
            "SELECT id, from_user_id, to_user_id, content, created_ms FROM messages \
             WHERE pair_lo = ? AND pair_hi = ? AND created_ms > ? ORDER BY created_ms, id",
        )
        .bind(pair.0)
        .bind(pair.1)
        .bind(pre)
        .fetch_all(&state.store.read)
        .await?;
        let message_list = rows
            .into_iter()
            .map(
                |(id, from_user_id, to_user_id, content, create_time)| Message {
                    id,
                    to_user_id,
                    from_user_id,
                    content,
                    create_time,
                },
            )
            .collect();
        Ok(ChatBody { message_list })
    })
    .await
}
