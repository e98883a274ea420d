//! The scaled topology (real services and haproxy only): one, then two instances of each role
//! behind the kit's [`Balancer`], each run on its own topics, database and keys with the data set
//! loaded, measured through the balancer — feed and ingest requests/s, the CPU split of each phase
//! (from /proc), and read-after-write probes counted stale.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use titok_kit::launch::{command_without_settings, spawn_listening};
use titok_kit::topology::each_role;
use titok_kit::Balancer;

use crate::context::{server_binary, wait_caught_up, Ctx};
use crate::dataset::{dataset, ingest_like, register_viewers, VIDEO_BASE};
use crate::load::{closed_loop, ok_envelope, Phase};
use crate::report::{CpuSplit, Report, Row, TopologyStats};

/// Scenario 7 (real backends and haproxy only): the topology of docs/scaling-out.md — one, then
/// two instances of each role behind haproxy, each on its own topics, database and keys with the
/// data set loaded — measured through the balancer: feed and ingest requests/s, the CPU split of
/// each phase, and read-after-write probes (a like, then the liker's list) counted stale.
pub(crate) async fn topology_rows(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let config = &ctx.config;
    let missing = if config.mysql_url.is_none()
        || config.redis_url.is_none()
        || config.kafka_brokers.is_none()
    {
        Some("needs --kafka-brokers, --mysql-url, --redis-url")
    } else if !titok_kit::balancer::haproxy_available() {
        Some("needs haproxy")
    } else {
        None
    };
    if let Some(why) = missing {
        report.rows.push(Row::alone(
            "scaled topology (2 vs 1 instance of each role, via haproxy)",
            "not run",
            why,
        ));
        return Ok(());
    }
    eprintln!("bench: scaled topology, 1 instance of each role");
    let one = run_topology(ctx, 1).await?;
    eprintln!("bench: scaled topology, 2 instances of each role");
    let two = run_topology(ctx, 2).await?;
    for (n, run) in [(1, &one), (2, &two)] {
        eprintln!(
            "bench: {n} of each role — feed CPU: titok {:.0} %, haproxy {:.0} %, services and client {:.0} %; ingest CPU: titok {:.0} %, haproxy {:.0} %, services and client {:.0} %",
            run.feed_cpu.0, run.feed_cpu.1, run.feed_cpu.2, run.ingest_cpu.0, run.ingest_cpu.1, run.ingest_cpu.2
        );
    }
    let cpu = |(titok, haproxy, services_and_client): (f64, f64, f64)| CpuSplit {
        titok,
        haproxy,
        services_and_client,
    };
    let as_json = |run: &TopologyRun| TopologyStats {
        feed: run.feed.stats(),
        ingest: run.ingest.stats(),
        feed_cpu_percent: cpu(run.feed_cpu),
        ingest_cpu_percent: cpu(run.ingest_cpu),
        raw_probes: run.probes,
        raw_stale: run.stale,
    };
    report.results.topology_1_of_each = Some(as_json(&one));
    report.results.topology_2_of_each = Some(as_json(&two));
    report.rows.push(Row::ratio(
        "feed via haproxy (requests/s): 2 vs 1 instance of each role",
        two.feed.rate(),
        one.feed.rate(),
        "reported (2 cores)",
    ));
    report.rows.push(Row::ratio(
        "ingest via haproxy (requests/s): 2 vs 1 instance of each role",
        two.ingest.rate(),
        one.ingest.rate(),
        "reported (2 cores)",
    ));
    report.rows.push(Row::new(
        format!(
            "read-after-write via haproxy, 2 of each: stale of {} probes",
            two.probes
        ),
        two.stale.to_string(),
        one.stale.to_string(),
        "—".into(),
        "0".into(),
    ));
    Ok(())
}

/// One run of the scaled topology.
struct TopologyRun {
    feed: Phase,
    ingest: Phase,
    /// CPU of the phase, % of the machine's busy time: (titok processes, haproxy, the rest).
    feed_cpu: (f64, f64, f64),
    ingest_cpu: (f64, f64, f64),
    probes: usize,
    stale: usize,
}

