//! The bench's results: the table printed on stdout (one [`Row`] per comparison) and the JSON
//! report written with `--json` (one typed [`Results`]; tests/tests/suite/bench.rs and
//! docs/performance.md name its keys — do not rename them).

use serde::Serialize;

use crate::dataset::Size;

/// The results so far: the JSON report and the table's rows.
#[derive(Default)]
pub(crate) struct Report {
    pub(crate) results: Results,
    pub(crate) rows: Vec<Row>,
    /// Requests/s of the no-op endpoint (the HTTP stack's own ceiling), once measured.
    pub(crate) ceiling_rps: f64,
}

/// One row of the printed table.
pub(crate) struct Row {
    pub(crate) scenario: String,
    /// titok-plus's number.
    pub(crate) ours: String,
    pub(crate) baseline: String,
    pub(crate) ratio: String,
    pub(crate) target: String,
}

impl Row {
    /// A row as written: scenario, titok-plus, baseline, ratio, target.
    pub(crate) fn new(
        scenario: String,
        ours: String,
        baseline: String,
        ratio: String,
        target: String,
    ) -> Row {
        Row {
            scenario,
            ours,
            baseline,
            ratio,
            target,
        }
    }

    /// A row with nothing to compare against: its number and its target.
    pub(crate) fn alone(
        scenario: impl Into<String>,
        ours: impl Into<String>,
        target: impl Into<String>,
    ) -> Row {
        Row::new(
            scenario.into(),
            ours.into(),
            "—".into(),
            "—".into(),
            target.into(),
        )
    }

    /// Two numbers (no decimals) and their ratio (two).
    pub(crate) fn ratio(name: &str, ours: f64, theirs: f64, target: &str) -> Row {
        Row::new(
            name.into(),
            format!("{ours:.0}"),
            format!("{theirs:.0}"),
            format!("{:.2}×", ours / theirs.max(1e-9)),
            target.into(),
        )
    }
}

