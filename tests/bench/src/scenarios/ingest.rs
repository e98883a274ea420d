//! Ingest: likes through the command API against the direct-write baseline (one transaction per
//! like), against the no-op ceiling and against raw appends of the same events to the log; on the
//! embedded log, how many events each group commit wrote meanwhile.

use titok_events::{Envelope, EventBody, Favorite};

use crate::baseline::Baseline;
use crate::context::{wait_caught_up, Ctx};
use crate::dataset::{ingest_like, USER_BASE, VIDEO_BASE};
use crate::load::{closed_loop, ok_envelope};
use crate::report::{round3, GroupCommitBucket, Report, Row};

/// Ingest of likes through the API against one transaction per like.
pub(crate) async fn ingest(
    ctx: &Ctx,
    report: &mut Report,
    baseline: &Baseline,
) -> anyhow::Result<()> {
    let Ctx {
        args,
        size,
        deps,
        client,
        base,
        viewers,
        ..
    } = ctx;
    // 1. Ingest. On the embedded log, how many events each group commit wrote meanwhile.
    eprintln!("bench: ingest vs direct write");
    let groups_before = group_commits(client, base).await?;
    let ingest = {
        let (client, base, viewers) = (client.clone(), base.clone(), viewers.clone());
        closed_loop(args.concurrency, size.seconds, move |worker, i| {
            let viewer = &viewers[worker % viewers.len()];
            let (video, action) = ingest_like(worker, i);
            let form = [
                ("token", viewer.token.clone()),
                ("video_id", video),
                ("action_type", action),
            ];
            let req = client
                .post(format!("{base}/douyin/favorite/action/"))
                .form(&form)
                .send();
            async move { ok_envelope(req.await).await }
        })
        .await
    };
    let groups = group_commits(client, base).await?.since(&groups_before);
    let direct = {
        let (client, base, viewers) = (client.clone(), baseline.base.clone(), viewers.clone());
        closed_loop(args.concurrency, size.seconds, move |worker, i| {
            let viewer = viewers[worker % viewers.len()].id;
            let (video, action) = ingest_like(worker, i);
            let form = [
                ("user_id", viewer.to_string()),
                ("video_id", video),
                ("action_type", action),
            ];
            let req = client
                .post(format!("{base}/direct/like"))
                .form(&form)
                .send();
            async move { ok_envelope(req.await).await }
        })
        .await
    };
    eprintln!("bench: waiting for the projections");
    wait_caught_up(client, base).await?;
    report.results.ingest = Some(ingest.stats());
    report.results.ingest_direct_write = Some(direct.stats());
    report.results.ingest_ratio = Some(round3(ingest.rate() / direct.rate().max(1e-9)));
    report.rows.push(Row::ratio(
        "ingest like/unlike (requests/s, durable)",
        ingest.rate(),
        direct.rate(),
        "≥ 10× direct write",
    ));
    if groups.commits > 0.0 {
        let mean = groups.events / groups.commits;
        report.results.log_group_commit_mean_events = Some(round3(mean));
        report.results.log_group_commit_buckets = Some(
            groups
                .buckets
                .iter()
                .map(|(le, n)| GroupCommitBucket {
                    le: le.clone(),
                    commits: *n,
                })
                .collect::<Vec<_>>(),
        );
        report.rows.push(Row::alone(
            "embedded log during ingest: events per group commit (mean; commits)",
            format!("{mean:.1}; {:.0}", groups.commits),
            "groups under load",
        ));
    }
    report.results.ingest_vs_ceiling =
        Some(report.vs_ceiling("ingest", ingest.rate(), "≥ 0.5× ceiling"));
    // The same events appended straight to the log adapter (no HTTP), as many at once.
    eprintln!("bench: raw log appends of the same events");
    let append = {
        let log = deps.log.clone();
        let users = size.users;
        closed_loop(args.concurrency, size.seconds, move |worker, i| {
            let log = log.clone();
            let (video, action) = ingest_like(worker, i);
            let video: i64 = video.parse().unwrap_or(VIDEO_BASE);
            let user = USER_BASE + (worker % users) as i64;
            let fav = Favorite {
                user_id: user,
                video_id: video,
                author_id: USER_BASE + ((video - VIDEO_BASE) as usize % users) as i64,
            };
            let body = if action == "1" {
                EventBody::VideoLiked(fav)
            } else {
                EventBody::VideoUnliked(fav)
            };
            async move { log.append(&[Envelope::new(user, body)]).await.is_ok() }
        })
        .await
    };
    wait_caught_up(client, base).await?;
    let vs_append = ingest.rate() / append.rate().max(1e-9);
    report.results.log_append = Some(append.stats());
    report.results.ingest_vs_log_append = Some(round3(vs_append));
    if ctx.config.kafka_brokers.is_some() {
        report.results.kafka_ingest_vs_produce = Some(round3(vs_append));
    }
    report.rows.push(Row::ratio(
        "ingest vs raw appends of the same events to the log (no HTTP)",
        ingest.rate(),
        append.rate(),
        "≥ 0.5× raw produce (Kafka)",
    ));
    Ok(())
}

/// The embedded log's group-commit histogram (`titok_log_group_commit_events`): commits, events
/// and cumulative bucket counts; all zero on Kafka, which has no such series.
#[derive(Default)]
struct GroupCommits {
    commits: f64,
    events: f64,
    buckets: Vec<(String, f64)>,
}

impl GroupCommits {
    fn since(self, before: &GroupCommits) -> GroupCommits {
        GroupCommits {
            commits: self.commits - before.commits,
            events: self.events - before.events,
            buckets: self
                .buckets
                .into_iter()
                .map(|(le, n)| {
                    let was = before
                        .buckets
                        .iter()
                        .find(|(l, _)| *l == le)
                        .map_or(0.0, |(_, n)| *n);
                    (le, n - was)
                })
                .collect(),
        }
    }
}

async fn group_commits(client: &reqwest::Client, base: &str) -> anyhow::Result<GroupCommits> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let mut out = GroupCommits::default();
    for sample in titok_kit::metrics::samples(&text) {
        let Some(rest) = sample.name.strip_prefix("titok_log_group_commit_events") else {
            continue;
        };
        match rest {
            "_count" => out.commits = sample.value,
            "_sum" => out.events = sample.value,
            "_bucket" => {
                if let Some(le) = titok_kit::metrics::label(sample.labels, "le") {
                    out.buckets.push((le.to_owned(), sample.value));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}
