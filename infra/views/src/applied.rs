//! Applied event ids (`applied_events`): the memory that lets the batch fold apply a like,
//! comment or follow event once by id, so a keyed retry re-appended at the log's end is skipped
//! (see the `fold` module docs). Kept in the fold's own transaction, pruned as event time moves.

use std::collections::HashSet;

use sqlx::{Any, AnyConnection, QueryBuilder};
use titok_events::{Envelope, EventBody};

use crate::fold::{FoldSql, LOOKUP_KEYS, MAX_ROWS};

/// How long (in event time: the newest `occurred_at` folded) the ids of applied like, comment and
/// follow events are remembered: twice the 24 hours an idempotency key lives, so any keyed retry
/// finds its first attempt's event.
pub const APPLIED_EVENTS_RETAIN_MS: i64 = 2 * 24 * 60 * 60 * 1000;
/// The fold prunes remembered ids when event time moved on by this much since its last prune.
const PRUNE_EVERY_MS: i64 = 10 * 60 * 1000;

/// Whether an event is remembered by id (see the module docs).
fn remembered(event: &Envelope) -> bool {
    matches!(
        event.body,
        EventBody::VideoLiked(_)
            | EventBody::VideoUnliked(_)
            | EventBody::CommentAdded(_)
            | EventBody::CommentDeleted(_)
            | EventBody::UserFollowed(_)
            | EventBody::UserUnfollowed(_)
    )
}

impl FoldSql {
    /// Remember the batch's like, comment and follow event ids and drop the events whose id was
    /// applied before (or appears earlier in the batch); `None` when every event stays.
    pub(crate) async fn skip_applied(
        &self,
        conn: &mut AnyConnection,
        events: &[Envelope],
    ) -> Result<Option<Vec<Envelope>>, sqlx::Error> {
        let ids: Vec<String> = events
            .iter()
            .filter(|e| remembered(e))
            .map(|e| e.event_id.to_string())
            .collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let mut applied: HashSet<String> = HashSet::new();
        for chunk in ids.chunks(LOOKUP_KEYS) {
            let mut qb = QueryBuilder::<Any>::new(&self.applied_lookup);
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(id.as_str());
            }
            qb.push(")");
            let rows: Vec<(String,)> = qb.build_query_as().fetch_all(&mut *conn).await?;
            applied.extend(rows.into_iter().map(|(id,)| id));
        }
        let mut kept = Vec::with_capacity(events.len());
        let mut new_ids: Vec<(String, i64)> = Vec::new();
        let mut skipped = 0_usize;
        for event in events {
            if remembered(event) {
                let id = event.event_id.to_string();
                if !applied.insert(id.clone()) {
                    skipped += 1;
                    continue;
                }
                new_ids.push((id, event.occurred_at.timestamp_millis()));
            }
            kept.push(event);
        }
        for chunk in new_ids.chunks(MAX_ROWS) {
            let mut qb = QueryBuilder::<Any>::new(&self.applied_insert);
            qb.push_values(chunk, |mut row, (id, at)| {
                row.push_bind(id.as_str()).push_bind(*at);
            });
            qb.build().execute(&mut *conn).await?;
        }
        self.prune_applied(conn, &new_ids).await?;
        if skipped == 0 {
            return Ok(None);
        }
        tracing::info!(
            skipped,
            "events applied before skipped (re-appended by keyed retries)"
        );
        metrics::counter!("titok_projector_duplicate_events_total").increment(skipped as u64);
        Ok(Some(kept.into_iter().cloned().collect()))
    }

    /// Forget ids older than [`APPLIED_EVENTS_RETAIN_MS`] before the newest event time folded,
    /// once every [`PRUNE_EVERY_MS`] of event time.
    async fn prune_applied(
        &self,
        conn: &mut AnyConnection,
        new_ids: &[(String, i64)],
    ) -> Result<(), sqlx::Error> {
        use std::sync::atomic::Ordering;
        let Some(newest) = new_ids.iter().map(|(_, at)| *at).max() else {
            return Ok(());
        };
        let last = self.pruned_at.load(Ordering::Relaxed);
        if newest - last < PRUNE_EVERY_MS {
            return Ok(());
        }
        sqlx::query(&self.applied_prune)
            .bind(newest - APPLIED_EVENTS_RETAIN_MS)
            .execute(&mut *conn)
            .await?;
        self.pruned_at.fetch_max(newest, Ordering::Relaxed);
        Ok(())
    }
}
