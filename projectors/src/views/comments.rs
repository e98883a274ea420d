//! `CommentAdded` / `CommentDeleted` → `comments` and the video's `comment_count`.

use sqlx::AnyConnection;
use titok_events::{CommentAdded, CommentDeleted};
use titok_infra::stats::{bump_video, VideoCounter};

use titok_infra::store::Tables;

use super::Touched;

pub async fn added(
    conn: &mut AnyConnection,
    t: &Tables,
    e: &CommentAdded,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    let inserted = sqlx::query(&format!(
        "{} INTO {} (id, video_id, user_id, content, created_ms) VALUES (?, ?, ?, ?, ?)",
        t.dialect.insert_ignore(),
        t.name("comments")
    ))
    .bind(e.comment_id)
    .bind(e.video_id)
    .bind(e.user_id)
    .bind(&e.content)
    .bind(e.created_at_ms)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        bump_video(conn, t, e.video_id, VideoCounter::Comment, 1).await?;
        touched.videos.insert(e.video_id);
    }
    Ok(())
}

pub async fn deleted(
    conn: &mut AnyConnection,
    t: &Tables,
    e: &CommentDeleted,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    // The author check repeats the command side's: a deletion by anyone else changes nothing.
    let deleted = sqlx::query(&format!(
        "DELETE FROM {} WHERE id = ? AND video_id = ? AND user_id = ?",
        t.name("comments")
    ))
    .bind(e.comment_id)
    .bind(e.video_id)
    .bind(e.user_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if deleted == 1 {
        bump_video(conn, t, e.video_id, VideoCounter::Comment, -1).await?;
        touched.videos.insert(e.video_id);
    }
    Ok(())
}
