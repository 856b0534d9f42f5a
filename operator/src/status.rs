//! A DatabasePolicy's status and Events, computed from what a reconcile observed. Pure: no
//! clients, no clocks (the time is passed in), so every transition is unit-tested.

use palisade_policy::crd::condition_types::{READY, REFERENCES_RESOLVED, RENDERED};
use palisade_policy::{Condition, ConditionStatus, DatabasePolicyStatus};

use crate::render::Problem;

/// What one reconcile found out about a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub generation: Option<i64>,
    pub render: RenderOutcome,
    /// Missing Secrets and the fields that reference them; empty when all exist.
    pub missing_secrets: Vec<(String, Vec<String>)>,
    /// How many Secrets the policy references.
    pub secret_count: usize,
    pub injected_pods: u32,
    pub uninjected_pods: u32,
}

/// The rendering half of an [`Observation`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenderOutcome {
    /// Rendered and written to the ConfigMap.
    Rendered {
        policy_hash: String,
        config_map: String,
        masking_rules: Vec<String>,
        rule_count: u32,
    },
    /// Not renderable; the ConfigMap keeps the last good document.
    Failed(Problem),
}

pub const REASON_RENDERED: &str = "Rendered";
pub const REASON_SECRETS_FOUND: &str = "SecretsFound";
pub const REASON_SECRET_NOT_FOUND: &str = "SecretNotFound";
pub const REASON_NOT_RENDERED: &str = "NotRendered";
pub const REASON_READY: &str = "Ready";

/// The status to write: `old` supplies what a failed render keeps (the hash and ConfigMap
/// still being enforced) and the transition times of conditions whose status is unchanged.
pub fn desired_status(
    old: Option<&DatabasePolicyStatus>,
    obs: &Observation,
    now: &str,
) -> DatabasePolicyStatus {
    let old_conditions = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let condition = |type_: &str, ok: bool, reason: &str, message: String| {
        let status = if ok {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        };
        transition(
            old_conditions,
            type_,
            status,
            reason,
            message,
            obs.generation,
            now,
        )
    };

    let mut status = old.cloned().unwrap_or_default();
    let rendered = match &obs.render {
        RenderOutcome::Rendered {
            policy_hash,
            config_map,
            masking_rules,
            rule_count,
        } => {
            status.policy_hash = Some(policy_hash.clone());
            status.rendered_config_map = Some(config_map.clone());
            status.masking_rules = masking_rules.clone();
            status.rule_count = *rule_count;
            condition(
                RENDERED,
                true,
                REASON_RENDERED,
                format!("{policy_hash} written to ConfigMap {config_map} (key policy.json)"),
            )
        }
        RenderOutcome::Failed(problem) => condition(
            RENDERED,
            false,
            problem.reason,
            format!(
                "{}; sidecars keep enforcing the last rendered policy{}",
                problem.message,
                status
                    .policy_hash
                    .as_deref()
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default()
            ),
        ),
    };
    let references = match (&obs.render, obs.missing_secrets.as_slice()) {
        (RenderOutcome::Failed(_), _) => transition(
            old_conditions,
            REFERENCES_RESOLVED,
            ConditionStatus::Unknown,
            REASON_NOT_RENDERED,
            "the policy could not be rendered, so its references are unknown".into(),
            obs.generation,
            now,
        ),
        (_, []) => condition(
            REFERENCES_RESOLVED,
            true,
            REASON_SECRETS_FOUND,
            format!("all {} referenced Secrets exist", obs.secret_count),
        ),
        (_, missing) => condition(
            REFERENCES_RESOLVED,
            false,
            REASON_SECRET_NOT_FOUND,
            missing_message(missing),
        ),
    };
    let ready = match [&rendered, &references]
        .into_iter()
        .find(|c| c.status != ConditionStatus::True)
    {
        Some(failing) => condition(READY, false, &failing.reason, failing.message.clone()),
        None => condition(
            READY,
            true,
            REASON_READY,
            format!(
                "enforced by {} injected pod(s){}",
                obs.injected_pods,
                if obs.uninjected_pods > 0 {
                    format!(
                        "; {} selected pod(s) run without it until restarted",
                        obs.uninjected_pods
                    )
                } else {
                    String::new()
                }
            ),
        ),
    };
    status.observed_generation = obs.generation;
    status.conditions = vec![ready, rendered, references];
    status.injected_pods = obs.injected_pods;
    status.uninjected_pods = obs.uninjected_pods;
    status
}

fn missing_message(missing: &[(String, Vec<String>)]) -> String {
    let parts: Vec<String> = missing
        .iter()
        .map(|(name, fields)| format!("Secret {name} (referenced by {})", fields.join(", ")))
        .collect();
    format!("not found: {}", parts.join("; "))
}

/// A condition with `lastTransitionTime` kept from `old` when its status did not change.
pub fn transition(
    old: &[Condition],
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &str,
) -> Condition {
    let last_transition_time = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.to_string());
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// An Event the reconcile should publish about the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    pub warning: bool,
    /// Whether the event concerns the ConfigMap just written (its `related` object).
    pub about_config_map: bool,
    /// PascalCase, low cardinality.
    pub reason: String,
    pub note: String,
}

