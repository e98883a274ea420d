//! # titok
//!
//! The launcher of titok-plus. `titok` (= `titok serve`) runs the command API, the query API and
//! the projectors in one process on the embedded default: event log, views and accounts in SQLite
//! files under `--data-dir`, counters in process, uploads on local disk.
//!
//! - `cli`: [`Cli`], the process [`Role`]s and the tool subcommands, [`Config`] (the
//!   CLI/environment contract: every flag has an environment variable), [`main_entry`].
//! - `backends`: [`Backends`], the one place that opens the log, the stores and the caches
//!   from a [`Config`] (for the server and the tools alike).
//! - `startup`: [`start`] wires the ports, checks the projection versions, spawns the
//!   projections, seeds sample content, binds the listener and returns a [`Running`] server.
//! - `sample`: the placeholder images and the demo account.
//! - the tools: [`tap`] (read the log), [`rebuild`] (rebuild views while serving), [`parked`]
//!   (poison events). The benchmark is its own crate and binary (`tests/bench`, `titok-bench`).

/// The sample video shipped with the binary (1 s, 160×120 H.264 MP4).
pub const SAMPLE_VIDEO: &[u8] = include_bytes!("../assets/sample.mp4");
/// The web demo client served at `/` (no CDN; everything is in this one file).
pub const DEMO_PAGE: &str = include_str!("../web/index.html");
/// Username of the sample content's account.
pub const DEMO_USERNAME: &str = "titok-demo";

mod backends;
mod cli;
mod config;
pub mod parked;
mod progress;
mod readiness;
pub mod rebuild;
mod sample;
mod startup;
pub mod tap;

pub use backends::Backends;
pub use cli::{init_tracing, main_entry, Cli, Command, Config, Role, StaleViewsArg};
pub use startup::{start, Running};
