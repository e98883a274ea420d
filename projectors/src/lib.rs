//! # titok-projectors
//!
//! The only writers of the read models. One projection per topic family, each folding its topic's
//! events into SQL views and the counter cache:
//!
//! | projection | topic | views |
//! |---|---|---|
//! | `users` | `titok.users` | `users`, `user_stats` rows |
//! | `videos` | `titok.videos` | `videos`, author's `work_count` |
//! | `favorites` | `titok.favorites` | `favorites`, video/user/author like counts |
//! | `comments` | `titok.comments` | `comments`, `comment_count` |
//! | `relations` | `titok.relations` | `follows`, `friends`, follow counts |
//! | `messages` | `titok.messages` | `messages`, `latest_messages`, chat-poll shortcut |
//!
//! [`runtime`] consumes in batches and commits the view rows together with the
//! `(projection, topic, partition, next_offset)` checkpoint, so each event takes effect exactly
//! once however often it is delivered — the fold itself (each batch's net effect in a few
//! multi-row statements) lives with the rest of the view SQL in `titok-views`; [`catalog`]
//! the projection versions and the tables each writes; [`rebuild`] replays the log into fresh
//! tables and swaps them in while the live views keep serving; [`version_check`] compares the
//! stored views' versions at start-up and rebuilds (or refuses) stale ones; [`parked`] lists,
//! drops and retries the records a projection could not apply; [`sweep`] removes uploads that no
//! published video points at (left by a crash between storing an upload and appending its event).

pub mod catalog;
pub mod continuity;
mod deps;
mod faults;
pub mod folder;
pub mod generations;
pub mod parked;
pub mod rebuild;
pub mod runtime;
pub mod sweep;
pub mod version_check;

pub use deps::ProjectorDeps;
pub use runtime::spawn_all;

#[cfg(test)]
mod fold_property;
