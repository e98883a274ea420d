//! `VideoPublished` → `videos`, and the author's `work_count`.

use sqlx::AnyConnection;
use titok_events::VideoPublished;
use titok_infra::stats::{bump_user, UserCounter};

use titok_infra::store::Dialect;

use super::Touched;

pub async fn published(
    conn: &mut AnyConnection,
    dialect: Dialect,
    e: &VideoPublished,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    let inserted = sqlx::query(
        &format!("{} INTO videos (id, author_id, title, play_path, cover_path, published_ms) VALUES (?, ?, ?, ?, ?, ?)", dialect.insert_ignore()),
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
        bump_user(conn, dialect, e.author_id, UserCounter::Work, 1).await?;
        sqlx::query(&format!(
            "{} INTO video_stats (video_id) VALUES (?)",
            dialect.insert_ignore()
        ))
        .bind(e.video_id)
        .execute(&mut *conn)
        .await?;
        touched.users.insert(e.author_id);
        touched.videos.insert(e.video_id);
    }
    Ok(())
}
