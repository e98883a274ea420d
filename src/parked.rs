//! `titok parked list|retry|drop`: the records projections parked (see
//! `titok_projectors::parked`), shown, replayed after a fix, or dropped for good.

use titok_projectors::{catalog, parked};

use crate::Config;

#[derive(Debug, Clone, clap::Args)]
pub struct ParkedArgs {
    #[command(subcommand)]
    pub action: ParkedAction,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ParkedAction {
    /// Show parked records, oldest first per key: why each was parked, and its bytes.
    List {
        /// Only this projection's (users, videos, favorites, comments, relations, messages).
        #[arg(long)]
        projection: Option<String>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Apply parked records again, oldest first per key, after their cause was fixed; what still
    /// fails stays parked (with everything after it in its key). Runs beside the live system.
    Retry {
        #[arg(long)]
        projection: Option<String>,
        /// Only this key (a video id, a user id, or a user pair `lo:hi`).
        #[arg(long)]
        key: Option<String>,
    },
    /// Remove one parked record for good (one that will never apply), so a retry can release the
    /// records behind it.
    Drop {
        projection: String,
        partition: i64,
        offset: i64,
    },
}

fn known(projection: &str) -> anyhow::Result<()> {
    if catalog::view_named(projection).is_none() {
        let names: Vec<_> = catalog::VIEWS.iter().map(|v| v.projection).collect();
        anyhow::bail!(
            "unknown projection {projection:?}: one of {}",
            names.join(", ")
        );
    }
    Ok(())
}

pub async fn run(args: ParkedArgs, config: Config) -> anyhow::Result<()> {
    let store = crate::backends::open_views(&config).await?;
    match args.action {
        ParkedAction::List { projection, json } => {
            if let Some(p) = &projection {
                known(p)?;
            }
            let events = parked::list(&store, projection.as_deref()).await?;
            if json {
                for event in &events {
                    println!("{}", serde_json::to_string(event)?);
                }
            } else if events.is_empty() {
                println!("nothing parked");
            } else {
                println!("projection\tpartition\toffset\tkey\ttype\tparked at\treason");
                for e in &events {
                    let at = chrono::DateTime::from_timestamp_millis(e.parked_ms)
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default();
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        e.projection,
                        e.partition,
                        e.offset,
                        e.key,
                        e.event_type.as_deref().unwrap_or("-"),
                        at,
                        e.reason
                    );
                }
            }
        }
        ParkedAction::Retry { projection, key } => {
            if let Some(p) = &projection {
                known(p)?;
            }
            let report = parked::retry(&store, projection.as_deref(), key.as_deref()).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        ParkedAction::Drop {
            projection,
            partition,
            offset,
        } => {
            known(&projection)?;
            let dropped = parked::drop_event(&store, &projection, partition, offset).await?;
            anyhow::ensure!(
                dropped,
                "no parked record of {projection} at partition {partition} offset {offset}"
            );
            tracing::warn!(
                projection,
                partition,
                offset,
                "parked record dropped for good"
            );
            println!("dropped {projection} {partition}@{offset}");
        }
    }
    Ok(())
}
