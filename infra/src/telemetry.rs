//! Metrics: one Prometheus recorder per process, the HTTP middleware that counts and times every
//! request by route, and the names of every metric titok-plus exports (the README lists them).
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `titok_http_requests_total` | counter | `route`, `status` |
//! | `titok_http_request_duration_seconds` | histogram | `route` |
//! | `titok_events_appended_total` | counter | `topic` |
//! | `titok_projector_applied_offset` | gauge | `projection`, `partition` |
//! | `titok_projector_lag_events` | gauge | `projection` |
//! | `titok_projector_lag_seconds` | gauge | `projection` |
//! | `titok_projector_batch_size` | histogram | `projection` |
//! | `titok_parked_events_total` | counter | `projection` |
//! | `titok_consistency_waits_total` / `titok_consistency_stale_total` | counter | — |
//! | `titok_consistency_wait_seconds` | histogram | — |
//! | `titok_chat_polls_total` | counter | `answer` (`shortcut` or `sql`) |
//! | `titok_chat_db_queries_total` | counter | — |
//! | `titok_db_pool_connections` / `titok_db_pool_idle` | gauge | `pool` |

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full("titok_projector_batch_size".into()), &[1.0, 10.0, 100.0, 1000.0]));
        match builder.and_then(|b| b.install_recorder()) {
            Ok(handle) => handle,
            Err(err) => {
                tracing::warn!(error = %err, "cannot install the metrics recorder; /metrics will be empty");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}

/// Middleware: count and time each request under its route pattern (not the raw path, so ids in
/// paths cannot explode the label set).
pub async fn record_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("titok_http_requests_total", "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("titok_http_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}

/// Report a SQL pool's size and idle connections (sampled when `/metrics` is scraped).
pub fn record_pool(name: &'static str, pool: &sqlx::AnyPool) {
    metrics::gauge!("titok_db_pool_connections", "pool" => name).set(f64::from(pool.size()));
    metrics::gauge!("titok_db_pool_idle", "pool" => name).set(pool.num_idle() as f64);
}
