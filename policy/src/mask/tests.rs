//! Unit tests of the field masks. Binary outputs are decoded with postgres-types' `FromSql`
//! (the decoders tokio-postgres uses), text outputs with independent parsers (chrono, uuid,
//! serde_json, std); `tests_pg` also feeds every output back through PostgreSQL itself.

use std::sync::Arc;

use bytes::BytesMut;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use tokio_postgres::types::{FromSql, ToSql, Type};

use super::*;
use crate::masking::{Mask, TruncateTo};
use crate::model::SecretKeyRef;

pub(super) fn key() -> Option<Arc<[u8]>> {
    Some(Arc::from(&b"test-key"[..]))
}

pub(super) fn iso() -> Session {
    Session {
        date_style_iso: true,
    }
}

pub(super) fn hash(length: Option<u32>) -> Mask {
    Mask::Hash {
        key_secret_ref: SecretKeyRef {
            name: "k".into(),
            key: "hmac".into(),
        },
        length,
    }
}

pub(super) fn partial(keep_first: u32, keep_last: u32) -> Mask {
    Mask::Partial {
        keep_first,
        keep_last,
    }
}

/// Masks one value with the test key and an ISO session; `None` for NULL.
pub(super) fn run(mask: &Mask, ty: &PgType, format: Format, v: &[u8]) -> Option<Vec<u8>> {
    run_with(mask, ty, format, v, key(), &iso())
}

fn run_with(
    mask: &Mask,
    ty: &PgType,
    format: Format,
    v: &[u8],
    key: Option<Arc<[u8]>>,
    session: &Session,
) -> Option<Vec<u8>> {
    let mut m = FieldMasker::new(mask, ty, format, key, session);
    // Something already in the buffer must be kept, and nothing appended on NULL.
    let mut out = b"prefix".to_vec();
    match m.apply(v, &mut out) {
        Masked::Value => Some(out[6..].to_vec()),
        Masked::Null => {
            assert_eq!(out, b"prefix", "NULL must append nothing");
            None
        }
    }
}

fn text(mask: &Mask, ty: &PgType, v: &str) -> Option<String> {
    run(mask, ty, Format::Text, v.as_bytes()).map(|b| String::from_utf8(b).expect("utf-8"))
}

/// The binary encoding of a value, by postgres-types' own encoder.
pub(super) fn enc<T: ToSql>(v: T, ty: &Type) -> Vec<u8> {
    let mut b = BytesMut::new();
    v.to_sql(ty, &mut b).expect("encode");
    b.to_vec()
}

/// Decodes a binary output with the client's decoder; panics if the client would fail.
pub(super) fn dec<T: for<'a> FromSql<'a>>(ty: &Type, b: &[u8]) -> T {
    match T::from_sql(ty, b) {
        Ok(v) => v,
        Err(e) => panic!("client cannot decode {ty} {b:?}: {e}"),
    }
}

fn ty(oid: u32) -> PgType {
    PgType::from_builtin_oid(oid)
}

#[test]
fn oids() {
    assert_eq!(ty(25), PgType::Text);
    assert_eq!(ty(1043), PgType::Text);
    assert_eq!(ty(1042), PgType::Text);
    assert_eq!(ty(19), PgType::Text);
    assert_eq!(ty(18), PgType::Other, "\"char\" is one byte in binary");
    assert_eq!(ty(1009), PgType::Array(Box::new(PgType::Text)));
    assert_eq!(ty(1007), PgType::Array(Box::new(PgType::Int4)));
    assert_eq!(ty(3807), PgType::Array(Box::new(PgType::Jsonb)));
    assert_eq!(ty(1185), PgType::Array(Box::new(PgType::TimestampTz)));
    assert_eq!(ty(600), PgType::Other);
    assert_eq!(PgType::from_type_name("citext"), PgType::Text);
    assert_eq!(
        PgType::from_type_name("_citext"),
        PgType::Array(Box::new(PgType::Text))
    );
    assert_eq!(PgType::from_type_name("int8"), PgType::Int8);
    assert_eq!(PgType::from_type_name("hstore"), PgType::Other);
    assert!(Session::from_date_style("ISO, MDY").date_style_iso);
    assert!(!Session::from_date_style("SQL, DMY").date_style_iso);
    assert!(!Session::from_date_style("Postgres, MDY").date_style_iso);
    assert_eq!(Format::from_code(1), Some(Format::Binary));
    assert_eq!(Format::from_code(2), None);
}

#[test]
fn null_mask_is_null_for_every_type() {
    for oid in [
        16, 21, 23, 20, 700, 701, 1700, 25, 2950, 1082, 1114, 1184, 114, 3802, 17, 1007, 1009,
    ] {
        for f in [Format::Text, Format::Binary] {
            let m = FieldMasker::new(&Mask::Null, &ty(oid), f, key(), &iso());
            assert!(m.always_null());
            assert_eq!(run(&Mask::Null, &ty(oid), f, b"1"), None);
        }
    }
}

#[test]
fn other_type_is_null_for_every_mask() {
    for mask in all_masks() {
        for f in [Format::Text, Format::Binary] {
            assert_eq!(run(&mask, &PgType::Other, f, b"(1,2)"), None, "{mask:?}");
            let arr = PgType::Array(Box::new(PgType::Other));
            assert_eq!(run(&mask, &arr, f, b"{(1,2)}"), None, "{mask:?}");
        }
    }
}

pub(super) fn all_masks() -> Vec<Mask> {
    vec![
        Mask::Null,
        Mask::Redact,
        Mask::Fixed { value: "42".into() },
        partial(1, 2),
        Mask::Email,
        hash(None),
        hash(Some(8)),
        Mask::Tokenize,
        Mask::Truncate {
            to: TruncateTo::Month,
        },
        Mask::Truncate {
            to: TruncateTo::Hour,
        },
        Mask::Round { to: 10.0 },
        Mask::Round { to: 0.05 },
        Mask::Noise { ratio: 0.1 },
    ]
}

// ---------------------------------------------------------------- text-like

#[test]
fn text_redact_fixed() {
    for f in [Format::Text, Format::Binary] {
        let out = run(&Mask::Redact, &PgType::Text, f, b"secret").expect("value");
        assert_eq!(dec::<String>(&Type::TEXT, &out), "[REDACTED]");
        let fixed = Mask::Fixed {
            value: "n/a".into(),
        };
        assert_eq!(
            run(&fixed, &PgType::Text, f, b"x").as_deref(),
            Some(&b"n/a"[..])
        );
    }
    let nul = Mask::Fixed {
        value: "a\0b".into(),
    };
    assert_eq!(text(&nul, &PgType::Text, "x"), None, "text cannot hold NUL");
}

