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
use titok_ports::log::EventLog;
use titok_ports::progress::Positions;

#[derive(Clone)]
pub struct Readiness {
    pub log: Arc<dyn EventLog>,
    pub store: ViewStore,
    pub positions: Arc<dyn Positions>,
    pub max_lag: i64,
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
    let lag = lag.ok();
    let ready = store.is_ok() && log.is_ok() && lag.is_some_and(|l| l <= max_lag);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "ready": ready, "lag_events": lag, "max_lag": max_lag, "checks": checks })),
    )
}
