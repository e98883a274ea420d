//! Attempt quotas shared by every instance of a role (login attempts per username and per client
//! address): with several command APIs behind a load balancer, a quota kept in one process would
//! multiply by the number of instances.
//!
//! The Redis adapter keeps one GCRA state per key (the theoretical arrival time, in Redis' own
//! clock, so the instances' clocks do not matter); without Redis the command API keeps its quotas
//! in process.

use std::time::Duration;

use async_trait::async_trait;

/// The shared quota store could not be reached; callers fall back to their in-process quota.
#[derive(Debug, thiserror::Error)]
#[error("attempt limits unavailable: {0}")]
pub struct LimitsError(#[source] pub crate::BoxError);

#[async_trait]
pub trait AttemptLimits: Send + Sync + 'static {
    /// Count one attempt under `key`, allowing `quota` attempts per `per` (a burst of `quota`,
    /// then one every `per / quota`). `Ok(None)`: allowed and counted; `Ok(Some(wait))`: refused
    /// (not counted), the next attempt is allowed in `wait`.
    async fn attempt(
        &self,
        key: &str,
        quota: u32,
        per: Duration,
    ) -> Result<Option<Duration>, LimitsError>;
}
