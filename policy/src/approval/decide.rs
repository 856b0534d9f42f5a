//! Who may decide a request, and where the decisions leave it (SPEC §2.3).
//!
//! The same rules serve the admission webhook (which admits a decision before the API server
//! stores it) and whoever reads a request to act on it (the sidecar, holding the statement):
//! [`tally`] counts only decisions that [`admit`] would have admitted, so a decision that got
//! in some other way — a cluster without the webhook, an edit by someone with write access to
//! the resource — never approves anything.

use std::collections::BTreeSet;
use std::time::SystemTime;

use super::refusal::Refusal;
use crate::crd::{ApprovalDecision, ApprovalRequestSpec, ApprovalState, Requester, Verdict};
use crate::model::Approval;
use crate::timestamp;

/// Admits `decision` on `request` under the rule's `approval` settings, and says where the
/// request stands with it appended. `stored` is the state the request's status records; `now`
/// decides expiry.
///
/// Refused, in this order: a decision naming no user; a decider who is not an approver; the
/// requester, under any of their identities (even when they are also an approver); a request
/// no longer pending (decided, expired, withdrawn); an approver who already decided it (the
/// CRD's "each approver decides once", so both modes answer alike — and should a second
/// decision get in anyway, [`tally`] still counts the person once).
pub fn admit(
    request: &ApprovalRequestSpec,
    stored: ApprovalState,
    approval: &Approval,
    decision: &ApprovalDecision,
    now: SystemTime,
) -> Result<ApprovalState, Refusal> {
    check_decider(request, approval, decision)?;
    let state = evaluate(request, stored, approval, now);
    if state != ApprovalState::Pending {
        return Err(Refusal::NotPending { state });
    }
    if let Some(user) = decision.user.as_deref()
        && request.decisions.iter().any(|d| {
            d.user
                .as_deref()
                .is_some_and(|u| u.to_lowercase() == user.to_lowercase())
        })
    {
        return Err(Refusal::AlreadyDecided {
            user: user.to_string(),
        });
    }
    let mut decisions = request.decisions.clone();
    decisions.push(decision.clone());
    Ok(tally(&request.requester, approval, &decisions))
}

/// Where a request stands now: a settled state stays; otherwise the decisions made before
/// `expiresAt` decide; a request they leave pending is Expired once `expiresAt` has passed.
///
/// A decision counts when the request is still open, or when its `at` (stamped by the
/// webhook) is before `expiresAt`: an approval admitted just in time still approves when it is
/// read a moment after the deadline.
pub fn evaluate(
    request: &ApprovalRequestSpec,
    stored: ApprovalState,
    approval: &Approval,
    now: SystemTime,
) -> ApprovalState {
    if stored != ApprovalState::Pending {
        return stored;
    }
    let end = timestamp::parse(&request.expires_at).ok();
    let open = end.is_some_and(|end| now < end);
    let in_time: Vec<ApprovalDecision> = request
        .decisions
        .iter()
        .filter(|d| {
            open || end.is_some_and(|end| {
                d.at.as_deref()
                    .and_then(|at| timestamp::parse(at).ok())
                    .is_some_and(|at| at < end)
            })
        })
        .cloned()
        .collect();
    match tally(&request.requester, approval, &in_time) {
        ApprovalState::Pending if !open => ApprovalState::Expired,
        state => state,
    }
}

/// `stored`, or Expired for a pending request past `expires_at`. An `expires_at` that is not
/// an RFC 3339 time counts as past: a hold with no readable end must not wait forever.
pub fn current_state(stored: ApprovalState, expires_at: &str, now: SystemTime) -> ApprovalState {
    if stored != ApprovalState::Pending {
        return stored;
    }
    match timestamp::parse(expires_at) {
        Ok(end) if now < end => ApprovalState::Pending,
        _ => ApprovalState::Expired,
    }
}

/// The client cancelled or disconnected: a pending request becomes Withdrawn. `current` is
/// the request's state as [`evaluate`] gives it.
pub fn withdraw(current: ApprovalState) -> Result<ApprovalState, Refusal> {
    match current {
        ApprovalState::Pending => Ok(ApprovalState::Withdrawn),
        state => Err(Refusal::NotPending { state }),
    }
}

