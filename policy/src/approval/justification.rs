//! `approval.requireJustification`: a rule may insist that the requester says why before a
//! statement is even put to the approvers (`SET palisade.justification = '…'` on the
//! session, taken by the sidecar and recorded on the request).

use crate::model::Approval;

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
