//! Detector tests: positives, near misses, masks applied to spans, JSON and arrays.

use tokio_postgres::types::Type;

use super::tests::{dec, enc, hash, key, partial};
use super::*;
use crate::masking::{Detector, Entity, Mask};

const ALL: [Entity; 8] = [
    Entity::Email,
    Entity::CreditCard,
    Entity::UsSsn,
    Entity::Iban,
    Entity::Phone,
    Entity::Jwt,
    Entity::AwsAccessKey,
    Entity::PrivateKey,
];

fn set(entities: &[Entity], mask: Mask) -> DetectorSet {
    DetectorSet::new(
        &[Detector {
            entities: entities.to_vec(),
            mask,
        }],
        key(),
    )
}

/// Scans a text value with every entity redacted; returns the result (the input when
/// unchanged), or `None` for NULL.
fn redact(v: &str) -> Option<String> {
    scan_text(&mut set(&ALL, Mask::Redact), v)
}

fn scan_text(d: &mut DetectorSet, v: &str) -> Option<String> {
    let mut out = b"pre".to_vec();
    match d.scan(&PgType::Text, Format::Text, v.as_bytes(), &mut out) {
        Scan::Unchanged => {
            assert_eq!(out, b"pre", "Unchanged appends nothing");
            Some(v.to_string())
        }
        Scan::Rewritten => Some(String::from_utf8(out[3..].to_vec()).expect("utf-8")),
        Scan::Null => {
            assert_eq!(out, b"pre", "Null appends nothing");
            None
        }
    }
}

fn only(e: Entity, v: &str) -> String {
    scan_text(&mut set(&[e], Mask::Redact), v).expect("not null")
}

#[track_caller]
fn found(e: Entity, v: &str) {
    assert_eq!(only(e, v), "[REDACTED]", "{e:?} should match all of {v:?}");
}

#[track_caller]
fn not_found(e: Entity, v: &str) {
    assert_eq!(only(e, v), v, "{e:?} should not match {v:?}");
}

#[test]
fn emails() {
    for v in [
        "john.doe@example.com",
        "john.doe+tag@mail.example.co.uk",
        "a_b%c-d@sub-domain.example.org",
        "émile@exemple.fr",
    ] {
        found(Entity::Email, v);
    }
    assert_eq!(
        only(Entity::Email, "Mail john@example.com."),
        "Mail [REDACTED]."
    );
    assert_eq!(
        only(Entity::Email, "<john@example.com>, ann@x.io"),
        "<[REDACTED]>, [REDACTED]"
    );
    for v in [
        "@handle",
        "a@b",
        "user@localhost",
        "x@y.c",
        "john@.com",
        "john@example.c0m",
        "a@-b.com",
        "me@ex..com",
    ] {
        not_found(Entity::Email, v);
    }
}

#[test]
fn credit_cards() {
    for v in [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "378282246310005",
        "6011 0009 9013 9424",
        "4222222222222",
        "4111111111111111110",
    ] {
        found(Entity::CreditCard, v);
    }
    assert_eq!(
        only(Entity::CreditCard, "card: 4111 1111 1111 1111, exp 12/29"),
        "card: [REDACTED], exp 12/29"
    );
    assert_eq!(
        only(Entity::CreditCard, "ref 1234 4111 1111 1111 1111"),
        "ref 1234 [REDACTED]"
    );
    for v in [
        "4111 1111 1111 1112",
        "4111111111111112",
        "abc4111111111111111",
        "4111111111111111abc",
        "411111111111",
        "41111111111111111111111",
        "4111.1111.1111.1111",
        "3.4111111111111111",
    ] {
        not_found(Entity::CreditCard, v);
    }
}

#[test]
fn ssns() {
    found(Entity::UsSsn, "123-45-6789");
    assert_eq!(only(Entity::UsSsn, "SSN 078-05-1120."), "SSN [REDACTED].");
    for v in [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "123-00-6789",
        "123-45-0000",
        "123-45-67890",
        "1123-45-6789",
        "123 45 6789",
        "123-45-6789-1",
        "x123-45-6789",
    ] {
        not_found(Entity::UsSsn, v);
    }
}

