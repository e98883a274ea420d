//! `UserFollowed` / `UserUnfollowed` → `follows`, `friends` and the follow counts.
//!
//! Both directions of a pair share a partition (key = the unordered pair), so the fold sees them in
//! order and friendship rows exist exactly while both follows exist.

use sqlx::AnyConnection;
use titok_events::Follow;
use titok_infra::stats::{bump_user, UserCounter};

use titok_infra::store::Tables;

use super::Touched;

pub async fn followed(
    conn: &mut AnyConnection,
    t: &Tables,
    e: &Follow,
    at: i64,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    let inserted = sqlx::query(&format!(
        "{} INTO {} (follower_id, followee_id, created_ms) VALUES (?, ?, ?)",
        t.dialect.insert_ignore(),
        t.name("follows")
    ))
    .bind(e.follower_id)
    .bind(e.followee_id)
    .bind(at)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(());
    }
    count(conn, t, e, 1, touched).await?;
    let mutual: Option<(i64,)> = sqlx::query_as(&format!(
        "SELECT 1 FROM {} WHERE follower_id = ? AND followee_id = ?",
        t.name("follows")
    ))
    .bind(e.followee_id)
    .bind(e.follower_id)
    .fetch_optional(&mut *conn)
    .await?;
    if mutual.is_some() {
        for (a, b) in [
            (e.follower_id, e.followee_id),
            (e.followee_id, e.follower_id),
        ] {
            sqlx::query(&format!(
                "{} INTO {} (user_id, friend_id, since_ms) VALUES (?, ?, ?)",
                t.dialect.insert_ignore(),
                t.name("friends")
            ))
            .bind(a)
            .bind(b)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

pub async fn unfollowed(
    conn: &mut AnyConnection,
    t: &Tables,
    e: &Follow,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    let deleted = sqlx::query(&format!(
        "DELETE FROM {} WHERE follower_id = ? AND followee_id = ?",
        t.name("follows")
    ))
    .bind(e.follower_id)
    .bind(e.followee_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if deleted == 0 {
        return Ok(());
    }
    count(conn, t, e, -1, touched).await?;
    sqlx::query(&format!(
        "DELETE FROM {} WHERE (user_id = ? AND friend_id = ?) OR (user_id = ? AND friend_id = ?)",
        t.name("friends")
    ))
    .bind(e.follower_id)
    .bind(e.followee_id)
    .bind(e.followee_id)
    .bind(e.follower_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn count(
    conn: &mut AnyConnection,
    t: &Tables,
    e: &Follow,
    delta: i64,
    touched: &mut Touched,
) -> Result<(), sqlx::Error> {
    bump_user(conn, t, e.follower_id, UserCounter::Follow, delta).await?;
    bump_user(conn, t, e.followee_id, UserCounter::Follower, delta).await?;
    touched.users.insert(e.follower_id);
    touched.users.insert(e.followee_id);
    Ok(())
}
