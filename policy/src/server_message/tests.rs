//! Messages as PostgreSQL 15 writes them (captured from a real server), made safe.

use super::*;

/// `public.c` has masked `email` and `ssn`; the client wrote `texts`.
struct Ctx {
    texts: Vec<&'static str>,
}

impl MessageContext for Ctx {
    fn client_wrote(&self, name: &[u8]) -> bool {
        let name = String::from_utf8_lossy(name).to_lowercase();
        self.texts.iter().any(|t| t.to_lowercase().contains(&name))
    }
    fn column_masked(&self, schema: Option<&str>, table: Option<&str>, column: &str) -> bool {
        schema.is_none_or(|s| s == "public")
            && table.is_none_or(|t| t == "c")
            && (column == "email" || column == "ssn")
    }
    fn relation_masked(&self, schema: Option<&str>, table: Option<&str>) -> bool {
        schema.is_none_or(|s| s == "public") && table.is_none_or(|t| t == "c")
    }
}

fn ctx(texts: &[&'static str]) -> Ctx {
    Ctx {
        texts: texts.to_vec(),
    }
}

fn body(fields: &[(u8, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (code, value) in fields {
        out.push(*code);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out.push(0);
    out
}

/// The fields of the safe form, as (code, text).
fn safe(fields: &[(u8, &str)], ctx: &Ctx) -> Vec<(char, String)> {
    let original = body(fields);
    let out = match make_safe(&original, ctx) {
        Safe::Unchanged => original,
        Safe::Rewritten(out) => out,
    };
    parse(&out)
        .unwrap()
        .into_iter()
        .map(|(c, v)| (c as char, String::from_utf8(v.to_vec()).unwrap()))
        .collect()
}

fn get(fields: &[(char, String)], code: char) -> Option<&str> {
    fields
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, v)| v.as_str())
}

const SELECT: &str = "SELECT id FROM c WHERE email::int = 1";

fn error(code: &'static str, message: &'static str) -> Vec<(u8, &'static str)> {
    vec![
        (b'S', "ERROR"),
        (b'V', "ERROR"),
        (b'C', code),
        (b'M', message),
        (b'F', "numutils.c"),
        (b'L', "232"),
        (b'R', "pg_strtoint32"),
    ]
}

#[test]
fn a_cast_error_keeps_its_shape_and_loses_the_value() {
    let out = safe(
        &error(
            "22P02",
            r#"invalid input syntax for type integer: "ada@x.io""#,
        ),
        &ctx(&[SELECT]),
    );
    assert_eq!(
        get(&out, 'M'),
        Some(r#"invalid input syntax for type integer: "[REDACTED]""#)
    );
    assert_eq!(get(&out, 'C'), Some("22P02"));
    assert_eq!(get(&out, 'S'), Some("ERROR"));
    assert_eq!(get(&out, 'R'), Some("pg_strtoint32"));
    // A value holding the template's own quotes and separators is still all replaced.
    let out = safe(
        &error(
            "22P02",
            r#"invalid input syntax for type integer: "a": "b" for type x""#,
        ),
        &ctx(&[SELECT]),
    );
    assert_eq!(
        get(&out, 'M'),
        Some(r#"invalid input syntax for type integer: "[REDACTED]""#)
    );
    // A message in no template's exact shape is withheld, not kept by a looser one.
    let out = safe(
        &error(
            "22P02",
            r#"invalid input syntax for type integer: "a": "b" for type x"#,
        ),
        &ctx(&[SELECT]),
    );
    assert!(get(&out, 'M').unwrap().contains("withheld"));
}

#[test]
fn messages_without_a_value_are_unchanged() {
    let original = body(&error("22012", "division by zero"));
    assert_eq!(make_safe(&original, &ctx(&[SELECT])), Safe::Unchanged);
    let original = body(&error("22003", "integer out of range"));
    assert_eq!(make_safe(&original, &ctx(&[SELECT])), Safe::Unchanged);
}

#[test]
fn an_unknown_message_is_withheld_with_its_sqlstate() {
    let mut fields = error("P0001", "ada@x.io");
    fields.push((b'D', "ssn 123-45-6789"));
    fields.push((b'W', "PL/pgSQL function inline_code_block line 1 at RAISE"));
    fields.push((b'P', "8"));
    let out = safe(&fields, &ctx(&[SELECT]));
    assert_eq!(
        get(&out, 'M'),
        Some(
            "palisade: the server's message was withheld because a masked column is in play (SQLSTATE P0001)"
        )
    );
    assert_eq!(get(&out, 'D'), None);
    assert_eq!(get(&out, 'W'), None);
    assert_eq!(get(&out, 'P'), Some("8"));
    assert!(get(&out, 'H').unwrap().contains("exempt"));
    assert!(
        !out.iter()
            .any(|(_, v)| v.contains("ada@") || v.contains("6789"))
    );
}

#[test]
fn json_errors_keep_their_message_and_lose_the_token() {
    let mut fields = error("22P02", "invalid input syntax for type json");
    fields.push((b'D', r#"Token "ada" is invalid."#));
    fields.push((b'W', "JSON data, line 1: ada..."));
    let out = safe(&fields, &ctx(&[SELECT]));
    assert_eq!(get(&out, 'M'), Some("invalid input syntax for type json"));
    assert_eq!(get(&out, 'D'), Some(r#"Token "[REDACTED]" is invalid."#));
    assert_eq!(get(&out, 'W'), None);
}

fn constraint(
    message: &'static str,
    detail: &'static str,
    table: &'static str,
) -> Vec<(u8, &'static str)> {
    let mut fields = error("23505", message);
    fields.extend([
        (b'D', detail),
        (b's', "public"),
        (b't', table),
        (b'n', constraint_name(message)),
    ]);
    fields
}

/// The constraint a message names last, as the server reports it in its `n` field.
fn constraint_name(message: &'static str) -> &'static str {
    let end = message.rfind('"').unwrap();
    let start = message[..end].rfind('"').unwrap();
    &message[start + 1..end]
}

#[test]
fn a_failing_row_of_a_masked_table_is_replaced_whole() {
    let out = safe(
        &constraint(
            r#"new row for relation "c" violates check constraint "c_name_check""#,
            "Failing row contains (1, xxx, ada@x.io, 123-45-6789, null).",
            "c",
        ),
        &ctx(&["UPDATE c SET name = 'xxx'"]),
    );
    assert_eq!(
        get(&out, 'M'),
        Some(r#"new row for relation "c" violates check constraint "c_name_check""#)
    );
    assert_eq!(get(&out, 'D'), Some("Failing row contains ([REDACTED])."));
    assert_eq!(get(&out, 't'), Some("c"));
    // Another table's row is no masked column's.
    let out = safe(
        &constraint(
            r#"new row for relation "orders" violates check constraint "c_email_key""#,
            "Failing row contains (1, 2).",
            "orders",
        ),
        &ctx(&[]),
    );
    assert_eq!(get(&out, 'D'), Some("Failing row contains (1, 2)."));
}

#[test]
fn keys_lose_their_values_only_over_masked_columns() {
    let dup = r#"duplicate key value violates unique constraint "c_email_key""#;
    let out = safe(
        &constraint(dup, "Key (email)=(bob@x.io) already exists.", "c"),
        &ctx(&[]),
    );
    assert_eq!(
        get(&out, 'D'),
        Some("Key (email)=([REDACTED]) already exists.")
    );
    let out = safe(
        &constraint(dup, "Key (id)=(1) already exists.", "c"),
        &ctx(&[]),
    );
    assert_eq!(get(&out, 'D'), Some("Key (id)=(1) already exists."));
    // An expression index over a masked column.
    let out = safe(
        &constraint(
            dup,
            "Key (lower(email::text))=(bob@x.io) already exists.",
            "c",
        ),
        &ctx(&[]),
    );
    assert_eq!(
        get(&out, 'D'),
        Some("Key (lower(email::text))=([REDACTED]) already exists.")
    );
    // Values built to look like another key are replaced with the rest.
    let out = safe(
        &constraint(
            r#"conflicting key value violates exclusion constraint "c_email_key""#,
            "Key (email)=(a) conflicts with existing key (id)=(b) conflicts with existing key (email)=(secret).",
            "c",
        ),
        &ctx(&[]),
    );
    assert_eq!(
        get(&out, 'D'),
        Some("Key (email)=([REDACTED]) conflicts with existing key (email)=([REDACTED]).")
    );
    let out = safe(
        &constraint(
            r#"insert or update on table "c" violates foreign key constraint "c_fk_fkey""#,
            r#"Key (ssn)=(123) is not present in table "c"."#,
            "c",
        ),
        &ctx(&[]),
    );
    assert_eq!(
        get(&out, 'D'),
        Some(r#"Key (ssn)=([REDACTED]) is not present in table "c"."#)
    );
}

#[test]
fn a_key_whose_table_is_not_named_counts_as_masked() {
    let mut fields = error(
        "23505",
        r#"duplicate key value violates unique constraint "k""#,
    );
    fields.push((b'D', "Key (id)=(1) already exists."));
    let out = safe(&fields, &ctx(&[]));
    // The test context treats an unnamed table as masked, as the sidecar does.
    assert_eq!(get(&out, 'D'), Some("Key (id)=(1) already exists."));
    let mut fields = error("23514", r#"new row violates check option for view "v""#);
    fields.push((b'D', "Failing row contains (1, ada@x.io)."));
    let out = safe(&fields, &ctx(&[]));
    assert_eq!(get(&out, 'D'), Some("Failing row contains ([REDACTED])."));
}

#[test]
fn names_pass_when_the_client_wrote_them() {
    let out = safe(
        &error("42P01", r#"relation "nosuch" does not exist"#),
        &ctx(&["SELECT * FROM nosuch"]),
    );
    assert_eq!(get(&out, 'M'), Some(r#"relation "nosuch" does not exist"#));
    // `email::regclass`: the "name" is a stored value.
    let out = safe(
        &error("3F000", r#"schema "ada@x" does not exist"#),
        &ctx(&["SELECT email::regclass FROM c"]),
    );
    assert_eq!(
        get(&out, 'M'),
        Some(r#"schema "[REDACTED]" does not exist"#)
    );
    let out = safe(
        &error("42601", r#"syntax error at or near "@""#),
        &ctx(&["SELECT email::regtype FROM c"]),
    );
    assert_eq!(
        get(&out, 'M'),
        Some(r#"syntax error at or near "[REDACTED]""#)
    );
    let out = safe(
        &error("42601", r#"syntax error at or near "FORM""#),
        &ctx(&["SELECT email FORM c"]),
    );
    assert_eq!(get(&out, 'M'), Some(r#"syntax error at or near "FORM""#));
}

#[test]
fn hints_pass_only_in_known_shapes() {
    let mut fields = error("42703", r#"column "emial" does not exist"#);
    fields.push((
        b'H',
        r#"Perhaps you meant to reference the column "c.email"."#,
    ));
    let out = safe(&fields, &ctx(&["SELECT emial FROM c"]));
    assert_eq!(get(&out, 'M'), Some(r#"column "emial" does not exist"#));
    // `c.email` is a column name the server suggests, not written by the client.
    assert_eq!(
        get(&out, 'H'),
        Some(r#"Perhaps you meant to reference the column "[REDACTED]"."#)
    );
    let mut fields = error("42883", "function lower(integer) does not exist");
    fields.push((b'H', "No function matches the given name and argument types. You might need to add explicit type casts."));
    let out = safe(&fields, &ctx(&["SELECT lower(integer) FROM c"]));
    assert!(get(&out, 'H').unwrap().starts_with("No function matches"));
}

#[test]
fn unknown_fields_and_internal_queries_are_dropped() {
    let mut fields = error("22012", "division by zero");
    fields.push((b'q', "SELECT 'ada@x.io'::int"));
    fields.push((b'Z', "future field"));
    let out = safe(&fields, &ctx(&[SELECT]));
    assert_eq!(get(&out, 'q'), None);
    assert_eq!(get(&out, 'Z'), None);
    assert_eq!(get(&out, 'M'), Some("division by zero"));
}

#[test]
fn a_malformed_body_keeps_nothing_it_cannot_read() {
    let out = make_safe(b"Mada@x.io", &ctx(&[]));
    let Safe::Rewritten(out) = out else {
        panic!("a malformed body must be rewritten");
    };
    assert!(!String::from_utf8_lossy(&out).contains("ada"));
}

#[test]
fn bytes_in_another_encoding_pass_through_the_templates() {
    // LATIN1 bytes of the value: the template is ASCII, the value is replaced unread.
    let mut original = Vec::new();
    original.extend_from_slice(b"SERROR\0C22P02\0M");
    original.extend_from_slice(b"invalid input syntax for type integer: \"Jos\xe9\"");
    original.extend_from_slice(b"\0\0");
    let Safe::Rewritten(out) = make_safe(&original, &ctx(&[])) else {
        panic!("the value must be replaced");
    };
    assert!(!out.contains(&0xe9));
}