#[test]
fn ibans() {
    for v in [
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32",
        "FR1420041010050500013M02606",
        "NO9386011117947",
    ] {
        found(Entity::Iban, v);
    }
    assert_eq!(
        only(Entity::Iban, "pay to DE89 3704 0044 0532 0130 00 EUR now"),
        "pay to [REDACTED] EUR now"
    );
    for v in [
        "DE89 3704 0044 0532 0130 01",
        "DE00370400440532013000",
        "XDE89370400440532013000",
        "DE8937040044",
        "de89370400440532013000",
    ] {
        not_found(Entity::Iban, v);
    }
}

#[test]
fn phones() {
    for v in [
        "+1 555 123 4567",
        "+44 20 7946 0958",
        "+14155552671",
        "+1 (555) 123-4567",
        "(555) 123-4567",
        "(555)123-4567",
        "555-123-4567",
        "555.123.4567",
        "1-800-555-0199",
        "06 12 34 56 78",
        "020 7946 0958",
    ] {
        found(Entity::Phone, v);
    }
    assert_eq!(
        only(Entity::Phone, "call 555-123-4567 or 555-987-6543 now"),
        "call [REDACTED] or [REDACTED] now"
    );
    assert_eq!(
        only(Entity::Phone, "555-123-4567 555-987-6543"),
        "[REDACTED] [REDACTED]"
    );
    for v in [
        "2024-01-15",
        "2024-01-15 10:30:00",
        "on 2024-01-15 1030",
        "15-01-2024 1030",
        "15.01.2024 10",
        "192.168.100.200",
        "1.234.567.890",
        "1 234 567 890",
        "5551234567",
        "12345.67890",
        "555-1234",
        "+1 555",
        "v10.0.19041.1234",
        "1.22.333.4444",
        "release 2.10.2024.1130",
        "3.14159265358979",
    ] {
        not_found(Entity::Phone, v);
    }
}

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";

#[test]
fn jwts() {
    found(Entity::Jwt, JWT);
    assert_eq!(
        only(Entity::Jwt, &format!("Bearer {JWT}")),
        "Bearer [REDACTED]"
    );
    found(Entity::Jwt, "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.");
    for v in [
        "eyJhbGciOi",
        "eyJhbGciOiJIUzI1NiJ9.x",
        "xeyJhbGciOiJIUzI1NiJ9.eyJzdWIi.sig",
        "eyJhb.eyJzdWIi.sig",
    ] {
        not_found(Entity::Jwt, v);
    }
}

#[test]
fn aws_keys() {
    found(Entity::AwsAccessKey, "AKIAIOSFODNN7EXAMPLE");
    found(Entity::AwsAccessKey, "ASIAIOSFODNN7EXAMPLE");
    assert_eq!(
        only(Entity::AwsAccessKey, "key=AKIAIOSFODNN7EXAMPLE;"),
        "key=[REDACTED];"
    );
    for v in [
        "AKIAIOSFODNN7EXAMPL",
        "AKIAIOSFODNN7EXAMPLEX",
        "XAKIAIOSFODNN7EXAMPLE",
        "AKIAiosfodnn7example",
        "AKIDIOSFODNN7EXAMPLE",
    ] {
        not_found(Entity::AwsAccessKey, v);
    }
}

#[test]
fn private_keys() {
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1234\nabcd==\n-----END RSA PRIVATE KEY-----";
    found(Entity::PrivateKey, pem);
    assert_eq!(
        only(Entity::PrivateKey, &format!("key:\n{pem}\nthanks")),
        "key:\n[REDACTED]\nthanks"
    );
    // Cut off: masked to the end.
    assert_eq!(
        only(Entity::PrivateKey, "x -----BEGIN PRIVATE KEY-----\nMIIE"),
        "x [REDACTED]"
    );
    found(
        Entity::PrivateKey,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----",
    );
    for v in [
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "-----BEGIN PUBLIC KEY-----",
        "---- x",
        "-----",
    ] {
        not_found(Entity::PrivateKey, v);
    }
}

#[test]
fn plain_text_is_unchanged() {
    for v in [
        "",
        "Hello, world! The quick brown fox jumps over the lazy dog.",
        "Order #12345 shipped on 2024-01-15 at 10:30, total $1,234.56 (3 items).",
        "Version 1.2.3 build 4567; id=550e8400-e29b-41d4-a716-446655440000",
        "Grüße aus München — ñandú 日本語",
        "A-1 B-2 AKIA JWT eyJ x@y -- ----- (12) +3",
    ] {
        let mut d = set(&ALL, Mask::Redact);
        let mut out = Vec::new();
        assert_eq!(
            d.scan(&PgType::Text, Format::Text, v.as_bytes(), &mut out),
            Scan::Unchanged,
            "{v}"
        );
        assert!(out.is_empty());
    }
}

