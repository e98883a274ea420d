//! Hot key: a like storm with 90 % of the likes on one video, folded beside the same number spread
//! uniformly.

use crate::context::Ctx;
use crate::dataset::{timed_projection, VIDEO_BASE};
use crate::report::{round3, Report, Row};

/// Hot key: 90 % of the likes on one video, beside the same number spread uniformly.
pub(crate) async fn hot_key(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let Ctx {
        size,
        deps,
        client,
        base,
        ..
    } = ctx;
    eprintln!("bench: hot-key storm");
    let storm = (size.likes / 5).max(2_000);
    let vids = size.videos as i64;
    let mut storm_rates = Vec::new();
    for (hot, seed) in [(false, 1), (true, 2)] {
        let likes = crate::fold::like_storm(storm, vids, VIDEO_BASE, hot, seed);
        storm_rates.push(timed_projection(deps, client, base, likes).await?);
    }
    let (uniform_rate, hot_rate) = (storm_rates[0], storm_rates[1]);
    report.results.hot_key_events_per_s = Some(hot_rate.round());
    report.results.uniform_likes_events_per_s = Some(uniform_rate.round());
    report.results.hot_key_vs_uniform = Some(round3(hot_rate / uniform_rate));
    report.rows.push(Row::ratio(
        &format!("hot key: {storm} likes, 90 % on one video vs uniform (events/s)"),
        hot_rate,
        uniform_rate,
        "≥ 0.8× uniform",
    ));
    Ok(())
}
