//! The projections' bookkeeping in the read store, beside the views it describes, one concern
//! per module (everything public is re-exported here):
//!
//! - `checkpoints` (`projection_offsets`): per projection and partition, the next offset to
//!   apply, written in the same transaction as the batch's view rows (that is what makes each
//!   event take effect exactly once);
//! - `meta` (`projection_meta`): the view version a projection was built at, a generation that a
//!   rebuild or a parked retry bumps (every process refills its counter cache when the sum
//!   changes), and the pause lease a rebuild holds while it swaps tables;
//! - `rebuild_lease` (`projection_meta` too): the rebuild lease that keeps a second rebuild of the
//!   same group from starting;
//! - `parked` (`parked_events`, or a rebuild's own copy): records a projection could not apply,
//!   with their reason;
//! - `shadow`: the shadow tables of a rebuild: creating them (tables first, SQLite's secondary
//!   indexes after the replay), the atomic swap with the live tables, dropping what is left over.
//!
//! The projectors call these; no other crate writes these tables.

use sqlx::Any;

mod checkpoints;
mod meta;
mod parked;
mod rebuild_lease;
mod shadow;

pub use checkpoints::{
    checkpoints, ensure_checkpoints, hold_checkpoints, lock_checkpoints, lock_group_checkpoints,
    set_checkpoint,
};
pub use meta::{bump_generation, generation_sum, paused_until, register, set_pause, versions};
pub use parked::{park, parked, parked_keys, parked_of_key, unpark, ParkedRow};
pub use rebuild_lease::{claim_rebuild, release_rebuild, renew_pause, renew_rebuild, RebuildLease};
pub use shadow::{
    create_parked, create_tables, drop_tables, replaced, swap, Checkpoint, Parts, SwapError,
    SwapRecord,
};

/// `?, ?, …`: one placeholder per item, for an `IN (…)` list.
fn in_list(items: &[&str]) -> String {
    vec!["?"; items.len()].join(", ")
}

/// Bind every item of a list, in order (for an `IN (?, …)` made by [`in_list`]).
trait BindAll<'q> {
    fn bind_all(self, items: &'q [&'q str]) -> Self;
}

impl<'q> BindAll<'q> for sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    fn bind_all(self, items: &'q [&'q str]) -> Self {
        items.iter().fold(self, |q, item| q.bind(*item))
    }
}

impl<'q, O> BindAll<'q> for sqlx::query::QueryAs<'q, Any, O, sqlx::any::AnyArguments<'q>> {
    fn bind_all(self, items: &'q [&'q str]) -> Self {
        items.iter().fold(self, |q, item| q.bind(*item))
    }
}
