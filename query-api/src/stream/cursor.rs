//! Stream ids: a position in every partition of the streamed topics.
//!
//! A stream's `id:` is not a counter of one server: it is, for each partition of the messages,
//! favorites, comments and relations topics, the offset below which the client has everything
//! that concerns it. Any query instance, before or after a restart, can resume from it: it
//! replays the events at or above those offsets that concern the user and skips the rest, so
//! nothing is repeated and nothing skipped, whichever instance served the events before.
//!
//! Text form: `s1.` then the offsets in decimal, dot-separated, topic by topic
//! ([`STREAMED`] order), partition by partition — e.g. `s1.0.4.2.0.1.0.0.0.3.1.0.2.0.0.0.1` for
//! four topics of four partitions.

use titok_events::Topic;

/// The topics a stream follows, in the order of a cursor's slots.
pub const STREAMED: [Topic; 4] = [
    Topic::Messages,
    Topic::Favorites,
    Topic::Comments,
    Topic::Relations,
];

const PREFIX: &str = "s1.";

/// Where each streamed topic's partitions sit among a cursor's slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Partitions per topic of [`STREAMED`].
    partitions: [u32; 4],
}

impl Layout {
    pub fn new(partitions: impl Fn(Topic) -> u32) -> Layout {
        Layout {
            partitions: STREAMED.map(partitions),
        }
    }

    /// Slots in all.
    pub fn slots(&self) -> usize {
        self.partitions.iter().map(|p| *p as usize).sum()
    }

    /// The slot of a topic's partition (`None` for a topic not streamed or a partition out of
    /// range).
    pub fn slot(&self, topic: Topic, partition: u32) -> Option<usize> {
        let i = STREAMED.iter().position(|t| *t == topic)?;
        (partition < self.partitions[i]).then(|| {
            self.partitions[..i]
                .iter()
                .map(|p| *p as usize)
                .sum::<usize>()
                + partition as usize
        })
    }

    /// Every (topic, partition), in slot order.
    pub fn each(&self) -> impl Iterator<Item = (Topic, u32)> + '_ {
        STREAMED
            .iter()
            .zip(self.partitions)
            .flat_map(|(t, n)| (0..n).map(move |p| (*t, p)))
    }
}

/// Why a stream id cannot be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not a stream id at all (a 400 envelope).
    #[error("last_event_id is not a stream id (expected s1. and dot-separated offsets)")]
    Malformed,
    /// A stream id of another partition layout (the topics were repartitioned): the client is
    /// told to re-read (`reset`).
    #[error("last_event_id is of another partition layout ({0} offsets, this log has {1})")]
    Layout(usize, usize),
}

/// Parse a stream id for `layout`.
pub fn parse(text: &str, layout: &Layout) -> Result<Vec<i64>, CursorError> {
    let body = text
        .trim()
        .strip_prefix(PREFIX)
        .ok_or(CursorError::Malformed)?;
    let offsets = body
        .split('.')
        .map(|n| match n.parse::<i64>() {
            Ok(v) if v >= 0 && !n.starts_with('+') => Ok(v),
            _ => Err(CursorError::Malformed),
        })
        .collect::<Result<Vec<i64>, _>>()?;
    if offsets.len() != layout.slots() {
        return Err(CursorError::Layout(offsets.len(), layout.slots()));
    }
    Ok(offsets)
}

/// The text form of a cursor.
pub fn format(offsets: &[i64]) -> String {
    let mut out = String::with_capacity(PREFIX.len() + offsets.len() * 4);
    out.push_str(PREFIX);
    for (i, o) in offsets.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(&o.to_string());
    }
    out
}

/// `into[i] = max(into[i], other[i])`.
pub fn advance(into: &mut [i64], other: &[i64]) {
    for (a, b) in into.iter_mut().zip(other) {
        *a = (*a).max(*b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new(|t| if t == Topic::Comments { 2 } else { 3 })
    }

    #[test]
    fn slots_follow_topic_then_partition_order() {
        let l = layout();
        assert_eq!(l.slots(), 11);
        assert_eq!(l.slot(Topic::Messages, 0), Some(0));
        assert_eq!(l.slot(Topic::Favorites, 2), Some(5));
        assert_eq!(l.slot(Topic::Comments, 1), Some(7));
        assert_eq!(l.slot(Topic::Relations, 0), Some(8));
        assert_eq!(l.slot(Topic::Comments, 2), None);
        assert_eq!(l.slot(Topic::Videos, 0), None);
        let each: Vec<_> = l.each().collect();
        assert_eq!(each.len(), 11);
        assert_eq!(each[7], (Topic::Comments, 1));
    }

    #[test]
    fn a_cursor_reads_back_as_written_and_bad_ones_are_told_apart() {
        let l = layout();
        let c = vec![0, 4, 12, 0, 1, 9, 0, 3, 1, 0, 77];
        assert_eq!(parse(&format(&c), &l), Ok(c));
        assert_eq!(parse("s1.1.2", &l), Err(CursorError::Layout(2, 11)));
        for bad in [
            "", "1.2.3", "s1.", "s1.a.b", "s1.-1", "s2.0", "s1.+1", "s1.1..2",
        ] {
            assert!(
                matches!(parse(bad, &l), Err(CursorError::Malformed)),
                "{bad:?} parsed"
            );
        }
    }

    #[test]
    fn advance_takes_the_larger_offset_per_slot() {
        let mut a = vec![1, 5, 0];
        advance(&mut a, &[3, 2, 0]);
        assert_eq!(a, vec![3, 5, 0]);
    }
}
