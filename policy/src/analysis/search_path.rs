//! SET, RESET and DISCARD: the Set operation, and what they do to `search_path`.
//!
//! `SET search_path = a, "B", 'c'` lists schemas (the parser hands identifiers and string
//! literals over alike, as the server reads them). `SET ROLE` and `SET SESSION
//! AUTHORIZATION` change what `"$user"` in the path means, so they count as an unknown
//! change.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    DiscardMode, DiscardStmt, Node, VariableSetKind, VariableSetStmt, a_const,
};

use super::SearchPathChange;
use super::walker::Walker;
use crate::model::Operation;

/// Parameters whose change makes `"$user"` in the path mean someone else.
fn changes_user(name: &str) -> bool {
    matches!(name, "role" | "session_authorization")
}

impl Walker<'_> {
    pub fn set(&mut self, set: &VariableSetStmt) {
        let kind = VariableSetKind::try_from(set.kind).unwrap_or(VariableSetKind::Undefined);
        // SET TRANSACTION …, SET SESSION CHARACTERISTICS AS TRANSACTION …
        if kind == VariableSetKind::VarSetMulti {
            self.facts.op(Operation::Transaction);
            return;
        }
        self.facts.op(Operation::Set);
        let name = set.name.to_ascii_lowercase();
        match kind {
            VariableSetKind::VarResetAll => self.facts.search_path(SearchPathChange::Reset),
            _ if changes_user(&name) => self.facts.search_path(SearchPathChange::Unknown),
            _ if name != "search_path" => {}
            VariableSetKind::VarSetValue => {
                let change = search_path(&set.args, set.is_local);
                self.facts.search_path(change);
            }
            VariableSetKind::VarSetDefault | VariableSetKind::VarReset => {
                self.facts.search_path(SearchPathChange::Reset);
            }
            _ => self.facts.search_path(SearchPathChange::Unknown),
        }
    }

    pub fn discard(&mut self, discard: &DiscardStmt) {
        self.facts.op(Operation::Other);
        if discard.target == DiscardMode::DiscardAll as i32 {
            self.facts.search_path(SearchPathChange::Reset);
        }
    }
}

/// The change `SET search_path = values` makes.
fn search_path(values: &[Node], local: bool) -> SearchPathChange {
    let mut schemas = Vec::new();
    for value in values {
        match value.node.as_ref() {
            Some(NodeEnum::AConst(c)) => match &c.val {
                Some(a_const::Val::Sval(s)) => schemas.push(s.sval.clone()),
                _ => return SearchPathChange::Unknown,
            },
            _ => return SearchPathChange::Unknown,
        }
    }
    SearchPathChange::Set { schemas, local }
}
