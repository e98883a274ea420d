//! The projection scenarios of `titok-bench`: the raw-insert baseline of the very rows the views
//! end with, the hot-key storm beside a uniform load, and the log's own append → consume latency
//! (the floor under ack → visible).

use std::time::{Duration, Instant};

use anyhow::Context;
use rand::{Rng, SeedableRng};
use sqlx::{Any, Column, QueryBuilder, Row};
use titok_adapters::store::ViewStore;
use titok_events::{Envelope, EventBody, Favorite, Topic, UserRegistered};
use titok_ports::log::EventLog;
use titok_views::{Tables, ViewTable};

/// Rows per transaction of the raw baseline: the projection's largest batch.
const RAW_TX_ROWS: usize = 20_000;

#[derive(Debug, Clone)]
enum Cell {
    Int(i64),
    Text(String),
}

/// What re-inserting the views' rows took.
pub struct RawInsert {
    pub rows: u64,
    pub seconds: f64,
}

impl RawInsert {
    pub fn rows_per_s(&self) -> f64 {
        self.rows as f64 / self.seconds.max(1e-9)
    }
}

/// Read every row of the live view tables, then time inserting them into fresh copies of the same
/// tables (same DDL, same indexes, primary-key order) as multi-row inserts — as many rows per
/// statement as the fold's limits allow, 20,000 rows per transaction. The projection's time over
/// this time is the fold's own overhead.
pub async fn raw_same_rows(store: &ViewStore) -> anyhow::Result<RawInsert> {
    let scratch = Tables::shadow(store.dialect, &format!("braw{}_", titok_ports::now_ms()));
    let mysql = store.dialect == titok_adapters::store::Dialect::MySql;
    let mut tables = Vec::new();
    for table in ViewTable::ALL {
        let rows = sqlx::query(&format!("SELECT * FROM {table}"))
            .fetch_all(&store.read)
            .await?;
        let Some(first) = rows.first() else { continue };
        let columns: Vec<String> = first
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        let cells: Vec<Vec<Cell>> = rows
            .iter()
            .map(|row| {
                (0..columns.len())
                    .map(|i| match row.try_get::<i64, _>(i) {
                        Ok(n) => Cell::Int(n),
                        Err(_) => Cell::Text(row.try_get::<String, _>(i).unwrap_or_default()),
                    })
                    .collect()
            })
            .collect();
        for statement in table.create(mysql, &scratch.name(table)) {
            sqlx::query(&statement).execute(&store.write).await?;
        }
        tables.push((scratch.name(table), columns, cells));
    }
    let started = Instant::now();
    let mut total = 0;
    for (name, columns, rows) in &tables {
        let per_statement = (30_000 / columns.len()).min(4_000);
        for tx_rows in rows.chunks(RAW_TX_ROWS) {
            let mut tx = store.write.begin().await?;
            for chunk in tx_rows.chunks(per_statement) {
                let mut qb = QueryBuilder::<Any>::new(format!(
                    "INSERT INTO {name} ({}) ",
                    columns.join(", ")
                ));
                qb.push_values(chunk, |mut b, row| {
                    for cell in row {
                        match cell {
                            Cell::Int(n) => b.push_bind(*n),
                            Cell::Text(s) => b.push_bind(s.clone()),
                        };
                    }
                });
                qb.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        total += rows.len() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    for (name, _, _) in &tables {
        sqlx::query(&format!("DROP TABLE {name}"))
            .execute(&store.write)
            .await?;
    }
    Ok(RawInsert {
        rows: total,
        seconds,
    })
}

/// `n` likes by users never seen before: uniformly over `videos` videos, or 90 % on one video.
pub fn like_storm(n: usize, videos: i64, video_base: i64, hot: bool, seed: u64) -> Vec<Envelope> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let user_base = 6_000_000_000_000_000 + (seed as i64) * 10_000_000;
    (0..n)
        .map(|i| {
            let v = if hot && rng.gen_bool(0.9) {
                0
            } else {
                rng.gen_range(0..videos)
            };
            let user = user_base + i as i64;
            Envelope::new(
                user,
                EventBody::VideoLiked(Favorite {
                    user_id: user,
                    video_id: video_base + v,
                    author_id: user_base - 1 - v % 100,
                }),
            )
        })
        .collect()
}

/// The log's own latency: append one event at a time and time until a consumer of its own group
/// polls it. The median over `samples`, ms.
pub async fn log_floor(log: &dyn EventLog, samples: usize) -> anyhow::Result<Vec<f64>> {
    let topic = Topic::Users;
    let partitions = log.partitions(topic) as usize;
    let ends = log
        .end_offsets(&[topic])
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut start = vec![0; partitions];
    for end in ends {
        if let Some(slot) = start.get_mut(end.partition as usize) {
            *slot = end.offset;
        }
    }
    let group = format!("bench-floor-{}", titok_ports::now_ms());
    let mut consumer = log
        .consumer(&group, topic, start)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples {
        let id = 5_000_000_000_000_000 + titok_ports::now_ms() * 1000 + i as i64 % 1000;
        let event = Envelope::new(
            id,
            EventBody::UserRegistered(UserRegistered {
                user_id: id,
                username: format!("floor{i}"),
            }),
        );
        let t0 = Instant::now();
        let at = log
            .append(std::slice::from_ref(&event))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let want = *at.first().context("append returned no position")?;
        let acked = t0.elapsed();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let batch = consumer
                .poll(1000, Duration::from_millis(200))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if batch
                .iter()
                .any(|r| r.partition == want.partition && r.offset >= want.offset)
            {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the floor consumer never saw its event"
            );
        }
        // From the acknowledgement on, as ack → visible is measured.
        out.push((t0.elapsed() - acked).as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(out)
}

/// How fast the log hands over everything it holds: a consumer of its own group reads every topic
/// from offset 0 (records are fetched and counted, not decoded), timed from each topic's first
/// record (a new Kafka consumer first joins its group, which is not reading). Events/s — the limit
/// of any projection on this log.
pub async fn log_read_rate(log: &dyn EventLog) -> anyhow::Result<f64> {
    let ends = log
        .end_offsets(&Topic::ALL)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut reading = Duration::ZERO;
    let mut total = 0u64;
    for topic in Topic::ALL {
        let mut left: i64 = ends
            .iter()
            .filter(|e| e.topic == topic)
            .map(|e| e.offset)
            .sum();
        let partitions = log.partitions(topic) as usize;
        let group = format!("bench-read-{}-{}", titok_ports::now_ms(), topic.name());
        let mut consumer = log
            .consumer(&group, topic, vec![0; partitions])
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut first: Option<Instant> = None;
        while left > 0 {
            let batch = consumer
                .poll(20_000, Duration::from_millis(500))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if !batch.is_empty() && first.is_none() {
                first = Some(Instant::now());
            }
            left -= batch.len() as i64;
            total += batch.len() as u64;
            anyhow::ensure!(
                Instant::now() < deadline,
                "reading {topic} took over 10 minutes"
            );
        }
        reading += first.map_or(Duration::ZERO, |t| t.elapsed());
    }
    Ok(total as f64 / reading.as_secs_f64().max(1e-9))
}

/// sqlx's `Any` driver against the typed driver of the same database, on the batch fold's
/// statement shapes: multi-row upserts of `(a, b, t)` rows (4,000 per statement, 20,000 per
/// transaction), the same rows again (the update path), and `(a = ? AND b = ?) OR …` lookups of
/// every key (500 per query). Rows/s of `(any, typed)`, each the best of `rounds` alternating runs.
pub async fn any_vs_typed(
    store: &ViewStore,
    mysql_url: Option<&str>,
    sqlite_path: &std::path::Path,
    rows: usize,
    rounds: usize,
) -> anyhow::Result<(f64, f64)> {
    let dialect = store.dialect;
    // Alternate the drivers and keep each one's best run, so that neither gains from
    // running second (warm page cache, a checkpoint of the other's WAL).
    let (mut any, mut typed) = (0.0_f64, 0.0_f64);
    match mysql_url {
        Some(url) => {
            let pool = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await?;
            for _ in 0..rounds {
                any = any.max(shape_rate_any(&store.write, dialect, rows).await?);
                typed = typed.max(shape_rate_mysql(&pool, dialect, rows).await?);
            }
            pool.close().await;
        }
        None => {
            let options = titok_adapters::store::sqlite_options(
                sqlite_path,
                titok_adapters::store::Durability::Normal,
            )?;
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?;
            for _ in 0..rounds {
                any = any.max(shape_rate_any(&store.write, dialect, rows).await?);
                typed = typed.max(shape_rate_sqlite(&pool, dialect, rows).await?);
            }
            pool.close().await;
        }
    }
    Ok((any, typed))
}

/// One run of the fold's statement shapes on a scratch table through a pool of driver `$db`;
/// rows/s. A macro rather than a generic function: sqlx's executor bounds over a generic
/// `Database` do not let a borrowed `QueryBuilder` outlive the call, and the point here is to
/// time each concrete driver as the fold would call it.
macro_rules! shape_rate_fn {
    ($name:ident, $db:ty) => {
        async fn $name(
            pool: &sqlx::Pool<$db>,
            dialect: titok_adapters::store::Dialect,
            rows: usize,
        ) -> anyhow::Result<f64> {
            let table = format!("bench_shape_{}", titok_ports::now_ms());
            sqlx::query(&format!(
                "CREATE TABLE {table} (a BIGINT NOT NULL, b BIGINT NOT NULL, t BIGINT NOT NULL, PRIMARY KEY (a, b))"
            ))
            .execute(pool)
            .await?;
            let keys: Vec<(i64, i64)> = (0..rows as i64).map(|i| (i % 9_973, i)).collect();
            let tail = format!(
                " {} t = {}",
                dialect.on_conflict_update("a, b"),
                dialect.new_value("t")
            );
            let started = Instant::now();
            for round in 0..2_i64 {
                for tx_keys in keys.chunks(RAW_TX_ROWS) {
                    let mut tx = pool.begin().await?;
                    for chunk in tx_keys.chunks(4_000) {
                        let mut qb =
                            QueryBuilder::<$db>::new(format!("INSERT INTO {table} (a, b, t) "));
                        qb.push_values(chunk, |mut b, (x, y)| {
                            b.push_bind(*x).push_bind(*y).push_bind(round);
                        });
                        qb.push(&tail);
                        qb.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                }
            }
            let mut found = 0;
            for chunk in keys.chunks(500) {
                let mut qb = QueryBuilder::<$db>::new(format!("SELECT a, b FROM {table} WHERE "));
                for (i, (x, y)) in chunk.iter().enumerate() {
                    if i > 0 {
                        qb.push(" OR ");
                    }
                    qb.push("(a = ");
                    qb.push_bind(*x);
                    qb.push(" AND b = ");
                    qb.push_bind(*y);
                    qb.push(")");
                }
                let got: Vec<(i64, i64)> = qb.build_query_as().fetch_all(pool).await?;
                found += got.len();
            }
            let seconds = started.elapsed().as_secs_f64();
            anyhow::ensure!(found == rows, "the lookups found {found} of {rows} rows");
            sqlx::query(&format!("DROP TABLE {table}"))
                .execute(pool)
                .await?;
            Ok(3.0 * rows as f64 / seconds)
        }
    };
}

shape_rate_fn!(shape_rate_any, Any);
shape_rate_fn!(shape_rate_sqlite, sqlx::Sqlite);
shape_rate_fn!(shape_rate_mysql, sqlx::MySql);