/// Start `titok <role>` with `args`; its process and the address it listens on.
async fn spawn_role(
    bin: &std::path::Path,
    role: &str,
    args: &[String],
) -> anyhow::Result<(tokio::process::Child, String)> {
    // Not the bench's own TITOK_* settings (an admin port, a node id): only `args`.
    let mut command = command_without_settings(bin.to_path_buf());
    command.arg(role).args(args).env("RUST_LOG", "warn");
    let (child, base) = spawn_listening(command, Duration::from_secs(60))
        .await
        .with_context(|| format!("titok {role}"))?;
    let addr = base
        .strip_prefix("http://")
        .with_context(|| format!("unexpected address {base:?}"))?
        .to_owned();
    Ok((child, addr))
}

/// The CPU split of the time since `before` (per-process ticks, then the machine's busy ticks).
fn cpu_split(pids: &[u32], haproxy: u32, before: &(Vec<u64>, u64, u64)) -> (f64, f64, f64) {
    let titok: u64 = pids.iter().map(|p| process_ticks(*p)).sum::<u64>();
    let titok = titok.saturating_sub(before.0.iter().sum::<u64>()) as f64;
    let lb = process_ticks(haproxy).saturating_sub(before.1) as f64;
    let busy = (machine_busy_ticks().saturating_sub(before.2) as f64).max(1.0);
    let pct = |x: f64| (x / busy * 1000.0).round() / 10.0;
    (pct(titok), pct(lb), pct((busy - titok - lb).max(0.0)))
}

fn cpu_mark(pids: &[u32], haproxy: u32) -> (Vec<u64>, u64, u64) {
    (
        pids.iter().map(|p| process_ticks(*p)).collect(),
        process_ticks(haproxy),
        machine_busy_ticks(),
    )
}

