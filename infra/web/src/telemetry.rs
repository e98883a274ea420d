//! Metrics: one Prometheus recorder per process, the HTTP middleware that counts and times every
//! request by route, and the names of every metric titok-plus exports (docs/operations.md lists them).
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
//! | `titok_log_group_commit_events` | histogram | — (embedded log: events per group commit) |
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
use tracing::Instrument;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full("titok_projector_batch_size".into()), &[1.0, 10.0, 100.0, 1000.0]))
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full("titok_log_group_commit_events".into()), &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 256.0, 1024.0]));
        match builder.and_then(|b| b.install_recorder()) {
            Ok(handle) => {
                // Histogram samples wait in per-metric buckets until they are folded into the
                // distributions, which `install_recorder` leaves to the caller: without a
                // /metrics scrape they piled up (the soak's RSS grew ~1.5 MiB a minute at
                // 1,000 writes/s whatever SQLite's cache size was). Fold them every 5 s.
                let upkeep = handle.clone();
                let _ = std::thread::Builder::new()
                    .name("metrics-upkeep".into())
                    .spawn(move || loop {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        upkeep.run_upkeep();
                    });
                handle
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot install the metrics recorder; /metrics will be empty");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled (the `x-request-id` it came with, or a fresh UUID v7).
/// The command side stores it in each event's `trace_id`.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64)
        .filter(|v| {
            v.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

/// Middleware around every route: a `request` span (method, route pattern, request id, and the
/// user and event id that handlers record into it), one log line per finished request, the
/// request id echoed in `x-request-id`, and the HTTP metrics. The route is the pattern, not the
/// raw path, so ids cannot explode the label set.
pub async fn observe(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let id = request_id(&req);
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = %route,
        request_id = %id,
        user_id = tracing::field::Empty,
        event_id = tracing::field::Empty,
    );
    let start = Instant::now();
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(req))
        .instrument(span.clone())
        .await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request finished"
        )
    });
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    metrics::counter!("titok_http_requests_total", "route" => route.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("titok_http_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
    response
}