#[test]
fn text_partial() {
    let t = PgType::Text;
    assert_eq!(
        text(&partial(1, 2), &t, "abcdef").as_deref(),
        Some("a***ef")
    );
    assert_eq!(
        text(&partial(0, 4), &t, "123-45-6789").as_deref(),
        Some("*******6789")
    );
    assert_eq!(text(&partial(0, 0), &t, "abc").as_deref(), Some("***"));
    // Keeping as much as the value has would reveal it: everything is starred instead.
    assert_eq!(text(&partial(2, 2), &t, "abcd").as_deref(), Some("****"));
    assert_eq!(text(&partial(3, 3), &t, "ab").as_deref(), Some("**"));
    assert_eq!(text(&partial(1, 1), &t, "").as_deref(), Some(""));
    // Characters, not bytes.
    assert_eq!(
        text(&partial(2, 2), &t, "héllo wörld").as_deref(),
        Some("hé*******ld")
    );
    assert_eq!(
        text(&partial(1, 1), &t, "日本語テキスト").as_deref(),
        Some("日*****ト")
    );
    assert_eq!(
        text(&partial(u32::MAX, u32::MAX), &t, "abc").as_deref(),
        Some("***")
    );
    // Binary text is the same bytes.
    let out = run(&partial(1, 1), &t, Format::Binary, "wörld".as_bytes()).expect("value");
    assert_eq!(dec::<String>(&Type::VARCHAR, &out), "w***d");
    // Not UTF-8: cannot be split into characters safely.
    assert_eq!(run(&partial(1, 1), &t, Format::Text, b"ab\xffcd"), None);
}

#[test]
fn text_email() {
    let t = PgType::Text;
    assert_eq!(
        text(&Mask::Email, &t, "john.doe@example.com").as_deref(),
        Some("j***@example.com")
    );
    assert_eq!(
        text(&Mask::Email, &t, "a@b.co").as_deref(),
        Some("a***@b.co")
    );
    assert_eq!(
        text(&Mask::Email, &t, "émile@exemple.fr").as_deref(),
        Some("é***@exemple.fr")
    );
    assert_eq!(
        text(&Mask::Email, &t, "not an email").as_deref(),
        Some("************")
    );
    assert_eq!(
        text(&Mask::Email, &t, "@example.com").as_deref(),
        Some("************")
    );
    assert_eq!(
        text(&Mask::Email, &t, "john@localhost").as_deref(),
        Some("**************")
    );
    assert_eq!(text(&Mask::Email, &t, "").as_deref(), Some(""));
}

