//! The sweep for orphaned media: videos and covers in the blob store that no published video
//! points at.
//!
//! An upload is stored before `VideoPublished` is appended, and a refused or failed publish
//! removes its objects at once. What a crash leaves between the two (the process killed after the
//! store finished and before the append, or before a refused upload's objects were deleted) stays
//! in the store with no event pointing at it. The sweep removes such objects once they are older
//! than an age (a day by default), and only when the `videos` view can tell:
//!
//! - the videos projection has applied everything the log held when the sweep began (an object
//!   older than the age would have had its event appended long before — a publish appends right
//!   after its upload is durable — so a caught-up view lists every object an event points at);
//! - the videos projection has no parked records (a parked `VideoPublished` is in the log but
//!   not in the view: its objects must stay for when it is retried).
//!
//! Only objects named as uploads are (`videos/<id>.<ext>`, `covers/<id>.<ext>`) are considered;
//! anything else an operator keeps in the bucket is left alone. An S3 multipart upload that a
//! crash left unfinished is not an object and is invisible here: a bucket lifecycle rule
//! (`AbortIncompleteMultipartUpload`) removes those. On the directory store the staging files of
//! such uploads are removed by [`BlobStore::sweep_partial`].

use std::sync::Arc;
use std::time::Duration;

use titok_events::Topic;
use titok_ports::blobs::BlobStore;
use titok_views::ledger;
use titok_views::reads::media_paths;
use tokio::sync::watch;

use crate::deps::ProjectorDeps;
use crate::folder::projection_name;

/// The prefixes uploads are stored under.
const PREFIXES: [&str; 2] = ["videos/", "covers/"];

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Objects old enough that no published video points at.
    pub orphans: u64,
    /// Staging files of unfinished uploads (directory store).
    pub partial: u64,
}

/// Why the orphans were not swept.
#[derive(Debug, thiserror::Error)]
pub enum SweepSkipped {
    #[error("the videos projection is behind the log ({0}); it cannot tell orphans yet")]
    Behind(String),
    #[error("the videos projection has {0} parked record(s); their videos' objects must stay")]
    Parked(usize),
    #[error("{0}")]
    Failed(#[from] anyhow::Error),
}

/// One sweep: the staging files of unfinished uploads older than `age` (they have nothing to do
/// with the views), then the upload objects older than `age` that no video in the view points
/// at, when the view can tell.
pub async fn sweep_once(
    deps: &ProjectorDeps,
    blobs: &dyn BlobStore,
    age: Duration,
) -> Result<Swept, SweepSkipped> {
    let partial = blobs
        .sweep_partial(age)
        .await
        .map_err(anyhow::Error::from)?;
    let orphans = sweep_orphans(deps, blobs, age).await?;
    Ok(Swept { orphans, partial })
}

/// Remove the upload objects older than `age` that no video in the view points at; how many.
async fn sweep_orphans(
    deps: &ProjectorDeps,
    blobs: &dyn BlobStore,
    age: Duration,
) -> Result<u64, SweepSkipped> {
    let projection = projection_name(Topic::Videos);
    let ends = deps
        .log
        .end_offsets(&[Topic::Videos])
        .await
        .map_err(anyhow::Error::from)?;
    let applied = ledger::checkpoints(&deps.store, projection, Topic::Videos)
        .await
        .map_err(anyhow::Error::from)?;
    for end in &ends {
        let next = applied
            .iter()
            .find(|(part, _)| *part == end.partition)
            .map_or(0, |(_, next)| *next);
        if next < end.offset {
            return Err(SweepSkipped::Behind(format!(
                "{end} not applied, checkpoint {next}"
            )));
        }
    }
    let parked = ledger::parked(&deps.store, Some(projection))
        .await
        .map_err(anyhow::Error::from)?;
    if !parked.is_empty() {
        return Err(SweepSkipped::Parked(parked.len()));
    }
    Ok(remove_unreferenced(deps, blobs, age).await?)
}

/// The removal itself, once the view can tell what is referenced.
async fn remove_unreferenced(
    deps: &ProjectorDeps,
    blobs: &dyn BlobStore,
    age: Duration,
) -> anyhow::Result<u64> {
    let cutoff = titok_ports::now_ms() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
    let mut candidates: Vec<(i64, String)> = Vec::new();
    for prefix in PREFIXES {
        candidates.extend(
            blobs
                .list(prefix)
                .await?
                .into_iter()
                .filter(|(_, meta)| meta.modified_ms < cutoff)
                .filter_map(|(path, _)| upload_id(prefix, &path).map(|id| (id, path))),
        );
    }
    let mut ids: Vec<i64> = candidates.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    let referenced = media_paths(&deps.store.read, &ids).await?;
    let mut removed = 0;
    for (_, path) in candidates {
        if !referenced.contains(&path) {
            blobs.delete(&path).await?;
            tracing::info!(
                path,
                "removed an orphaned upload (no published video points at it)"
            );
            removed += 1;
        }
    }
    Ok(removed)
}

/// The video id of an upload's object name (`videos/<id>.<ext>`), `None` for other names.
fn upload_id(prefix: &str, path: &str) -> Option<i64> {
    let name = path.strip_prefix(prefix)?;
    let (stem, ext) = name.split_once('.')?;
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    if !plain(ext) || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Sweep every `every` until `shutdown` (the first sweep one interval after the start).
pub async fn run(
    deps: ProjectorDeps,
    blobs: Arc<dyn BlobStore>,
    age: Duration,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        // A sweep of a large bucket can take a while: it gives way to a shutdown (its deletes can
        // be repeated next time).
        let swept = tokio::select! {
            swept = sweep_once(&deps, blobs.as_ref(), age) => swept,
            _ = shutdown.changed() => return,
        };
        match swept {
            Ok(swept) => {
                metrics::counter!("titok_orphaned_media_removed_total")
                    .increment(swept.orphans + swept.partial);
            }
            Err(SweepSkipped::Failed(e)) => {
                tracing::warn!(error = %e, "the sweep for orphaned media failed; next time")
            }
            Err(skipped) => tracing::info!(reason = %skipped, "orphaned media not swept this time"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::upload_id;

    #[test]
    fn only_upload_names_are_candidates() {
        assert_eq!(upload_id("videos/", "videos/123.mp4"), Some(123));
        assert_eq!(upload_id("covers/", "covers/7.jpg"), Some(7));
        assert_eq!(upload_id("videos/", "videos/readme.txt"), None);
        assert_eq!(upload_id("videos/", "videos/12/3.mp4"), None);
        assert_eq!(upload_id("videos/", "videos/123"), None);
        assert_eq!(upload_id("videos/", "videos/.mp4"), None);
        assert_eq!(upload_id("videos/", "videos/1.mp4#3"), None);
    }
}
