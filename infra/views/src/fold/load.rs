//! **Load** — one query per table (chunked) reads the rows the batch's rules depend on: the
//! `(user, video)` likes, the follow and friend pairs in both directions, the comment ids, the
//! message ids and each conversation's newest message, the video ids already published.

use std::collections::{BTreeMap, HashSet};

use sqlx::AnyConnection;
use titok_events::{Envelope, EventBody};

use super::rules::{ordered, Batch, CommentRow, LatestRow, Rows};
use super::sql::{in_list, pair_list, FoldSql, LOOKUP_KEYS};

impl Batch {
    pub(super) async fn load(
        conn: &mut AnyConnection,
        sql: &FoldSql,
        events: &[Envelope],
    ) -> Result<Batch, sqlx::Error> {
        let mut videos = Vec::new();
        let mut likes = Vec::new();
        let mut follows = Vec::new();
        let mut comments = Vec::new();
        let mut messages = Vec::new();
        let mut pairs = Vec::new();
        for event in events {
            match &event.body {
                EventBody::VideoPublished(e) => videos.push(e.video_id),
                EventBody::VideoLiked(e) | EventBody::VideoUnliked(e) => {
                    likes.push((e.user_id, e.video_id))
                }
                EventBody::UserFollowed(e) | EventBody::UserUnfollowed(e) => {
                    follows.push((e.follower_id, e.followee_id));
                    follows.push((e.followee_id, e.follower_id));
                }
                EventBody::CommentAdded(e) => comments.push(e.comment_id),
                EventBody::CommentDeleted(e) => comments.push(e.comment_id),
                EventBody::MessageSent(e) => {
                    messages.push(e.message_id);
                    pairs.push(ordered(e.from_user_id, e.to_user_id));
                }
                EventBody::UserRegistered(_) => {}
            }
        }
        for keys in [&mut videos, &mut comments, &mut messages] {
            keys.sort_unstable();
            keys.dedup();
        }
        for keys in [&mut likes, &mut follows, &mut pairs] {
            keys.sort_unstable();
            keys.dedup();
        }
        let mut batch = Batch {
            users: BTreeMap::new(),
            user_stats: BTreeMap::new(),
            video_stats: BTreeMap::new(),
            videos_existing: HashSet::new(),
            videos_new: BTreeMap::new(),
            favorites: Rows::new(),
            follows: Rows::new(),
            friends: Rows::new(),
            comments: Rows::new(),
            messages_existing: HashSet::new(),
            messages_new: Vec::new(),
            latest: Rows::new(),
        };
        for chunk in videos.chunks(LOOKUP_KEYS) {
            let rows: Vec<(i64,)> = in_list(&sql.videos_lookup, chunk)
                .build_query_as()
                .fetch_all(&mut *conn)
                .await?;
            batch
                .videos_existing
                .extend(rows.into_iter().map(|(id,)| id));
        }
        for chunk in messages.chunks(LOOKUP_KEYS) {
            let rows: Vec<(i64,)> = in_list(&sql.messages_lookup, chunk)
                .build_query_as()
                .fetch_all(&mut *conn)
                .await?;
            batch
                .messages_existing
                .extend(rows.into_iter().map(|(id,)| id));
        }
        for chunk in comments.chunks(LOOKUP_KEYS) {
            let rows: Vec<(i64, i64, i64, String, i64)> = in_list(&sql.comments_lookup, chunk)
                .build_query_as()
                .fetch_all(&mut *conn)
                .await?;
            for (id, video_id, user_id, content, created_ms) in rows {
                let row = CommentRow {
                    video_id,
                    user_id,
                    content,
                    created_ms,
                };
                batch.comments.loaded(id, row);
            }
        }
        for (table, keys, rows) in [
            (&sql.favorites, &likes, &mut batch.favorites),
            (&sql.follows, &follows, &mut batch.follows),
            (&sql.friends, &follows, &mut batch.friends),
        ] {
            for chunk in keys.chunks(LOOKUP_KEYS) {
                let found: Vec<(i64, i64, i64)> = pair_list(&table.lookup, table.keys, chunk)
                    .build_query_as()
                    .fetch_all(&mut *conn)
                    .await?;
                for (a, b, at) in found {
                    rows.loaded((a, b), at);
                }
            }
        }
        for chunk in pairs.chunks(LOOKUP_KEYS) {
            let found: Vec<(i64, i64, i64, i64, String, i64)> =
                pair_list(&sql.latest_lookup, ("pair_lo", "pair_hi"), chunk)
                    .build_query_as()
                    .fetch_all(&mut *conn)
                    .await?;
            for (lo, hi, message_id, from_user_id, content, created_ms) in found {
                let row = LatestRow {
                    message_id,
                    from_user_id,
                    content,
                    created_ms,
                };
                batch.latest.loaded((lo, hi), row);
            }
        }
        Ok(batch)
    }
}
