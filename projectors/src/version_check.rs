//! The start-up check of projection versions ([`prepare`]): compares the versions the stored
//! views were built at (`projection_meta`) with this binary's ([`crate::catalog`]), creates the
//! tables of groups never built, refuses views built by a newer binary, and for views of an older
//! version rebuilds them from the log before serving ([`crate::rebuild`]), refuses to start, or —
//! in a process that runs no projections — waits until the projectors have rebuilt them.

use std::time::{Duration, Instant};

use titok_adapters::store::ViewStore;
use titok_views::ledger::{self, Parts};
use titok_views::Tables;

use crate::catalog::{self, View};
use crate::deps::ProjectorDeps;
use crate::rebuild::{names, rebuild, Progress, RebuildBusy, SWAP_WITHIN};

/// What to do at start-up when a stored view is older than this binary's projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleViews {
    /// Rebuild the view from the log before serving.
    Rebuild,
    /// Refuse to start; the operator runs `titok rebuild`.
    Refuse,
}

/// Groups whose stored views are not at this binary's versions, and an error for views built by
/// a newer binary. Creates the tables of groups that have never been built (nothing to rebuild:
/// the live projections fold the log into them from the start).
async fn stale_groups(store: &ViewStore) -> anyhow::Result<Vec<Vec<&'static View>>> {
    let have = ledger::versions(store).await?;
    let mut stale = Vec::new();
    for group in catalog::groups() {
        if group.iter().all(|v| !have.contains_key(v.projection)) {
            ledger::create_tables(
                store,
                &Tables::live(store.dialect),
                &catalog::tables_of(&group),
                Parts::All,
            )
            .await?;
            for view in &group {
                ledger::register(store, view.projection, view.version).await?;
            }
            continue;
        }
        for view in &group {
            if let Some(&(version, _)) = have.get(view.projection) {
                anyhow::ensure!(
                    version <= view.version,
                    "view {} was built by a newer titok (version {version}, this binary has {}); \
                     run that version, or `titok rebuild {}` to rebuild it for this one",
                    view.projection,
                    view.version,
                    view.projection
                );
            }
        }
        if group
            .iter()
            .any(|v| have.get(v.projection).map(|&(version, _)| version) != Some(v.version))
        {
            stale.push(group);
        }
    }
    Ok(stale)
}

/// Start-up check of the projection versions. A process running projections rebuilds stale
/// views (or refuses, by `policy`); other roles wait until the views are current.
pub async fn prepare(
    deps: &ProjectorDeps,
    policy: StaleViews,
    runs_projectors: bool,
    progress: &dyn Fn(&str) -> Box<dyn Progress>,
) -> anyhow::Result<()> {
    let mut waited = None::<Instant>;
    loop {
        let stale = stale_groups(&deps.store).await?;
        let Some(group) = stale.first() else {
            return Ok(());
        };
        if !runs_projectors {
            if waited.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                tracing::info!(
                    views = names(group),
                    "waiting for the projectors to rebuild views of an older version"
                );
                waited = Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        match policy {
            StaleViews::Refuse => anyhow::bail!(
                "views {} were built by an older projection version; run `titok rebuild {}` \
                 (or start with --stale-views rebuild)",
                names(group),
                group[0].projection
            ),
            StaleViews::Rebuild => {
                tracing::info!(
                    views = names(group),
                    "views are of an older version: rebuilding them from the log"
                );
                let mut progress = progress(&names(group));
                match rebuild(deps, group, SWAP_WITHIN, progress.as_mut()).await {
                    Ok(_) => {}
                    Err(err) if err.is::<RebuildBusy>() => {
                        // Another process is rebuilding it: wait for its swap.
                        tracing::info!(error = %err, "waiting for another rebuild");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(err) => return Err(err),
                }
            }
        }
    }
}
