//! Projection and replay: the data set's fold (timed at load) and a rebuild of every view from the
//! log, against raw inserts of the rows the views end with, a bare read of the log, the old narrow
//! insert baseline, and sqlx `Any` against the typed driver on the fold's statement shapes.

use std::time::Instant;

use titok_adapters::store::ViewStore;

use crate::context::Ctx;
use crate::dataset::Loaded;
use crate::report::{round3, Report, Row};

/// Projection and replay against the raw inserts of the same rows, the bare log read, and sqlx
/// `Any` against the typed driver.
pub(crate) async fn projection(
    ctx: &Ctx,
    report: &mut Report,
    loaded: &Loaded,
) -> anyhow::Result<()> {
    let Ctx {
        args, config, deps, ..
    } = ctx;
    let projection_rate = loaded.events as f64 / loaded.seconds;
    eprintln!("bench: raw inserts of the views' rows");
    let raw = crate::fold::raw_same_rows(&deps.store).await?;
    let narrow_rate = raw_insert_rate(&deps.store, (loaded.events as usize).min(200_000)).await?;
    eprintln!("bench: sqlx Any vs the typed driver on the fold's statement shapes");
    let (any_rate, typed_rate) = crate::fold::any_vs_typed(
        &deps.store,
        config.mysql_url.as_deref(),
        &config.data_dir.join("views.db"),
        (loaded.events as usize).min(200_000),
        if args.quick { 1 } else { 3 },
    )
    .await?;
    eprintln!("bench: raw read of the log");
    let log_rate = crate::fold::log_read_rate(deps.log.as_ref()).await?;

    // Replay: rebuild every view from the log.
    eprintln!("bench: replay (rebuild all)");
    let mut replayed = 0;
    let mut replay_s = 0.0;
    for group in titok_projectors::catalog::groups() {
        let mut progress = titok_projectors::rebuild::LogProgress::new("bench");
        let report = titok_projectors::rebuild::rebuild(
            deps,
            &group,
            titok_projectors::rebuild::SWAP_WITHIN,
            &mut progress,
        )
        .await?;
        replayed += report.events;
        replay_s += report.seconds;
    }
    let replay_rate = replayed as f64 / replay_s.max(1e-9);
    // Both against the time the database takes for the rows the views end with.
    let projection_vs_raw = raw.seconds / loaded.seconds.max(1e-9);
    let replay_vs_raw = raw.seconds * (replayed as f64 / loaded.events as f64) / replay_s.max(1e-9);
    report.results.projection_events_per_s = Some(projection_rate.round());
    report.results.projection_seconds = Some(round3(loaded.seconds));
    report.results.load_append_seconds = Some(round3(loaded.appended));
    report.results.raw_insert_rows = Some(raw.rows);
    report.results.raw_insert_seconds = Some(round3(raw.seconds));
    report.results.raw_insert_rows_per_s = Some(raw.rows_per_s().round());
    report.results.raw_insert_rows_per_s_narrow = Some(narrow_rate.round());
    report.results.projection_vs_raw = Some(round3(projection_vs_raw));
    report.results.log_read_events_per_s = Some(log_rate.round());
    report.results.projection_vs_log_read = Some(round3(projection_rate / log_rate));
    report.results.replay_events_per_s = Some(replay_rate.round());
    report.results.replay_seconds = Some(round3(replay_s));
    report.results.replay_vs_raw = Some(round3(replay_vs_raw));
    report.rows.push(Row::new(
        "projection: events/s; time vs raw inserts of the views' rows".into(),
        format!("{projection_rate:.0} ev/s in {:.1} s", loaded.seconds),
        format!("{} rows in {:.1} s", raw.rows, raw.seconds),
        format!("{projection_vs_raw:.2}×"),
        "≥ 0.5× raw".into(),
    ));
    report.rows.push(Row::new(
        "replay / rebuild: events/s; time vs raw inserts".into(),
        format!("{replay_rate:.0} ev/s in {replay_s:.1} s"),
        format!("{:.1} s", raw.seconds),
        format!("{replay_vs_raw:.2}×"),
        "≥ 0.5× raw".into(),
    ));
    report.rows.push(Row::ratio(
        "projection vs a bare read of the whole log (events/s)",
        projection_rate,
        log_rate,
        "reported (the log's own limit)",
    ));
    report.results.fold_shapes_any_rows_per_s = Some(any_rate.round());
    report.results.fold_shapes_typed_rows_per_s = Some(typed_rate.round());
    report.results.any_vs_typed = Some(round3(any_rate / typed_rate));
    report.rows.push(Row::ratio(
        "fold's statement shapes: sqlx Any vs the typed driver (rows/s)",
        any_rate,
        typed_rate,
        "use typed if clearly faster",
    ));
    report.rows.push(Row::ratio(
        "projection vs the old narrow baseline (3-column table, rows/s)",
        projection_rate,
        narrow_rate,
        "reported",
    ));
    Ok(())
}

/// Rows per second the view database takes as multi-row inserts (500 rows per statement, 1,000
/// rows per transaction — the projector's batch size), in a scratch table.
async fn raw_insert_rate(store: &ViewStore, rows: usize) -> anyhow::Result<f64> {
    let table = format!("bench_raw_{}", titok_ports::now_ms());
    sqlx::query(&format!("CREATE TABLE {table} (a BIGINT NOT NULL, b BIGINT NOT NULL, c BIGINT NOT NULL, PRIMARY KEY (a, b))"))
        .execute(&store.write)
        .await?;
    let started = Instant::now();
    let mut done = 0;
    while done < rows {
        let mut tx = store.write.begin().await?;
        for _ in 0..2 {
            let mut qb =
                sqlx::QueryBuilder::<sqlx::Any>::new(format!("INSERT INTO {table} (a, b, c) "));
            qb.push_values(done..done + 500, |mut b, i| {
                b.push_bind(i as i64)
                    .push_bind((i * 7) as i64)
                    .push_bind(1_i64);
            });
            qb.build().execute(&mut *tx).await?;
            done += 500;
        }
        tx.commit().await?;
    }
    let rate = done as f64 / started.elapsed().as_secs_f64();
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&store.write)
        .await?;
    Ok(rate)
}
