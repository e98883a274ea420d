//! The HTTP stack's ceiling: the no-op endpoint driven like the others, the bound of every other
//! requests/s.

use crate::context::Ctx;
use crate::load::{closed_loop, ms, ok_envelope};
use crate::report::{Report, Row};

/// The HTTP stack's ceiling: `/bench/noop` (routing, request id, span, metrics, parameters, token
/// check; no work) driven by the same client at the same concurrency.
pub(crate) async fn ceiling(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let Ctx {
        args,
        size,
        client,
        base,
        viewers,
        ..
    } = ctx;
    eprintln!("bench: ceiling (no-op endpoint)");
    let noop = {
        let (client, base, viewers) = (client.clone(), base.clone(), viewers.clone());
        closed_loop(args.concurrency, size.seconds, move |worker, _i| {
            let viewer = &viewers[worker % viewers.len()];
            let req = client
                .get(format!("{base}/bench/noop"))
                .query(&[("token", viewer.token.clone())])
                .send();
            async move { ok_envelope(req.await).await }
        })
        .await
    };
    anyhow::ensure!(noop.ok > 0, "the no-op endpoint answered nothing");
    report.ceiling_rps = noop.rate();
    report.results.ceiling = Some(noop.stats());
    report.results.ceiling_rps = Some(noop.rate().round());
    report.rows.push(Row::alone(
        format!(
            "ceiling: no-op endpoint, {} clients (requests/s, p99 ms)",
            args.concurrency
        ),
        format!("{:.0} rps, p99 {:.1}", noop.rate(), ms(&noop.latency, 0.99)),
        "reported",
    ));
    Ok(())
}
