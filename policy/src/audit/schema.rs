//! The JSON Schema of an audit event line, for consumers (SIEM parsers, tests) to validate
//! against. It is generated from the serde types in [`super::event`], so it cannot drift
//! from what is written, and then tightened with what the types alone cannot say: the hash
//! formats, and which parts each `kind` carries.

use serde_json::{Value, json};

use super::event::{Event, Kind};

/// The parts each kind must carry (beyond `ts`, `seq`, `prev`, `hash`, `kind`).
pub fn required_parts(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::SessionStart | Kind::SessionEnd => &["session", "policy", "identity", "database"],
        Kind::Statement => &[
            "session",
            "policy",
            "identity",
            "database",
            "statement",
            "decision",
            "result",
        ],
        Kind::Approval => &[
            "session",
            "policy",
            "identity",
            "database",
            "statement",
            "decision",
            "approval",
        ],
        Kind::PolicyLoaded => &["policy"],
        Kind::Checkpoint => &["checkpoint"],
    }
}

/// The JSON Schema (draft 2020-12) of one event line.
pub fn event_schema() -> Value {
    let mut schema = schemars::schema_for!(Event).to_value();
    let hash = json!({"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"});
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert(
            "prev".into(),
            json!({"description": "The previous event's hash, or the genesis value", "type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}),
        );
        props.insert("hash".into(), hash);
    }
    if let Some(required) = schema.get_mut("required").and_then(Value::as_array_mut)
        && !required.iter().any(|r| r == "hash")
    {
        required.push(json!("hash"));
    }
    let per_kind: Vec<Value> = Kind::ALL
        .iter()
        .map(|kind| {
            let mut then = json!({"required": required_parts(*kind)});
            // The two kind-specific parts never appear on another kind.
            let mut absent = Vec::new();
            if *kind != Kind::Checkpoint {
                absent.push(json!({"required": ["checkpoint"]}));
            }
            if *kind != Kind::Approval {
                absent.push(json!({"required": ["approval"]}));
            }
            if let Some(obj) = then.as_object_mut() {
                obj.insert("not".into(), json!({"anyOf": absent}));
            }
            json!({
                "if": {"properties": {"kind": {"const": kind.as_str()}}, "required": ["kind"]},
                "then": then
            })
        })
        .collect();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("allOf".into(), Value::Array(per_kind));
    }
    schema
}
