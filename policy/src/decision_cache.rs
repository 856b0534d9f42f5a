//! Decisions cached by statement text, per identity class. ORMs send the same few hundred
//! statement texts over and over, so after warm-up a decision costs one hash lookup.
//!
//! A session looks up its [`ClassCache`] once (and again only when its identity or
//! search_path changes); lookups then borrow the statement text, with no allocation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::analysis::analyze;
use crate::decision::{Decision, Identity, RuleSet, SearchPath};
use crate::shape::shape;

/// Statement texts remembered per class; past this the class cache starts afresh.
const MAX_STATEMENTS_PER_CLASS: usize = 4096;
/// Identity × search_path classes remembered; past this the oldest are forgotten.
const MAX_CLASSES: usize = 256;

/// Decisions for one identity and search_path.
pub struct ClassCache {
    pub identity: Identity,
    pub path: SearchPath,
    decisions: Mutex<HashMap<Box<str>, Arc<Decision>>>,
}

/// A policy's rules with their decision cache.
pub struct Engine {
    pub rules: RuleSet,
    classes: Mutex<Vec<Arc<ClassCache>>>,
}

impl Engine {
    pub fn new(rules: RuleSet) -> Self {
        Engine {
            rules,
            classes: Mutex::new(Vec::new()),
        }
    }

    /// The cache for statements run by `identity` under `path`.
    pub fn class(&self, identity: &Identity, path: &SearchPath) -> Arc<ClassCache> {
        let mut classes = self.classes.lock().expect("class cache poisoned");
        if let Some(c) = classes
            .iter()
            .find(|c| c.identity == *identity && c.path == *path)
        {
            return c.clone();
        }
        if classes.len() >= MAX_CLASSES {
            classes.remove(0);
        }
        let class = Arc::new(ClassCache {
            identity: identity.clone(),
            path: path.clone(),
            decisions: Mutex::new(HashMap::new()),
        });
        classes.push(class.clone());
        class
    }

    /// Decides `sql` for `class`, from the cache when it can. Statements that differ only
    /// in inlined numbers share a [`shape`] and so a cache entry.
    pub fn decide(&self, class: &ClassCache, sql: &str) -> Arc<Decision> {
        let shaped = shape(sql);
        let key = shaped.as_deref().unwrap_or(sql);
        if let Some(d) = class
            .decisions
            .lock()
            .expect("decision cache poisoned")
            .get(key)
        {
            return d.clone();
        }
        let decision = Arc::new(
            self.rules
                .decide(&analyze(sql), &class.identity, &class.path),
        );
        // A search_path change carries its schemas, which are this text's alone.
        let key = if decision.search_path_changes.is_empty() {
            key
        } else {
            sql
        };
        let mut cache = class.decisions.lock().expect("decision cache poisoned");
        if cache.len() >= MAX_STATEMENTS_PER_CLASS {
            cache.clear();
        }
        cache.insert(key.into(), decision.clone());
        decision
    }

    /// Decides without touching the cache (for `check` and benchmarks of the cold path).
    pub fn decide_uncached(&self, identity: &Identity, path: &SearchPath, sql: &str) -> Decision {
        self.rules.decide(&analyze(sql), identity, path)
    }
}
