//! An external load generator for the ceiling comparisons: [wrk](https://github.com/wg/wrk), when
//! it is installed (Debian's `wrk`; `scripts/services.sh` installs it for the tests).
//!
//! The bench's own client (reqwest, in this process, on the same cores as the server) costs more
//! per reply the larger the reply is: a 15 KB feed page costs the client several times what the
//! no-op's few bytes do, which lowers every "vs the no-op ceiling" ratio of a large reply by the
//! client's share. wrk's per-request cost is small and nearly independent of the body, so the
//! same ratios driven by wrk are closer to the server's own; both are reported.

use std::time::Duration;

use anyhow::Context;

/// Requests/s of GET `url` with `connections` connections for `seconds` (one wrk thread), or
/// `None` when wrk is not installed. A non-2xx answer or a socket error fails the measurement.
pub(crate) async fn requests_per_s(
    url: &str,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<Option<f64>> {
    let run = tokio::process::Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .args(["--timeout", "5s", url])
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(Duration::from_secs(seconds + 30), run).await {
        Err(_) => anyhow::bail!("wrk did not finish"),
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Ok(result) => result.context("run wrk")?,
    };
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "wrk failed: {text}");
    parse(&text).map(Some)
}

/// The requests/s of wrk's report; an error if any answer was not 2xx/3xx or a socket failed.
fn parse(report: &str) -> anyhow::Result<f64> {
    anyhow::ensure!(
        !report.contains("Non-2xx or 3xx responses") && !report.contains("Socket errors"),
        "wrk saw failed requests: {report}"
    );
    report
        .lines()
        .find_map(|line| line.trim().strip_prefix("Requests/sec:"))
        .and_then(|rate| rate.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's report: {report}"))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn the_rate_is_read_and_failures_refuse_the_report() {
        let ok = "Running 8s test @ http://127.0.0.1:1/\n  1 threads and 32 connections\n\
                  115093 requests in 8.00s, 1.73GB read\nRequests/sec:  14390.27\n\
                  Transfer/sec:    216.19MB\n";
        assert_eq!(parse(ok).expect("parsed"), 14390.27);
        let failed = ok.replace(
            "Requests/sec",
            "  Non-2xx or 3xx responses: 3\nRequests/sec",
        );
        assert!(parse(&failed).is_err());
        assert!(parse("nothing").is_err());
    }
}