/// The state `decisions` lead to, read in order and stopping once settled: the first
/// valid Deny denies; `minApprovals` distinct valid approvers approve. Decisions that
/// [`admit`] would refuse are not counted; one person deciding twice counts once.
pub fn tally(
    requester: &Requester,
    approval: &Approval,
    decisions: &[ApprovalDecision],
) -> ApprovalState {
    let needed = approval.min_approvals.max(1) as usize;
    let mut approvers = BTreeSet::new();
    for d in decisions {
        let Some(user) = d.user.as_deref().filter(|u| !u.is_empty()) else {
            continue;
        };
        if !is_approver(approval, user, &d.groups) || requester_identity(requester, user).is_some()
        {
            continue;
        }
        match d.verdict {
            Verdict::Deny => return ApprovalState::Denied,
            Verdict::Approve => {
                // Case-folded, so one person under two spellings still counts once.
                approvers.insert(user.to_lowercase());
                if approvers.len() >= needed {
                    return ApprovalState::Approved;
                }
            }
        }
    }
    ApprovalState::Pending
}

fn check_decider(
    request: &ApprovalRequestSpec,
    approval: &Approval,
    decision: &ApprovalDecision,
) -> Result<(), Refusal> {
    let user = decision
        .user
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or(Refusal::Unidentified)?;
    if !is_approver(approval, user, &decision.groups) {
        return Err(Refusal::NotApprover {
            user: user.to_string(),
            rule: request.rule.clone(),
            approvers: describe_approvers(approval),
        });
    }
    if let Some(identity) = requester_identity(&request.requester, user) {
        return Err(Refusal::Requester {
            user: user.to_string(),
            identity,
        });
    }
    Ok(())
}

/// Whether `user` (with `groups`) is one of the rule's approvers: a listed user, or a member
/// of a listed group — any match. Exact comparison: being an approver is a grant, and a
/// grant is never widened by guessing that two spellings mean one person.
pub fn is_approver(approval: &Approval, user: &str, groups: &[String]) -> bool {
    approval.approvers.users.iter().any(|u| u == user)
        || groups
            .iter()
            .any(|g| approval.approvers.groups.iter().any(|a| a == g))
}

/// Which of the requester's identities `user` is, if any. Each identity the decider could
/// be is compared: the OIDC user, the service account (as `ns/name` and as the API server
/// names it, `system:serviceaccount:ns:name`), the database user. Generous on purpose, since
/// a false match only asks for another approver: case is ignored, and so is a prefix the API
/// server's OIDC login puts before user names (`oidc:alice@…`, or `https://issuer#alice`).
pub fn requester_identity(requester: &Requester, user: &str) -> Option<String> {
    let mut names: Vec<(String, String)> = Vec::new();
    if let Some(u) = &requester.user {
        names.push((u.clone(), format!("user {u}")));
    }
    if let Some(sa) = &requester.service_account {
        names.push((sa.clone(), format!("service account {sa}")));
        if let Some((ns, name)) = sa.split_once('/') {
            names.push((
                format!("system:serviceaccount:{ns}:{name}"),
                format!("service account {sa}"),
            ));
        }
    }
    if let Some(db) = &requester.db_user {
        names.push((db.clone(), format!("database user {db}")));
    }
    let user = user.to_lowercase();
    names.into_iter().find_map(|(name, what)| {
        let name = name.to_lowercase();
        if name.is_empty() {
            return None;
        }
        let prefixed = user
            .strip_suffix(name.as_str())
            .is_some_and(|prefix| prefix.ends_with(':') || prefix.ends_with('#'));
        (user == name || prefixed).then_some(what)
    })
}

