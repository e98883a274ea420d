//! Time-ordered, instance-unique ids below 2^53 (JavaScript-safe).
//!
//! Layout (53 bits): 41 bits of milliseconds since [`ID_EPOCH_MS`] (69 years), 4 bits of node id
//! (16 command API instances), 8 bits of sequence (256 ids per millisecond per node). When a
//! millisecond's sequence runs out the generator borrows the next millisecond, so ids stay strictly
//! increasing without sleeping.

use std::sync::Mutex;

/// 2025-01-01T00:00:00Z.
pub const ID_EPOCH_MS: i64 = 1_735_689_600_000;
const NODE_BITS: u32 = 4;
/// The highest node id (`--node-id` is range-checked against it; a larger one would wrap onto
/// another node's ids).
pub const MAX_NODE_ID: u8 = (1 << NODE_BITS) - 1;
const SEQ_BITS: u32 = 8;

/// Generates ids for one node. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct IdGenerator {
    node: i64,
    state: Mutex<(i64, i64)>,
}

impl IdGenerator {
    /// `node` must be unique among running command API instances (0–15).
    pub fn new(node: u8) -> IdGenerator {
        IdGenerator {
            node: i64::from(node) & ((1 << NODE_BITS) - 1),
            state: Mutex::new((0, 0)),
        }
    }

    pub fn next_id(&self) -> i64 {
        let now = chrono::Utc::now().timestamp_millis() - ID_EPOCH_MS;
        let mut state = match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (last_ms, seq) = *state;
        let (ms, seq) = if now > last_ms {
            (now, 0)
        } else if seq + 1 < (1 << SEQ_BITS) {
            (last_ms, seq + 1)
        } else {
            (last_ms + 1, 0)
        };
        *state = (ms, seq);
        (ms << (NODE_BITS + SEQ_BITS)) | (self.node << SEQ_BITS) | seq
    }

    /// The millisecond timestamp (epoch ms) embedded in an id.
    pub fn timestamp_ms(id: i64) -> i64 {
        (id >> (NODE_BITS + SEQ_BITS)) + ID_EPOCH_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_fit_in_53_bits_and_carry_time() {
        let g = IdGenerator::new(3);
        let mut last = 0;
        for _ in 0..10_000 {
            let id = g.next_id();
            assert!(id > last, "ids must strictly increase");
            assert!(id < (1_i64 << 53), "ids must be JavaScript-safe");
            last = id;
        }
        let now = chrono::Utc::now().timestamp_millis();
        assert!((IdGenerator::timestamp_ms(last) - now).abs() < 1_000);
    }

    #[test]
    fn different_nodes_never_collide() {
        let a = IdGenerator::new(1);
        let b = IdGenerator::new(2);
        let xs: std::collections::HashSet<i64> = (0..1000).map(|_| a.next_id()).collect();
        assert!((0..1000).all(|_| !xs.contains(&b.next_id())));
    }
}
