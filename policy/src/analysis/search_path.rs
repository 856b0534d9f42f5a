//! SET, RESET and DISCARD: the Set operation, and what they do to `search_path`.
//!
//! `SET search_path = a, "B", 'c'` lists schemas: identifiers as the server folds them,
//! string literals taken as their value. `SET ROLE` and `SET SESSION AUTHORIZATION`
//! change what `"$user"` in the path means, so they count as an unknown change.

use sqlparser::ast::{
    ContextModifier, DiscardObject, Expr, ObjectName, Reset, ResetStatement, Set, Value,
};

use super::walker::Walker;
use super::{SearchPathChange, names};
use crate::model::Operation;

fn is_search_path(name: &ObjectName) -> bool {
    // Parameter names are case-insensitive, quoted or not.
    matches!(name.0.as_slice(), [part] if part.as_ident().is_some_and(|id| id.value.eq_ignore_ascii_case("search_path")))
}

impl Walker<'_> {
    pub fn set(&mut self, set: &Set) {
        match set {
            Set::SingleAssignment {
                scope,
                hivevar,
                variable,
                values,
            } => {
                self.reject(*hivevar, "SET hivevar");
                self.reject(matches!(scope, Some(ContextModifier::Global)), "SET GLOBAL");
                self.facts.op(Operation::Set);
                if is_search_path(variable) {
                    let local = matches!(scope, Some(ContextModifier::Local));
                    let change = search_path(values, local);
                    self.facts.search_path(change);
                }
            }
            Set::SetRole {
                context_modifier, ..
            } => {
                self.reject(
                    matches!(context_modifier, Some(ContextModifier::Global)),
                    "SET GLOBAL",
                );
                self.facts.op(Operation::Set);
                self.facts.search_path(SearchPathChange::Unknown);
            }
            Set::SetSessionAuthorization(_) => {
                self.facts.op(Operation::Set);
                self.facts.search_path(SearchPathChange::Unknown);
            }
            Set::SetTimeZone { .. } | Set::SetNames { .. } | Set::SetNamesDefault {} => {
                self.facts.op(Operation::Set);
            }
            Set::SetTransaction { .. } => self.facts.op(Operation::Transaction),
            Set::ParenthesizedAssignments { .. }
            | Set::MultipleAssignments { .. }
            | Set::SetSessionParam(_) => self.facts.not_postgres("this SET"),
        }
    }

    pub fn reset(&mut self, reset: &ResetStatement) {
        self.facts.op(Operation::Set);
        match &reset.reset {
            Reset::ALL => self.facts.search_path(SearchPathChange::Reset),
            Reset::SessionAuthorization => self.facts.search_path(SearchPathChange::Unknown),
            Reset::ConfigurationParameter(name) => {
                if is_search_path(name) {
                    self.facts.search_path(SearchPathChange::Reset);
                } else if matches!(name.0.as_slice(), [part] if part.as_ident().is_some_and(|id| id.value.eq_ignore_ascii_case("role")))
                {
                    self.facts.search_path(SearchPathChange::Unknown);
                }
            }
        }
    }

    pub fn discard(&mut self, object: &DiscardObject) {
        self.facts.op(Operation::Other);
        if matches!(object, DiscardObject::ALL) {
            self.facts.search_path(SearchPathChange::Reset);
        }
    }
}

/// The change `SET search_path = values` makes.
fn search_path(values: &[Expr], local: bool) -> SearchPathChange {
    if let [Expr::Identifier(id)] = values
        && names::is_keyword(id, "default")
    {
        return SearchPathChange::Reset;
    }
    let mut schemas = Vec::new();
    for value in values {
        match value {
            Expr::Identifier(id) => schemas.push(names::ident(id)),
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s)
                | Value::EscapedStringLiteral(s)
                | Value::UnicodeStringLiteral(s) => schemas.push(names::truncate(s)),
                Value::DollarQuotedString(s) => schemas.push(names::truncate(&s.value)),
                _ => return SearchPathChange::Unknown,
            },
            _ => return SearchPathChange::Unknown,
        }
    }
    SearchPathChange::Set { schemas, local }
}
