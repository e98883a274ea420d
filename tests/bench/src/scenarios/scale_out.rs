//! Scale-out: the same events folded by one, then two `titok projectors` processes (real services
//! only).

use std::time::{Duration, Instant};

use anyhow::Context;
use rand::{Rng, SeedableRng};
use titok::Config;
use titok_events::{Envelope, EventBody, Favorite};
use titok_kit::launch::command_without_settings;

use crate::context::{server_binary, Ctx};
use crate::dataset::{Size, USER_BASE, VIDEO_BASE};
use crate::report::{Report, Row};
use crate::BenchArgs;

/// The scale-out row (real services only).
pub(crate) async fn scale_out_row(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let Ctx {
        args, size, config, ..
    } = ctx;
    eprintln!("bench: scale-out");
    match scale_out(config, size, args).await? {
        Some((one, two)) => {
            report.results.scale_out_1_instance_events_per_s = Some(one.round());
            report.results.scale_out_2_instances_events_per_s = Some(two.round());
            report.rows.push(Row::ratio(
                "projector instances (events/s, 4 partitions): 2 vs 1",
                two,
                one,
                "reported",
            ));
        }
        None => report.rows.push(Row::alone(
            "scale-out (1 vs 2 projector instances)",
            "not run",
            "needs --kafka-brokers, --mysql-url, --redis-url",
        )),
    }
    Ok(())
}

/// Scenario 6 (real backends only): the same events in Kafka (4 partitions) folded into a fresh
/// MySQL database by one, then by two `titok projectors` processes; events/s of each.
async fn scale_out(
    config: &Config,
    size: &Size,
    args: &BenchArgs,
) -> anyhow::Result<Option<(f64, f64)>> {
    let (Some(url), Some(_), Some(_)) =
        (&config.mysql_url, &config.redis_url, &config.kafka_brokers)
    else {
        return Ok(None);
    };
    let n = (size.likes / 5).max(5_000);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let events: Vec<Envelope> = (0..n)
        .map(|_| {
            let user = USER_BASE + rng.gen_range(0..size.users) as i64;
            let v = rng.gen_range(0..size.videos);
            Envelope::new(
                user,
                EventBody::VideoLiked(Favorite {
                    user_id: user,
                    video_id: VIDEO_BASE + v as i64,
                    author_id: USER_BASE + (v % size.users) as i64,
                }),
            )
        })
        .collect();
    let (base, _) = url
        .rsplit_once('/')
        .context("--mysql-url needs a database")?;
    let mut rates = Vec::new();
    for instances in [1, 2] {
        // Each run has its own topics, consumer groups, database and Redis keys.
        let mut settings = config.kafka_settings().context("kafka")?;
        settings.namespace = format!("{}so{instances}", config.namespace);
        settings.partitions = 4;
        let log = titok_adapters::kafka_log::KafkaLog::connect(settings.clone()).await?;
        for chunk in events.chunks(2000) {
            titok_ports::log::EventLog::append(&log, chunk)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let db_url = format!("{base}/{}", settings.namespace);
        let pool = titok_adapters::store::mysql_any(&db_url, 2).await?;
        let applied = || async {
            let rows: Result<Vec<(String, i64)>, _> = sqlx::query_as(
                "SELECT projection, next_offset FROM projection_offsets WHERE projection = 'favorites'",
            )
            .fetch_all(&pool)
            .await;
            rows.map(|rows| rows.iter().map(|r| r.1).sum::<i64>())
                .unwrap_or(0)
        };
        let started = Instant::now();
        let deadline = started + Duration::from_secs(1800);
        let mut children = Vec::new();
        for i in 0..instances {
            let mut cmd = command_without_settings(server_binary(&args.server_bin)?);
            cmd.arg("projectors")
                .args(["--listen", "127.0.0.1:0", "--partitions", "4"])
                .args(["--namespace", &settings.namespace])
                .args(["--kafka-brokers", &settings.brokers])
                .args(["--mysql-url", &db_url])
                .args([
                    "--redis-url",
                    config.redis_url.as_deref().unwrap_or_default(),
                ])
                .args([
                    "--token-secret",
                    config.token_secret.as_deref().unwrap_or_default(),
                ])
                .arg("--data-dir")
                .arg(config.data_dir.join(format!("so{instances}-{i}")))
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .kill_on_drop(true);
            children.push(cmd.spawn().context("start a projector process")?);
            // The next instance joins once this one consumes (joining a group together with a
            // member that is still starting is slow on some brokers).
            if i + 1 < instances {
                while applied().await == 0 {
                    anyhow::ensure!(Instant::now() < deadline, "scale-out run did not start");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        while applied().await < n as i64 {
            anyhow::ensure!(Instant::now() < deadline, "scale-out run did not finish");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        rates.push(n as f64 / started.elapsed().as_secs_f64());
        for mut child in children {
            let _ = child.kill().await;
        }
    }
    Ok(Some((rates[0], rates[1])))
}
