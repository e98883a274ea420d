//! What every projection needs, in one value.

use std::sync::Arc;

use titok_adapters::store::ViewStore;
use titok_ports::counters::Counters;
use titok_ports::log::EventLog;
use titok_ports::progress::Positions;

/// What every projection needs.
#[derive(Clone)]
pub struct ProjectorDeps {
    pub log: Arc<dyn EventLog>,
    pub store: ViewStore,
    pub counters: Arc<dyn Counters>,
    pub positions: Arc<dyn Positions>,
    /// Prefix of consumer group names (`<group_prefix>.<projection>`).
    pub group_prefix: String,
    /// Projections of this process stopped because the log is not whole where they read it.
    pub halts: crate::continuity::Halts,
}
