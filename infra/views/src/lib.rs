//! # titok-views
//!
//! The SQL over the view tables, in one place:
//!
//! - [`fold`]: the **batch fold** — a batch of events becomes a few multi-row statements per table
//!   (the net effect of the batch after the domain rules ran in memory, in log order).
//! - [`stats`]: the counter rows (`user_stats`, `video_stats`), read back by the projections for the
//!   counter cache and by the query API when the cache misses.
//! - [`reads`]: every query of the views the two APIs make, and the concurrent join that turns
//!   rows into the Douyin objects of [`model`] (shared by both APIs).
//! - [`ledger`]: the projections' bookkeeping — checkpoints, projection meta (version,
//!   generation, pause lease), parked events — and a rebuild's shadow tables and swap.
//! - [`replicas`]: which pool a query API read goes to — a read replica whose checkpoints show
//!   the acknowledged writes the read must see, or the primary.
//! - [`Tables`]: which set of tables a statement addresses — the live views or a rebuild's shadow
//!   copies — with names from [`ViewTable`] only.
//!
//! Both dialects (SQLite for the embedded default, MySQL/MariaDB in production) run the same
//! statements; where they differ, [`Dialect`] supplies the words side by side.

mod applied;
pub mod fold;
pub mod ledger;
pub mod model;
pub mod reads;
pub mod replicas;
pub mod stats;

pub use titok_adapters::store::Dialect;
pub use titok_schemas::views::ViewTable;

/// Where statements go: the live view tables, or a rebuild's shadow copies named
/// `<prefix><table>`. Table names come only from [`ViewTable`], never from input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub dialect: Dialect,
    prefix: String,
}

impl Tables {
    /// The tables the query API reads.
    pub fn live(dialect: Dialect) -> Tables {
        Tables {
            dialect,
            prefix: String::new(),
        }
    }

    /// Shadow tables of a rebuild (`prefix` is `[a-z0-9_]+`, made by the rebuild itself).
    pub fn shadow(dialect: Dialect, prefix: &str) -> Tables {
        assert!(
            prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "shadow prefix {prefix:?}"
        );
        Tables {
            dialect,
            prefix: prefix.to_owned(),
        }
    }

    /// The actual name of a view table in this set.
    pub fn name(&self, table: ViewTable) -> String {
        format!("{}{}", self.prefix, table.name())
    }

    /// The parked-events table of this set (a rebuild parks into its own copy).
    pub fn parked_events(&self) -> String {
        format!("{}parked_events", self.prefix)
    }

    /// Empty for the live set.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// True for the live set.
    pub fn is_live(&self) -> bool {
        self.prefix.is_empty()
    }
}
