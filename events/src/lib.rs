//! # titok-events
//!
//! The event vocabulary of titok-plus: every command accepted by the command API becomes one of the
//! events below, wrapped in an [`Envelope`] and appended to the log. Projectors fold them into views;
//! analytics consumers read them as JSON.
//!
//! - [`Topic`]: one topic per family (`titok.users`, `titok.videos`, …).
//! - [`EventBody`]: one variant per event type, each with its own payload struct and version.
//! - [`Envelope`]: `event_id` (UUID v7), `type`, `version`, `occurred_at`, `actor`, `key`, `payload`.
//! - [`partition_for`]: the stable key → partition rule both log adapters use, so that every event of
//!   a key (a video's likes, a pair's follows and messages) stays in one partition, in order.
//! - [`IdGenerator`]: time-ordered ids below 2^53 for users, videos, comments and messages.
//!
//! - [`json_schemas`]: the JSON Schema of every event type and version, published in
//!   `schemas/events/` for analytics consumers (a test fails when the files are stale).
//!
//! No I/O happens here; `cargo test -p titok-events` tests the rules.

mod envelope;
mod ids;
mod json_schema;
mod payloads;

pub use envelope::{DecodeError, Envelope, EventBody};
pub use ids::{IdGenerator, ID_EPOCH_MS, MAX_NODE_ID};
pub use json_schema::json_schemas;
pub use payloads::*;

/// A topic family. Each has its own partition count in the log and its own projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    Users,
    Videos,
    Favorites,
    Comments,
    Relations,
    Messages,
}

impl Topic {
    pub const ALL: [Topic; 6] = [
        Topic::Users,
        Topic::Videos,
        Topic::Favorites,
        Topic::Comments,
        Topic::Relations,
        Topic::Messages,
    ];

    /// The topic name in the log (Kafka topic or embedded topic).
    pub fn name(self) -> &'static str {
        match self {
            Topic::Users => "titok.users",
            Topic::Videos => "titok.videos",
            Topic::Favorites => "titok.favorites",
            Topic::Comments => "titok.comments",
            Topic::Relations => "titok.relations",
            Topic::Messages => "titok.messages",
        }
    }

    pub fn from_name(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The partition of `key` among `partitions`: 32-bit FNV-1a of the key's bytes, modulo the count.
/// Stable across processes, versions and adapters (the embedded log and the Kafka producer both use
/// it), which is what keeps per-key order when several command API instances append.
pub fn partition_for(key: &str, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in key.as_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

/// The key of a conversation or a follow relation: the unordered pair, smaller id first, so both
/// directions land in the same partition.
pub fn pair_key(a: i64, b: i64) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("{lo}:{hi}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_is_stable_and_in_range() {
        for key in ["1", "42:77", "video-9"] {
            let p = partition_for(key, 4);
            assert!(p < 4);
            assert_eq!(
                p,
                partition_for(key, 4),
                "same key must map to the same partition"
            );
        }
        assert_eq!(
            partition_for("anything", 0),
            0,
            "zero partitions is treated as one"
        );
    }

    #[test]
    fn pair_key_ignores_direction() {
        assert_eq!(pair_key(7, 3), pair_key(3, 7));
        assert_eq!(pair_key(3, 7), "3:7");
    }

    #[test]
    fn topic_names_round_trip() {
        for t in Topic::ALL {
            assert_eq!(Topic::from_name(t.name()), Some(t));
        }
    }
}
