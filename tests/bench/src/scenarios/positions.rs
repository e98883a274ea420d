//! The consistency check's cost: the acknowledged ends read with the Redis incarnation check
//! against the same pipeline without it (real services only).

use std::time::Instant;

use crate::context::Ctx;
use crate::load::histogram;
use crate::report::{PositionsCheck, Report, Row};

/// What a read's consistency wait costs since positions prove which Redis they were recovered on:
/// reading the acknowledged ends of every topic through the positions port (one
/// pipeline: the six hashes and `INFO server`, the incarnation compared) against the same
/// pipeline without `INFO` (what it was before), one after the other on one connection each,
/// same run. Real services only.
pub(crate) async fn positions_check(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let Some(url) = ctx.config.redis_url.clone() else {
        report.rows.push(Row::alone(
            "consistency check: acked ends read, µs p50",
            "not run",
            "needs --redis-url",
        ));
        return Ok(());
    };
    if url.starts_with(titok_adapters::redis_store::CLUSTER_SCHEME) {
        return Ok(()); // a cluster reads no INFO per read
    }
    let rounds = if ctx.args.quick { 500 } else { 5_000 };
    let mut with_check = histogram();
    for _ in 0..rounds {
        let started = Instant::now();
        ctx.deps
            .positions
            .acked_ends(&titok_events::Topic::ALL)
            .await?;
        with_check.record(started.elapsed().as_micros().max(1) as u64)?;
    }
    let client = redis::Client::open(url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut plain = histogram();
    for _ in 0..rounds {
        let started = Instant::now();
        let mut pipe = redis::pipe();
        for topic in titok_events::Topic::ALL {
            pipe.cmd("HGETALL")
                .arg(format!("{}:acked:{}", ctx.config.namespace, topic.name()));
        }
        let _: Vec<std::collections::HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        plain.record(started.elapsed().as_micros().max(1) as u64)?;
    }
    let (ours, theirs) = (
        with_check.value_at_quantile(0.5) as f64,
        plain.value_at_quantile(0.5) as f64,
    );
    report.results.positions_check_us = Some(PositionsCheck {
        with_incarnation_p50: ours,
        with_incarnation_p99: with_check.value_at_quantile(0.99),
        without_p50: theirs,
        without_p99: plain.value_at_quantile(0.99),
        rounds,
    });
    report.rows.push(Row::ratio(
        "consistency check: acked ends read, µs p50 (with incarnation vs without)",
        ours,
        theirs,
        "reported",
    ));
    Ok(())
}
