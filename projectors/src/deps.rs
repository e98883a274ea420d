//! What every projection needs, in one value.

use std::sync::Arc;

use titok_infra::counters::Counters;
use titok_infra::log::EventLog;
use titok_infra::progress::Positions;
use titok_infra::store::ViewStore;

/// What every projection needs.
#[derive(Clone)]
pub struct ProjectorDeps {
    pub log: Arc<dyn EventLog>,
    pub store: ViewStore,
    pub counters: Arc<dyn Counters>,
    pub positions: Arc<dyn Positions>,
    /// Prefix of consumer group names (`<group_prefix>.<projection>`).
    pub group_prefix: String,
}
