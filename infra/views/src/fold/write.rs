//! **Write** — per table one multi-row upsert of the rows that differ from what was loaded and
//! one multi-row delete of the rows that went away; per counter table one upsert carrying the
//! summed deltas and the number of bumps as the version increase (exactly what bumping once per
//! rule would give). Rows are written in key order, so two projections bumping the same counter
//! rows on MySQL lock them in the same order. Statements are chunked below the databases'
//! parameter limits.

use sqlx::query_builder::Separated;
use sqlx::{Any, AnyConnection, QueryBuilder};

use super::rules::Batch;
use super::sql::{in_list, pair_list, FoldSql, LOOKUP_KEYS, MAX_PARAMS, MAX_ROWS, MAX_TEXT_BYTES};

impl Batch {
    /// The net effect, table by table, rows in key order.
    pub(super) async fn write(
        self,
        conn: &mut AnyConnection,
        sql: &FoldSql,
    ) -> Result<(), sqlx::Error> {
        let users: Vec<_> = self.users.into_iter().collect();
        insert_rows(
            conn,
            (&sql.users_insert, ""),
            3,
            &users,
            |(_, (name, _))| name.len(),
            |mut b, (id, (name, at))| {
                b.push_bind(*id).push_bind(name.clone()).push_bind(*at);
            },
        )
        .await?;
        let videos: Vec<_> = self.videos_new.into_iter().collect();
        insert_rows(
            conn,
            (&sql.videos_insert, ""),
            6,
            &videos,
            |(_, v)| v.title.len() + v.play_path.len() + v.cover_path.len(),
            |mut b, (id, v)| {
                b.push_bind(*id)
                    .push_bind(v.author_id)
                    .push_bind(v.title.clone())
                    .push_bind(v.play_path.clone())
                    .push_bind(v.cover_path.clone())
                    .push_bind(v.published_ms);
            },
        )
        .await?;
        for (table, rows) in [
            (&sql.favorites, self.favorites),
            (&sql.follows, self.follows),
            (&sql.friends, self.friends),
        ] {
            let (upserts, deletes) = rows.net();
            let (head, tail) = (&table.upsert.0, &table.upsert.1);
            insert_rows(
                conn,
                (head, tail),
                3,
                &upserts,
                |_| 0,
                |mut b, ((x, y), at)| {
                    b.push_bind(*x).push_bind(*y).push_bind(*at);
                },
            )
            .await?;
            for chunk in deletes.chunks(LOOKUP_KEYS) {
                pair_list(&table.delete, table.keys, chunk)
                    .build()
                    .execute(&mut *conn)
                    .await?;
            }
        }
        let (upserts, deletes) = self.comments.net();
        let (head, tail) = (&sql.comments_upsert.0, &sql.comments_upsert.1);
        insert_rows(
            conn,
            (head, tail),
            5,
            &upserts,
            |(_, c)| c.content.len(),
            |mut b, (id, c)| {
                b.push_bind(*id)
                    .push_bind(c.video_id)
                    .push_bind(c.user_id)
                    .push_bind(c.content.clone())
                    .push_bind(c.created_ms);
            },
        )
        .await?;
        for chunk in deletes.chunks(LOOKUP_KEYS) {
            in_list(&sql.comments_delete, chunk)
                .build()
                .execute(&mut *conn)
                .await?;
        }
        let mut messages = self.messages_new;
        messages.sort_by_key(|m| m.id);
        insert_rows(
            conn,
            (&sql.messages_insert, ""),
            7,
            &messages,
            |m| m.content.len(),
            |mut b, m| {
                b.push_bind(m.id)
                    .push_bind(m.pair.0)
                    .push_bind(m.pair.1)
                    .push_bind(m.from_user_id)
                    .push_bind(m.to_user_id)
                    .push_bind(m.content.clone())
                    .push_bind(m.created_ms);
            },
        )
        .await?;
        let (latest, _) = self.latest.net();
        let (head, tail) = (&sql.latest_upsert.0, &sql.latest_upsert.1);
        insert_rows(
            conn,
            (head, tail),
            6,
            &latest,
            |(_, l)| l.content.len(),
            |mut b, ((lo, hi), l)| {
                b.push_bind(*lo)
                    .push_bind(*hi)
                    .push_bind(l.message_id)
                    .push_bind(l.from_user_id)
                    .push_bind(l.content.clone())
                    .push_bind(l.created_ms);
            },
        )
        .await?;
        let user_stats: Vec<_> = self.user_stats.into_iter().collect();
        let (head, tail) = (&sql.user_stats_upsert.0, &sql.user_stats_upsert.1);
        insert_rows(
            conn,
            (head, tail),
            7,
            &user_stats,
            |_| 0,
            |mut b, (id, d)| {
                b.push_bind(*id)
                    .push_bind(d.follow)
                    .push_bind(d.follower)
                    .push_bind(d.total_favorited)
                    .push_bind(d.work)
                    .push_bind(d.favorite)
                    .push_bind(d.bumps);
            },
        )
        .await?;
        let video_stats: Vec<_> = self.video_stats.into_iter().collect();
        let (head, tail) = (&sql.video_stats_upsert.0, &sql.video_stats_upsert.1);
        insert_rows(
            conn,
            (head, tail),
            4,
            &video_stats,
            |_| 0,
            |mut b, (id, d)| {
                b.push_bind(*id)
                    .push_bind(d.favorite)
                    .push_bind(d.comment)
                    .push_bind(d.bumps);
            },
        )
        .await?;
        Ok(())
    }
}

/// `head VALUES (…), (…) tail` for `rows`, in as few statements as the limits allow.
async fn insert_rows<R>(
    conn: &mut AnyConnection,
    (head, tail): (&str, &str),
    columns: usize,
    rows: &[R],
    text_bytes: impl Fn(&R) -> usize,
    bind: impl Fn(Separated<'_, '_, Any, &'static str>, &R),
) -> Result<(), sqlx::Error> {
    let max_rows = (MAX_PARAMS / columns).min(MAX_ROWS);
    let mut rest = rows;
    while !rest.is_empty() {
        let mut n = 0;
        let mut bytes = 0;
        while n < rest.len()
            && n < max_rows
            && (n == 0 || bytes + text_bytes(&rest[n]) <= MAX_TEXT_BYTES)
        {
            bytes += text_bytes(&rest[n]);
            n += 1;
        }
        let (chunk, later) = rest.split_at(n);
        let mut qb = QueryBuilder::<Any>::new(head);
        qb.push_values(chunk, &bind);
        qb.push(tail);
        qb.build().execute(&mut *conn).await?;
        rest = later;
    }
    Ok(())
}
