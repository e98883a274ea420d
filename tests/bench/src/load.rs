//! The load generators: a closed loop (`workers` clients, each sending its next request when the
//! last returned), an open loop (requests started on schedule whether or not earlier ones
//! returned), and the steady write load with read-after-write probes of the lag phases and the
//! soak — each recording latencies in an HDR histogram (µs).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::dataset::{videos, Size, Viewer, VIDEO_BASE};
use crate::report::PhaseStats;

/// Latency histogram in microseconds.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

pub(crate) fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Throughput and latency of one closed-loop phase.
pub(crate) struct Phase {
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) seconds: f64,
    pub(crate) latency: Histogram<u64>,
}

impl Phase {
    pub(crate) fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds.max(1e-9)
    }

    /// Its numbers in the JSON report.
    pub(crate) fn stats(&self) -> PhaseStats {
        PhaseStats {
            requests_per_s: self.rate().round(),
            ok: self.ok,
            failed: self.failed,
            p50_ms: ms(&self.latency, 0.5),
            p99_ms: ms(&self.latency, 0.99),
        }
    }
}

/// `workers` clients each calling `request(worker, i)` in a loop for `seconds`.
pub(crate) async fn closed_loop<F, Fut>(workers: usize, seconds: u64, request: F) -> Phase
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut handles = Vec::new();
    for worker in 0..workers {
        let request = request.clone();
        handles.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut latency) = (0, 0, histogram());
            let mut i = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                if request(worker, i).await {
                    ok += 1;
                    let _ = latency.record(t.elapsed().as_micros().max(1) as u64);
                } else {
                    failed += 1;
                }
                i += 1;
            }
            (ok, failed, latency)
        }));
    }
    let mut phase = Phase {
        ok: 0,
        failed: 0,
        seconds: 0.0,
        latency: histogram(),
    };
    for h in handles {
        if let Ok((ok, failed, latency)) = h.await {
            phase.ok += ok;
            phase.failed += failed;
            let _ = phase.latency.add(latency);
        }
    }
    phase.seconds = started.elapsed().as_secs_f64();
    phase
}

/// `rate` requests per second for `seconds`, each started on its schedule whether or not earlier
/// ones returned, its latency counted from the scheduled start (so a stall counts against every
/// request it delays, not just one). At most `MAX_OUTSTANDING` in flight: a request due while
/// that many are outstanding is not sent, and counted as failed.
pub(crate) async fn open_loop<F, Fut>(rate: u64, seconds: u64, request: F) -> Phase
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    const MAX_OUTSTANDING: usize = 512;
    let request = Arc::new(request);
    let started = tokio::time::Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut running = tokio::task::JoinSet::new();
    let mut phase = Phase {
        ok: 0,
        failed: 0,
        seconds: 0.0,
        latency: histogram(),
    };
    let settle =
        |phase: &mut Phase, done: Result<(bool, Duration), tokio::task::JoinError>| match done {
            Ok((true, took)) => {
                phase.ok += 1;
                let _ = phase.latency.record(took.as_micros().max(1) as u64);
            }
            _ => phase.failed += 1,
        };
    for i in 0..rate * seconds {
        let due = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        while let Some(done) = running.try_join_next() {
            settle(&mut phase, done);
        }
        if running.len() >= MAX_OUTSTANDING {
            phase.failed += 1;
            continue;
        }
        let request = request.clone();
        running.spawn(async move {
            let ok = request((i % 1024) as usize, i).await;
            (ok, due.elapsed())
        });
    }
    while let Some(done) = running.join_next().await {
        settle(&mut phase, done);
    }
    phase.seconds = started.elapsed().as_secs_f64();
    phase
}

pub(crate) async fn ok_envelope(resp: reqwest::Result<reqwest::Response>) -> bool {
    /// Only the status is read: the rest is checked to be JSON but not built into values, so
    /// that the client (on the same cores as the server) does not pay more for a large reply,
    /// such as a feed page, than a tool like wrk would.
    #[derive(serde::Deserialize)]
    struct Status {
        status_code: i64,
    }
    match resp {
        Ok(r) if r.status().is_success() => r
            .json::<Status>()
            .await
            .is_ok_and(|status| status.status_code == 0),
        _ => false,
    }
}

