//! Sample content for a first start: the placeholder images under `/static/` and a demo account
//! with one video (skipped with `--no-sample`, or when any account exists).

use titok_command_api::CommandState;
use titok_ports::blobs::{BlobError, BlobStore};

use crate::{DEMO_USERNAME, SAMPLE_VIDEO};

/// Default avatar and background images, served at `/static/avatar.png` and `/static/background.png`.
pub(crate) async fn write_static_images(blobs: &dyn BlobStore) -> anyhow::Result<()> {
    for (name, w, h, seed) in [("avatar.png", 96, 96, 11), ("background.png", 480, 270, 5)] {
        match blobs.head(name).await {
            Ok(_) => {}
            Err(BlobError::NotFound) => {
                let png = titok_command_api::media::placeholder_png(w, h, seed);
                blobs.put(name, png.into()).await?;
            }
            Err(e) => anyhow::bail!("blob store {}: {e}", blobs.describe()),
        }
    }
    Ok(())
}

/// Load a demo account with one sample video when the store has no accounts at all.
pub(crate) async fn seed_sample(
    command: &CommandState,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    if command.accounts.count().await? > 0 {
        return Ok(());
    }
    let password: String = {
        use rand::Rng;
        rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(16)
            .map(char::from)
            .collect()
    };
    let user_id = match titok_command_api::register_user(command, DEMO_USERNAME, &password).await {
        Ok((user_id, _)) => user_id,
        // Instances started together on an empty store all try; one wins, the rest carry on.
        Err(_) if command.accounts.by_username(DEMO_USERNAME).await?.is_some() => {
            tracing::info!("sample content is being loaded by another instance");
            return Ok(());
        }
        Err(e) => anyhow::bail!("cannot register the demo account: {e}"),
    };
    titok_command_api::publish_video(command, user_id, "Welcome to titok-plus", SAMPLE_VIDEO)
        .await
        .map_err(|e| anyhow::anyhow!("cannot publish the sample video: {e}"))?;
    // The password goes to a file readable by the operator, never into the logs.
    let file = data_dir.join("demo-credentials.txt");
    std::fs::write(
        &file,
        format!("username: {DEMO_USERNAME}\npassword: {password}\n"),
    )?;
    tracing::info!(username = DEMO_USERNAME, credentials = %file.display(), "sample content loaded (disable with --no-sample)");
    Ok(())
}
