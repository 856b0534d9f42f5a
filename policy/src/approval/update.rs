//! What an update of an ApprovalRequest may change: nothing but the end of its decision list.
//!
//! The webhook judges every UPDATE with these. Everything else in the spec is what the
//! approvers are shown and what the requester checks rely on: a requester who could rewrite
//! `requester` could approve their own statement; one who could rewrite `statement` could
//! have a different one approved.

use std::time::SystemTime;

use super::decide::admit;
use super::refusal::Refusal;
use crate::crd::{ApprovalDecision, ApprovalRequestSpec, ApprovalState};
use crate::model::Approval;
use crate::timestamp;

/// The decisions appended from `old` to `new`. Refused when an earlier decision was edited
/// or removed.
pub fn check_decisions_update<'a>(
    old: &[ApprovalDecision],
    new: &'a [ApprovalDecision],
) -> Result<&'a [ApprovalDecision], Refusal> {
    for (index, before) in old.iter().enumerate() {
        match new.get(index) {
            None => return Err(Refusal::DecisionRemoved { index }),
            Some(after) if after != before => return Err(Refusal::DecisionEdited { index }),
            Some(_) => {}
        }
    }
    Ok(&new[old.len()..])
}

/// The decisions appended from `old` to `new`; refused when anything else changed.
pub fn check_spec_update<'a>(
    old: &ApprovalRequestSpec,
    new: &'a ApprovalRequestSpec,
) -> Result<&'a [ApprovalDecision], Refusal> {
    // Destructured so that a field added to the spec must be placed here, once, on purpose.
    let ApprovalRequestSpec {
        policy,
        rule,
        requester,
        statement,
        fingerprint,
        operations,
        tables,
        columns,
        estimate,
        justification,
        expires_at,
        decisions,
    } = old;
    let unchanged: [(&'static str, bool); 11] = [
        ("policy", *policy == new.policy),
        ("rule", *rule == new.rule),
        ("requester", *requester == new.requester),
        ("statement", *statement == new.statement),
        ("fingerprint", *fingerprint == new.fingerprint),
        ("operations", *operations == new.operations),
        ("tables", *tables == new.tables),
        ("columns", *columns == new.columns),
        ("estimate", *estimate == new.estimate),
        ("justification", *justification == new.justification),
        ("expiresAt", *expires_at == new.expires_at),
    ];
    if let Some((field, _)) = unchanged.iter().find(|(_, same)| !same) {
        return Err(Refusal::SpecChanged { field });
    }
    check_decisions_update(decisions, &new.decisions)
}

/// The verified identity of whoever makes an update: the AdmissionReview's `userInfo` in a
/// cluster, the OIDC token's user and groups at the standalone admin endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decider {
    pub user: String,
    pub groups: Vec<String>,
}

/// Judges an update of a request as the admission webhook must: only decisions appended;
/// each stamped with the decider's verified `user` and `groups` and the time, whatever the
/// client typed into them; each admitted in turn. Returns the decisions as they are to be
/// stored and the state the request reaches.
pub fn admit_update(
    old: &ApprovalRequestSpec,
    new: &ApprovalRequestSpec,
    stored: ApprovalState,
    approval: &Approval,
    decider: &Decider,
    now: SystemTime,
) -> Result<(Vec<ApprovalDecision>, ApprovalState), Refusal> {
    let appended = check_spec_update(old, new)?;
    let mut current = old.clone();
    let mut state = stored;
    for d in appended {
        let stamped = stamp(d, decider, now);
        state = admit(&current, state, approval, &stamped, now)?;
        current.decisions.push(stamped);
    }
    Ok((current.decisions, state))
}

