//! `approval.requireJustification`: a rule may insist that the requester says why before a
//! statement is even put to the approvers (`SET palisade.justification = '…'` on the
//! session, taken by the sidecar and recorded on the request).

use pg_query::NodeEnum;
use pg_query::protobuf::{ParseResult, VariableSetKind, a_const};

use crate::analysis::with_tree;
use crate::dialect::SqlDialect;
use crate::model::Approval;

/// The session setting that carries a justification. The sidecar takes it; the server
/// only ever sees it reset.
pub const JUSTIFICATION_SETTING: &str = "palisade.justification";

/// What a statement does to the session's justification, when it is exactly one `SET`
/// of it: `Some(Some(text))` for `SET palisade.justification = 'text'` (or `TO`, or
/// `SET LOCAL`), `Some(None)` for `RESET palisade.justification` and `SET … TO DEFAULT`.
/// `None` for every other statement, which then goes its ordinary way.
pub fn justification_set(sql: &str, dialect: &SqlDialect) -> Option<Option<String>> {
    with_tree(sql, dialect, |tree| Ok(setting(tree)))
        .ok()
        .flatten()
}

fn setting(tree: &ParseResult) -> Option<Option<String>> {
    let [raw] = tree.stmts.as_slice() else {
        return None;
    };
    let Some(NodeEnum::VariableSetStmt(set)) = raw.stmt.as_ref()?.node.as_ref() else {
        return None;
    };
    if !set.name.eq_ignore_ascii_case(JUSTIFICATION_SETTING) {
        return None;
    }
    match VariableSetKind::try_from(set.kind).ok()? {
        VariableSetKind::VarSetValue => {
            let [value] = set.args.as_slice() else {
                return None;
            };
            match value.node.as_ref()? {
                NodeEnum::AConst(c) => match c.val.as_ref()? {
                    a_const::Val::Sval(s) => Some(Some(s.sval.clone())),
                    _ => None,
                },
                _ => None,
            }
        }
        VariableSetKind::VarSetDefault | VariableSetKind::VarReset => Some(None),
        _ => None,
    }
}

/// The statement needs a justification the session has not given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "rule {rule} needs a justification before this statement can be put to its approvers; HINT: run SET palisade.justification = 'why you need this' first, then run the statement again"
)]
pub struct JustificationRequired {
    pub rule: String,
}

/// Refuses when `approval` requires a justification and `justification` is absent or blank.
pub fn check_justification(
    rule: &str,
    approval: &Approval,
    justification: Option<&str>,
) -> Result<(), JustificationRequired> {
    let given = justification.is_some_and(|j| !j.trim().is_empty());
    if approval.require_justification && !given {
        return Err(JustificationRequired {
            rule: rule.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_justification_setting_is_recognised() {
        assert_eq!(
            justification_set(
                "SET palisade.justification = 'quarterly churn model'",
                &SqlDialect::default()
            ),
            Some(Some("quarterly churn model".into()))
        );
        assert_eq!(
            justification_set(
                "set local PALISADE.JUSTIFICATION to 'it''s needed'",
                &SqlDialect::default()
            ),
            Some(Some("it's needed".into()))
        );
        assert_eq!(
            justification_set("RESET palisade.justification", &SqlDialect::default()),
            Some(None)
        );
        assert_eq!(
            justification_set(
                "SET palisade.justification TO DEFAULT",
                &SqlDialect::default()
            ),
            Some(None)
        );
        for other in [
            "SET search_path = public",
            "SET palisade.justification = 'a'; SELECT 1",
            "SET palisade.justification = 'a', 'b'",
            "SELECT set_config('palisade.justification', 'x', false)",
            "not sql",
        ] {
            assert_eq!(
                justification_set(other, &SqlDialect::default()),
                None,
                "{other}"
            );
        }
    }

    #[test]
    fn required_only_when_the_rule_says_so() {
        let optional = Approval::default();
        assert!(check_justification("r", &optional, None).is_ok());
        let required = Approval {
            require_justification: true,
            ..Approval::default()
        };
        assert!(check_justification("r", &required, Some("quarterly churn model")).is_ok());
        for missing in [None, Some(""), Some("   ")] {
            let err = check_justification("customer-export", &required, missing).unwrap_err();
            assert!(
                err.to_string().contains("SET palisade.justification"),
                "{err}"
            );
            assert!(
                err.to_string().starts_with("rule customer-export needs"),
                "{err}"
            );
        }
    }
}
