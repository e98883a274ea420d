//! A positive cache of ids known to exist. Users are never deleted, so "exists" never goes stale;
//! caching it keeps token checks and chat polls off the database. Bounded: cleared when full.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

const MAX_KNOWN: usize = 1 << 20;

#[derive(Clone, Default)]
pub struct KnownIds {
    ids: Arc<Mutex<HashSet<i64>>>,
}

impl KnownIds {
    pub fn contains(&self, id: i64) -> bool {
        match self.ids.lock() {
            Ok(ids) => ids.contains(&id),
            Err(poisoned) => poisoned.into_inner().contains(&id),
        }
    }

    pub fn insert(&self, id: i64) {
        let mut ids = match self.ids.lock() {
            Ok(ids) => ids,
            Err(poisoned) => poisoned.into_inner(),
        };
        if ids.len() >= MAX_KNOWN {
            ids.clear();
        }
        ids.insert(id);
    }
}
