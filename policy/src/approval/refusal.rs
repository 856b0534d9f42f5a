//! Why a decision, an update or a withdrawal was refused. Callers map these to answers: the
//! admission webhook denies with the message; the standalone admin endpoint answers with
//! [`Refusal::http_status`] (SPEC §2.3: 401 without a verified identity, 403 for a
//! non-approver or the requester, 409 once the request is no longer pending).

use crate::crd::ApprovalState;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the decision names no user: decisions carry the identity the API server or the OIDC token verified"
    )]
    Unidentified,
    #[error("{user} is not an approver of rule {rule}: {approvers}")]
    NotApprover {
        user: String,
        rule: String,
        /// Who is, in words ("approvers are users bob; groups data-stewards").
        approvers: String,
    },
    #[error(
        "{user} requested this statement (as {identity}) and cannot decide it: another approver must"
    )]
    Requester {
        user: String,
        /// Which of the requester's identities the decider matched, e.g. `service account
        /// ml/notebook`.
        identity: String,
    },
    #[error("the request is {state:?}, no longer Pending: it takes no more decisions")]
    NotPending { state: ApprovalState },
    #[error(
        "{user} has already decided this request: each approver decides once, and the first decision stands"
    )]
    AlreadyDecided { user: String },
    #[error(
        "decision {index} was changed: decisions cannot be edited once made (append a new one)"
    )]
    DecisionEdited { index: usize },
    #[error("decision {index} was removed: decisions cannot be removed once made")]
    DecisionRemoved { index: usize },
    #[error("spec.{field} cannot be changed: only decisions may be appended to an ApprovalRequest")]
    SpecChanged { field: &'static str },
}

impl Refusal {
    /// The HTTP status the standalone admin endpoint answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            Refusal::Unidentified => 401,
            Refusal::NotApprover { .. } | Refusal::Requester { .. } => 403,
            Refusal::NotPending { .. } | Refusal::AlreadyDecided { .. } => 409,
            // Rewriting history is forbidden whatever the state.
            Refusal::DecisionEdited { .. }
            | Refusal::DecisionRemoved { .. }
            | Refusal::SpecChanged { .. } => 403,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_spec() {
        assert_eq!(Refusal::Unidentified.http_status(), 401);
        let not_approver = Refusal::NotApprover {
            user: "mallory".into(),
            rule: "customer-export".into(),
            approvers: "approvers are groups data-stewards".into(),
        };
        assert_eq!(not_approver.http_status(), 403);
        assert_eq!(
            not_approver.to_string(),
            "mallory is not an approver of rule customer-export: approvers are groups data-stewards"
        );
        let requester = Refusal::Requester {
            user: "alice@example.com".into(),
            identity: "user alice@example.com".into(),
        };
        assert_eq!(requester.http_status(), 403);
        let decided = Refusal::NotPending {
            state: ApprovalState::Denied,
        };
        assert_eq!(decided.http_status(), 409);
        assert_eq!(
            decided.to_string(),
            "the request is Denied, no longer Pending: it takes no more decisions"
        );
    }
}
