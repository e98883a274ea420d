//! `titok-bench --quick` runs in the test suite so the benchmark cannot rot. It asserts that the
//! bench completes and reports every number, not how fast anything is (performance claims live in
//! the bench's own output, docs/performance.md).

use std::time::Duration;

use titok_tests::*;

#[tokio::test]
async fn the_quick_bench_runs_and_reports_every_number() {
    // Arrange
    let out = tempfile::tempdir().expect("dir");
    let json_path = out.path().join("bench.json");

    // Act
    let (ok, stdout, stderr) = run_bench(
        &["--quick", "--json", json_path.to_str().expect("utf8")],
        // ~260 s alone on tansu + MariaDB + Redis on 2 cores, longer beside the other tests.
        Duration::from_secs(600),
    )
    .await;

    // Assert
    assert!(ok, "bench failed: {stderr}\n{stdout}");
    assert!(
        stdout.contains("| scenario | titok-plus | baseline | ratio | target |"),
        "{stdout}"
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("json written"))
            .expect("json");
    for key in [
        "ingest_ratio",
        "projection_vs_raw",
        "feed_p99_ms",
        "feed_join_speedup",
        "chat_db_queries_per_idle_poll",
        "lag_p99_ms",
        "replay_events_per_s",
        "replay_vs_raw",
        "hot_key_vs_uniform",
        "light_lag_p50_ms",
        "light_plain_read_p50_ms",
        "broker_floor_p50_ms",
        "ceiling_rps",
        "ingest_vs_ceiling",
        "feed_vs_ceiling",
        "feed_anonymous_vs_ceiling",
        "feed_sql_per_page_anonymous",
        "feed_sql_per_page_token",
        "feed_index_mib",
        "ingest_vs_log_append",
        "feed_p99_login_storm_ratio",
        "feed_p99_at_2000_ms",
        "any_vs_typed",
        "media_upload_vs_raw",
        "media_play_vs_direct",
        "media_upload_rss_growth_mib",
        "stream_push_p50_ms",
        "stream_push_p99_ms",
        "stream_poll_p99_ms",
        "stream_idle_kib_per_stream",
        "stream_idle_cpu_pct",
    ] {
        let value = results[key].as_f64().unwrap_or(f64::NAN);
        assert!(
            value.is_finite() && value >= 0.0,
            "{key} = {}",
            results[key]
        );
    }
    // The ceiling comparisons driven by wrk, where it is installed (scripts/services.sh does).
    let wrk = std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok();
    for key in ["feed_vs_ceiling_wrk", "feed_anonymous_vs_ceiling_wrk"] {
        if wrk {
            let value = results[key].as_f64().unwrap_or(f64::NAN);
            assert!(value.is_finite() && value > 0.0, "{key} = {}", results[key]);
        } else {
            assert!(
                stdout.contains("| not run | — | — | needs wrk |"),
                "{stdout}"
            );
        }
    }
    for phase in [
        "ingest",
        "ingest_direct_write",
        "feed_concurrent",
        "feed_anonymous",
        "feed_sequential_single_client",
        "chat",
        "chat_sql_every_poll",
        "ceiling",
        "log_append",
        "feed_login_storm",
    ] {
        assert!(
            results[phase]["ok"].as_u64().unwrap_or(0) > 0,
            "{phase} made requests: {}",
            results[phase]
        );
        assert_eq!(
            results[phase]["failed"], 0,
            "{phase} had failed requests: {}",
            results[phase]
        );
    }
    if on_real_services() {
        let value = results["kafka_ingest_vs_produce"]
            .as_f64()
            .unwrap_or(f64::NAN);
        assert!(
            value.is_finite() && value > 0.0,
            "kafka_ingest_vs_produce = {value}"
        );
        // The scaled topology (haproxy is installed with the services): both runs made requests
        // without failures, and read-after-write held through the balancer.
        for run in ["topology_1_of_each", "topology_2_of_each"] {
            for phase in ["feed", "ingest"] {
                let phase_results = &results[run][phase];
                assert!(
                    phase_results["ok"].as_u64().unwrap_or(0) > 0 && phase_results["failed"] == 0,
                    "{run} {phase}: {phase_results}"
                );
            }
            assert_eq!(results[run]["raw_stale"], 0, "{run}: {}", results[run]);
            assert!(results[run]["raw_probes"].as_u64().unwrap_or(0) > 0);
        }
    }
    // Not a timing: idle polls must not touch the database at all.
    assert_eq!(results["chat_db_queries_per_idle_poll"], 0.0);
    assert!(results["dataset"]["events"].as_u64().unwrap_or(0) > 20_000);
}
