//! The feed: one client against the one-query-at-a-time baseline, then under concurrency, at
//! 2,000 requests/s offered, and during a login storm.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::baseline::Baseline;
use crate::context::{rss_mib, server_metric, Ctx};
use crate::dataset::Viewer;
use crate::load::{closed_loop, ms, ok_envelope, open_loop};
use crate::report::{round3, Report, Row};
use crate::wrk;

/// The feed: one client against the sequential baseline, then under concurrency.
pub(crate) async fn feed(
    ctx: &Ctx,
    report: &mut Report,
    baseline: &Baseline,
) -> anyhow::Result<()> {
    let Ctx {
        args,
        size,
        client,
        base,
        viewers,
        ..
    } = ctx;
    eprintln!("bench: feed");
    // 3. Feed: latency of one client (the join's speed-up), then throughput under concurrency.
    let feed_request = |client: reqwest::Client, url: String, viewers: Arc<Vec<Viewer>>| {
        move |worker: usize, _i: u64| {
            let viewer = &viewers[worker % viewers.len()];
            let req = client
                .get(&url)
                .query(&[
                    ("token", viewer.token.clone()),
                    ("user_id", viewer.id.to_string()),
                ])
                .send();
            async move { ok_envelope(req.await).await }
        }
    };
    let feed = || {
        feed_request(
            client.clone(),
            format!("{base}/douyin/feed/"),
            viewers.clone(),
        )
    };
    let feed_one = closed_loop(1, size.seconds, feed()).await;
    let seq_one = closed_loop(
        1,
        size.seconds,
        feed_request(
            client.clone(),
            format!("{}/sequential/feed", baseline.base),
            viewers.clone(),
        ),
    )
    .await;
    let statements = async || -> anyhow::Result<[f64; 4]> {
        let mut out = [0.0; 4];
        for (i, (name, viewer)) in [
            ("titok_feed_pages_total", "anonymous"),
            ("titok_feed_sql_statements_total", "anonymous"),
            ("titok_feed_pages_total", "token"),
            ("titok_feed_sql_statements_total", "token"),
        ]
        .into_iter()
        .enumerate()
        {
            let label = format!(r#"viewer="{viewer}""#);
            // Absent before the first page of its kind.
            out[i] = server_metric(client, base, name, &[&label])
                .await
                .unwrap_or(0.0);
        }
        Ok(out)
    };
    let before = statements().await?;
    let feed_many = closed_loop(args.concurrency, size.seconds, feed()).await;
    // The same page without a token: what most feed requests of a short-video app are.
    let (anonymous_client, anonymous_url) = (client.clone(), format!("{base}/douyin/feed/"));
    let feed_anonymous = closed_loop(args.concurrency, size.seconds, move |_worker, _i| {
        let req = anonymous_client.get(&anonymous_url).send();
        async move { ok_envelope(req.await).await }
    })
    .await;
    let after = statements().await?;
    let per_page = |pages: usize, sql: usize| {
        let pages = after[pages] - before[pages];
        anyhow::ensure!(pages > 0.0, "no feed page was counted");
        Ok(round3((after[sql] - before[sql]) / pages))
    };
    let (sql_anonymous, sql_token) = (per_page(0, 1)?, per_page(2, 3)?);
    // The target's own terms: 2,000 requests/s offered on schedule (open loop), not as fast as
    // 32 clients can go.
    eprintln!("bench: feed at 2,000 requests/s");
    let feed_rate = open_loop(2_000, size.seconds, feed()).await;
    let speedup = ms(&seq_one.latency, 0.5) / ms(&feed_one.latency, 0.5).max(1e-9);
    report.results.feed_at_2000 = Some(feed_rate.stats());
    report.results.feed_p99_at_2000_ms = Some(ms(&feed_rate.latency, 0.99));
    report.results.feed_single_client = Some(feed_one.stats());
    report.results.feed_sequential_single_client = Some(seq_one.stats());
    report.results.feed_concurrent = Some(feed_many.stats());
    report.results.feed_p99_ms = Some(ms(&feed_many.latency, 0.99));
    report.results.feed_join_speedup = Some(round3(speedup));
    report.rows.push(Row::new(
        "feed p50 latency, 30 videos, 1 client (ms)".into(),
        format!("{:.2}", ms(&feed_one.latency, 0.5)),
        format!("{:.2}", ms(&seq_one.latency, 0.5)),
        format!("{speedup:.2}× faster"),
        "≥ 5× faster".into(),
    ));
    report.rows.push(Row::alone(
        format!(
            "feed under {} clients: requests/s, p99 ms",
            args.concurrency
        ),
        format!(
            "{:.0} rps, p99 {:.1}",
            feed_many.rate(),
            ms(&feed_many.latency, 0.99)
        ),
        "reported",
    ));
    report.rows.push(Row::alone(
        "feed at 2,000 requests/s offered (open loop): p50 / p99 ms; not answered",
        format!(
            "{:.1} / {:.1}; {}",
            ms(&feed_rate.latency, 0.5),
            ms(&feed_rate.latency, 0.99),
            feed_rate.failed
        ),
        "p99 ≤ 10 ms at 2,000 rps",
    ));
    report.results.feed_vs_ceiling =
        Some(report.vs_ceiling("feed", feed_many.rate(), "≥ 0.3× ceiling"));
    report.results.feed_anonymous_vs_ceiling = Some(report.vs_ceiling(
        "feed without a token",
        feed_anonymous.rate(),
        "≥ 0.5× ceiling",
    ));
    report.results.feed_anonymous = Some(feed_anonymous.stats());
    report.results.feed_sql_per_page_anonymous = Some(sql_anonymous);
    report.results.feed_sql_per_page_token = Some(sql_token);
    report.rows.push(Row::alone(
        "feed: SQL statements per page, without / with a token",
        format!("{sql_anonymous} / {sql_token}"),
        "0 / ≤ 1",
    ));
    wrk_ceiling(ctx, report).await?;
    // Absent with the index off (`--feed-index-videos 0`).
    let gauge = async |name| server_metric(client, base, name, &[]).await.unwrap_or(0.0);
    let index_videos = gauge("titok_feed_index_videos").await;
    let index_mib = gauge("titok_feed_index_bytes").await / 1048576.0;
    let rss = rss_mib();
    report.results.feed_index_videos = Some(index_videos);
    report.results.feed_index_mib = Some(round3(index_mib));
    report.results.server_rss_mib = Some(rss.round());
    report.rows.push(Row::alone(
        "feed index: videos held, MiB (estimate); whole process RSS MiB",
        format!("{index_videos:.0}, {index_mib:.2}; {rss:.0}"),
        "bounded (--feed-index-videos)",
    ));

    // The same feed load while 16 clients log in continuously (argon2id on the bounded blocking
    // pool): the feed's p99 must not suffer much.
    eprintln!("bench: feed during a login storm");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let logins = Arc::new(AtomicU64::new(0));
    let mut stormers = Vec::new();
    for i in 0..16 {
        let (client, base) = (client.clone(), base.clone());
        let (stop, logins) = (stop.clone(), logins.clone());
        stormers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let req = client
                    .post(format!("{base}/douyin/user/login/"))
                    .form(&[
                        ("username", format!("viewer{i}")),
                        ("password", "bench-password".to_owned()),
                    ])
                    .send();
                if ok_envelope(req.await).await {
                    logins.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let storm_started = Instant::now();
    let feed_storm = closed_loop(args.concurrency, size.seconds, feed()).await;
    stop.store(true, Ordering::Relaxed);
    for stormer in stormers {
        let _ = stormer.await;
    }
    let logins_per_s =
        logins.load(Ordering::Relaxed) as f64 / storm_started.elapsed().as_secs_f64();
    anyhow::ensure!(logins_per_s > 0.0, "no login succeeded during the storm");
    let (alone, stormed) = (ms(&feed_many.latency, 0.99), ms(&feed_storm.latency, 0.99));
    report.results.feed_login_storm = Some(feed_storm.stats());
    report.results.login_storm_logins_per_s = Some(logins_per_s.round());
    report.results.feed_p99_login_storm_ms = Some(stormed);
    let storm_ratio = stormed / alone.max(1e-9);
    report.results.feed_p99_login_storm_ratio = Some(round3(storm_ratio));
    report.rows.push(Row::new(
        format!(
            "feed p99 during a login storm (16 clients, {logins_per_s:.0} logins/s) vs alone (ms)"
        ),
        format!("{stormed:.1}"),
        format!("{alone:.1}"),
        format!("{storm_ratio:.2}×"),
        "≤ 2× alone".into(),
    ));
    Ok(())
}

/// The same three loads — the no-op, the feed with a token, the feed without — driven by wrk
/// instead of the bench's own client (see [`crate::wrk`]), one after the other in the same run.
async fn wrk_ceiling(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let Ctx {
        args,
        size,
        base,
        viewers,
        ..
    } = ctx;
    let token = &viewers[0].token;
    let rate = async |url: String| wrk::requests_per_s(&url, args.concurrency, size.seconds).await;
    let Some(noop) = rate(format!("{base}/bench/noop?token={token}")).await? else {
        report.rows.push(Row::alone(
            "feed vs the no-op ceiling, both driven by wrk",
            "not run",
            "needs wrk",
        ));
        return Ok(());
    };
    eprintln!("bench: feed vs ceiling, driven by wrk");
    let feed = rate(format!("{base}/douyin/feed/?token={token}")).await?;
    let anonymous = rate(format!("{base}/douyin/feed/")).await?;
    let (Some(feed), Some(anonymous)) = (feed, anonymous) else {
        anyhow::bail!("wrk went missing during the bench");
    };
    let name = "vs the no-op ceiling, both driven by wrk (requests/s)";
    report.rows.push(Row::ratio(
        &format!("feed {name}"),
        feed,
        noop,
        "≥ 0.3× ceiling",
    ));
    report.rows.push(Row::ratio(
        &format!("feed without a token {name}"),
        anonymous,
        noop,
        "≥ 0.5× ceiling",
    ));
    report.results.wrk_ceiling_rps = Some(noop.round());
    report.results.feed_vs_ceiling_wrk = Some(round3(feed / noop.max(1e-9)));
    report.results.feed_anonymous_vs_ceiling_wrk = Some(round3(anonymous / noop.max(1e-9)));
    Ok(())
}