/// "approvers are users bob, carol; groups data-stewards", for refusals.
fn describe_approvers(approval: &Approval) -> String {
    let mut parts = Vec::new();
    if !approval.approvers.users.is_empty() {
        parts.push(format!("users {}", approval.approvers.users.join(", ")));
    }
    if !approval.approvers.groups.is_empty() {
        parts.push(format!("groups {}", approval.approvers.groups.join(", ")));
    }
    if parts.is_empty() {
        "the rule names no approvers".into()
    } else {
        format!("approvers are {}", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::Approvers;

    const EXPIRES: &str = "2026-11-26T10:05:00Z";

    fn before_expiry() -> SystemTime {
        timestamp::parse(EXPIRES).unwrap() - Duration::from_secs(60)
    }

    fn rule(min: u32) -> Approval {
        Approval {
            approvers: Approvers {
                groups: vec!["data-stewards".into()],
                users: vec!["carol@example.com".into(), "oidc:alice@example.com".into()],
            },
            min_approvals: min,
            ..Approval::default()
        }
    }

    fn request() -> ApprovalRequestSpec {
        ApprovalRequestSpec {
            policy: "features-db".into(),
            rule: "customer-export".into(),
            requester: Requester {
                user: Some("alice@example.com".into()),
                groups: vec!["contractors".into(), "data-stewards".into()],
                service_account: Some("ml/notebook".into()),
                pod: Some("notebook-0".into()),
                db_user: Some("analyst".into()),
                ..Requester::default()
            },
            statement: "SELECT * FROM customers WHERE region = $1".into(),
            fingerprint: "sha256:00".into(),
            expires_at: EXPIRES.into(),
            ..ApprovalRequestSpec::default()
        }
    }

    fn decision(verdict: Verdict, user: &str, groups: &[&str]) -> ApprovalDecision {
        ApprovalDecision {
            verdict,
            comment: None,
            user: Some(user.into()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            at: None,
        }
    }

    fn steward(user: &str) -> ApprovalDecision {
        decision(Verdict::Approve, user, &["data-stewards"])
    }

    fn admit_now(
        req: &ApprovalRequestSpec,
        approval: &Approval,
        d: &ApprovalDecision,
    ) -> Result<ApprovalState, Refusal> {
        admit(req, ApprovalState::Pending, approval, d, before_expiry())
    }

    #[test]
    fn one_approver_approves() {
        assert_eq!(
            admit_now(&request(), &rule(1), &steward("bob@example.com")),
            Ok(ApprovalState::Approved)
        );
        // A listed user needs no group.
        assert_eq!(
            admit_now(
                &request(),
                &rule(1),
                &decision(Verdict::Approve, "carol@example.com", &[])
            ),
            Ok(ApprovalState::Approved)
        );
    }

    #[test]
    fn only_approvers_decide() {
        let err = admit_now(
            &request(),
            &rule(1),
            &decision(Verdict::Approve, "mallory", &["devs"]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "mallory is not an approver of rule customer-export: approvers are users carol@example.com, oidc:alice@example.com; groups data-stewards"
        );
        assert_eq!(err.http_status(), 403);
        // Case differences do not make an approver.
        assert!(matches!(
            admit_now(
                &request(),
                &rule(1),
                &decision(Verdict::Approve, "Carol@example.com", &[])
            ),
            Err(Refusal::NotApprover { .. })
        ));
        let mut anonymous = steward("x");
        anonymous.user = None;
        assert_eq!(
            admit_now(&request(), &rule(1), &anonymous),
            Err(Refusal::Unidentified)
        );
        anonymous.user = Some(String::new());
        assert_eq!(
            admit_now(&request(), &rule(1), &anonymous),
            Err(Refusal::Unidentified)
        );
    }

    #[test]
    fn the_requester_never_decides_under_any_identity() {
        // Alice is in data-stewards herself, so she passes the approver check: the
        // requester check must still stop her, whichever name she comes under.
        for (user, identity) in [
            ("alice@example.com", "user alice@example.com"),
            ("ALICE@example.com", "user alice@example.com"),
            ("oidc:alice@example.com", "user alice@example.com"),
            (
                "https://idp.example/#alice@example.com",
                "user alice@example.com",
            ),
            (
                "system:serviceaccount:ml:notebook",
                "service account ml/notebook",
            ),
            ("ml/notebook", "service account ml/notebook"),
            ("analyst", "database user analyst"),
        ] {
            for verdict in [Verdict::Approve, Verdict::Deny] {
                let err = admit_now(
                    &request(),
                    &rule(1),
                    &decision(verdict, user, &["data-stewards"]),
                )
                .unwrap_err();
                assert_eq!(
                    err,
                    Refusal::Requester {
                        user: user.into(),
                        identity: identity.into()
                    },
                    "{user}"
                );
                assert_eq!(err.http_status(), 403);
            }
        }
        // A look-alike that is not a prefix form is somebody else.
        assert_eq!(
            admit_now(&request(), &rule(1), &steward("malice@example.com")),
            Ok(ApprovalState::Approved)
        );
    }

    #[test]
    fn min_approvals_counts_distinct_people() {
        let r = rule(2);
        let mut req = request();
        assert_eq!(
            admit_now(&req, &r, &steward("bob@example.com")),
            Ok(ApprovalState::Pending)
        );
        req.decisions.push(steward("bob@example.com"));
        // Bob again, even spelled differently, is still one person: refused, 409.
        for again in ["bob@example.com", "Bob@Example.com"] {
            let err = admit_now(&req, &r, &steward(again)).unwrap_err();
            assert_eq!(err, Refusal::AlreadyDecided { user: again.into() });
            assert_eq!(err.http_status(), 409);
        }
        // Had a second decision of his got in some other way, it would count once.
        req.decisions.push(steward("Bob@Example.com"));
        assert_eq!(
            tally(&req.requester, &r, &req.decisions),
            ApprovalState::Pending
        );
        assert_eq!(
            admit_now(&req, &r, &steward("dave@example.com")),
            Ok(ApprovalState::Approved)
        );
    }

    #[test]
    fn any_deny_denies() {
        let r = rule(2);
        let mut req = request();
        req.decisions.push(steward("bob@example.com"));
        assert_eq!(
            admit_now(
                &req,
                &r,
                &decision(Verdict::Deny, "dave@example.com", &["data-stewards"])
            ),
            Ok(ApprovalState::Denied)
        );
    }

    #[test]
    fn settled_requests_take_no_decisions() {
        for state in [
            ApprovalState::Approved,
            ApprovalState::Denied,
            ApprovalState::Expired,
            ApprovalState::Withdrawn,
        ] {
            let err = admit(
                &request(),
                state,
                &rule(1),
                &steward("bob@example.com"),
                before_expiry(),
            )
            .unwrap_err();
            assert_eq!(err, Refusal::NotPending { state });
            assert_eq!(err.http_status(), 409);
        }
        // Pending in the status, but past expiresAt: expired.
        let late = timestamp::parse(EXPIRES).unwrap();
        assert_eq!(
            admit(
                &request(),
                ApprovalState::Pending,
                &rule(1),
                &steward("bob@example.com"),
                late
            ),
            Err(Refusal::NotPending {
                state: ApprovalState::Expired
            })
        );
        // Approved by its decisions though the status has not caught up yet.
        let mut req = request();
        req.decisions.push(steward("bob@example.com"));
        assert_eq!(
            admit_now(
                &req,
                &rule(1),
                &decision(Verdict::Deny, "dave@example.com", &["data-stewards"])
            ),
            Err(Refusal::NotPending {
                state: ApprovalState::Approved
            })
        );
    }

    #[test]
    fn the_tally_ignores_decisions_admit_would_refuse() {
        let r = rule(1);
        let req = request();
        let smuggled = [
            decision(Verdict::Approve, "alice@example.com", &["data-stewards"]),
            decision(Verdict::Approve, "mallory", &[]),
            decision(Verdict::Deny, "mallory", &[]),
            ApprovalDecision {
                user: None,
                ..steward("x")
            },
        ];
        assert_eq!(tally(&req.requester, &r, &smuggled), ApprovalState::Pending);
        // Once settled, later decisions change nothing.
        let settled = [
            steward("bob@example.com"),
            decision(Verdict::Deny, "dave@example.com", &["data-stewards"]),
        ];
        assert_eq!(tally(&req.requester, &r, &settled), ApprovalState::Approved);
        // minApprovals 0 is read as 1: nothing is approved without an approver.
        assert_eq!(tally(&req.requester, &rule(0), &[]), ApprovalState::Pending);
    }

    #[test]
    fn expiry_and_withdrawal() {
        let end = timestamp::parse(EXPIRES).unwrap();
        assert_eq!(
            current_state(
                ApprovalState::Pending,
                EXPIRES,
                end - Duration::from_secs(1)
            ),
            ApprovalState::Pending
        );
        assert_eq!(
            current_state(ApprovalState::Pending, EXPIRES, end),
            ApprovalState::Expired
        );
        assert_eq!(
            current_state(ApprovalState::Pending, "soon", end),
            ApprovalState::Expired
        );
        assert_eq!(
            current_state(ApprovalState::Denied, EXPIRES, end),
            ApprovalState::Denied
        );
        assert_eq!(
            withdraw(ApprovalState::Pending),
            Ok(ApprovalState::Withdrawn)
        );
        assert_eq!(
            withdraw(ApprovalState::Approved),
            Err(Refusal::NotPending {
                state: ApprovalState::Approved
            })
        );
        assert_eq!(
            evaluate(&request(), ApprovalState::Pending, &rule(1), end),
            ApprovalState::Expired
        );
    }

    #[test]
    fn a_decision_made_in_time_counts_when_read_late() {
        let end = timestamp::parse(EXPIRES).unwrap();
        let late = end + Duration::from_secs(5);
        let mut req = request();
        let mut bob = steward("bob@example.com");
        bob.at = Some("2026-11-26T10:04:59Z".into());
        req.decisions.push(bob.clone());
        assert_eq!(
            evaluate(&req, ApprovalState::Pending, &rule(1), late),
            ApprovalState::Approved
        );
        // Stamped at or after the deadline, or not stamped: too late.
        for at in [
            Some(EXPIRES),
            Some("2026-11-26T10:06:00Z"),
            None,
            Some("whenever"),
        ] {
            bob.at = at.map(str::to_string);
            req.decisions = vec![bob.clone()];
            assert_eq!(
                evaluate(&req, ApprovalState::Pending, &rule(1), late),
                ApprovalState::Expired,
                "{at:?}"
            );
            // While the request is open, the stamp does not matter.
            assert_eq!(
                evaluate(
                    &req,
                    ApprovalState::Pending,
                    &rule(1),
                    end - Duration::from_secs(1)
                ),
                ApprovalState::Approved,
                "{at:?}"
            );
        }
    }
}