#[test]
fn text_hash() {
    let t = PgType::Text;
    let a = text(&hash(None), &t, "555-0100").expect("value");
    assert_eq!(a.len(), DEFAULT_HASH_LENGTH);
    assert!(
        a.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(
        text(&hash(None), &t, "555-0100"),
        Some(a.clone()),
        "deterministic"
    );
    assert_ne!(text(&hash(None), &t, "555-0101"), Some(a.clone()));
    let other_key = run_with(
        &hash(None),
        &t,
        Format::Text,
        b"555-0100",
        Some(Arc::from(&b"other"[..])),
        &iso(),
    );
    assert_ne!(other_key, Some(a.clone().into_bytes()), "key matters");
    assert_eq!(
        run(&hash(None), &t, Format::Binary, b"555-0100"),
        Some(a.clone().into_bytes())
    );
    assert_eq!(
        text(&hash(Some(8)), &t, "555-0100").as_deref(),
        Some(&a[..8])
    );
    assert_eq!(text(&hash(Some(1000)), &t, "x").map(|s| s.len()), Some(64));
    assert_eq!(text(&hash(Some(0)), &t, "x").map(|s| s.len()), Some(1));
    // No key: fail closed.
    assert_eq!(
        run_with(&hash(None), &t, Format::Text, b"x", None, &iso()),
        None
    );
}

#[test]
fn hash_is_hmac_sha256_known_answer() {
    // RFC 4231 test case 1.
    let key: Arc<[u8]> = Arc::from(&[0x0bu8; 20][..]);
    let out = run_with(
        &hash(Some(64)),
        &PgType::Text,
        Format::Text,
        b"Hi There",
        Some(key),
        &iso(),
    );
    assert_eq!(
        out.as_deref(),
        Some(&b"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"[..])
    );
}

#[test]
fn text_tokenize() {
    let t = PgType::Text;
    let v = "AB-1234 cd/Zé";
    let a = text(&Mask::Tokenize, &t, v).expect("value");
    assert_eq!(a.chars().count(), v.chars().count());
    for (x, y) in v.chars().zip(a.chars()) {
        if x.is_ascii_digit() {
            assert!(y.is_ascii_digit());
        } else if x.is_ascii_lowercase() {
            assert!(y.is_ascii_lowercase());
        } else if x.is_ascii_uppercase() {
            assert!(y.is_ascii_uppercase());
        } else {
            assert_eq!(x, y);
        }
    }
    assert_eq!(
        text(&Mask::Tokenize, &t, v),
        Some(a.clone()),
        "deterministic"
    );
    assert_eq!(
        run(&Mask::Tokenize, &t, Format::Binary, v.as_bytes()),
        Some(a.clone().into_bytes())
    );
    // Distinct inputs give (almost surely) distinct tokens, and not the input.
    assert_ne!(text(&Mask::Tokenize, &t, "AB-1235 cd/Zé"), Some(a.clone()));
    let long = "4111111111111111";
    assert_ne!(text(&Mask::Tokenize, &t, long).as_deref(), Some(long));
}

#[test]
fn text_number_and_date_masks_are_null() {
    for mask in [
        Mask::Truncate {
            to: TruncateTo::Year,
        },
        Mask::Round { to: 1.0 },
        Mask::Noise { ratio: 0.1 },
    ] {
        assert_eq!(text(&mask, &PgType::Text, "2024-01-01"), None);
    }
}

// ---------------------------------------------------------------- integers

#[test]
fn int_hash_and_tokenize() {
    for (t, pt, v) in [
        (Type::INT2, PgType::Int2, 12345i64),
        (Type::INT4, PgType::Int4, -123456),
        (Type::INT8, PgType::Int8, 9_007_199_254_740_993),
    ] {
        let bin = match pt {
            PgType::Int2 => enc(v as i16, &t),
            PgType::Int4 => enc(v as i32, &t),
            _ => enc(v, &t),
        };
        for mask in [hash(None), Mask::Tokenize] {
            let tx = text(&mask, &pt, &v.to_string()).expect("value");
            let bx = run(&mask, &pt, Format::Binary, &bin).expect("value");
            let b: i64 = match pt {
                PgType::Int2 => dec::<i16>(&t, &bx) as i64,
                PgType::Int4 => dec::<i32>(&t, &bx) as i64,
                _ => dec::<i64>(&t, &bx),
            };
            assert_eq!(tx.parse::<i64>().expect("int"), b, "text and binary agree");
            if matches!(mask, Mask::Tokenize) {
                assert_eq!(tx.len(), v.to_string().len(), "same digits and sign");
                assert_eq!(b < 0, v < 0);
            } else {
                assert!(b >= 0);
            }
        }
    }
}

#[test]
fn int_tokenize_stays_in_range() {
    let mut m = FieldMasker::new(&Mask::Tokenize, &PgType::Int2, Format::Text, None, &iso());
    for v in (i16::MIN..=i16::MAX)
        .step_by(7)
        .chain([i16::MIN, i16::MAX, 0, -1, 9, -9, 10])
    {
        let mut out = Vec::new();
        assert_eq!(m.apply(v.to_string().as_bytes(), &mut out), Masked::Value);
        let s = String::from_utf8(out).expect("utf-8");
        let t: i16 = s.parse().expect("int2");
        assert_eq!(s.len(), v.to_string().len(), "{v} -> {s}");
        assert_eq!(t < 0, v < 0);
    }
    let mut m = FieldMasker::new(&Mask::Tokenize, &PgType::Int8, Format::Binary, None, &iso());
    for v in [
        i64::MIN,
        i64::MAX,
        i64::MIN + 1,
        1_000_000_000_000_000_000,
        -9,
    ] {
        let mut out = Vec::new();
        assert_eq!(m.apply(&v.to_be_bytes(), &mut out), Masked::Value);
        let t = dec::<i64>(&Type::INT8, &out);
        assert_eq!(t.to_string().len(), v.to_string().len());
    }
}

#[test]
fn int_round() {
    let r = |to: f64, t: &PgType, v: &str| text(&Mask::Round { to }, t, v);
    assert_eq!(r(10.0, &PgType::Int4, "15").as_deref(), Some("20"));
    assert_eq!(r(10.0, &PgType::Int4, "14").as_deref(), Some("10"));
    assert_eq!(r(10.0, &PgType::Int4, "-15").as_deref(), Some("-20"));
    assert_eq!(
        r(1000.0, &PgType::Int8, "123456").as_deref(),
        Some("123000")
    );
    // Rounding past the type's end steps back a multiple.
    assert_eq!(r(10.0, &PgType::Int2, "32767").as_deref(), Some("32760"));
    assert_eq!(r(10.0, &PgType::Int2, "-32768").as_deref(), Some("-32760"));
    assert_eq!(r(100000.0, &PgType::Int2, "30000").as_deref(), Some("0"));
    assert_eq!(r(100000.0, &PgType::Int2, "-30000").as_deref(), Some("0"));
    assert_eq!(r(1e30, &PgType::Int8, "-30000").as_deref(), Some("0"));
    // Non-integer steps: nearest multiple, then nearest integer.
    assert_eq!(r(2.5, &PgType::Int4, "6").as_deref(), Some("5"));
    assert_eq!(r(2.5, &PgType::Int4, "7").as_deref(), Some("8"));
    assert_eq!(r(0.5, &PgType::Int4, "7").as_deref(), Some("7"));
    assert_eq!(
        r(10.0, &PgType::Int8, "9223372036854775807").as_deref(),
        Some("9223372036854775800")
    );
    // Invalid steps cannot round: NULL.
    assert_eq!(r(0.0, &PgType::Int4, "7"), None);
    assert_eq!(r(-5.0, &PgType::Int4, "7"), None);
    assert_eq!(r(f64::NAN, &PgType::Int4, "7"), None);
    let out = run(
        &Mask::Round { to: 100.0 },
        &PgType::Int8,
        Format::Binary,
        &enc(-151i64, &Type::INT8),
    );
    assert_eq!(dec::<i64>(&Type::INT8, &out.expect("value")), -200);
}

#[test]
fn int_noise() {
    let m = Mask::Noise { ratio: 0.1 };
    for v in [1000i64, -1000, 123456, 7] {
        let y: i64 = text(&m, &PgType::Int8, &v.to_string())
            .expect("value")
            .parse()
            .expect("int");
        assert!(
            (y - v).abs() as f64 <= (v.abs() as f64 * 0.1).ceil(),
            "{v} -> {y}"
        );
        assert_eq!(
            text(&m, &PgType::Int8, &v.to_string()),
            Some(y.to_string()),
            "stable"
        );
        let b = run(&m, &PgType::Int8, Format::Binary, &enc(v, &Type::INT8)).expect("value");
        assert_eq!(dec::<i64>(&Type::INT8, &b), y, "text and binary agree");
    }
    let big = Mask::Noise { ratio: 5.0 };
    for v in [i16::MAX, i16::MIN, 30000] {
        let y: i16 = text(&big, &PgType::Int2, &v.to_string())
            .expect("value")
            .parse()
            .expect("int2");
        let _ = y;
    }
    assert_eq!(text(&Mask::Noise { ratio: -1.0 }, &PgType::Int4, "5"), None);
}

#[test]
fn int_fixed_and_invalid() {
    let fixed = |v: &str| Mask::Fixed { value: v.into() };
    assert_eq!(
        dec::<i32>(
            &Type::INT4,
            &run(&fixed(" 42 "), &PgType::Int4, Format::Binary, b"\0\0\0\x01").expect("value")
        ),
        42
    );
    assert_eq!(
        text(&fixed("-7"), &PgType::Int2, "1").as_deref(),
        Some("-7")
    );
    assert_eq!(text(&fixed("99999"), &PgType::Int2, "1"), None);
    assert_eq!(text(&fixed("4.5"), &PgType::Int4, "1"), None);
    assert_eq!(text(&fixed("abc"), &PgType::Int8, "1"), None);
    for mask in [
        Mask::Redact,
        partial(1, 1),
        Mask::Email,
        Mask::Truncate {
            to: TruncateTo::Day,
        },
    ] {
        assert_eq!(text(&mask, &PgType::Int4, "5"), None, "{mask:?}");
    }
    // Malformed values: NULL.
    assert_eq!(text(&hash(None), &PgType::Int4, "12a"), None);
    assert_eq!(text(&hash(None), &PgType::Int2, "40000"), None);
    assert_eq!(
        run(&hash(None), &PgType::Int4, Format::Binary, b"\0\0\x01"),
        None
    );
    assert_eq!(text(&Mask::Round { to: 10.0 }, &PgType::Int4, ""), None);
}

// ---------------------------------------------------------------- floats and numeric

#[test]
fn float_round_and_noise() {
    let r = |to: f64, t: &PgType, v: &str| text(&Mask::Round { to }, t, v);
    assert_eq!(r(0.1, &PgType::Float8, "0.37").as_deref(), Some("0.4"));
    assert_eq!(r(0.1, &PgType::Float8, "0.3").as_deref(), Some("0.3"));
    assert_eq!(r(0.01, &PgType::Float4, "3.14159").as_deref(), Some("3.14"));
    assert_eq!(r(5.0, &PgType::Float8, "-12.5").as_deref(), Some("-15"));
    assert_eq!(r(1.0, &PgType::Float8, "NaN").as_deref(), Some("NaN"));
    assert_eq!(
        r(1.0, &PgType::Float8, "-Infinity").as_deref(),
        Some("-Infinity")
    );
    let huge: f64 = r(1e300, &PgType::Float8, "1.7e308")
        .expect("value")
        .parse()
        .expect("float");
    assert!(huge.is_finite() && (huge - 1.7e308).abs() < 1e293);
    assert_eq!(
        r(1e-10, &PgType::Float8, "1.23456789012e-5").as_deref(),
        Some("1.23457e-5")
    );
    for (pt, t) in [
        (PgType::Float4, Type::FLOAT4),
        (PgType::Float8, Type::FLOAT8),
    ] {
        let bin = if pt == PgType::Float4 {
            enc(2.75f32, &t)
        } else {
            enc(2.75f64, &t)
        };
        let out = run(&Mask::Round { to: 0.5 }, &pt, Format::Binary, &bin).expect("value");
        let v = if pt == PgType::Float4 {
            dec::<f32>(&t, &out) as f64
        } else {
            dec::<f64>(&t, &out)
        };
        assert_eq!(v, 3.0);
        let noisy = run(&Mask::Noise { ratio: 0.2 }, &pt, Format::Binary, &bin).expect("value");
        let n = if pt == PgType::Float4 {
            dec::<f32>(&t, &noisy) as f64
        } else {
            dec::<f64>(&t, &noisy)
        };
        assert!((n - 2.75).abs() <= 2.75 * 0.2 + 1e-6, "{n}");
        // The text form of the same value gets the same noise.
        let tn: f64 = text(&Mask::Noise { ratio: 0.2 }, &pt, "2.75")
            .expect("value")
            .parse()
            .expect("float");
        assert!((tn - n).abs() < 1e-6, "{tn} vs {n}");
    }
    // A step finer than the value's precision leaves it as it is.
    assert_eq!(r(1e-320, &PgType::Float8, "1.5").as_deref(), Some("1.5"));
    // float4 stays finite.
    let big = text(&Mask::Round { to: 1e38 }, &PgType::Float4, "3.4e38").expect("value");
    assert!(big.parse::<f32>().expect("float4").is_finite());
    assert_eq!(text(&hash(None), &PgType::Float8, "1.5"), None);
    assert_eq!(text(&Mask::Tokenize, &PgType::Float8, "1.5"), None);
    assert_eq!(text(&Mask::Round { to: 1.0 }, &PgType::Float8, "abc"), None);
    assert_eq!(
        run(
            &Mask::Round { to: 1.0 },
            &PgType::Float8,
            Format::Binary,
            b"\0\0\0\0"
        ),
        None
    );
}

#[test]
fn float_fixed() {
    let fixed = |v: &str| Mask::Fixed { value: v.into() };
    let out = run(&fixed("1.5"), &PgType::Float4, Format::Binary, b"").expect("value");
    assert_eq!(dec::<f32>(&Type::FLOAT4, &out), 1.5);
    assert_eq!(text(&fixed("1e39"), &PgType::Float4, "1"), None);
    assert_eq!(
        text(&fixed("1e39"), &PgType::Float8, "1").as_deref(),
        Some("1e39")
    );
    assert_eq!(
        text(&fixed("nan"), &PgType::Float8, "1").as_deref(),
        Some("NaN")
    );
    assert_eq!(
        text(&fixed("-inf"), &PgType::Float8, "1").as_deref(),
        Some("-Infinity")
    );
    assert_eq!(text(&fixed("x"), &PgType::Float8, "1"), None);
}

/// Numeric binary by hand: ndigits, weight, sign, dscale, base-10000 digits.
pub(super) fn numeric_bin(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    v.extend_from_slice(&weight.to_be_bytes());
    v.extend_from_slice(&sign.to_be_bytes());
    v.extend_from_slice(&dscale.to_be_bytes());
    for d in digits {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v
}

#[test]
fn numeric_binary_codec() {
    let fixed = |v: &str| Mask::Fixed { value: v.into() };
    let bin = |v: &str| run(&fixed(v), &PgType::Numeric, Format::Binary, b"").expect("value");
    assert_eq!(bin("12345.678"), numeric_bin(1, 0, 3, &[1, 2345, 6780]));
    assert_eq!(bin("-0.0001"), numeric_bin(-1, 0x4000, 4, &[1]));
    assert_eq!(bin("0"), numeric_bin(0, 0, 0, &[]));
    assert_eq!(bin("0.00"), numeric_bin(0, 0, 2, &[]));
    assert_eq!(bin("10000"), numeric_bin(1, 0, 0, &[1]));
    assert_eq!(bin("1e20"), numeric_bin(5, 0, 0, &[1]));
    assert_eq!(bin("NaN"), numeric_bin(0, 0xC000, 0, &[]));
    assert_eq!(bin("-Infinity"), numeric_bin(0, 0xF000, 0, &[]));
    assert_eq!(
        bin("123456789.000000001"),
        numeric_bin(2, 0, 9, &[1, 2345, 6789, 0, 0, 1000])
    );
    // Decoding: binary in, text out, through a mask that keeps the value (Round to 1e-9).
    let keep = Mask::Round { to: 1e-9 };
    let out = |b: Vec<u8>| {
        let mut m = FieldMasker::new(&keep, &PgType::Numeric, Format::Binary, None, &iso());
        let mut o = Vec::new();
        assert_eq!(m.apply(&b, &mut o), Masked::Value);
        o
    };
    assert_eq!(
        out(numeric_bin(1, 0, 3, &[1, 2345, 6780])),
        numeric_bin(1, 0, 9, &[1, 2345, 6780])
    );
    // Invalid digit, bad sign, bad length: NULL.
    for bad in [
        numeric_bin(0, 0, 0, &[10000]),
        numeric_bin(0, 0x1234, 0, &[1]),
        vec![0, 1, 0, 0, 0, 0, 0, 0],
        vec![0, 0, 0],
    ] {
        assert_eq!(run(&keep, &PgType::Numeric, Format::Binary, &bad), None);
    }
}

#[test]
fn numeric_round_exact() {
    let r = |to: f64, v: &str| text(&Mask::Round { to }, &PgType::Numeric, v);
    assert_eq!(r(0.01, "123.456").as_deref(), Some("123.46"));
    assert_eq!(r(0.01, "-123.455").as_deref(), Some("-123.46"));
    assert_eq!(
        r(0.01, "123.454999999999999999999").as_deref(),
        Some("123.45")
    );
    assert_eq!(r(100.0, "12345.67").as_deref(), Some("12300"));
    assert_eq!(r(100.0, "-49.99").as_deref(), Some("0"));
    assert_eq!(r(0.05, "1.275").as_deref(), Some("1.30"));
    assert_eq!(r(0.25, "1.125").as_deref(), Some("1.25"));
    assert_eq!(r(0.25, "1.12").as_deref(), Some("1.00"));
    assert_eq!(r(3.0, "4.5").as_deref(), Some("6"));
    assert_eq!(r(3.0, "4.49").as_deref(), Some("3"));
    assert_eq!(
        r(1.0, "99999999999999999999999999999999999999.5").as_deref(),
        Some("100000000000000000000000000000000000000")
    );
    assert_eq!(r(1e-3, "0.00049").as_deref(), Some("0.000"));
    assert_eq!(r(1e-3, "0.0005").as_deref(), Some("0.001"));
    assert_eq!(r(7.0, "0").as_deref(), Some("0"));
    assert_eq!(r(1.0, "NaN").as_deref(), Some("NaN"));
    assert_eq!(r(1.0, "Infinity").as_deref(), Some("Infinity"));
    assert_eq!(r(1.0, "12x"), None);
    let out = run(
        &Mask::Round { to: 0.5 },
        &PgType::Numeric,
        Format::Binary,
        &numeric_bin(0, 0x4000, 2, &[2, 7600]),
    );
    // -2.76 → -3.0
    assert_eq!(out, Some(numeric_bin(0, 0x4000, 1, &[3])));
}

#[test]
fn numeric_noise_keeps_scale() {
    let m = Mask::Noise { ratio: 0.1 };
    let y = text(&m, &PgType::Numeric, "52345.67").expect("value");
    let (int, frac) = y.split_once('.').expect("scale kept");
    assert_eq!(frac.len(), 2);
    let v: f64 = y.parse().expect("number");
    assert!((v - 52345.67).abs() <= 5234.567 + 0.01, "{y}");
    let _ = int;
    let b = run(
        &m,
        &PgType::Numeric,
        Format::Binary,
        &numeric_bin(1, 0, 2, &[5, 2345, 6700]),
    )
    .expect("value");
    let back = run(
        &Mask::Round { to: 0.01 },
        &PgType::Numeric,
        Format::Binary,
        &b,
    )
    .expect("value");
    assert_eq!(b, back, "binary noise output is a valid numeric");
    assert_eq!(text(&m, &PgType::Numeric, "NaN").as_deref(), Some("NaN"));
}

// ---------------------------------------------------------------- uuid

#[test]
fn uuid_masks() {
    let u = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    let parsed = uuid::Uuid::parse_str(u).expect("uuid");
    let bin = enc(parsed, &Type::UUID);
    for mask in [hash(None), Mask::Tokenize] {
        let t = text(&mask, &PgType::Uuid, u).expect("value");
        let tu = uuid::Uuid::parse_str(&t).expect("valid uuid text");
        let b = run(&mask, &PgType::Uuid, Format::Binary, &bin).expect("value");
        assert_eq!(
            dec::<uuid::Uuid>(&Type::UUID, &b),
            tu,
            "text and binary agree"
        );
        assert_ne!(tu, parsed);
        // Other spellings of the same uuid mask alike.
        assert_eq!(
            text(&mask, &PgType::Uuid, &u.to_uppercase()),
            Some(t.clone())
        );
        assert_eq!(
            text(&mask, &PgType::Uuid, "{a0eebc999c0b4ef8bb6d6bb9bd380a11}"),
            Some(t.clone())
        );
    }
    let h =
        uuid::Uuid::parse_str(&text(&hash(None), &PgType::Uuid, u).expect("value")).expect("uuid");
    assert_eq!(h.get_version_num(), 8);
    assert_eq!(h.get_variant(), uuid::Variant::RFC4122);
    assert_eq!(text(&hash(None), &PgType::Uuid, "a0eebc99-9c0b"), None);
    assert_eq!(text(&Mask::Redact, &PgType::Uuid, u), None);
    assert_eq!(
        text(
            &Mask::Fixed {
                value: "00000000-0000-0000-0000-000000000000".into()
            },
            &PgType::Uuid,
            u
        )
        .as_deref(),
        Some("00000000-0000-0000-0000-000000000000")
    );
    assert_eq!(
        text(
            &Mask::Fixed {
                value: "nope".into()
            },
            &PgType::Uuid,
            u
        ),
        None
    );
}

// ---------------------------------------------------------------- dates and times

fn trunc(to: TruncateTo) -> Mask {
    Mask::Truncate { to }
}

#[test]
fn date_truncate() {
    let d = |to, v: &str| text(&trunc(to), &PgType::Date, v);
    assert_eq!(
        d(TruncateTo::Year, "2024-05-17").as_deref(),
        Some("2024-01-01")
    );
    assert_eq!(
        d(TruncateTo::Month, "2024-05-17").as_deref(),
        Some("2024-05-01")
    );
    assert_eq!(
        d(TruncateTo::Day, "2024-05-17").as_deref(),
        Some("2024-05-17")
    );
    assert_eq!(
        d(TruncateTo::Hour, "2024-02-29").as_deref(),
        Some("2024-02-29")
    );
    assert_eq!(
        d(TruncateTo::Year, "0044-03-15 BC").as_deref(),
        Some("0044-01-01 BC")
    );
    assert_eq!(d(TruncateTo::Year, "infinity").as_deref(), Some("infinity"));
    assert_eq!(
        d(TruncateTo::Year, "-infinity").as_deref(),
        Some("-infinity")
    );
    assert_eq!(
        d(TruncateTo::Year, "12345-06-07").as_deref(),
        Some("12345-01-01")
    );
    // Before the first representable day.
    assert_eq!(d(TruncateTo::Year, "4714-11-24 BC"), None);
    assert_eq!(d(TruncateTo::Year, "2024-02-30"), None);
    assert_eq!(d(TruncateTo::Year, "05/17/2024"), None);
    for (v, to, want) in [
        (
            NaiveDate::from_ymd_opt(2024, 5, 17),
            TruncateTo::Year,
            NaiveDate::from_ymd_opt(2024, 1, 1),
        ),
        (
            NaiveDate::from_ymd_opt(1999, 12, 31),
            TruncateTo::Month,
            NaiveDate::from_ymd_opt(1999, 12, 1),
        ),
        (
            NaiveDate::from_ymd_opt(-500, 7, 4),
            TruncateTo::Year,
            NaiveDate::from_ymd_opt(-500, 1, 1),
        ),
    ] {
        let bin = enc(v.expect("date"), &Type::DATE);
        let out = run(&trunc(to), &PgType::Date, Format::Binary, &bin).expect("value");
        assert_eq!(Some(dec::<NaiveDate>(&Type::DATE, &out)), want);
    }
    let inf = i32::MAX.to_be_bytes();
    assert_eq!(
        run(
            &trunc(TruncateTo::Year),
            &PgType::Date,
            Format::Binary,
            &inf
        )
        .as_deref(),
        Some(&inf[..])
    );
}

#[test]
fn timestamp_truncate() {
    let ts = |to, v: &str| text(&trunc(to), &PgType::Timestamp, v);
    let v = "2024-05-17 13:45:12.345678";
    assert_eq!(
        ts(TruncateTo::Year, v).as_deref(),
        Some("2024-01-01 00:00:00")
    );
    assert_eq!(
        ts(TruncateTo::Month, v).as_deref(),
        Some("2024-05-01 00:00:00")
    );
    assert_eq!(
        ts(TruncateTo::Day, v).as_deref(),
        Some("2024-05-17 00:00:00")
    );
    assert_eq!(
        ts(TruncateTo::Hour, v).as_deref(),
        Some("2024-05-17 13:00:00")
    );
    assert_eq!(
        ts(TruncateTo::Hour, "0001-01-01 05:06:07 BC").as_deref(),
        Some("0001-01-01 05:00:00 BC")
    );
    let tz = |to, v: &str| text(&trunc(to), &PgType::TimestampTz, v);
    assert_eq!(
        tz(TruncateTo::Hour, "2024-05-17 13:45:12.5+05:30").as_deref(),
        Some("2024-05-17 13:00:00+05:30")
    );
    assert_eq!(
        tz(TruncateTo::Day, "2024-05-17 13:45:12-08").as_deref(),
        Some("2024-05-17 00:00:00-08")
    );
    assert_eq!(
        tz(TruncateTo::Month, "1883-11-18 11:59:59-04:56:02").as_deref(),
        Some("1883-11-01 00:00:00-04:56:02")
    );
    assert_eq!(
        tz(TruncateTo::Month, "infinity").as_deref(),
        Some("infinity")
    );
    // Parse checks: a timestamptz needs its offset form, a timestamp must not have one.
    assert_eq!(ts(TruncateTo::Day, "2024-05-17 13:45:12+02"), None);
    assert_eq!(ts(TruncateTo::Day, "2024-05-17 24:00:00"), None);
    let dt = NaiveDate::from_ymd_opt(2024, 5, 17)
        .and_then(|d| d.and_hms_micro_opt(13, 45, 12, 345_678))
        .expect("datetime");
    let cases = [
        (TruncateTo::Year, "2024-01-01 00:00:00"),
        (TruncateTo::Month, "2024-05-01 00:00:00"),
        (TruncateTo::Day, "2024-05-17 00:00:00"),
        (TruncateTo::Hour, "2024-05-17 13:00:00"),
    ];
    for (to, want) in cases {
        let want = NaiveDateTime::parse_from_str(want, "%Y-%m-%d %H:%M:%S").expect("parse");
        let out = run(
            &trunc(to),
            &PgType::Timestamp,
            Format::Binary,
            &enc(dt, &Type::TIMESTAMP),
        )
        .expect("value");
        assert_eq!(dec::<NaiveDateTime>(&Type::TIMESTAMP, &out), want);
        let utc = dt.and_utc();
        let out = run(
            &trunc(to),
            &PgType::TimestampTz,
            Format::Binary,
            &enc(utc, &Type::TIMESTAMPTZ),
        )
        .expect("value");
        assert_eq!(
            dec::<DateTime<Utc>>(&Type::TIMESTAMPTZ, &out),
            want.and_utc()
        );
    }
    // Before 2000 (negative microseconds) truncates down, not toward zero.
    let old = NaiveDate::from_ymd_opt(1969, 7, 20)
        .and_then(|d| d.and_hms_opt(20, 17, 40))
        .expect("dt");
    let out = run(
        &trunc(TruncateTo::Hour),
        &PgType::Timestamp,
        Format::Binary,
        &enc(old, &Type::TIMESTAMP),
    )
    .expect("value");
    assert_eq!(
        dec::<NaiveDateTime>(&Type::TIMESTAMP, &out).to_string(),
        "1969-07-20 20:00:00"
    );
}

#[test]
fn datetime_non_iso_session() {
    let sql = Session {
        date_style_iso: false,
    };
    let m = trunc(TruncateTo::Year);
    assert_eq!(
        run_with(&m, &PgType::Date, Format::Text, b"05/17/2024", key(), &sql),
        None
    );
    // Binary does not depend on DateStyle.
    let bin = enc(
        NaiveDate::from_ymd_opt(2024, 5, 17).expect("date"),
        &Type::DATE,
    );
    assert!(run_with(&m, &PgType::Date, Format::Binary, &bin, key(), &sql).is_some());
    let fixed = Mask::Fixed {
        value: "2020-01-01".into(),
    };
    assert_eq!(
        run_with(&fixed, &PgType::Date, Format::Text, b"x", key(), &sql),
        None
    );
}

#[test]
fn datetime_fixed() {
    let f = |v: &str, t: &PgType, fmt| run(&Mask::Fixed { value: v.into() }, t, fmt, b"");
    assert_eq!(
        f("2020-01-02", &PgType::Date, Format::Text).as_deref(),
        Some(&b"2020-01-02"[..])
    );
    let b = f("2020-01-02T03:04:05Z", &PgType::TimestampTz, Format::Binary).expect("value");
    assert_eq!(
        dec::<DateTime<Utc>>(&Type::TIMESTAMPTZ, &b).to_rfc3339(),
        "2020-01-02T03:04:05+00:00"
    );
    let b = f(
        "2020-01-02 03:04:05+02",
        &PgType::TimestampTz,
        Format::Binary,
    )
    .expect("value");
    assert_eq!(
        dec::<DateTime<Utc>>(&Type::TIMESTAMPTZ, &b).to_rfc3339(),
        "2020-01-02T01:04:05+00:00"
    );
    assert_eq!(
        f("2020-01-02 03:04:05", &PgType::TimestampTz, Format::Text).as_deref(),
        Some(&b"2020-01-02 03:04:05+00"[..])
    );
    assert_eq!(
        f("2020-01-02", &PgType::Timestamp, Format::Text).as_deref(),
        Some(&b"2020-01-02 00:00:00"[..])
    );
    assert_eq!(f("2020-13-02", &PgType::Date, Format::Text), None);
    assert_eq!(
        f("300000-01-01 00:00:00", &PgType::Timestamp, Format::Binary),
        None,
        "past the timestamp range"
    );
    assert_eq!(f("yesterday", &PgType::Date, Format::Text), None);
    for mask in [
        hash(None),
        Mask::Tokenize,
        Mask::Redact,
        partial(1, 1),
        Mask::Round { to: 1.0 },
    ] {
        assert_eq!(text(&mask, &PgType::Date, "2020-01-01"), None, "{mask:?}");
    }
}

// ---------------------------------------------------------------- json

fn json_text(mask: &Mask, t: &PgType, v: &str) -> Option<serde_json::Value> {
    text(mask, t, v).map(|s| match serde_json::from_str(&s) {
        Ok(v) => v,
        Err(e) => panic!("not JSON: {s}: {e}"),
    })
}

const DOC: &str = r#"{"name": "John Smith", "email": "john@example.com", "age": 42, "score": 3.14159, "tags": ["a", "b\"c"], "ok": true, "none": null, "esc": "tab\there \u00e9"}"#;

#[test]
fn json_string_masks() {
    let v = json_text(&partial(1, 1), &PgType::Jsonb, DOC).expect("value");
    assert_eq!(v["name"], "J********h");
    assert_eq!(v["tags"][1], "b*c");
    assert_eq!(
        v["age"],
        serde_json::Value::Null,
        "numbers have no string mask"
    );
    assert_eq!(v["ok"], true);
    assert_eq!(v["esc"], "t********é");
    let v = json_text(&Mask::Email, &PgType::Json, DOC).expect("value");
    assert_eq!(v["email"], "j***@example.com");
    assert_eq!(v["name"], "**********");
    let v = json_text(&hash(Some(12)), &PgType::Json, DOC).expect("value");
    assert_eq!(v["name"].as_str().map(str::len), Some(12));
    // The same string hashes as in a text column.
    assert_eq!(
        v["name"].as_str(),
        text(&hash(Some(12)), &PgType::Text, "John Smith").as_deref()
    );
    let v = json_text(&Mask::Tokenize, &PgType::Json, DOC).expect("value");
    assert_eq!(v["age"].as_u64().map(|n| n.to_string().len()), Some(2));
    assert!(v["score"].is_f64());
    assert_eq!(v["name"].as_str().map(str::len), Some(10));
}

#[test]
fn json_redact_fixed_and_numbers() {
    assert_eq!(
        json_text(&Mask::Redact, &PgType::Json, DOC),
        Some(serde_json::json!("[REDACTED]"))
    );
    let b = run(&Mask::Redact, &PgType::Jsonb, Format::Binary, &[1, b'1']).expect("value");
    assert_eq!(
        dec::<serde_json::Value>(&Type::JSONB, &b),
        serde_json::json!("[REDACTED]")
    );
    let f = Mask::Fixed {
        value: r#"{"masked": true}"#.into(),
    };
    assert_eq!(
        json_text(&f, &PgType::Json, DOC),
        Some(serde_json::json!({"masked": true}))
    );
    assert_eq!(
        text(&Mask::Fixed { value: "{".into() }, &PgType::Json, DOC),
        None
    );
    assert_eq!(
        text(
            &Mask::Fixed {
                value: r#""\u0000""#.into()
            },
            &PgType::Jsonb,
            DOC
        ),
        None
    );
    assert!(
        text(
            &Mask::Fixed {
                value: r#""\u0000""#.into()
            },
            &PgType::Json,
            DOC
        )
        .is_some()
    );
    let v = json_text(&Mask::Round { to: 10.0 }, &PgType::Jsonb, DOC).expect("value");
    assert_eq!(v["age"], 40);
    assert_eq!(v["score"], 0);
    assert_eq!(v["name"], "John Smith", "strings stay under number masks");
    let v = json_text(
        &Mask::Round { to: 0.01 },
        &PgType::Jsonb,
        r#"[1.5e2, -2.345, 1.5E-3]"#,
    )
    .expect("value");
    assert_eq!(v, serde_json::json!([150, -2.35, 0]));
    assert_eq!(
        text(
            &Mask::Round { to: 0.01 },
            &PgType::Jsonb,
            r#"[1e400, -2.345, 1.5E-3]"#
        )
        .as_deref(),
        Some("[1e400, -2.35, 0]")
    );
    let v = json_text(&Mask::Noise { ratio: 0.5 }, &PgType::Json, DOC).expect("value");
    assert!(v["age"].is_i64(), "integers stay integers");
    assert!((21..=63).contains(&v["age"].as_i64().unwrap_or(0)));
    assert_eq!(text(&trunc(TruncateTo::Day), &PgType::Json, DOC), None);
}

#[test]
fn json_binary_and_malformed() {
    let mut body = vec![1u8];
    body.extend_from_slice(DOC.as_bytes());
    let b = run(&partial(0, 0), &PgType::Jsonb, Format::Binary, &body).expect("value");
    let v = dec::<serde_json::Value>(&Type::JSONB, &b);
    assert_eq!(v["email"], "****************");
    // json in binary is plain text.
    let b = run(
        &partial(0, 0),
        &PgType::Json,
        Format::Binary,
        DOC.as_bytes(),
    )
    .expect("value");
    let _ = dec::<serde_json::Value>(&Type::JSON, &b);
    // jsonb binary needs version 1.
    assert_eq!(
        run(
            &partial(0, 0),
            &PgType::Jsonb,
            Format::Binary,
            DOC.as_bytes()
        ),
        None
    );
    for bad in [
        "{",
        "[1,]",
        r#"{"a" 1}"#,
        "01",
        "1.",
        "-",
        "tru",
        r#""\x""#,
        r#""\ud800""#,
        "[1] 2",
        "",
        "\"a\nb\"",
        r#"{"a":1,}"#,
        "[1 2]",
        "{1:2}",
        "nul",
    ] {
        assert_eq!(text(&partial(0, 0), &PgType::Json, bad), None, "{bad}");
    }
    let deep = "[".repeat(20_000) + &"]".repeat(20_000);
    assert_eq!(text(&partial(0, 0), &PgType::Json, &deep), None);
    let ok = "[".repeat(500) + "\"x\"" + &"]".repeat(500);
    assert!(text(&partial(0, 0), &PgType::Json, &ok).is_some());
    // Surrogate pairs decode, and the masked text re-encodes correctly.
    let v = json_text(&partial(1, 0), &PgType::Json, r#"["\ud83d\ude00ab"]"#).expect("value");
    assert_eq!(v[0], "😀**");
}

// ---------------------------------------------------------------- bytea

#[test]
fn bytea_masks() {
    let raw = [0xde, 0xad, 0xbe, 0xef, 0x00, b'\\'];
    let t = text(&hash(None), &PgType::Bytea, "\\xdeadbeef005c").expect("value");
    assert!(t.starts_with("\\x") && t.len() == 2 + 16);
    assert!(hex::decode(&t[2..]).is_ok());
    // Escape-format input of the same bytes hashes alike; binary too.
    assert_eq!(
        text(&hash(None), &PgType::Bytea, "\\336\\255\\276\\357\\000\\\\"),
        Some(t.clone())
    );
    let b = run(&hash(None), &PgType::Bytea, Format::Binary, &raw).expect("value");
    assert_eq!(
        format!("\\x{}", hex::encode(dec::<Vec<u8>>(&Type::BYTEA, &b))),
        t
    );
    assert_eq!(
        run(&hash(Some(64)), &PgType::Bytea, Format::Binary, &raw).map(|b| b.len()),
        Some(32)
    );
    let f = Mask::Fixed {
        value: "\\x0102".into(),
    };
    assert_eq!(
        text(&f, &PgType::Bytea, "\\x00").as_deref(),
        Some("\\x0102")
    );
    assert_eq!(
        run(&f, &PgType::Bytea, Format::Binary, b"x").as_deref(),
        Some(&[1u8, 2][..])
    );
    assert_eq!(
        text(
            &Mask::Fixed {
                value: "abc".into()
            },
            &PgType::Bytea,
            "\\x00"
        )
        .as_deref(),
        Some("\\x616263")
    );
    assert_eq!(text(&hash(None), &PgType::Bytea, "\\xabc"), None, "odd hex");
    assert_eq!(text(&hash(None), &PgType::Bytea, "\\9"), None, "bad escape");
    for mask in [
        Mask::Redact,
        partial(1, 1),
        Mask::Tokenize,
        Mask::Round { to: 1.0 },
    ] {
        assert_eq!(text(&mask, &PgType::Bytea, "\\x00"), None, "{mask:?}");
    }
}

#[test]
fn bool_masks() {
    let f = |v: &str| Mask::Fixed { value: v.into() };
    assert_eq!(text(&f("yes"), &PgType::Bool, "f").as_deref(), Some("t"));
    assert_eq!(text(&f("OFF"), &PgType::Bool, "t").as_deref(), Some("f"));
    assert_eq!(text(&f("o"), &PgType::Bool, "t"), None);
    let b = run(&f("false"), &PgType::Bool, Format::Binary, &[1]).expect("value");
    assert!(!dec::<bool>(&Type::BOOL, &b));
    for mask in [Mask::Redact, hash(None), Mask::Tokenize, partial(0, 0)] {
        assert_eq!(text(&mask, &PgType::Bool, "t"), None);
    }
}

// ---------------------------------------------------------------- arrays

fn arr(t: PgType) -> PgType {
    PgType::Array(Box::new(t))
}

#[test]
fn text_arrays() {
    let t = arr(PgType::Text);
    assert_eq!(
        text(
            &partial(1, 0),
            &t,
            r#"{"a b",cd,NULL,"d\"e","","NULL",x\,y}"#
        )
        .as_deref(),
        Some(r#"{a**,c*,NULL,d**,"",N***,x**}"#)
    );
    assert_eq!(
        text(&Mask::Redact, &t, "{a,b}").as_deref(),
        Some("{[REDACTED],[REDACTED]}")
    );
    assert_eq!(
        text(&Mask::Email, &t, r#"{{a@b.com,"x y"},{NULL,c@d.org}}"#).as_deref(),
        Some("{{a***@b.com,***},{NULL,c***@d.org}}")
    );
    assert_eq!(
        text(&partial(0, 0), &t, "[0:1]={ab,c}").as_deref(),
        Some("[0:1]={**,*}")
    );
    assert_eq!(
        text(&partial(0, 0), &t, " { ab , c } ").as_deref(),
        Some("{**,*}")
    );
    assert_eq!(text(&partial(0, 0), &t, "{}").as_deref(), Some("{}"));
    assert_eq!(
        text(
            &Mask::Fixed {
                value: "a,b".into()
            },
            &t,
            "{x,NULL}"
        )
        .as_deref(),
        Some(r#"{"a,b",NULL}"#)
    );
    for bad in [
        "{a,b",
        "a,b}",
        "{a,,b}",
        "{,a}",
        "{a,}",
        "{a}x",
        "{\"a}",
        "{{{{{{{a}}}}}}}",
        "[1:2]{a}",
        "{a\"b\"}",
        "",
    ] {
        assert_eq!(text(&partial(0, 0), &t, bad), None, "{bad}");
    }
}

#[test]
fn binary_arrays() {
    let vals: Vec<Option<&str>> = vec![Some("alpha"), None, Some("b c")];
    let bin = enc(&vals, &Type::TEXT_ARRAY);
    let out = run(&partial(1, 0), &arr(PgType::Text), Format::Binary, &bin).expect("value");
    let got: Vec<Option<String>> = dec(&Type::TEXT_ARRAY, &out);
    assert_eq!(got, vec![Some("a****".into()), None, Some("b**".into())]);
    // Elements masked to NULL set the has-null flag, so the client sees NULLs.
    let ints = enc(vec![1i32, 2, 3], &Type::INT4_ARRAY);
    let out = run(&Mask::Redact, &arr(PgType::Int4), Format::Binary, &ints).expect("value");
    assert_eq!(&out[4..8], &1i32.to_be_bytes());
    let got: Vec<Option<i32>> = dec(&Type::INT4_ARRAY, &out);
    assert_eq!(got, vec![None, None, None]);
    let out = run(
        &Mask::Round { to: 10.0 },
        &arr(PgType::Int4),
        Format::Binary,
        &ints,
    )
    .expect("value");
    assert_eq!(&out[4..8], &0i32.to_be_bytes());
    assert_eq!(dec::<Vec<i32>>(&Type::INT4_ARRAY, &out), vec![0, 0, 0]);
    let uuids = vec![uuid::Uuid::nil(), uuid::Uuid::max()];
    let out = run(
        &hash(None),
        &arr(PgType::Uuid),
        Format::Binary,
        &enc(&uuids, &Type::UUID_ARRAY),
    )
    .expect("value");
    assert_eq!(dec::<Vec<uuid::Uuid>>(&Type::UUID_ARRAY, &out).len(), 2);
    let empty = enc(Vec::<i32>::new(), &Type::INT4_ARRAY);
    let out = run(
        &Mask::Round { to: 10.0 },
        &arr(PgType::Int4),
        Format::Binary,
        &empty,
    )
    .expect("value");
    assert!(dec::<Vec<i32>>(&Type::INT4_ARRAY, &out).is_empty());
    let jsons = vec![serde_json::json!({"a": "secret"})];
    let out = run(
        &partial(1, 0),
        &arr(PgType::Jsonb),
        Format::Binary,
        &enc(&jsons, &Type::JSONB_ARRAY),
    )
    .expect("value");
    assert_eq!(
        dec::<Vec<serde_json::Value>>(&Type::JSONB_ARRAY, &out),
        vec![serde_json::json!({"a": "s*****"})]
    );
    // Malformed: truncated, lying counts, bad flags.
    assert_eq!(
        run(
            &partial(1, 0),
            &arr(PgType::Text),
            Format::Binary,
            &bin[..bin.len() - 1]
        ),
        None
    );
    let mut lie = bin.clone();
    lie[12..16].copy_from_slice(&1_000_000i32.to_be_bytes());
    assert_eq!(
        run(&partial(1, 0), &arr(PgType::Text), Format::Binary, &lie),
        None
    );
    let mut flags = bin.clone();
    flags[4..8].copy_from_slice(&7i32.to_be_bytes());
    assert_eq!(
        run(&partial(1, 0), &arr(PgType::Text), Format::Binary, &flags),
        None
    );
    let mut extra = bin;
    extra.push(0);
    assert_eq!(
        run(&partial(1, 0), &arr(PgType::Text), Format::Binary, &extra),
        None
    );
}

#[test]
fn arrays_of_other_types_in_text() {
    assert_eq!(
        text(
            &Mask::Round { to: 10.0 },
            &arr(PgType::Int4),
            "{14,NULL,-15}"
        )
        .as_deref(),
        Some("{10,NULL,-20}")
    );
    assert_eq!(
        text(
            &trunc(TruncateTo::Month),
            &arr(PgType::Timestamp),
            r#"{"2024-05-17 13:45:12","2023-01-31 00:00:00"}"#
        )
        .as_deref(),
        Some(r#"{"2024-05-01 00:00:00","2023-01-01 00:00:00"}"#)
    );
    assert_eq!(
        text(&hash(Some(4)), &arr(PgType::Bytea), r#"{"\\x00"}"#).map(|s| s.len()),
        Some(r#"{"\\x0000"}"#.len())
    );
    assert_eq!(
        text(&partial(1, 0), &arr(PgType::Json), r#"{"{\"a\": \"bc\"}"}"#).as_deref(),
        Some(r#"{"{\"a\": \"b*\"}"}"#)
    );
    assert_eq!(text(&Mask::Null, &arr(PgType::Int4), "{1}"), None);
    assert_eq!(
        text(&Mask::Round { to: 1.0 }, &arr(arr(PgType::Int4)), "{1}"),
        None
    );
}

#[test]
fn malformed_input_never_panics() {
    // Deterministic pseudo-random bytes, and mutations of valid values, through every mask
    // and type: only NULL or a value, never a panic.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let valid: Vec<&[u8]> = vec![
        b"{\"a\": [1, \"x\", {\"b\": null}]}",
        b"{a,\"b c\",NULL}",
        b"[1:2]={1,2}",
        b"2024-05-17 13:45:12.345678+02",
        b"12345.678",
        b"\\xdeadbeef",
        b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        &[
            0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 7, 0,
            0, 0, 4, 0, 0, 0, 8,
        ],
        &[0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 9, 41, 26, 124],
        &[1, b'{', b'}'],
    ];
    let types: Vec<PgType> = [
        16, 21, 23, 20, 700, 701, 1700, 25, 2950, 1082, 1114, 1184, 114, 3802, 17, 1007, 1009,
        3807, 1231, 1185,
    ]
    .into_iter()
    .map(ty)
    .collect();
    let mut maskers: Vec<FieldMasker> = Vec::new();
    for mask in all_masks() {
        for t in &types {
            for f in [Format::Text, Format::Binary] {
                maskers.push(FieldMasker::new(&mask, t, f, key(), &iso()));
            }
        }
    }
    let mut out = Vec::new();
    for round in 0..300 {
        let mut v: Vec<u8> = valid[round % valid.len()].to_vec();
        let edits = next() % 4;
        for _ in 0..edits {
            let r = next();
            if v.is_empty() {
                v.push(r as u8);
                continue;
            }
            let at = (r >> 8) as usize % v.len();
            match r % 3 {
                0 => v[at] = (r >> 32) as u8,
                1 => {
                    v.remove(at);
                }
                _ => v.insert(at, (r >> 40) as u8),
            }
        }
        if round % 5 == 0 {
            v = (0..next() % 40).map(|_| next() as u8).collect();
        }
        for m in &mut maskers {
            out.clear();
            let _ = m.apply(&v, &mut out);
        }
    }
}
