//! `titok rebuild <view|all>`: replay the log into fresh tables and swap them in while the running
//! system keeps serving (see `titok_projectors::rebuild`). Prints one JSON line with the result.

use std::sync::Arc;

use anyhow::Context;
use titok_adapters::counters::InProcessCounters;
use titok_adapters::progress::InProcessPositions;
use titok_adapters::redis_store::{self, RedisCounters};
use titok_ports::counters::Counters;
use titok_projectors::catalog::{self, View};
use titok_projectors::rebuild;
use titok_projectors::ProjectorDeps;

use crate::Config;

#[derive(Debug, Clone, clap::Args)]
pub struct RebuildArgs {
    /// Views to rebuild (users, videos, favorites, comments, relations, messages) or `all`. Views
    /// sharing tables are rebuilt together.
    #[arg(required = true)]
    pub views: Vec<String>,
    /// Pause the live projections for the final catch-up and swap once the rebuild is this many
    /// events from the log's end (a smaller number: a shorter pause, a longer chase).
    #[arg(long, default_value_t = rebuild::SWAP_WITHIN)]
    pub pause_within: i64,
}

/// The groups to rebuild for the names given, each once, in catalog order.
fn selected(names: &[String]) -> anyhow::Result<Vec<Vec<&'static View>>> {
    let mut chosen: Vec<Vec<&'static View>> = Vec::new();
    for name in names {
        let groups = if name == "all" {
            catalog::groups()
        } else {
            let view = catalog::view_named(name).with_context(|| {
                let known: Vec<_> = catalog::VIEWS.iter().map(|v| v.projection).collect();
                format!("unknown view {name:?}: one of {}, or all", known.join(", "))
            })?;
            let group = catalog::group_of(view);
            if group.len() > 1 {
                let others: Vec<_> = group
                    .iter()
                    .map(|v| v.projection)
                    .filter(|p| p != name)
                    .collect();
                eprintln!(
                    "{name} shares tables with {}: rebuilding them together",
                    others.join(", ")
                );
            }
            vec![group]
        };
        for group in groups {
            if !chosen.contains(&group) {
                chosen.push(group);
            }
        }
    }
    chosen.sort_by_key(|g| catalog::VIEWS.iter().position(|v| v == g[0]));
    Ok(chosen)
}

pub async fn run(args: RebuildArgs, config: Config) -> anyhow::Result<()> {
    let groups = selected(&args.views)?;
    let log = crate::backends::open_log(&config, crate::backends::Access::ReadOnly).await?;
    let store = crate::backends::open_views(&config).await?;
    // With Redis the shared cache is refilled here; an embedded server refills its own cache
    // when it sees the rebuild's generation.
    let counters: Arc<dyn Counters> = match &config.redis_url {
        Some(url) => Arc::new(RedisCounters::new(
            redis_store::connect(url).await?,
            &config.namespace,
        )),
        None => Arc::new(InProcessCounters::default()),
    };
    let deps = ProjectorDeps {
        log,
        store,
        counters,
        positions: Arc::new(InProcessPositions::default()),
        group_prefix: format!("{}.projector", config.namespace),
        halts: Default::default(),
    };
    crate::startup::refuse_log_retention(deps.log.as_ref(), &config)?;
    for group in groups {
        let label: Vec<_> = group.iter().map(|v| v.projection).collect();
        let mut progress = crate::progress::for_rebuild(&label.join(", "));
        let report = rebuild::rebuild(&deps, &group, args.pause_within, progress.as_mut()).await?;
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}
