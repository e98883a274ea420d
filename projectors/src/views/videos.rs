//! `VideoPublished` → `videos`, and the author's `work_count`.

use sqlx::AnyConnection;
use titok_events::VideoPublished;
use titok_infra::stats::{bump_user, UserCounter};

use titok_infra::store::Tables;

use super::Touched;

pub async fn published(
    conn: &mut AnyConnection,
    t: &Tables,
    e: &VideoPublished,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    let inserted = sqlx::query(
        &format!("{} INTO {} (id, author_id, title, play_path, cover_path, published_ms) VALUES (?, ?, ?, ?, ?, ?)", t.dialect.insert_ignore(), t.name("videos")),
    )
    .bind(e.video_id)
    .bind(e.author_id)
    .bind(&e.title)
    .bind(&e.play_path)
    .bind(&e.cover_path)
    .bind(e.published_at_ms)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        bump_user(conn, t, e.author_id, UserCounter::Work, 1).await?;
        sqlx::query(&format!(
            "{} INTO {} (video_id) VALUES (?)",
            t.dialect.insert_ignore(),
            t.name("video_stats")
        ))
        .bind(e.video_id)
        .execute(&mut *conn)
        .await?;
        touched.users.insert(e.author_id);
        touched.videos.insert(e.video_id);
    }
    Ok(())
}
