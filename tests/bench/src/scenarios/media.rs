//! Media: uploads streamed through the command API into the blob store against raw multipart
//! writes of the same bytes to the same store (the store the server runs on: its data dir, or
//! `--blob-store s3://…`), one-range reads through the query API's `/static` against reads
//! straight from the store, and this process's memory while many large uploads are in flight.
//! The server runs in this process, so the memory row is the server's (the clients' bodies are
//! made on the fly in 256 KiB chunks and hold next to nothing).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde_json::Value;
use titok_adapters::blobs::ObjectBlobs;
use titok_ports::blobs::{BlobStore, ByteRange};

use crate::context::{rss_mib, Ctx};
use crate::load::{histogram, ms};
use crate::report::{round3, MediaStats, Report, Row};

const MIB: usize = 1024 * 1024;
const CHUNK: usize = 256 * 1024;

/// Filler byte `at` of a bench video (after the sample's bytes).
fn filler(at: usize, n: usize) -> bytes::Bytes {
    bytes::Bytes::from(vec![(at % 251) as u8; n])
}

/// A video of `size` bytes as a stream made on the fly: the sample's bytes (so it sniffs as an
/// MP4), then filler, in 256 KiB chunks.
fn video_body(size: usize) -> reqwest::Body {
    let stream = futures::stream::unfold(0usize, move |sent| async move {
        if sent >= size {
            return None;
        }
        let chunk = if sent == 0 {
            let head = titok::SAMPLE_VIDEO;
            bytes::Bytes::from_static(&head[..head.len().min(size)])
        } else {
            filler(sent, CHUNK.min(size - sent))
        };
        let next = sent + chunk.len();
        Some((Ok::<_, std::io::Error>(chunk), next))
    });
    reqwest::Body::wrap_stream(stream)
}

/// One upload through the command API, the token first (so the per-user bound applies).
async fn upload(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    size: usize,
) -> anyhow::Result<()> {
    let data = reqwest::multipart::Part::stream_with_length(video_body(size), size as u64)
        .file_name("bench.mp4");
    let form = reqwest::multipart::Form::new()
        .text("token", token.to_owned())
        .text("title", "bench upload")
        .part("data", data);
    let body: Value = client
        .post(format!("{base}/douyin/publish/action/"))
        .multipart(form)
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(body["status_code"] == 0, "upload refused: {body}");
    Ok(())
}

