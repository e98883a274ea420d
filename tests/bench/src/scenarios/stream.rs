//! Live push (`/douyin/stream/`): send → received on the stream at a steady message rate,
//! beside a client polling the chat every second for the same messages; then idle streams held
//! by a `titok` process of their own (so that only its memory counts): resident memory per
//! stream and CPU while idle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::context::{server_binary, server_metric, Ctx};
use crate::dataset::Viewer;
use crate::load::{histogram, ms};
use crate::report::{Report, Row};
use crate::scenarios::topology::process_ticks;

/// Messages per second of the push phase.
const RATE: u64 = 200;

/// When each message (by its number) arrived.
type Arrivals = Arc<Mutex<HashMap<u64, Instant>>>;

pub(crate) async fn stream(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    eprintln!("bench: live push");
    push_latency(ctx, report).await?;
    eprintln!("bench: idle streams");
    idle_streams(ctx, report).await
}

/// A client of no overall timeout (a stream lasts as long as it is read).
fn stream_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()?)
}

/// Open `viewer`'s stream at `base`; returns once its `ready` event came.
async fn open(
    client: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<reqwest::Response> {
    let mut response = client
        .get(format!("{base}/douyin/stream/"))
        .query(&[("token", token)])
        .send()
        .await?;
    anyhow::ensure!(
        response.status() == 200,
        "stream refused: HTTP {}",
        response.status()
    );
    let mut seen = String::new();
    while !seen.contains("event: ready") {
        let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk())
            .await
            .context("no ready event within 30 s")??
            .context("the stream ended before ready")?;
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    Ok(response)
}

/// Read `response`'s events until it ends, noting the arrival of each message `m<N>`.
async fn note_messages(mut response: reqwest::Response, arrivals: Arrivals) {
    let mut buffer = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let now = Instant::now();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if !frame.contains("event: message") {
                continue;
            }
            let data = frame.lines().find_map(|l| l.strip_prefix("data: "));
            let data: Option<Value> = data.and_then(|d| serde_json::from_str(d).ok());
            if let Some(n) = message_number(data.as_ref().map(|d| &d["content"])) {
                arrivals
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(n)
                    .or_insert(now);
            }
        }
    }
}

fn message_number(content: Option<&Value>) -> Option<u64> {
    content?.as_str()?.strip_prefix('m')?.parse().ok()
}

/// Poll `me`'s chat with `other` every second, noting when each message was first seen.
async fn poll_messages(
    client: reqwest::Client,
    base: String,
    me: Viewer,
    other: i64,
    arrivals: Arrivals,
    until: tokio::time::Instant,
) {
    let mut latest = 0i64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while tokio::time::Instant::now() < until {
        tick.tick().await;
        let reply = client
            .get(format!("{base}/douyin/message/chat/"))
            .query(&[
                ("token", me.token.clone()),
                ("to_user_id", other.to_string()),
                ("pre_msg_time", latest.to_string()),
            ])
            .send()
            .await;
        let Ok(reply) = reply else { continue };
        let Ok(body) = reply.json::<Value>().await else {
            continue;
        };
        let now = Instant::now();
        for m in body["message_list"].as_array().into_iter().flatten() {
            latest = latest.max(m["create_time"].as_i64().unwrap_or(0));
            if let Some(n) = message_number(Some(&m["content"])) {
                arrivals
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(n)
                    .or_insert(now);
            }
        }
    }
}

