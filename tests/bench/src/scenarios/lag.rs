//! Lag: acknowledged → visible through the query API under steady write loads (the configured
//! rate, a light one, and a sweep in full runs), against the log's own append → consume floor.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;

use crate::context::Ctx;
use crate::dataset::{Size, Viewer};
use crate::load::{histogram, lag_phase, ms};
use crate::report::{LagPoint, Report, Row};

/// Ack → visible under steady write loads, against the log's own floor.
pub(crate) async fn lag(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let Ctx {
        args,
        size,
        deps,
        client,
        base,
        viewers,
        ..
    } = ctx;
    // 5. End-to-end lag under a steady write load: the configured rate, a light load (200/s),
    // and (full runs) a sweep for the highest rate at which p99 stays within 50 ms. The load
    // generator runs in this process, on the same cores as the server.
    eprintln!("bench: log floor (append → consume)");
    let floor = crate::fold::log_floor(deps.log.as_ref(), 200).await?;
    let mut floor_h = histogram();
    for ms in &floor {
        let _ = floor_h.record((ms * 1000.0).max(1.0) as u64);
    }
    let floor_p50 = ms(&floor_h, 0.5);
    report.results.broker_floor_p50_ms = Some(floor_p50);
    report.results.broker_floor_p99_ms = Some(ms(&floor_h, 0.99));
    // The probes of the lag phases are new users with nothing in their lists, so a probe's read
    // costs the same in every phase (a data-set viewer's list holds thousands of likes).
    let mut probes = Vec::new();
    for name in ["probe-a", "probe-b"] {
        let body: Value = client
            .post(format!("{base}/douyin/user/register/"))
            .form(&[("username", name), ("password", "bench-password")])
            .send()
            .await?
            .json()
            .await?;
        probes.push(Viewer {
            id: body["user_id"].as_i64().context("register probe")?,
            token: body["token"].as_str().unwrap_or_default().to_owned(),
        });
    }
    for v in viewers.iter().skip(2) {
        probes.push(Viewer {
            id: v.id,
            token: v.token.clone(),
        });
    }
    let probes = Arc::new(probes);
    let mut rates = vec![size.rate];
    if !args.quick {
        rates.extend([200, 1_000, 2_000, 10_000]);
    } else if size.rate != 200 {
        rates.push(200);
    }
    rates.sort_unstable();
    rates.dedup();
    let mut sweep = Vec::new();
    for rate in rates {
        eprintln!("bench: lag at {rate} writes/s");
        let at = Size {
            rate,
            ..size.clone()
        };
        let (lag, plain, outcome) = lag_phase(client, base, &probes, &at).await;
        let failed = outcome.failed.load(Ordering::Relaxed);
        anyhow::ensure!(
            failed == 0,
            "{failed} writes failed during the lag phase at {rate}/s"
        );
        sweep.push(LagPoint {
            rate,
            lag_p50_ms: ms(&lag, 0.5),
            lag_p99_ms: ms(&lag, 0.99),
            plain_read_p50_ms: ms(&plain, 0.5),
            samples: lag.len(),
            skipped: outcome.skipped.load(Ordering::Relaxed),
        });
        if rate == 200 {
            report.results.light_lag_p50_ms = Some(ms(&lag, 0.5));
            report.results.light_plain_read_p50_ms = Some(ms(&plain, 0.5));
            report.rows.push(Row::new(
                "ack → visible at 200 writes/s: p50 ms; plain read p50".into(),
                format!("{:.2}; plain {:.2}", ms(&lag, 0.5), ms(&plain, 0.5)),
                format!("log floor p50 {floor_p50:.2}"),
                format!("{:.2}× floor", ms(&lag, 0.5) / floor_p50.max(1e-9)),
                "≤ 5 ms embedded, ≤ 3× floor".into(),
            ));
        }
        if rate == size.rate {
            report.results.lag_p50_ms = Some(ms(&lag, 0.5));
            report.results.lag_p99_ms = Some(ms(&lag, 0.99));
            report.results.plain_read_p50_ms = Some(ms(&plain, 0.5));
            report.results.consistency_wait_extra_p50_ms = Some(ms(&lag, 0.5) - ms(&plain, 0.5));
            report.results.lag_write_rate = Some(size.rate);
            report.rows.push(Row::new(
                format!("ack → visible at {} writes/s: p50 / p99 ms", size.rate),
                format!("{:.1} / {:.1}", ms(&lag, 0.5), ms(&lag, 0.99)),
                format!("plain read p50 {:.2}", ms(&plain, 0.5)),
                "—".into(),
                "p99 ≤ 50 ms at 5,000 events/s".into(),
            ));
        }
    }
    let max_ok = sweep
        .iter()
        .filter(|p| p.lag_p99_ms <= 50.0)
        .map(|p| p.rate)
        .max()
        .unwrap_or(0);
    report.results.max_rate_lag_p99_50ms = Some(max_ok);
    report.results.lag_sweep = Some(sweep);
    report.rows.push(Row::alone(
        "highest write rate with ack → visible p99 ≤ 50 ms (of those run)",
        format!("{max_ok}/s"),
        "reported",
    ));
    Ok(())
}
