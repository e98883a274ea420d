//! `CommentAdded` / `CommentDeleted` → `comments` and the video's `comment_count`.

use sqlx::SqliteConnection;
use titok_events::{CommentAdded, CommentDeleted};
use titok_infra::stats::{bump_video, VideoCounter};

use super::Touched;

pub async fn added(
    conn: &mut SqliteConnection,
    e: &CommentAdded,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO comments (id, video_id, user_id, content, created_ms) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT(id) DO NOTHING",
    )
    .bind(e.comment_id)
    .bind(e.video_id)
    .bind(e.user_id)
    .bind(&e.content)
    .bind(e.created_at_ms)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        bump_video(conn, e.video_id, VideoCounter::Comment, 1).await?;
        touched.videos.insert(e.video_id);
    }
    Ok(())
}

pub async fn deleted(
    conn: &mut SqliteConnection,
    e: &CommentDeleted,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    // The author check repeats the command side's: a deletion by anyone else changes nothing.
    let deleted = sqlx::query("DELETE FROM comments WHERE id = ? AND video_id = ? AND user_id = ?")
        .bind(e.comment_id)
        .bind(e.video_id)
        .bind(e.user_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if deleted == 1 {
        bump_video(conn, e.video_id, VideoCounter::Comment, -1).await?;
        touched.videos.insert(e.video_id);
    }
    Ok(())
}
