//! Row 16: chat polling, with the seed's shortcut.
//!
//! Clients poll every second or so with the `create_time` of the newest message they hold. The
//! counter cache keeps, per conversation, the `create_time` of its newest message (set by the
//! messages projection before it publishes progress). A poll whose `pre_msg_time` is not older
//! than that answers `[]` without any SQL; only a cache miss or a conversation with news reads SQL.

use axum::extract::State;
use titok_events::Topic;
use titok_web::http::{ApiError, Params, Reply};

use crate::lists::ensure_user;
use crate::{answer, normalize_ms, QueryState};
use titok_views::model::ChatBody;

pub async fn chat(State(state): State<QueryState>, params: Params) -> Reply<ChatBody> {
    answer(&state, &[Topic::Messages], async |state| {
        let viewer = state.auth.require(&params).await?;
        let other = params.id("to_user_id")?;
        if other == viewer {
            return Err(ApiError::bad(
                "to_user_id must be another user: there is no chat with yourself",
            ));
        }
        let pre = normalize_ms(params.int_or_zero("pre_msg_time")?);
        ensure_user(state, other).await?;
        let pair = (viewer.min(other), viewer.max(other));
        let cached = state
            .reader
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
                let latest = state.reader.chat_latest(pair).await?;
                if let Err(err) = state.reader.counters.put_chat_latest(pair, latest).await {
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
        let message_list = state.reader.messages_after(pair, pre).await?;
        Ok(ChatBody { message_list })
    })
    .await
}
