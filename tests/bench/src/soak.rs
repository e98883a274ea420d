//! The soak (`--soak MINUTES`, scripts/soak): one-minute lag phases back to back, a line each
//! (memory, acknowledged and failed writes, lag), and a verdict at the end: memory flat, lag
//! bounded, nothing failed.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::context::{machine, rss_mib};
use crate::dataset::{Size, Viewer};
use crate::load::{lag_phase, ms};
use crate::BenchArgs;

/// The soak: `minutes` one-minute lag phases back to back; a line each; a verdict at the end.
pub(crate) async fn soak(
    client: &reqwest::Client,
    base: &str,
    viewers: &Arc<Vec<Viewer>>,
    size: &Size,
    minutes: u64,
    args: &BenchArgs,
) -> anyhow::Result<()> {
    println!(
        "titok soak — {} — {} min at {} writes/s — {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        minutes,
        size.rate,
        machine()
    );
    println!(
        "| minute | RSS MiB | acked | failed | not sent | lag p50 ms | lag p99 ms | read p50 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut rss = Vec::new();
    let mut worst_p99: f64 = 0.0;
    let mut failures = 0;
    for minute in 1..=minutes {
        let (lag, plain, load) = lag_phase(client, base, viewers, size).await;
        let now = rss_mib();
        rss.push(now);
        let p99 = ms(&lag, 0.99);
        worst_p99 = worst_p99.max(p99);
        let (acked, failed, skipped) = (
            load.acked.load(Ordering::Relaxed),
            load.failed.load(Ordering::Relaxed),
            load.skipped.load(Ordering::Relaxed),
        );
        failures += failed + skipped;
        println!(
            "| {minute} | {now:.0} | {acked} | {failed} | {skipped} | {:.1} | {p99:.1} | {:.2} |",
            ms(&lag, 0.5),
            ms(&plain, 0.5)
        );
    }
    // Memory after the first minute (caches warm) against the last minute.
    let (warm, last) = (
        rss.first().copied().unwrap_or(0.0),
        rss.last().copied().unwrap_or(0.0),
    );
    let growth = last - warm;
    let flat = growth <= (warm * 0.2).max(32.0);
    let bounded = worst_p99 <= args.soak_max_lag_ms;
    println!(
        "memory: {warm:.0} MiB after minute 1, {last:.0} MiB at the end ({growth:+.0} MiB): {}",
        if flat { "flat" } else { "GROWING" }
    );
    println!(
        "lag: worst per-minute p99 {worst_p99:.1} ms (bound {:.0} ms): {}",
        args.soak_max_lag_ms,
        if bounded { "bounded" } else { "EXCEEDED" }
    );
    println!("writes failed or not sent: {failures}");
    anyhow::ensure!(flat, "memory grew by {growth:.0} MiB during the soak");
    anyhow::ensure!(bounded, "lag p99 reached {worst_p99:.1} ms");
    anyhow::ensure!(failures == 0, "{failures} writes failed or were not sent");
    Ok(())
}
