//! `VideoLiked` / `VideoUnliked` → `favorites` and three counters: the video's `favorite_count`,
//! the liker's `favorite_count`, the author's `total_favorited`. A like that exists adds nothing; an
//! unlike of nothing subtracts nothing.

use sqlx::AnyConnection;
use titok_events::Favorite;
use titok_infra::stats::{bump_user, bump_video, UserCounter, VideoCounter};

use titok_infra::store::Tables;

use super::Touched;

pub async fn liked(
    conn: &mut AnyConnection,
    t: &Tables,
    e: &Favorite,
    at: i64,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    let inserted = sqlx::query(&format!(
        "{} INTO {} (user_id, video_id, liked_ms) VALUES (?, ?, ?)",
        t.dialect.insert_ignore(),
        t.name("favorites")
    ))
    .bind(e.user_id)
    .bind(e.video_id)
    .bind(at)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        count(conn, t, e, 1, touched).await?;
    }
    Ok(())
}

pub async fn unliked(
    conn: &mut AnyConnection,
    t: &Tables,
    e: &Favorite,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    let deleted = sqlx::query(&format!(
        "DELETE FROM {} WHERE user_id = ? AND video_id = ?",
        t.name("favorites")
    ))
    .bind(e.user_id)
    .bind(e.video_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if deleted == 1 {
        count(conn, t, e, -1, touched).await?;
    }
    Ok(())
}

async fn count(
    conn: &mut AnyConnection,
    t: &Tables,
    e: &Favorite,
    delta: i64,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    bump_video(conn, t, e.video_id, VideoCounter::Favorite, delta).await?;
    bump_user(conn, t, e.user_id, UserCounter::Favorite, delta).await?;
    bump_user(conn, t, e.author_id, UserCounter::TotalFavorited, delta).await?;
    touched.videos.insert(e.video_id);
    touched.users.insert(e.user_id);
    touched.users.insert(e.author_id);
    Ok(())
}
