//! The CRDs' CEL rules (`x-kubernetes-validations`), evaluated client-side with kube's `cel`
//! feature the way the API server evaluates them (schema defaults applied first): valid
//! objects pass, invalid ones fail with the message and field the rule promises.

use kube::core::cel::{CompiledSchema, Validator, WarningKind, compile_schema, estimate_rule_cost};
use serde_json::Value;

mod cel_cases;

/// The openAPIV3Schema of the CRD for `kind`.
fn schema(kind: &str) -> Value {
    let crd = palisade_policy::crds()
        .unwrap()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

/// `field: message` of every failed rule; empty when the object is valid.
fn errors(kind: &str, object: &Value, old: Option<&Value>) -> Vec<String> {
    match Validator::new().validate(&schema(kind), object, old) {
        Ok(()) => Vec::new(),
        Err(errs) => errs
            .into_vec()
            .into_iter()
            .map(|e| format!("{}: {}", e.field_path, e.message))
            .collect(),
    }
}

fn assert_rejected(kind: &str, object: &Value, old: Option<&Value>, field: &str, message: &str) {
    let errs = errors(kind, object, old);
    assert!(
        errs.iter()
            .any(|e| e.contains(field) && e.contains(message)),
        "expected `{field}: {message}`, got {errs:?} for {object}"
    );
}

fn policy(rules: &str) -> Value {
    yaml(&format!(
        "apiVersion: palisade.dev/v1alpha1\nkind: DatabasePolicy\nmetadata: {{name: p, namespace: ml}}\nspec:\n  database: {{host: db}}\n{rules}"
    ))
}

fn masking(mask: &str) -> Value {
    yaml(&format!(
        "apiVersion: palisade.dev/v1alpha1\nkind: MaskingRule\nmetadata: {{name: m, namespace: ml}}\nspec:\n  columns:\n  - {{table: public.t, column: c, mask: {mask}}}\n"
    ))
}

fn examples(file: &str) -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/");
    let text = std::fs::read_to_string(format!("{path}{file}")).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

#[test]
fn the_shipped_examples_pass_every_rule() {
    for (kind, file) in [
        ("DatabasePolicy", "databasepolicy.yaml"),
        ("MaskingRule", "maskingrule.yaml"),
    ] {
        for object in examples(file) {
            assert_eq!(errors(kind, &object, None), Vec::<String>::new(), "{file}");
        }
    }
}

#[test]
fn database_policy_rules_name_the_field() {
    let cases = cel_cases::database_policy_refusals();
    for (tail, field, message) in cases {
        assert_rejected("DatabasePolicy", &policy(&tail), None, field, message);
    }
    // Groups have any number of members, so minApprovals is not bounded by them.
    let ok = cel_cases::DATABASE_POLICY_ACCEPTED;
    assert_eq!(
        errors("DatabasePolicy", &policy(ok), None),
        Vec::<String>::new()
    );
}

#[test]
fn masking_rule_rules_tie_fields_to_mask_types() {
    for (mask, field, message) in cel_cases::MASKING_RULE_REFUSALS {
        assert_rejected("MaskingRule", &masking(mask), None, field, message);
    }
    // `type: Null` unquoted is a YAML null: still the Null mask.
    for ok in cel_cases::MASKING_RULE_ACCEPTED
        .iter()
        .chain(&["{type: Null}"])
    {
        assert_eq!(
            errors("MaskingRule", &masking(ok), None),
            Vec::<String>::new(),
            "{ok}"
        );
    }
}

const REQUEST: &str = "apiVersion: palisade.dev/v1alpha1
kind: ApprovalRequest
metadata: {name: features-db-7f3a9c, namespace: ml}
spec:
  policy: features-db
  rule: customer-export
  requester: {user: alice@example.com, groups: [contractors]}
  statement: SELECT * FROM customers WHERE region = $1
  fingerprint: sha256:abc
  tables: [public.customers]
  justification: quarterly churn model
  expiresAt: 2026-11-26T10:05:00Z
";

fn request(decisions: &[&str]) -> Value {
    let mut v = yaml(REQUEST);
    let list: Vec<Value> = decisions.iter().map(|d| yaml(d)).collect();
    v["spec"]["decisions"] = Value::Array(list);
    v
}

const BOB: &str = "{verdict: Approve, comment: ok for Q4, user: bob@example.com, groups: [data-stewards], at: '2026-11-26T10:01:00Z'}";
const CAROL: &str = "{verdict: Approve, user: carol@example.com, groups: [data-stewards]}";

#[test]
fn approval_decisions_are_append_only() {
    let one = request(&[BOB]);
    assert_eq!(errors("ApprovalRequest", &one, None), Vec::<String>::new());
    // Appending is allowed.
    let two = request(&[BOB, CAROL]);
    assert_eq!(
        errors("ApprovalRequest", &two, Some(&one)),
        Vec::<String>::new()
    );
    let append_only = "decisions are append-only";
    // Removing, editing or reordering is not.
    assert_rejected(
        "ApprovalRequest",
        &request(&[]),
        Some(&one),
        "decisions",
        append_only,
    );
    let edited = BOB.replace("ok for Q4", "changed my mind");
    assert_rejected(
        "ApprovalRequest",
        &request(&[&edited]),
        Some(&one),
        "decisions",
        append_only,
    );
    let flipped = BOB.replace("Approve", "Deny");
    assert_rejected(
        "ApprovalRequest",
        &request(&[&flipped, CAROL]),
        Some(&one),
        "decisions",
        append_only,
    );
}

#[test]
fn approval_requests_keep_their_statement_and_approver_rules() {
    let old = request(&[]);
    let mut changed = old.clone();
    changed["spec"]["statement"] = "SELECT 1".into();
    assert_rejected(
        "ApprovalRequest",
        &changed,
        Some(&old),
        "statement",
        "is immutable",
    );
    let mut changed = old.clone();
    changed["spec"]["requester"]["user"] = "mallory@example.com".into();
    assert_rejected(
        "ApprovalRequest",
        &changed,
        Some(&old),
        "requester",
        "is immutable",
    );
    let mut removed = old.clone();
    removed["spec"]
        .as_object_mut()
        .unwrap()
        .remove("justification");
    assert_rejected(
        "ApprovalRequest",
        &removed,
        Some(&old),
        "spec",
        "cannot be removed once set",
    );

    let own = "{verdict: Approve, user: alice@example.com}";
    assert_rejected(
        "ApprovalRequest",
        &request(&[own]),
        None,
        "decisions",
        "the requester may not decide their own request",
    );
    assert_rejected(
        "ApprovalRequest",
        &request(&[BOB, BOB]),
        None,
        "decisions",
        "each approver decides once",
    );
}

#[test]
fn a_decided_request_stays_decided() {
    let with_state = |state: &str| {
        let mut v = request(&[BOB]);
        v["status"] = serde_json::json!({"state": state});
        v
    };
    let pending = with_state("Pending");
    let approved = with_state("Approved");
    assert_eq!(
        errors("ApprovalRequest", &approved, Some(&pending)),
        Vec::<String>::new()
    );
    assert_rejected(
        "ApprovalRequest",
        &pending,
        Some(&approved),
        "state",
        "a decided request stays decided",
    );
    assert_rejected(
        "ApprovalRequest",
        &with_state("Expired"),
        Some(&approved),
        "state",
        "stays decided",
    );
}

/// The API server refuses CRDs whose rules could cost too much on the largest object the
/// schema allows; every list and string a rule walks is bounded for that reason.
#[test]
fn every_rule_fits_the_cost_budget() {
    fn walk(node: &CompiledSchema, problems: &mut Vec<String>) {
        for compiled in node.validations.iter() {
            match compiled {
                Ok(c) => {
                    for w in estimate_rule_cost(&c.rule.rule, node) {
                        if matches!(
                            w.kind,
                            WarningKind::CostExceeded | WarningKind::MissingBounds
                        ) {
                            problems.push(format!("{}: {}", w.rule, w.message));
                        }
                    }
                }
                Err(e) => problems.push(format!("does not compile: {e}")),
            }
        }
        for child in node.properties.values() {
            walk(child, problems);
        }
        if let Some(items) = &node.items {
            walk(items, problems);
        }
    }
    for kind in ["DatabasePolicy", "MaskingRule", "ApprovalRequest"] {
        let mut problems = Vec::new();
        walk(&compile_schema(&schema(kind)), &mut problems);
        assert!(problems.is_empty(), "{kind}: {problems:#?}");
    }
}