/// The same bytes written straight to the store as one multipart upload.
async fn raw_write(store: &ObjectBlobs, path: &str, size: usize) -> anyhow::Result<()> {
    let mut writer = store.create(path).await?;
    let mut sent = 0;
    while sent < size {
        let chunk = if sent == 0 {
            bytes::Bytes::from_static(titok::SAMPLE_VIDEO)
        } else {
            filler(sent, CHUNK.min(size - sent))
        };
        sent += chunk.len();
        writer.write(chunk).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// MiB/s of `n` jobs of `size` bytes each run at once.
async fn at_once<F, Fut>(n: usize, size: usize, job: F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    for result in futures::future::join_all((0..n).map(job)).await {
        result?;
    }
    Ok((n * size) as f64 / MIB as f64 / started.elapsed().as_secs_f64())
}

/// Reads of one MiB at spread offsets, `concurrency` at a time: (MiB/s, p50 ms).
async fn range_reads<F, Fut>(
    reads: usize,
    concurrency: usize,
    read: F,
) -> anyhow::Result<(f64, f64)>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    let started = Instant::now();
    let mut latency = histogram();
    let mut bytes = 0;
    let mut results = futures::stream::iter((0..reads).map(|i| {
        let one = read(i);
        async move {
            let at = Instant::now();
            let n = one.await?;
            anyhow::Ok((n, at.elapsed()))
        }
    }))
    .buffer_unordered(concurrency);
    while let Some(result) = results.next().await {
        let (n, took) = result?;
        bytes += n;
        latency.record(took.as_micros() as u64).ok();
    }
    let rate = bytes as f64 / MIB as f64 / started.elapsed().as_secs_f64();
    Ok((rate, ms(&latency, 0.5)))
}

/// Where read `i` starts: spread over the object, one MiB from its end at most.
fn offset(i: usize, size: usize) -> u64 {
    ((i * 7_919 * 4096) % (size - MIB)) as u64
}

pub(crate) async fn media(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let quick = ctx.args.quick;
    let (uploads, upload_mib) = if quick { (4, 8) } else { (8, 32) };
    let (flood, flood_mib) = if quick { (8, 16) } else { (16, 48) };
    let reads = if quick { 32 } else { 256 };
    eprintln!("bench: media ({uploads} × {upload_mib} MiB uploads, {flood} × {flood_mib} MiB for memory, {reads} range reads)");
    // Uploads of tens of MiB take longer than the other scenarios' 30 s client timeout on S3.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    let base = ctx.base.as_str();
    let store = ObjectBlobs::open(
        ctx.config.blob_store.as_deref(),
        ctx.config.data_dir.join("blobs"),
    )
    .map_err(anyhow::Error::msg)?;
    let viewers = ctx.viewers.clone();
    let size = upload_mib * MIB;

    // Raw multipart writes first (the store warmed the same way for both), then the API.
    let raw = at_once(uploads, size, |i| {
        let store = store.clone();
        async move { raw_write(&store, &format!("bench-raw/{i}.mp4"), size).await }
    })
    .await
    .context("raw writes to the store")?;
    for i in 0..uploads {
        store.delete(&format!("bench-raw/{i}.mp4")).await?;
    }
    let ours = at_once(uploads, size, |i| {
        let (client, token) = (client.clone(), viewers[i % viewers.len()].token.clone());
        async move { upload(&client, base, &token, size).await }
    })
    .await
    .context("uploads through the command API")?;

    // One of those videos, read by range: through `/static` and straight from the store.
    let viewer = &viewers[0];
    let listed: Value = client
        .get(format!("{base}/douyin/publish/list/"))
        .query(&[
            ("token", viewer.token.clone()),
            ("user_id", viewer.id.to_string()),
        ])
        .send()
        .await?
        .json()
        .await?;
    let play_url = listed["video_list"][0]["play_url"]
        .as_str()
        .with_context(|| format!("no uploaded video listed: {listed}"))?
        .to_owned();
    let path = play_url
        .split_once("/static/")
        .map(|(_, p)| p.to_owned())
        .context("play_url is not served by the query API")?;
    let concurrency = 8;
    let (play, play_p50) = range_reads(reads, concurrency, |i| {
        let (client, url) = (client.clone(), play_url.clone());
        async move {
            let start = offset(i, size);
            let resp = client
                .get(&url)
                .header("range", format!("bytes={start}-{}", start + MIB as u64 - 1))
                .send()
                .await?;
            anyhow::ensure!(
                resp.status() == 206,
                "range read answered {}",
                resp.status()
            );
            Ok(resp.bytes().await?.len())
        }
    })
    .await?;
    let (direct, direct_p50) = range_reads(reads, concurrency, |i| {
        let (store, path) = (store.clone(), path.clone());
        async move {
            let start = offset(i, size);
            let range = ByteRange::Inclusive(start, start + MIB as u64 - 1);
            let mut body = store.get(&path, Some(range)).await?.body;
            let mut n = 0;
            while let Some(chunk) = body.next().await {
                n += chunk?.len();
            }
            Ok(n)
        }
    })
    .await?;

    // Memory: many large uploads at once, sampled every 10 ms.
    let before = rss_mib();
    let peak = Arc::new(AtomicU64::new(before.to_bits()));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                let now = rss_mib();
                if now > f64::from_bits(peak.load(Ordering::Relaxed)) {
                    peak.store(now.to_bits(), Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let flood_result = at_once(flood, flood_mib * MIB, |i| {
        let (client, token) = (client.clone(), viewers[i % viewers.len()].token.clone());
        async move { upload(&client, base, &token, flood_mib * MIB).await }
    })
    .await;
    sampling.store(false, Ordering::Relaxed);
    sampler.await?;
    flood_result.context("the memory phase's uploads")?;
    let growth = f64::from_bits(peak.load(Ordering::Relaxed)) - before;

    let store_name = store.describe();
    report.results.media = Some(MediaStats {
        store: store_name,
        uploads,
        upload_mib,
        range_reads: reads,
        flood,
        flood_mib,
        play_p50_ms: round3(play_p50),
        direct_p50_ms: round3(direct_p50),
    });
    report.results.media_upload_mib_per_s = Some(round3(ours));
    let play_ratio = play / direct.max(1e-9);
    report.results.media_upload_vs_raw = Some(round3(ours / raw.max(1e-9)));
    report.results.media_play_mib_per_s = Some(round3(play));
    report.results.media_play_vs_direct = Some(round3(play_ratio));
    report.results.media_upload_rss_growth_mib = Some(growth.round());
    report.rows.push(Row::ratio(
        &format!("media: {uploads} uploads of {upload_mib} MiB at once through the API vs raw multipart writes to the store (MiB/s)"),
        ours,
        raw,
        "≥ 0.7×",
    ));
    report.rows.push(Row::new(
        format!("media: 1 MiB Range GETs, {concurrency} at once, through /static vs straight from the store (MiB/s; p50 ms)"),
        format!("{play:.0}; p50 {play_p50:.1}"),
        format!("{direct:.0}; p50 {direct_p50:.1}"),
        format!("{play_ratio:.2}×"),
        "≥ 0.7×".into(),
    ));
    report.rows.push(Row::alone(
        format!("media: RSS growth during {flood} uploads of {flood_mib} MiB at once (MiB)"),
        format!("{growth:.0}"),
        "≤ 256 MiB",
    ));
    Ok(())
}
