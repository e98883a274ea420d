//! What every scenario needs: the running system ([`Ctx`]), the `titok` binary the split roles are
//! started from, the wait until the projections caught up, one series of the server's
//! `/metrics`, and this machine and process (CPU model, memory, resident size).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use titok::Config;

use crate::dataset::{Size, Viewer};
use crate::BenchArgs;

/// What every scenario needs: the running system's ports, an HTTP client, the data set's viewers.
pub(crate) struct Ctx {
    pub(crate) args: BenchArgs,
    pub(crate) size: Size,
    pub(crate) config: Config,
    pub(crate) deps: titok_projectors::ProjectorDeps,
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
    pub(crate) viewers: Arc<Vec<Viewer>>,
}

/// The `titok` binary: `--server-bin`, else `titok` beside this executable.
pub(crate) fn server_binary(
    given: &Option<std::path::PathBuf>,
) -> anyhow::Result<std::path::PathBuf> {
    if let Some(path) = given {
        return Ok(path.clone());
    }
    let exe = std::env::current_exe()?;
    let sibling = exe.with_file_name(format!("titok{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        sibling.exists(),
        "{} is missing: build it (`cargo build --release`) or pass --server-bin",
        sibling.display()
    );
    Ok(sibling)
}

pub(crate) async fn wait_caught_up(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/readyz?max_lag=0")).send().await {
            if r.status() == 200 {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("projections did not catch up within an hour")
}

/// The sum of a Prometheus series of the server; an error when `/metrics` does not answer or the
/// series is absent (a missing series must not read as 0).
pub(crate) async fn server_metric(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    labels: &[&str],
) -> anyhow::Result<f64> {
    let resp = client.get(format!("{base}/metrics")).send().await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "/metrics answered {}",
        resp.status()
    );
    let text = resp.text().await?;
    titok_kit::metrics::sum(&text, name, labels)
        .with_context(|| format!("no series {name}{labels:?} in /metrics"))
}

pub(crate) fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cpus} cores ({model}), {mem_gib:.0} GiB")
}

/// This process's resident memory, MiB (Linux).
pub(crate) fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
