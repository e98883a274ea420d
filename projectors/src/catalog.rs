//! What each projection builds: its topic, its view version and the tables it writes.
//!
//! **Projection versions.** A view's `version` is the shape of its tables and the meaning of its
//! fold. Change either — a new column, a fixed fold — and bump it: a binary that finds a stored
//! version older than its own rebuilds the view from the log (or, with `--stale-views refuse`,
//! refuses to start) instead of serving a view of the wrong shape.
//!
//! **Rebuild groups.** Projections that write the same table (the counter rows `user_stats` and
//! `video_stats` are shared) can only be rebuilt together, so a rebuild of one view takes its whole
//! group: today `users, videos, favorites, comments, relations` share counters, `messages` stands
//! alone.

use std::collections::BTreeSet;

use titok_events::Topic;
use titok_views::ViewTable;

/// One projection.
#[derive(Debug, PartialEq, Eq)]
pub struct View {
    pub projection: &'static str,
    pub topic: Topic,
    pub version: i64,
    /// The view tables it writes.
    pub tables: &'static [ViewTable],
}

pub static VIEWS: [View; 6] = [
    View {
        projection: "users",
        topic: Topic::Users,
        version: 1,
        tables: &[ViewTable::Users, ViewTable::UserStats],
    },
    View {
        projection: "videos",
        topic: Topic::Videos,
        version: 1,
        tables: &[
            ViewTable::Videos,
            ViewTable::VideoStats,
            ViewTable::UserStats,
        ],
    },
    View {
        projection: "favorites",
        topic: Topic::Favorites,
        // 2: events are applied once by event id (a re-appended keyed retry is skipped).
        version: 2,
        tables: &[
            ViewTable::Favorites,
            ViewTable::VideoStats,
            ViewTable::UserStats,
            ViewTable::AppliedEvents,
        ],
    },
    View {
        projection: "comments",
        topic: Topic::Comments,
        version: 2,
        tables: &[
            ViewTable::Comments,
            ViewTable::VideoStats,
            ViewTable::AppliedEvents,
        ],
    },
    View {
        projection: "relations",
        topic: Topic::Relations,
        version: 2,
        tables: &[
            ViewTable::Follows,
            ViewTable::Friends,
            ViewTable::UserStats,
            ViewTable::AppliedEvents,
        ],
    },
    View {
        projection: "messages",
        topic: Topic::Messages,
        version: 1,
        tables: &[ViewTable::Messages, ViewTable::LatestMessages],
    },
];

/// The projection consuming `topic`.
pub fn view_of(topic: Topic) -> &'static View {
    VIEWS
        .iter()
        .find(|v| v.topic == topic)
        .expect("every topic has a projection")
}

/// The projection called `name`.
pub fn view_named(name: &str) -> Option<&'static View> {
    VIEWS.iter().find(|v| v.projection == name)
}

/// The rebuild groups: projections connected by shared tables, in catalog order.
pub fn groups() -> Vec<Vec<&'static View>> {
    let mut groups: Vec<Vec<&'static View>> = Vec::new();
    for view in &VIEWS {
        let touching: Vec<usize> = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| {
                g.iter()
                    .any(|m| m.tables.iter().any(|t| view.tables.contains(t)))
            })
            .map(|(i, _)| i)
            .collect();
        let mut merged = vec![view];
        for i in touching.into_iter().rev() {
            let mut g = groups.remove(i);
            g.append(&mut merged);
            merged = g;
        }
        merged.sort_by_key(|v| VIEWS.iter().position(|x| x == *v));
        groups.push(merged);
    }
    groups.sort_by_key(|g| VIEWS.iter().position(|x| x == g[0]));
    groups
}

/// The group `view` belongs to.
pub fn group_of(view: &View) -> Vec<&'static View> {
    groups()
        .into_iter()
        .find(|g| g.contains(&view))
        .unwrap_or_default()
}

/// Every table a group writes, each once.
pub fn tables_of(group: &[&View]) -> BTreeSet<ViewTable> {
    group
        .iter()
        .flat_map(|v| v.tables.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_tie_the_social_views_together_and_messages_stand_alone() {
        let names: Vec<Vec<&str>> = groups()
            .iter()
            .map(|g| g.iter().map(|v| v.projection).collect())
            .collect();
        assert_eq!(
            names,
            vec![
                vec!["users", "videos", "favorites", "comments", "relations"],
                vec!["messages"]
            ]
        );
        assert_eq!(group_of(view_named("messages").expect("view")).len(), 1);
    }

    #[test]
    fn every_table_is_written_by_a_projection_and_every_topic_has_one() {
        for table in ViewTable::ALL {
            assert!(VIEWS.iter().any(|v| v.tables.contains(&table)), "{table}");
        }
        for topic in Topic::ALL {
            assert_eq!(view_of(topic).topic, topic);
        }
    }
}
