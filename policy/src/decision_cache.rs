//! Decisions cached by statement text, per identity class. ORMs send the same few hundred
//! statement texts over and over, so after warm-up a decision costs one hash lookup.
//!
//! A session looks up its [`ClassCache`] once (and again only when its identity or
//! search_path changes); lookups then borrow the statement text, with no allocation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::analysis::{ParseFailure, analyze_with};
use crate::decision::{Decision, Identity, RuleSet, SearchPath};
use crate::dialect::SqlDialect;
use crate::grammar;
use crate::shape::shape;

/// Statement texts remembered per class; past this the class cache starts afresh.
const MAX_STATEMENTS_PER_CLASS: usize = 4096;
/// Identity × search_path classes remembered; past this the oldest are forgotten.
const MAX_CLASSES: usize = 256;

/// Decisions for one identity, search_path and way of reading text (the session's lexer
/// settings and server version).
pub struct ClassCache {
    pub identity: Identity,
    pub path: SearchPath,
    pub dialect: SqlDialect,
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

    /// The cache for statements run by `identity` under `path`, read with `dialect`.
    pub fn class(
        &self,
        identity: &Identity,
        path: &SearchPath,
        dialect: &SqlDialect,
    ) -> Arc<ClassCache> {
        let mut classes = self.classes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = classes
            .iter()
            .find(|c| c.identity == *identity && c.path == *path && c.dialect == *dialect)
        {
            return c.clone();
        }
        if classes.len() >= MAX_CLASSES {
            classes.remove(0);
        }
        let class = Arc::new(ClassCache {
            identity: identity.clone(),
            path: path.clone(),
            dialect: *dialect,
            decisions: Mutex::new(HashMap::new()),
        });
        classes.push(class.clone());
        class
    }

    /// Decides `sql` for `class`, from the cache when it can. Statements that differ only
    /// in inlined numbers share a [`shape`] and so a cache entry.
    pub fn decide(&self, class: &ClassCache, sql: &str) -> Arc<Decision> {
        if let Some(too_long) = self.over_limit(sql.len()) {
            return Arc::new(too_long);
        }
        let shaped = shape(sql);
        let key = shaped.as_deref().unwrap_or(sql);
        if let Some(d) = class
            .decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return d.clone();
        }
        let decision = Arc::new(self.judge(&class.identity, &class.path, &class.dialect, sql));
        // A search_path change carries its schemas, which are this text's alone.
        let key = if decision.search_path_changes.is_empty() {
            key
        } else {
            sql
        };
        let mut cache = class
            .decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_STATEMENTS_PER_CLASS {
            cache.clear();
        }
        cache.insert(key.into(), decision.clone());
        decision
    }

    /// Text the server's grammar rejects goes to the server for its own error (SQLSTATE,
    /// message, position) when its grammar is covered and nothing since restricts a
    /// keyword the text uses; otherwise `onParseError` decides it.
    fn judge(
        &self,
        identity: &Identity,
        path: &SearchPath,
        dialect: &SqlDialect,
        sql: &str,
    ) -> Decision {
        let analysis = analyze_with(sql, dialect);
        if let Err(failure) = &analysis
            && failure.is_syntax_error()
            && dialect
                .server_major
                .is_some_and(|major| grammar::server_rejects_too(major, sql))
        {
            return self.rules.server_rejects(&failure.message);
        }
        self.rules.decide(&analysis, identity, path)
    }

    /// Decides statement text as it came off the wire: over `limits.maxStatementBytes`,
    /// or not UTF-8 (which the analysis cannot read), it is decided without parsing.
    pub fn decide_bytes(&self, class: &ClassCache, sql: &[u8]) -> Arc<Decision> {
        if let Some(too_long) = self.over_limit(sql.len()) {
            return Arc::new(too_long);
        }
        match std::str::from_utf8(sql) {
            Ok(text) => self.decide(class, text),
            Err(_) => Arc::new(self.rules.decide(
                &Err(ParseFailure::unanalysable(
                    "statement text is not valid UTF-8",
                )),
                &class.identity,
                &class.path,
            )),
        }
    }

    /// Decides without touching the cache (for `check` and benchmarks of the cold path).
    pub fn decide_uncached(&self, identity: &Identity, path: &SearchPath, sql: &str) -> Decision {
        match self.over_limit(sql.len()) {
            Some(too_long) => too_long,
            None => self.judge(identity, path, &SqlDialect::default(), sql),
        }
    }

    /// The decision for a message over `limits.maxStatementBytes`, if it is.
    pub fn over_limit(&self, bytes: usize) -> Option<Decision> {
        (bytes as u64 > self.rules.max_statement_bytes()).then(|| self.rules.too_long(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Action, Reason};
    use crate::dialect::SqlDialect;
    use crate::manifest::parse_manifests;
    use crate::render::render_all;

    fn engine(limits: &str) -> Engine {
        let yaml = format!(
            "apiVersion: palisade.dev/v1alpha1\nkind: DatabasePolicy\nmetadata: {{name: p}}\nspec:\n  database: {{host: db}}\n  limits: {limits}\n  rules:\n  - {{name: no-drop, match: {{operations: [Drop]}}, action: Deny}}\n  - {{name: need-where, match: {{operations: [Delete], withoutWhere: true}}, action: Deny}}\n"
        );
        let policy = &render_all("t", &parse_manifests("t", &yaml).unwrap()).unwrap()[0];
        Engine::new(RuleSet::new(policy))
    }

    #[test]
    fn wire_text_is_limited_and_must_be_utf8_before_any_parsing() {
        let engine = engine("{maxStatementBytes: 20}");
        let class = engine.class(
            &Identity::default(),
            &SearchPath::default(),
            &SqlDialect::default(),
        );
        let long = engine.decide_bytes(&class, b"SELECT 1 FROM generate_series(1, 10)");
        assert_eq!(
            long.reason,
            Reason::TooLong {
                bytes: 36,
                limit: 20
            }
        );
        assert_eq!(
            engine
                .decide_uncached(
                    &Identity::default(),
                    &SearchPath::default(),
                    "SELECT 1 FROM generate_series(1, 10)"
                )
                .action,
            Action::Deny
        );
        let bad = engine.decide_bytes(&class, b"SELECT '\xff'");
        assert!(matches!(&bad.reason, Reason::ParseError { message } if message.contains("UTF-8")));
        assert_eq!(
            engine.decide_bytes(&class, b"SELECT 1").action,
            Action::Allow
        );
    }

    #[test]
    fn inlined_numbers_share_an_entry_but_constant_comparisons_do_not() {
        let engine = engine("{}");
        let class = engine.class(
            &Identity::default(),
            &SearchPath::default(),
            &SqlDialect::default(),
        );
        let a = engine.decide(&class, "SELECT * FROM t WHERE id = 1");
        let b = engine.decide(&class, "SELECT * FROM t WHERE id = 2");
        assert!(Arc::ptr_eq(&a, &b), "one cache entry for one shape");
        // `1 = 2` and `1 = 1` differ in whether the WHERE restricts anything: never one entry.
        let never = engine.decide(&class, "DELETE FROM t WHERE 1 = 2");
        let always = engine.decide(&class, "DELETE FROM t WHERE 1 = 1");
        assert_eq!((never.action, always.action), (Action::Allow, Action::Deny));
        assert_eq!(engine.decide(&class, "DROP TABLE t").action, Action::Deny);
    }
}