async fn run_topology(ctx: &Ctx, n: usize) -> anyhow::Result<TopologyRun> {
    let Ctx {
        args,
        size,
        config,
        client,
        viewers,
        ..
    } = ctx;
    let ns = format!("{}tp{n}", config.namespace);
    let mut settings = config.kafka_settings().context("kafka")?;
    settings.namespace = ns.clone();
    let log = titok_adapters::kafka_log::KafkaLog::connect(settings.clone()).await?;
    for chunk in dataset(size, viewers).chunks(2000) {
        titok_ports::log::EventLog::append(&log, chunk)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let mysql = config.mysql_url.as_deref().unwrap_or_default();
    let (base_url, _) = mysql
        .rsplit_once('/')
        .context("--mysql-url needs a database")?;
    let dir = config.data_dir.join(&ns);
    std::fs::create_dir_all(&dir)?;
    let common: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--no-sample",
        "--trusted-proxy",
        "127.0.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--partitions".into(),
        config.partitions.to_string(),
        "--namespace".into(),
        ns.clone(),
        "--kafka-brokers".into(),
        settings.brokers.clone(),
        "--kafka-fetch-wait-ms".into(),
        config.kafka_fetch_wait_ms.to_string(),
        "--kafka-linger-ms".into(),
        config.kafka_linger_ms.to_string(),
        "--mysql-url".into(),
        format!("{base_url}/{ns}"),
        "--redis-url".into(),
        config.redis_url.clone().unwrap_or_default(),
        "--token-secret".into(),
        config.token_secret.clone().unwrap_or_default(),
        "--login-attempts-per-user".into(),
        u32::MAX.to_string(),
        "--login-attempts-per-address".into(),
        u32::MAX.to_string(),
        "--registers-per-address".into(),
        u32::MAX.to_string(),
        "--data-dir".into(),
        dir.display().to_string(),
    ])
    .chain(config.mysql_read_urls.iter().flat_map(|url| {
        let (replica, _) = url.rsplit_once('/').unwrap_or((url, ""));
        ["--mysql-read-url".to_owned(), format!("{replica}/{ns}")]
    }))
    .collect();
    let bin = server_binary(&args.server_bin)?;
    let (mut children, mut commands, mut queries) = (Vec::new(), Vec::new(), Vec::new());
    for (role, n) in each_role(n) {
        for i in 1..=n {
            let mut role_args = common.clone();
            if role == "command-api" {
                role_args.extend(["--node-id".into(), i.to_string()]);
            }
            let (child, addr) = spawn_role(&bin, role, &role_args).await?;
            match role {
                "command-api" => commands.push(addr),
                "query-api" => queries.push(addr),
                _ => {}
            }
            children.push(child);
        }
    }
    let pids: Vec<u32> = children.iter().filter_map(|c| c.id()).collect();
    let balancer = Balancer::start(&dir, &commands, &queries).await?;
    let base = format!("http://127.0.0.1:{}", balancer.port);
    // `/readyz` is asked of a query API itself: the balancer does not route it.
    let ready_at = format!("http://{}", queries[0]);
    let fans = Arc::new(register_viewers(client, &base, "fan").await?);
    wait_caught_up(client, &ready_at).await?;

    let mark = cpu_mark(&pids, balancer.pid());
    let feed = {
        let (client, url, fans) = (client.clone(), format!("{base}/douyin/feed/"), fans.clone());
        closed_loop(args.concurrency, size.seconds, move |worker, _| {
            let fan = &fans[worker % fans.len()];
            let req = client
                .get(&url)
                .query(&[("token", fan.token.clone())])
                .send();
            async move { ok_envelope(req.await).await }
        })
        .await
    };
    let feed_cpu = cpu_split(&pids, balancer.pid(), &mark);
    let mark = cpu_mark(&pids, balancer.pid());
    let ingest = {
        let (client, url, fans) = (
            client.clone(),
            format!("{base}/douyin/favorite/action/"),
            fans.clone(),
        );
        closed_loop(args.concurrency, size.seconds, move |worker, i| {
            let fan = &fans[worker % fans.len()];
            let (video, action) = ingest_like(worker, i);
            let form = [
                ("token", fan.token.clone()),
                ("video_id", video),
                ("action_type", action),
            ];
            let req = client.post(&url).form(&form).send();
            async move { ok_envelope(req.await).await }
        })
        .await
    };
    let ingest_cpu = cpu_split(&pids, balancer.pid(), &mark);
    wait_caught_up(client, &ready_at).await?;

    // Read-after-write through the balancer: each read may land on another query instance than
    // the last, and follows a write another command instance acknowledged.
    let probes = if args.quick { 100 } else { 500 };
    let mut stale = 0;
    let fan = &fans[0];
    let video = VIDEO_BASE;
    for i in 0..probes {
        let like = i % 2 == 0;
        let acked = client
            .post(format!("{base}/douyin/favorite/action/"))
            .form(&[
                ("token", fan.token.clone()),
                ("video_id", video.to_string()),
                ("action_type", if like { "1" } else { "2" }.into()),
            ])
            .send()
            .await;
        anyhow::ensure!(
            ok_envelope(acked).await,
            "probe {i}: the like was not acknowledged"
        );
        let resp = client
            .get(format!("{base}/douyin/favorite/list/"))
            .query(&[
                ("token", fan.token.clone()),
                ("user_id", fan.id.to_string()),
            ])
            .send()
            .await?;
        let marked = resp.headers().contains_key("x-titok-stale");
        let body: Value = resp.json().await?;
        let listed = body["video_list"]
            .as_array()
            .is_some_and(|l| l.iter().any(|v| v["id"] == video));
        if marked || listed != like {
            stale += 1;
        }
    }
    drop(balancer);
    for mut child in children {
        let _ = child.kill().await;
    }
    Ok(TopologyRun {
        feed,
        ingest,
        feed_cpu,
        ingest_cpu,
        probes,
        stale,
    })
}

/// CPU time (user + system) of a process so far, in clock ticks; 0 once it is gone.
pub(crate) fn process_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may hold spaces) start after the last ')'.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0)
}

/// Busy clock ticks of the whole machine so far (every CPU, all but idle and iowait).
fn machine_busy_ticks() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            let cpu = stat.lines().next()?;
            let values: Vec<u64> = cpu
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            let total: u64 = values.iter().take(8).sum();
            Some(total - values.get(3).copied().unwrap_or(0) - values.get(4).copied().unwrap_or(0))
        })
        .unwrap_or(0)
}
