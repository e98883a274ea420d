//! The baselines, a second small HTTP server in this process serving from the same databases: a
//! like as one transaction (insert + three counter updates), the feed one query at a time, and the
//! chat poll's SQL on every poll.

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::AnyPool;
use titok::Config;
use titok_adapters::store::{Dialect, ViewStore};

/// The baselines, served over HTTP from the same databases like the real endpoints.
pub(crate) struct Baseline {
    pub(crate) base: String,
    shutdown: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct BaselineState {
    direct: AnyPool,
    dialect: Dialect,
    views: ViewStore,
}

impl Baseline {
    pub(crate) async fn start(views: &ViewStore, config: &Config) -> anyhow::Result<Baseline> {
        let (direct, dialect) = match &config.mysql_url {
            Some(url) => (
                titok_adapters::store::mysql_any(url, 32).await?,
                Dialect::MySql,
            ),
            None => {
                // A monolith on SQLite: every like committed with fsync, like the event log.
                let path = config.data_dir.join("direct.db");
                let pool = sqlx::any::AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            use sqlx::Executor;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            Ok(())
                        })
                    })
                    .connect(&format!("sqlite://{}?mode=rwc", path.display()))
                    .await?;
                (pool, Dialect::Sqlite)
            }
        };
        for ddl in [
            "CREATE TABLE IF NOT EXISTS direct_favorites (user_id BIGINT NOT NULL, video_id BIGINT NOT NULL, PRIMARY KEY (user_id, video_id))",
            "CREATE TABLE IF NOT EXISTS direct_video_stats (video_id BIGINT NOT NULL PRIMARY KEY, favorite_count BIGINT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS direct_user_stats (user_id BIGINT NOT NULL PRIMARY KEY, favorite_count BIGINT NOT NULL, total_favorited BIGINT NOT NULL)",
        ] {
            sqlx::query(ddl).execute(&direct).await?;
        }
        let state = BaselineState {
            direct,
            dialect,
            views: views.clone(),
        };
        let app = Router::new()
            .route("/direct/like", post(direct_like))
            .route("/sequential/feed", get(sequential_feed))
            .route("/sql/chat", get(sql_chat))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (shutdown, stop) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await;
        });
        Ok(Baseline {
            base,
            shutdown,
            server,
        })
    }

    pub(crate) async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.server.await;
    }
}

fn envelope(result: Result<Value, sqlx::Error>) -> Json<Value> {
    Json(match result {
        Ok(mut v) => {
            v["status_code"] = json!(0);
            v
        }
        Err(e) => json!({"status_code": 1, "status_msg": e.to_string()}),
    })
}

#[derive(Deserialize)]
struct LikeForm {
    user_id: i64,
    video_id: i64,
    action_type: i64,
}