/// Declares [`Results`]: every field optional, and left out of the JSON when not set.
macro_rules! results {
    ($($(#[$meta:meta])* $field:ident: $ty:ty,)*) => {
        /// Every number of the JSON report, each set by its scenario; the keys of a scenario that
        /// did not run (no real services, no haproxy, Kafka only, …) are left out.
        #[derive(Debug, Default, Serialize)]
        pub(crate) struct Results {
            $(
                $(#[$meta])*
                #[serde(skip_serializing_if = "Option::is_none")]
                pub(crate) $field: Option<$ty>,
            )*
        }
    };
}

results! {
    // The run.
    machine: String,
    backend: String,
    date: String,
    dataset: Dataset,
    // Projection (scenarios/projection.rs).
    projection_events_per_s: f64,
    /// The fold's time of the data set.
    projection_seconds: f64,
    load_append_seconds: f64,
    raw_insert_rows: u64,
    raw_insert_seconds: f64,
    raw_insert_rows_per_s: f64,
    raw_insert_rows_per_s_narrow: f64,
    projection_vs_raw: f64,
    log_read_events_per_s: f64,
    projection_vs_log_read: f64,
    replay_events_per_s: f64,
    replay_seconds: f64,
    replay_vs_raw: f64,
    fold_shapes_any_rows_per_s: f64,
    fold_shapes_typed_rows_per_s: f64,
    any_vs_typed: f64,
    // Hot key.
    hot_key_events_per_s: f64,
    uniform_likes_events_per_s: f64,
    hot_key_vs_uniform: f64,
    // Ceiling.
    ceiling: PhaseStats,
    ceiling_rps: f64,
    // Ingest.
    ingest: PhaseStats,
    ingest_direct_write: PhaseStats,
    ingest_ratio: f64,
    log_group_commit_mean_events: f64,
    log_group_commit_buckets: Vec<GroupCommitBucket>,
    ingest_vs_ceiling: f64,
    log_append: PhaseStats,
    ingest_vs_log_append: f64,
    kafka_ingest_vs_produce: f64,
    // Feed.
    feed_at_2000: PhaseStats,
    feed_p99_at_2000_ms: f64,
    feed_single_client: PhaseStats,
    feed_sequential_single_client: PhaseStats,
    feed_concurrent: PhaseStats,
    feed_p99_ms: f64,
    feed_join_speedup: f64,
    feed_vs_ceiling: f64,
    feed_anonymous: PhaseStats,
    feed_anonymous_vs_ceiling: f64,
    feed_sql_per_page_anonymous: f64,
    feed_sql_per_page_token: f64,
    wrk_ceiling_rps: f64,
    feed_vs_ceiling_wrk: f64,
    feed_anonymous_vs_ceiling_wrk: f64,
    feed_index_videos: f64,
    feed_index_mib: f64,
    server_rss_mib: f64,
    feed_login_storm: PhaseStats,
    login_storm_logins_per_s: f64,
    feed_p99_login_storm_ms: f64,
    feed_p99_login_storm_ratio: f64,
    // Chat.
    chat: PhaseStats,
    chat_sql_every_poll: PhaseStats,
    chat_db_queries_per_idle_poll: f64,
    // Live push (scenarios/stream.rs).
    stream_messages: u64,
    stream_push_p50_ms: f64,
    stream_push_p99_ms: f64,
    stream_poll_p50_ms: f64,
    stream_poll_p99_ms: f64,
    stream_push_p99_vs_broker_floor: f64,
    stream_idle_count: u64,
    stream_idle_kib_per_stream: f64,
    stream_idle_cpu_pct: f64,
    stream_idle_open_per_s: f64,
    // Lag.
    broker_floor_p50_ms: f64,
    broker_floor_p99_ms: f64,
    light_lag_p50_ms: f64,
    light_plain_read_p50_ms: f64,
    lag_p50_ms: f64,
    lag_p99_ms: f64,
    plain_read_p50_ms: f64,
    consistency_wait_extra_p50_ms: f64,
    lag_write_rate: u64,
    max_rate_lag_p99_50ms: u64,
    lag_sweep: Vec<LagPoint>,
    // Positions check, scale-out, topology (real services).
    positions_check_us: PositionsCheck,
    scale_out_1_instance_events_per_s: f64,
    scale_out_2_instances_events_per_s: f64,
    topology_1_of_each: TopologyStats,
    topology_2_of_each: TopologyStats,
    // Media.
    media: MediaStats,
    media_upload_mib_per_s: f64,
    media_upload_vs_raw: f64,
    media_play_mib_per_s: f64,
    media_play_vs_direct: f64,
    media_upload_rss_growth_mib: f64,
}

/// The data set's size and the phases' length.
#[derive(Debug, Serialize)]
pub(crate) struct Dataset {
    pub(crate) users: usize,
    pub(crate) videos: usize,
    pub(crate) likes: usize,
    pub(crate) follows: usize,
    pub(crate) events: u64,
    pub(crate) phase_seconds: u64,
    pub(crate) concurrency: usize,
}

/// Throughput and latency of one load phase.
#[derive(Debug, Serialize)]
pub(crate) struct PhaseStats {
    pub(crate) requests_per_s: f64,
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
}

/// One bucket of the embedded log's group-commit histogram during ingest.
#[derive(Debug, Serialize)]
pub(crate) struct GroupCommitBucket {
    pub(crate) le: String,
    pub(crate) commits: f64,
}

/// Ack → visible at one write rate.
#[derive(Debug, Serialize)]
pub(crate) struct LagPoint {
    pub(crate) rate: u64,
    pub(crate) lag_p50_ms: f64,
    pub(crate) lag_p99_ms: f64,
    pub(crate) plain_read_p50_ms: f64,
    pub(crate) samples: u64,
    pub(crate) skipped: u64,
}

/// The acknowledged ends read with and without the incarnation check, µs.
#[derive(Debug, Serialize)]
pub(crate) struct PositionsCheck {
    pub(crate) with_incarnation_p50: f64,
    pub(crate) with_incarnation_p99: u64,
    pub(crate) without_p50: f64,
    pub(crate) without_p99: u64,
    pub(crate) rounds: u64,
}

/// One run of the scaled topology through haproxy.
#[derive(Debug, Serialize)]
pub(crate) struct TopologyStats {
    pub(crate) feed: PhaseStats,
    pub(crate) ingest: PhaseStats,
    pub(crate) feed_cpu_percent: CpuSplit,
    pub(crate) ingest_cpu_percent: CpuSplit,
    pub(crate) raw_probes: usize,
    pub(crate) raw_stale: usize,
}

/// A phase's CPU, % of the machine's busy time.
#[derive(Debug, Serialize)]
pub(crate) struct CpuSplit {
    pub(crate) titok: f64,
    pub(crate) haproxy: f64,
    pub(crate) services_and_client: f64,
}

/// The media scenario's sizes and read latencies.
#[derive(Debug, Serialize)]
pub(crate) struct MediaStats {
    pub(crate) store: String,
    pub(crate) uploads: usize,
    pub(crate) upload_mib: usize,
    pub(crate) range_reads: usize,
    pub(crate) flood: usize,
    pub(crate) flood_mib: usize,
    pub(crate) play_p50_ms: f64,
    pub(crate) direct_p50_ms: f64,
}

impl Report {
    /// `rate` (requests/s of `what`) against the no-op ceiling: its row, and the ratio for the
    /// JSON report.
    pub(crate) fn vs_ceiling(&mut self, what: &str, rate: f64, target: &str) -> f64 {
        let name = format!("{what} vs the no-op ceiling (requests/s)");
        self.rows
            .push(Row::ratio(&name, rate, self.ceiling_rps, target));
        round3(rate / self.ceiling_rps.max(1e-9))
    }

    /// The JSON report as written to `--json`: keys sorted, as a map of them always was.
    pub(crate) fn json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(&serde_json::to_value(
            &self.results,
        )?)?)
    }
}

/// `x` to three decimals.
pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The table on stdout: a heading, the machine and the data set, then one line per row.
pub(crate) fn print_table(rows: &[Row], backend: &str, machine: &str, size: &Size, events: u64) {
    println!(
        "titok-bench — {} — {backend}",
        chrono::Utc::now().format("%Y-%m-%d")
    );
    println!("machine: {machine}");
    println!(
        "data: {} users, {} videos, {} likes, {} follows ({events} events); {} s per phase",
        size.users, size.videos, size.likes, size.follows, size.seconds
    );
    println!();
    println!("| scenario | titok-plus | baseline | ratio | target |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.scenario, r.ours, r.baseline, r.ratio, r.target
        );
    }
}