#[test]
fn several_entities_and_masks() {
    let v =
        "john@example.com paid with 4111 1111 1111 1111, SSN 123-45-6789, phone +1 555 123 4567";
    assert_eq!(
        redact(v).as_deref(),
        Some("[REDACTED] paid with [REDACTED], SSN [REDACTED], phone [REDACTED]")
    );
    let mut d = DetectorSet::new(
        &[
            Detector {
                entities: vec![Entity::Email],
                mask: Mask::Email,
            },
            Detector {
                entities: vec![Entity::CreditCard, Entity::Email],
                mask: partial(0, 4),
            },
            Detector {
                entities: vec![Entity::UsSsn],
                mask: hash(Some(8)),
            },
            Detector {
                entities: vec![Entity::Phone],
                mask: Mask::Tokenize,
            },
        ],
        key(),
    );
    let out = scan_text(&mut d, v).expect("value");
    assert!(
        out.starts_with("j***@example.com paid with ***************1111, SSN "),
        "{out}"
    );
    let ssn_hash = &out["j***@example.com paid with ***************1111, SSN ".len()..][..8];
    assert!(ssn_hash.bytes().all(|b| b.is_ascii_hexdigit()), "{out}");
    let phone = out.rsplit("phone ").next().expect("phone");
    assert_eq!(phone.len(), "+1 555 123 4567".len());
    assert_eq!(
        scan_text(&mut d, v).as_deref(),
        Some(out.as_str()),
        "deterministic"
    );
    // A Null mask, or a mask with no text form, makes the whole value NULL.
    assert_eq!(scan_text(&mut set(&[Entity::Email], Mask::Null), v), None);
    assert_eq!(
        scan_text(&mut set(&[Entity::Email], Mask::Round { to: 1.0 }), v),
        None
    );
    assert_eq!(
        scan_text(&mut set(&[Entity::Email], Mask::Null), "nothing here").as_deref(),
        Some("nothing here")
    );
}

#[test]
fn empty_set_and_other_types() {
    let mut d = DetectorSet::new(&[], key());
    assert!(d.is_empty());
    let mut out = Vec::new();
    assert_eq!(
        d.scan(&PgType::Text, Format::Text, b"a@b.com", &mut out),
        Scan::Unchanged
    );
    let mut d = set(&ALL, Mask::Redact);
    assert!(!d.is_empty());
    assert_eq!(d.entities().count(), 8);
    for t in [PgType::Int8, PgType::Bytea, PgType::Other, PgType::Uuid] {
        assert_eq!(
            d.scan(&t, Format::Text, b"4111111111111111", &mut out),
            Scan::Unchanged
        );
    }
    // Invalid UTF-8 is not scanned.
    assert_eq!(
        d.scan(
            &PgType::Text,
            Format::Text,
            b"john@example.com \xff",
            &mut out
        ),
        Scan::Unchanged
    );
    assert!(out.is_empty());
}

fn scan_json(d: &mut DetectorSet, t: &PgType, format: Format, v: &[u8]) -> (Scan, Vec<u8>) {
    let mut out = Vec::new();
    let r = d.scan(t, format, v, &mut out);
    (r, out)
}

