//! Starting one process of the `titok` binary (any role) and reading where it listens: the first
//! line it prints on stdout is `listening on <base URL>`. The suites' harness starts every test
//! server this way, the bench its split roles.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// What `titok` prints first on its stdout once it listens, before its base URL.
pub const LISTENING: &str = "listening on ";

/// `binary` as a command without the TITOK_* settings of this environment: the server reads
/// them, and only the arguments a caller gives must count.
pub fn command_without_settings(binary: PathBuf) -> Command {
    let mut command = Command::new(binary);
    for (key, _) in std::env::vars() {
        if key.starts_with("TITOK_") {
            command.env_remove(key);
        }
    }
    command
}

/// Start `command` (its stdout piped, killed when dropped) and wait at most `timeout` for its
/// first line, `listening on <base URL>`: the process and its base URL (`http://host:port`).
pub async fn spawn_listening(
    mut command: Command,
    timeout: Duration,
) -> anyhow::Result<(Child, String)> {
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let mut child = command
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(timeout, lines.next_line())
        .await
        .with_context(|| format!("did not start within {timeout:?}"))?
        .context("cannot read its stdout")?
        .context("exited at start")?;
    let base = first
        .strip_prefix(LISTENING)
        .with_context(|| format!("unexpected first line {first:?}"))?
        .to_owned();
    Ok((child, base))
}