/// Steady writes at `size.rate` for `size.seconds`; meanwhile one client likes and immediately
/// reads its favorite list (the read waits until the like is applied): ack → visible. Returns that
/// and the latency of plain reads with nothing to wait for.
pub(crate) async fn lag_phase(
    client: &reqwest::Client,
    base: &str,
    viewers: &Arc<Vec<Viewer>>,
    size: &Size,
) -> (Histogram<u64>, Histogram<u64>, Arc<LoadOutcome>) {
    let deadline = Instant::now() + Duration::from_secs(size.seconds);
    let outcome = Arc::new(LoadOutcome::default());
    let load = {
        let (client, base, viewers) = (client.clone(), base.to_owned(), viewers.clone());
        let rate = size.rate;
        let outcome = outcome.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let per_tick = (rate / 100).max(1);
            let mut n: u64 = 0;
            let inflight = Arc::new(tokio::sync::Semaphore::new(512));
            while Instant::now() < deadline {
                tick.tick().await;
                for _ in 0..per_tick {
                    n += 1;
                    let Ok(permit) = inflight.clone().try_acquire_owned() else {
                        outcome.skipped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let viewer = &viewers[2 + (n as usize % (viewers.len() - 2))];
                    let form = [
                        ("token", viewer.token.clone()),
                        ("video_id", (VIDEO_BASE + (n % videos()) as i64).to_string()),
                        (
                            "action_type",
                            if (n / 997) & 1 == 0 { "1" } else { "2" }.into(),
                        ),
                    ];
                    let req = client
                        .post(format!("{base}/douyin/favorite/action/"))
                        .form(&form)
                        .send();
                    let outcome = outcome.clone();
                    tokio::spawn(async move {
                        let counter = if ok_envelope(req.await).await {
                            &outcome.acked
                        } else {
                            &outcome.failed
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        drop(permit);
                    });
                }
            }
            // Every request of this phase answered before it counts.
            let _ = inflight.acquire_many(512).await;
        })
    };
    let (mut lag, mut plain) = (histogram(), histogram());
    let (sampler, reader) = (&viewers[0], &viewers[1]);
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let video = (VIDEO_BASE + ((n * 31) % videos()) as i64).to_string();
        let form = [
            ("token", sampler.token.clone()),
            ("video_id", video),
            ("action_type", if n % 2 == 0 { "2" } else { "1" }.into()),
        ];
        let acked = client
            .post(format!("{base}/douyin/favorite/action/"))
            .form(&form)
            .send()
            .await;
        let t0 = Instant::now();
        if !ok_envelope(acked).await {
            continue;
        }
        let read = client
            .get(format!("{base}/douyin/favorite/list/"))
            .query(&[
                ("token", sampler.token.clone()),
                ("user_id", sampler.id.to_string()),
            ])
            .send()
            .await;
        if let Ok(r) = read {
            let stale = r.headers().contains_key("x-titok-stale");
            if r.status().is_success() && !stale {
                let _ = lag.record(t0.elapsed().as_micros().max(1) as u64);
            }
        }
        let t = Instant::now();
        let plain_read = client
            .get(format!("{base}/douyin/favorite/list/"))
            .query(&[
                ("token", reader.token.clone()),
                ("user_id", reader.id.to_string()),
            ])
            .send()
            .await;
        if ok_envelope(plain_read).await {
            let _ = plain.record(t.elapsed().as_micros().max(1) as u64);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = load.await;
    (lag, plain, outcome)
}

/// What the steady write load of a lag phase got: acknowledged, refused or failed, and not sent
/// because 512 requests were already in flight (the server fell behind the rate).
#[derive(Debug, Default)]
pub(crate) struct LoadOutcome {
    pub(crate) acked: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) skipped: AtomicU64,
}
