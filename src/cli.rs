//! The command line: subcommands, process roles and the configuration (every flag has an
//! environment variable), logging set-up, and the entry point that dispatches to a role or a tool.

use clap::{Parser, Subcommand};

use crate::config::{shared_flags, with_heading};
pub use crate::config::{Config, StaleViewsArg};
use crate::{parked, rebuild, start, tap};

/// The command line: a serving role (none: `serve`) or a tool, and the [`Config`] flags.
#[derive(Debug, Parser)]
#[command(
    name = "titok",
    version,
    about = "titok-plus: an event-sourced Douyin-compatible backend",
    mut_subcommands = shared_flags,
    mut_args = with_heading
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the command API, query API and projectors in one process (the default).
    Serve,
    /// Run only the write endpoints (needs --kafka-brokers, --mysql-url, --redis-url).
    CommandApi,
    /// Run only the read endpoints and /static (needs --kafka-brokers, --mysql-url, --redis-url).
    QueryApi,
    /// Run only the projections (needs --kafka-brokers, --mysql-url, --redis-url).
    Projectors,
    /// Stream events from the log as JSON lines (read-only, own consumer group).
    Tap(tap::TapArgs),
    /// Rebuild views from the log into fresh tables and swap them in, while the system serves.
    Rebuild(rebuild::RebuildArgs),
    /// Show, retry or drop the records projections could not apply (poison events).
    Parked(parked::ParkedArgs),
}

/// A process role: what a serving process runs. Kept apart from the tool subcommands (`tap`,
/// `rebuild`, `parked`), which run and exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Command API, query API and projectors in one process.
    All,
    CommandApi,
    QueryApi,
    Projectors,
}

impl Role {
    pub(crate) fn runs_commands(self) -> bool {
        matches!(self, Role::All | Role::CommandApi)
    }

    pub(crate) fn runs_queries(self) -> bool {
        matches!(self, Role::All | Role::QueryApi)
    }

    pub(crate) fn runs_projectors(self) -> bool {
        matches!(self, Role::All | Role::Projectors)
    }
}

/// Set up tracing to stderr: text, or JSON lines with `--log-json`. `RUST_LOG` filters.
pub fn init_tracing(json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A log line that cannot be written (stderr redirected to a full disk) is dropped. With
    // internal-error logging on, tracing-subscriber reports it with `eprintln!`, which panics
    // when stderr fails too: the request being served died without a reply (found by the
    // disk-full test).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The whole CLI: parse, start, print the address, run until signalled.
pub async fn main_entry() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.config.log_json, "info,sqlx=warn");
    // Test builds only: fault points from the FAILPOINTS variable (e.g.
    // `rebuild::before_swap_ms=return(4000)`), kept for the life of the process.
    #[cfg(feature = "failpoints")]
    std::mem::forget(fail::FailScenario::setup());
    let role = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => Role::All,
        Command::CommandApi => Role::CommandApi,
        Command::QueryApi => Role::QueryApi,
        Command::Projectors => Role::Projectors,
        Command::Tap(args) => return tap::run(args, cli.config).await,
        Command::Rebuild(args) => return rebuild::run(args, cli.config).await,
        Command::Parked(args) => return parked::run(args, cli.config).await,
    };
    let running = start(role, cli.config).await?;
    // The first line on stdout is the address: scripts and the test harness read it.
    println!("listening on http://{}", running.addr);
    running.until_signalled().await
}

#[cfg(test)]
mod tests;