/// One Event per change between `old` and `new`: a new rendered hash, and each condition
/// that turned bad or changed why it is bad. Unchanged status publishes nothing, so periodic
/// resyncs stay quiet.
pub fn planned_events(
    old: Option<&DatabasePolicyStatus>,
    new: &DatabasePolicyStatus,
) -> Vec<PlannedEvent> {
    let mut events = Vec::new();
    if let Some(hash) = &new.policy_hash
        && old.and_then(|o| o.policy_hash.as_ref()) != Some(hash)
    {
        let masking = if new.masking_rules.is_empty() {
            "no MaskingRules".to_string()
        } else {
            format!("MaskingRules {}", new.masking_rules.join(", "))
        };
        events.push(PlannedEvent {
            warning: false,
            about_config_map: true,
            reason: "Rendered".into(),
            note: format!(
                "rendered {hash} into ConfigMap {} ({} rules, {masking})",
                new.rendered_config_map.as_deref().unwrap_or_default(),
                new.rule_count
            ),
        });
    }
    for type_ in [RENDERED, REFERENCES_RESOLVED] {
        let Some(now) = new.conditions.iter().find(|c| c.type_ == type_) else {
            continue;
        };
        if now.status != ConditionStatus::False {
            continue;
        }
        let before = old.and_then(|o| o.conditions.iter().find(|c| c.type_ == type_));
        let changed = before.is_none_or(|b| {
            b.status != now.status || b.reason != now.reason || b.message != now.message
        });
        if changed {
            events.push(PlannedEvent {
                warning: true,
                about_config_map: false,
                reason: now.reason.clone(),
                note: now.message.clone(),
            });
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(hash: &str) -> Observation {
        Observation {
            generation: Some(2),
            render: RenderOutcome::Rendered {
                policy_hash: hash.into(),
                config_map: "palisade-policy-p".into(),
                masking_rules: vec!["pii".into()],
                rule_count: 3,
            },
            missing_secrets: vec![],
            secret_count: 2,
            injected_pods: 4,
            uninjected_pods: 0,
        }
    }

    fn cond<'a>(s: &'a DatabasePolicyStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn a_good_render_is_ready_and_says_so_once() {
        let s = desired_status(None, &rendered("sha256:a"), "T1");
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(s.policy_hash.as_deref(), Some("sha256:a"));
        assert_eq!(s.rendered_config_map.as_deref(), Some("palisade-policy-p"));
        assert_eq!((s.rule_count, s.injected_pods), (3, 4));
        assert_eq!(cond(&s, READY).status, ConditionStatus::True);
        assert_eq!(cond(&s, READY).message, "enforced by 4 injected pod(s)");
        assert_eq!(cond(&s, REFERENCES_RESOLVED).reason, REASON_SECRETS_FOUND);
        let events = planned_events(None, &s);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, "Rendered");
        assert!(events[0].note.contains("sha256:a") && events[0].note.contains("MaskingRules pii"));
        // Nothing changed: no event, transition times kept.
        let again = desired_status(Some(&s), &rendered("sha256:a"), "T2");
        assert!(planned_events(Some(&s), &again).is_empty());
        assert_eq!(cond(&again, READY).last_transition_time, "T1");
    }

    #[test]
    fn an_invalid_spec_keeps_the_last_hash_and_names_the_field() {
        let good = desired_status(None, &rendered("sha256:a"), "T1");
        let mut obs = rendered("unused");
        obs.generation = Some(3);
        obs.render = RenderOutcome::Failed(Problem {
            reason: "InvalidSpec",
            message: "spec.rules[2].approval.minApprovals: must be at least 1".into(),
        });
        let bad = desired_status(Some(&good), &obs, "T2");
        assert_eq!(bad.policy_hash.as_deref(), Some("sha256:a"));
        let ready = cond(&bad, READY);
        assert_eq!(ready.status, ConditionStatus::False);
        assert_eq!(ready.reason, "InvalidSpec");
        assert!(
            ready
                .message
                .contains("spec.rules[2].approval.minApprovals"),
            "{}",
            ready.message
        );
        assert!(ready.message.contains("last rendered policy (sha256:a)"));
        assert_eq!(ready.last_transition_time, "T2");
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(
            cond(&bad, REFERENCES_RESOLVED).status,
            ConditionStatus::Unknown
        );
        let events = planned_events(Some(&good), &bad);
        assert_eq!(events.len(), 1);
        assert!(events[0].warning);
        assert_eq!(events[0].reason, "InvalidSpec");
        // The same problem again publishes nothing.
        let still = desired_status(Some(&bad), &obs, "T3");
        assert!(planned_events(Some(&bad), &still).is_empty());
        assert_eq!(cond(&still, READY).last_transition_time, "T2");
    }

    #[test]
    fn missing_secrets_name_the_referencing_fields() {
        let mut obs = rendered("sha256:a");
        obs.missing_secrets = vec![("pg-ca".into(), vec!["spec.database.tls.caSecretRef".into()])];
        let s = desired_status(None, &obs, "T1");
        let refs = cond(&s, REFERENCES_RESOLVED);
        assert_eq!(refs.status, ConditionStatus::False);
        assert_eq!(refs.reason, REASON_SECRET_NOT_FOUND);
        assert_eq!(
            refs.message,
            "not found: Secret pg-ca (referenced by spec.database.tls.caSecretRef)"
        );
        assert_eq!(cond(&s, READY).reason, REASON_SECRET_NOT_FOUND);
        assert_eq!(cond(&s, RENDERED).status, ConditionStatus::True);
        let reasons: Vec<_> = planned_events(None, &s)
            .into_iter()
            .map(|e| e.reason)
            .collect();
        assert_eq!(reasons, ["Rendered", "SecretNotFound"]);
    }

    #[test]
    fn uninjected_pods_are_surfaced_in_the_ready_message() {
        let mut obs = rendered("sha256:a");
        obs.uninjected_pods = 2;
        let s = desired_status(None, &obs, "T1");
        assert_eq!(s.uninjected_pods, 2);
        assert!(
            cond(&s, READY)
                .message
                .contains("2 selected pod(s) run without it")
        );
    }
}