#[test]
fn json_values() {
    let mut d = set(&ALL, Mask::Redact);
    let doc = r#"{"email": "john@example.com", "card": 4111111111111111, "note": "call +1 555 123 4567 now", "john@example.com": 1, "esc": "x\u0040example.com is john\u0040example.com", "n": 42}"#;
    let (r, out) = scan_json(&mut d, &PgType::Jsonb, Format::Text, doc.as_bytes());
    assert_eq!(r, Scan::Rewritten);
    let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
    assert_eq!(v["email"], "[REDACTED]");
    assert_eq!(
        v["card"], "[REDACTED]",
        "a number with an entity becomes a string"
    );
    assert_eq!(v["note"], "call [REDACTED] now");
    assert_eq!(v["[REDACTED]"], 1, "keys are scanned too");
    assert_eq!(
        v["esc"], "[REDACTED] is [REDACTED]",
        "escapes are decoded before scanning"
    );
    assert_eq!(v["n"], 42);
    // Binary jsonb keeps its version byte; the client decodes it.
    let mut bin = vec![1u8];
    bin.extend_from_slice(doc.as_bytes());
    let (r, out) = scan_json(&mut d, &PgType::Jsonb, Format::Binary, &bin);
    assert_eq!(r, Scan::Rewritten);
    assert_eq!(
        dec::<serde_json::Value>(&Type::JSONB, &out)["email"],
        "[REDACTED]"
    );
    let (r, out) = scan_json(
        &mut d,
        &PgType::Json,
        Format::Binary,
        br#"{"a": "nothing", "b": [1, 2.5, true]}"#,
    );
    assert_eq!((r, out.len()), (Scan::Unchanged, 0));
    let (r, _) = scan_json(&mut d, &PgType::Json, Format::Text, br#"{"a": "x@y.com""#);
    assert_eq!(
        r,
        Scan::Null,
        "unparseable JSON cannot be scanned: fail closed"
    );
    let (r, _) = scan_json(&mut d, &PgType::Jsonb, Format::Binary, br#"{}"#);
    assert_eq!(r, Scan::Null);
    let mut partial_set = set(&[Entity::Email], partial(1, 0));
    let (_, out) = scan_json(
        &mut partial_set,
        &PgType::Json,
        Format::Text,
        br#"["say \"hi\" to a@b.com"]"#,
    );
    assert_eq!(
        String::from_utf8(out).expect("utf-8"),
        r#"["say \"hi\" to a******"]"#
    );
}

#[test]
fn arrays() {
    let mut d = set(&ALL, Mask::Redact);
    let t = PgType::Array(Box::new(PgType::Text));
    let mut out = Vec::new();
    let v = br#"{"mail john@example.com",plain,NULL,"4111 1111 1111 1111"}"#;
    assert_eq!(d.scan(&t, Format::Text, v, &mut out), Scan::Rewritten);
    assert_eq!(
        String::from_utf8(out).expect("utf-8"),
        r#"{"mail [REDACTED]",plain,NULL,[REDACTED]}"#
    );
    let mut out = Vec::new();
    assert_eq!(
        d.scan(&t, Format::Text, b"{a,b,NULL}", &mut out),
        Scan::Unchanged
    );
    assert!(out.is_empty());
    let vals = vec![Some("x"), None, Some("ann@example.org")];
    let bin = enc(&vals, &Type::TEXT_ARRAY);
    assert_eq!(d.scan(&t, Format::Binary, &bin, &mut out), Scan::Rewritten);
    let got: Vec<Option<String>> = dec(&Type::TEXT_ARRAY, &out);
    assert_eq!(got, vec![Some("x".into()), None, Some("[REDACTED]".into())]);
    let mut nulls = set(&[Entity::Email], Mask::Null);
    let mut out = Vec::new();
    assert_eq!(nulls.scan(&t, Format::Binary, &bin, &mut out), Scan::Null);
    assert!(out.is_empty());
    let jt = PgType::Array(Box::new(PgType::Jsonb));
    let jb = enc(
        vec![serde_json::json!({"e": "a@b.com"})],
        &Type::JSONB_ARRAY,
    );
    let mut out = Vec::new();
    assert_eq!(d.scan(&jt, Format::Binary, &jb, &mut out), Scan::Rewritten);
    assert_eq!(
        dec::<Vec<serde_json::Value>>(&Type::JSONB_ARRAY, &out),
        vec![serde_json::json!({"e": "[REDACTED]"})]
    );
}

#[test]
fn scanning_arbitrary_bytes_never_panics() {
    let mut d = set(&ALL, Mask::Redact);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let alphabet = b"0123456789 -.+()@AKIASeyJ.-----BEGIN PRIVATE KEY-----\nDE89abc_\"{},\\";
    let mut out = Vec::new();
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 48) as usize;
        let v: Vec<u8> = (0..len)
            .map(|k| alphabet[((seed >> (k % 50)) as usize + k * 7) % alphabet.len()])
            .collect();
        for t in [
            PgType::Text,
            PgType::Json,
            PgType::Array(Box::new(PgType::Text)),
        ] {
            out.clear();
            let r = d.scan(&t, Format::Text, &v, &mut out);
            if r == Scan::Rewritten && t == PgType::Text {
                assert!(std::str::from_utf8(&out).is_ok());
            }
        }
    }
}
