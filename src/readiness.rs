//! `/readyz`: each dependency this process uses answers, and the projections are within a lag
//! bound of the log (`--ready-max-lag`, or `?max_lag=N` per probe; `max_lag=0` means "has applied
//! everything acknowledged so far", which the test harness uses after a restart).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use titok_adapters::store::ViewStore;
use titok_events::Topic;
use titok_ports::log::{EventLog, Retention};
use titok_ports::progress::Positions;

/// How long one `/readyz` answer is reused: probes from many balancers and orchestrators cost
/// one round of checks per second at most.
const CACHE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

type Answer = (StatusCode, Value);

#[derive(Clone)]
pub struct Readiness {
    pub log: Arc<dyn EventLog>,
    pub store: ViewStore,
    pub positions: Arc<dyn Positions>,
    pub max_lag: i64,
    /// Projections of this process stopped on a hole in the log.
    pub halts: titok_projectors::continuity::Halts,
    /// The last answer per `max_lag`, and when it was made.
    pub cache: Arc<std::sync::Mutex<Option<(std::time::Instant, i64, Answer)>>>,
}

#[derive(Deserialize)]
pub struct Probe {
    max_lag: Option<i64>,
}

fn verdict<E: std::fmt::Display>(result: &Result<(), E>) -> Value {
    match result {
        Ok(()) => "ok".into(),
        Err(e) => format!("error: {e}").into(),
    }
}

/// Events acknowledged but not yet applied, summed over every partition.
async fn lag(positions: &dyn Positions) -> Result<i64, titok_ports::progress::PositionsError> {
    let ends = positions.acked_ends(&Topic::ALL).await?;
    let applied = positions.applied_of(&ends).await?;
    Ok(ends
        .iter()
        .zip(applied)
        .map(|(end, done)| (end.offset - done).max(0))
        .sum())
}

pub async fn readyz(
    State(r): State<Readiness>,
    Query(probe): Query<Probe>,
) -> (StatusCode, Json<Value>) {
    let max_lag = probe.max_lag.unwrap_or(r.max_lag);
    let cached = match r.cache.lock() {
        Ok(cache) => cache.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    if let Some((at, lag, (status, body))) = cached {
        // A cached "ready" is reused; a "not ready" is checked again at once (the test harness
        // and orchestrators wait for the turn to ready).
        if lag == max_lag && at.elapsed() < CACHE_FOR && status == StatusCode::OK {
            return (status, Json(body));
        }
    }
    let (status, body) = check(&r, max_lag).await;
    if let Ok(mut cache) = r.cache.lock() {
        *cache = Some((std::time::Instant::now(), max_lag, (status, body.clone())));
    }
    (status, Json(body))
}

async fn check(r: &Readiness, max_lag: i64) -> Answer {
    let store = sqlx::query("SELECT 1")
        .execute(&r.store.read)
        .await
        .map(|_| ());
    let log = r.log.end_offsets(&[Topic::Users]).await.map(|_| ());
    let lag = lag(r.positions.as_ref()).await;
    let mut checks = Map::new();
    checks.insert("read_store".into(), verdict(&store));
    checks.insert("event_log".into(), verdict(&log));
    checks.insert("positions".into(), verdict(&lag.as_ref().map(|_| ())));
    checks.insert(
        "event_log_retention".into(),
        match r.log.retention() {
            Retention::Kept => "ok".into(),
            Retention::Unverified(why) => format!("not verified: {why}").into(),
            Retention::Deletes(what) => format!("deletes events: {what}").into(),
        },
    );
    let halted = r.halts.all();
    for (projection, reason) in &halted {
        checks.insert(
            format!("projection_{projection}"),
            format!("halted: {reason}").into(),
        );
    }
    let lag = lag.ok();
    let ready =
        store.is_ok() && log.is_ok() && halted.is_empty() && lag.is_some_and(|l| l <= max_lag);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        json!({ "ready": ready, "lag_events": lag, "max_lag": max_lag, "checks": checks }),
    )
}