/// `decision` with the verified identity and the time put in place of whatever it said.
pub fn stamp(decision: &ApprovalDecision, decider: &Decider, now: SystemTime) -> ApprovalDecision {
    ApprovalDecision {
        verdict: decision.verdict,
        comment: decision.comment.clone(),
        user: Some(decider.user.clone()),
        groups: decider.groups.clone(),
        at: Some(timestamp::format(now)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::crd::{Requester, Verdict};
    use crate::model::Approvers;

    fn d(verdict: Verdict, user: &str) -> ApprovalDecision {
        ApprovalDecision {
            verdict,
            comment: Some("ok".into()),
            user: Some(user.into()),
            groups: vec![],
            at: Some("2026-11-26T10:01:00Z".into()),
        }
    }

    fn request() -> ApprovalRequestSpec {
        ApprovalRequestSpec {
            policy: "features-db".into(),
            rule: "customer-export".into(),
            requester: Requester {
                user: Some("alice@example.com".into()),
                ..Requester::default()
            },
            statement: "DELETE FROM customers WHERE id = $1".into(),
            fingerprint: "sha256:ab".into(),
            expires_at: "2026-11-26T10:05:00Z".into(),
            ..ApprovalRequestSpec::default()
        }
    }

    #[test]
    fn decisions_are_append_only() {
        let old = [d(Verdict::Approve, "bob")];
        let appended = [d(Verdict::Approve, "bob"), d(Verdict::Deny, "carol")];
        assert_eq!(
            check_decisions_update(&old, &appended).unwrap(),
            &appended[1..]
        );
        assert_eq!(check_decisions_update(&old, &old).unwrap(), &[]);
        assert_eq!(
            check_decisions_update(&old, &[d(Verdict::Deny, "bob")]),
            Err(Refusal::DecisionEdited { index: 0 })
        );
        let mut comment_changed = d(Verdict::Approve, "bob");
        comment_changed.comment = Some("changed my mind".into());
        assert_eq!(
            check_decisions_update(&old, &[comment_changed]),
            Err(Refusal::DecisionEdited { index: 0 })
        );
        assert_eq!(
            check_decisions_update(&old, &[]),
            Err(Refusal::DecisionRemoved { index: 0 })
        );
        // Removing the first and appending one is an edit, not an append.
        let two = [d(Verdict::Approve, "bob"), d(Verdict::Approve, "dave")];
        assert_eq!(
            check_decisions_update(
                &two,
                &[d(Verdict::Approve, "dave"), d(Verdict::Approve, "erin")]
            ),
            Err(Refusal::DecisionEdited { index: 0 })
        );
    }

    #[test]
    fn nothing_but_decisions_may_change() {
        let old = request();
        let mut new = old.clone();
        new.requester.user = Some("mallory@example.com".into());
        assert_eq!(
            check_spec_update(&old, &new),
            Err(Refusal::SpecChanged { field: "requester" })
        );
        let mut new = old.clone();
        new.statement = "DELETE FROM customers".into();
        assert_eq!(
            check_spec_update(&old, &new).unwrap_err().to_string(),
            "spec.statement cannot be changed: only decisions may be appended to an ApprovalRequest"
        );
        let mut new = old.clone();
        new.expires_at = "2030-01-01T00:00:00Z".into();
        assert_eq!(
            check_spec_update(&old, &new),
            Err(Refusal::SpecChanged { field: "expiresAt" })
        );
        let mut new = old.clone();
        new.decisions.push(d(Verdict::Approve, "bob"));
        assert_eq!(check_spec_update(&old, &new).unwrap().len(), 1);
    }

    #[test]
    fn the_webhook_stamps_the_verified_identity() {
        let approval = Approval {
            approvers: Approvers {
                groups: vec!["data-stewards".into()],
                users: vec![],
            },
            min_approvals: 1,
            ..Approval::default()
        };
        let old = request();
        let now = timestamp::parse("2026-11-26T10:02:00Z").unwrap();
        // The client claims to be an approver; the API server says it is bob, a steward.
        let mut new = old.clone();
        new.decisions.push(ApprovalDecision {
            verdict: Verdict::Approve,
            comment: Some("ok for Q4".into()),
            user: Some("carol@example.com".into()),
            groups: vec!["admins".into()],
            at: Some("1999-01-01T00:00:00Z".into()),
        });
        let bob = Decider {
            user: "bob@example.com".into(),
            groups: vec!["data-stewards".into()],
        };
        let (decisions, state) =
            admit_update(&old, &new, ApprovalState::Pending, &approval, &bob, now).unwrap();
        assert_eq!(state, ApprovalState::Approved);
        assert_eq!(
            decisions,
            [ApprovalDecision {
                verdict: Verdict::Approve,
                comment: Some("ok for Q4".into()),
                user: Some("bob@example.com".into()),
                groups: vec!["data-stewards".into()],
                at: Some("2026-11-26T10:02:00Z".into()),
            }]
        );
        // The requester, whatever the decision claims, is refused.
        let alice = Decider {
            user: "alice@example.com".into(),
            groups: vec!["data-stewards".into()],
        };
        assert!(matches!(
            admit_update(&old, &new, ApprovalState::Pending, &approval, &alice, now),
            Err(Refusal::Requester { .. })
        ));
        // Too late.
        assert!(matches!(
            admit_update(
                &old,
                &new,
                ApprovalState::Pending,
                &approval,
                &bob,
                now + Duration::from_secs(3600)
            ),
            Err(Refusal::NotPending {
                state: ApprovalState::Expired
            })
        ));
    }
}