/// `RATE` messages/s for the phase's seconds between 8 pairs of viewers: each recipient holds a
/// stream and also polls its chat every second; send → arrival on each.
async fn push_latency(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let Ctx {
        size,
        client,
        base,
        viewers,
        ..
    } = ctx;
    let pairs: Vec<(Viewer, Viewer)> = viewers
        .chunks(2)
        .filter(|p| p.len() == 2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    let streams = stream_client()?;
    let pushed: Arrivals = Arc::default();
    let polled: Arrivals = Arc::default();
    let mut readers = Vec::new();
    for (_, to) in &pairs {
        let response = open(&streams, base, &to.token).await?;
        readers.push(tokio::spawn(note_messages(response, pushed.clone())));
    }
    let count = RATE * size.seconds;
    let until = tokio::time::Instant::now() + Duration::from_secs(size.seconds + 3);
    let mut pollers = Vec::new();
    for (from, to) in &pairs {
        pollers.push(tokio::spawn(poll_messages(
            client.clone(),
            base.clone(),
            to.clone(),
            from.id,
            polled.clone(),
            until,
        )));
        // Pollers spread over the second, as independent clients would be.
        tokio::time::sleep(Duration::from_millis(1000 / pairs.len().max(1) as u64)).await;
    }
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let started = tokio::time::Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..count {
        tokio::time::sleep_until(started + Duration::from_secs_f64(n as f64 / RATE as f64)).await;
        let (from, to) = &pairs[n as usize % pairs.len()];
        let form = [
            ("token", from.token.clone()),
            ("to_user_id", to.id.to_string()),
            ("action_type", "1".to_owned()),
            ("content", format!("m{n}")),
        ];
        let request = client
            .post(format!("{base}/douyin/message/action/"))
            .form(&form);
        let sent = sent.clone();
        sends.spawn(async move {
            let at = Instant::now();
            let acked = match request.send().await {
                Ok(r) => r.json::<Value>().await.is_ok_and(|b| b["status_code"] == 0),
                Err(_) => false,
            };
            if acked {
                sent.lock().unwrap_or_else(|e| e.into_inner()).insert(n, at);
            }
        });
    }
    while sends.join_next().await.is_some() {}
    // Every poller has polled at least once after the last send.
    for poller in pollers {
        let _ = poller.await;
    }
    for reader in readers {
        reader.abort();
    }
    let sent = sent.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (pushed, polled) = (
        pushed.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        polled.lock().unwrap_or_else(|e| e.into_inner()).clone(),
    );
    let (mut push_h, mut poll_h) = (histogram(), histogram());
    let mut missing = 0u64;
    for (n, at) in &sent {
        match pushed.get(n) {
            Some(t) => {
                let _ = push_h.record(t.saturating_duration_since(*at).as_micros().max(1) as u64);
            }
            None => missing += 1,
        }
        if let Some(t) = polled.get(n) {
            let _ = poll_h.record(t.saturating_duration_since(*at).as_micros().max(1) as u64);
        }
    }
    anyhow::ensure!(!sent.is_empty(), "no message was acknowledged");
    anyhow::ensure!(
        missing == 0,
        "{missing} of {} acknowledged messages never reached their stream",
        sent.len()
    );
    let r = &mut report.results;
    r.stream_messages = Some(sent.len() as u64);
    r.stream_push_p50_ms = Some(ms(&push_h, 0.5));
    r.stream_push_p99_ms = Some(ms(&push_h, 0.99));
    r.stream_poll_p50_ms = Some(ms(&poll_h, 0.5));
    r.stream_poll_p99_ms = Some(ms(&poll_h, 0.99));
    // On Kafka the target is relative to the broker's produce → consume floor (lag scenario).
    let floor = r
        .broker_floor_p99_ms
        .filter(|f| *f > 0.0 && ctx.config.kafka_brokers.is_some());
    if let Some(floor) = floor {
        r.stream_push_p99_vs_broker_floor = Some(ms(&push_h, 0.99) / floor);
    }
    report.rows.push(Row::new(
        format!("chat message send → seen, {RATE}/s: push (stream) vs 1 s polling, p50 / p99 ms"),
        format!("{:.1} / {:.1}", ms(&push_h, 0.5), ms(&push_h, 0.99)),
        format!("{:.0} / {:.0}", ms(&poll_h, 0.5), ms(&poll_h, 0.99)),
        format!(
            "{:.0}× sooner (p50)",
            ms(&poll_h, 0.5) / ms(&push_h, 0.5).max(1e-3)
        ),
        match floor {
            Some(f) => format!("p99 ≤ 3× broker floor ({:.0} ms)", 3.0 * f),
            None => "p99 ≤ 50 ms".into(),
        },
    ));
    Ok(())
}

/// Resident memory of process `pid`, KiB (Linux).
fn rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

/// Idle streams on a `titok` of their own (embedded): resident memory per stream, CPU while
/// nothing happens.
async fn idle_streams(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let n: usize = if ctx.args.quick { 2_000 } else { 10_000 };
    let dir = tempfile::tempdir()?;
    let mut command =
        titok_kit::launch::command_without_settings(server_binary(&ctx.args.server_bin)?);
    command
        .args([
            "serve",
            "--no-sample",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .args(["--streams", "1000000", "--streams-per-user", "1000000"])
        .env("RUST_LOG", "warn");
    let (child, base) =
        titok_kit::launch::spawn_listening(command, Duration::from_secs(60)).await?;
    let pid = child.id().context("the server's pid")?;
    let client = stream_client()?;
    let user: Value = client
        .post(format!("{base}/douyin/user/register/"))
        .form(&[("username", "idle"), ("password", "idle-streams")])
        .send()
        .await?
        .json()
        .await?;
    let token = user["token"].as_str().context("token")?.to_owned();
    // The first stream starts the hub (its tail of the log, its ring): not a per-stream cost.
    let mut held = vec![open(&client, &base, &token).await?];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let opened = Instant::now();
    for batch in 0..n.div_ceil(500) {
        let mut opening = tokio::task::JoinSet::new();
        for _ in 0..500.min(n - batch * 500) {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            opening.spawn(async move { open(&client, &base, &token).await });
        }
        while let Some(stream) = opening.join_next().await {
            held.push(stream??);
        }
    }
    let open_seconds = opened.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid);
    let gauge = server_metric(&client, &base, "titok_streams_open", &[]).await?;
    anyhow::ensure!(
        gauge as usize == n + 1,
        "the server holds {gauge} streams, not {}",
        n + 1
    );
    let idle = if ctx.args.quick { 3 } else { 10 };
    let ticks = process_ticks(pid);
    tokio::time::sleep(Duration::from_secs(idle)).await;
    let cpu_pct = (process_ticks(pid) - ticks) as f64 / 100.0 / idle as f64 * 100.0;
    drop(held);
    drop(child);
    let per_stream = (after - before) / n as f64;
    let r = &mut report.results;
    r.stream_idle_count = Some(n as u64);
    r.stream_idle_kib_per_stream = Some(per_stream);
    r.stream_idle_cpu_pct = Some(cpu_pct);
    r.stream_idle_open_per_s = Some(n as f64 / open_seconds.max(1e-9));
    report.rows.push(Row::alone(
        format!("{n} idle streams: server memory per stream"),
        format!("{per_stream:.1} KiB"),
        "≤ 20 KiB",
    ));
    report.rows.push(Row::alone(
        format!("{n} idle streams: server CPU over {idle} s"),
        format!("{cpu_pct:.1} % of a core"),
        "< 5 %",
    ));
    Ok(())
}