/// What a monolith does per like before replying: look up the author, then in one transaction
/// insert/delete the like and update three counters.
async fn direct_like(State(s): State<BaselineState>, Form(f): Form<LikeForm>) -> Json<Value> {
    envelope(
        async {
            let (author,): (i64,) = sqlx::query_as("SELECT author_id FROM videos WHERE id = ?")
                .bind(f.video_id)
                .fetch_one(&s.views.read)
                .await?;
            let mut tx = s.direct.begin().await?;
            let sql = if f.action_type == 1 {
                format!(
                    "{} INTO direct_favorites (user_id, video_id) VALUES (?, ?)",
                    s.dialect.insert_ignore()
                )
            } else {
                "DELETE FROM direct_favorites WHERE user_id = ? AND video_id = ?".to_owned()
            };
            let changed = sqlx::query(&sql)
            .bind(f.user_id)
            .bind(f.video_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 {
                let delta: i64 = if f.action_type == 1 { 1 } else { -1 };
                sqlx::query(&format!(
                    "INSERT INTO direct_video_stats (video_id, favorite_count) VALUES (?, ?) {} favorite_count = favorite_count + {}",
                    s.dialect.on_conflict_update("video_id"),
                    s.dialect.new_value("favorite_count")
                ))
                .bind(f.video_id)
                .bind(delta)
                .execute(&mut *tx)
                .await?;
                for (user, fav, total) in [(f.user_id, delta, 0), (author, 0, delta)] {
                    sqlx::query(&format!(
                        "INSERT INTO direct_user_stats (user_id, favorite_count, total_favorited) VALUES (?, ?, ?) {} \
                         favorite_count = favorite_count + {}, total_favorited = total_favorited + {}",
                        s.dialect.on_conflict_update("user_id"),
                        s.dialect.new_value("favorite_count"),
                        s.dialect.new_value("total_favorited")
                    ))
                    .bind(user)
                    .bind(fav)
                    .bind(total)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(json!({}))
        }
        .await,
    )
}

#[derive(Deserialize)]
struct Viewed {
    user_id: i64,
}

/// The seed monolith's feed: the page, then for each video in turn its author, the author's
/// counts, the video's counts, is_favorite and is_follow — one query at a time.
async fn sequential_feed(State(s): State<BaselineState>, Query(q): Query<Viewed>) -> Json<Value> {
    let db = &s.views.read;
    envelope(
        async {
            let page: Vec<(i64, i64, String, i64)> = sqlx::query_as(
                "SELECT id, author_id, title, published_ms FROM videos ORDER BY published_ms DESC, id DESC LIMIT 30",
            )
            .fetch_all(db)
            .await?;
            let mut list = Vec::new();
            for (id, author, title, published) in page {
                let name: Option<(String,)> = sqlx::query_as("SELECT name FROM users WHERE id = ?").bind(author).fetch_optional(db).await?;
                let user: Option<(i64, i64, i64, i64, i64)> = sqlx::query_as(
                    "SELECT follow_count, follower_count, total_favorited, work_count, favorite_count FROM user_stats WHERE user_id = ?",
                )
                .bind(author)
                .fetch_optional(db)
                .await?;
                let video: Option<(i64, i64)> = sqlx::query_as("SELECT favorite_count, comment_count FROM video_stats WHERE video_id = ?")
                    .bind(id)
                    .fetch_optional(db)
                    .await?;
                let liked: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM favorites WHERE user_id = ? AND video_id = ?")
                    .bind(q.user_id)
                    .bind(id)
                    .fetch_optional(db)
                    .await?;
                let follows: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM follows WHERE follower_id = ? AND followee_id = ?")
                    .bind(q.user_id)
                    .bind(author)
                    .fetch_optional(db)
                    .await?;
                list.push(json!({"id": id, "title": title, "published": published,
                    "author": {"id": author, "name": name.map(|n| n.0), "counts": user.map(|u| [u.0, u.1, u.2, u.3, u.4]), "is_follow": follows.is_some()},
                    "counts": video.map(|v| [v.0, v.1]), "is_favorite": liked.is_some()}));
            }
            Ok(json!({"video_list": list}))
        }
        .await,
    )
}

#[derive(Deserialize)]
struct ChatQuery {
    user_id: i64,
    to_user_id: i64,
    pre_msg_time: i64,
}

/// Polling without the shortcut: the messages query on every poll.
async fn sql_chat(State(s): State<BaselineState>, Query(q): Query<ChatQuery>) -> Json<Value> {
    let (lo, hi) = (q.user_id.min(q.to_user_id), q.user_id.max(q.to_user_id));
    envelope(
        async {
            let rows: Vec<(i64, i64, i64, String, i64)> = sqlx::query_as(
                "SELECT id, from_user_id, to_user_id, content, created_ms FROM messages \
                 WHERE pair_lo = ? AND pair_hi = ? AND created_ms > ? ORDER BY created_ms, id",
            )
            .bind(lo)
            .bind(hi)
            .bind(q.pre_msg_time)
            .fetch_all(&s.views.read)
            .await?;
            Ok(json!({"message_list": rows.len()}))
        }
        .await,
    )
}
