//! Masking values as they stream: type-true masks for one field, and content detectors.
//!
//! This is the value layer only: no I/O, no protocol framing. The relay builds one
//! [`FieldMasker`] per masked result column (from the column's [`Mask`], type, wire format and
//! the session's settings) and one [`DetectorSet`] per rule set, then calls them on each
//! DataRow field. Everything that does not depend on the value is worked out in the
//! constructors; the per-value calls append to the caller's buffer and allocate nothing else
//! once their scratch buffers have grown.
//!
//! # The promise
//!
//! A masked value is a valid value of the column's type in the format the client asked for,
//! so every client decodes it; where a mask cannot be expressed in the type, the value is
//! NULL. NULL stays NULL (the caller never passes NULL in). A value that cannot be parsed as
//! its type, a type the masker does not know ([`PgType::Other`]), and any mask needing a key
//! that is absent all give NULL: masking fails closed.
//!
//! # Masks by type
//!
//! "Text-like" is [`PgType::Text`] (`text`, `varchar`, `bpchar`, `name`, `citext`), whose text
//! and binary forms are the same bytes. Strings are handled as UTF-8; a text value that is not
//! valid UTF-8 masks to NULL under the masks that read it. `Fixed` values are checked against
//! the type (and re-encoded for binary) once, in the constructor; one that is not a valid value
//! of the type makes the column NULL. `Redact` on JSON replaces the whole document, keys too.
//!
//! | mask | text-like | json / jsonb | int2/4/8 | float4/8, numeric | uuid | date, timestamp(tz) | bytea | bool |
//! |---|---|---|---|---|---|---|---|---|
//! | `Null` | NULL | NULL | NULL | NULL | NULL | NULL | NULL | NULL |
//! | `Redact` | `[REDACTED]` | the JSON string `"[REDACTED]"` | NULL | NULL | NULL | NULL | NULL | NULL |
//! | `Fixed` | the value | the value if valid JSON | the value if valid | the value if valid | the value if valid | the value if valid (ISO) | the value (`\x…` or escape form) | the value if valid |
//! | `Partial` | keep first/last chars, `*` between | every string leaf | NULL | NULL | NULL | NULL | NULL | NULL |
//! | `Email` | `j***@example.com` | every string leaf | NULL | NULL | NULL | NULL | NULL | NULL |
//! | `Hash` | hex, `length` digits | every string leaf | non-negative int of the width | NULL | version-8 uuid | NULL | digest bytes | NULL |
//! | `Tokenize` | digits→digits, letters→letters | string and number leaves | same sign and digit count | NULL | random-looking uuid | NULL | NULL | NULL |
//! | `Truncate` | NULL | NULL | NULL | NULL | NULL | to year/month/day/hour | NULL | NULL |
//! | `Round` | NULL | every number leaf | nearest multiple | nearest multiple | NULL | NULL | NULL | NULL |
//! | `Noise` | NULL | every number leaf | × (1 ± ratio) | × (1 ± ratio) | NULL | NULL | NULL | NULL |
//!
//! Arrays of any of these apply the element's mask to each element (an element masked to
//! NULL becomes a NULL element); arrays of `Other` elements are NULL. `Null` on an array is a
//! NULL array, and `Fixed` on an array replaces each element.
//!
//! JSON: under string masks (`Partial`, `Email`, `Hash`, `Tokenize`) keys, booleans and nulls
//! are kept and every string leaf is masked; number leaves are tokenized under `Tokenize` and
//! become `null` under the others (a string mask has no number form). Under `Round` and
//! `Noise` number leaves change and strings stay. `Truncate` on JSON is NULL.
//!
//! `Hash` is HMAC-SHA256 keyed by the rule's Secret over the value's canonical text (the text
//! PostgreSQL prints: so the text and binary forms of one value hash alike, and a value can be
//! matched in SQL with `hmac(value::text, key, 'sha256')`). `Tokenize` and `Noise` are keyed
//! by a random key drawn once per process: deterministic while the process lives, so repeated
//! queries cannot average the noise away, yet not reproducible offline.

mod array;
mod datetime;
mod detect;
mod json;
mod keys;
mod number;
mod scalar;
mod text;
mod types;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bench;
#[cfg(test)]
mod tests_detect;
#[cfg(test)]
mod tests_pg;

use std::sync::Arc;

use crate::masking::{Mask, TruncateTo};

use array::{ElemOut, TextScratch};
use datetime::DtKind;
use json::Leaf;
use keys::{Keyed, process_keys, unit_from_digest};
use number::{Dec, IntWidth, NumKind, RoundSpec};
use text::StrOp;

pub use detect::{DetectorSet, Scan};
pub use text::{DEFAULT_HASH_LENGTH, REDACTED};
pub use types::{Format, PgType, Session};

/// What [`FieldMasker::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Masked {
    /// The masked value was appended.
    Value,
    /// The field must be sent as NULL; nothing was appended.
    Null,
}

/// Masks the values of one result column.
#[derive(Clone)]
pub struct FieldMasker {
    plan: Plan,
    scratch: Scratch,
}

/// Buffers reused across calls so that steady-state masking does not allocate.
#[derive(Clone, Default)]
struct Scratch {
    buf: Vec<u8>,
    buf2: Vec<u8>,
    dec: Dec,
    stack: Vec<bool>,
    arr: TextScratch,
}

#[derive(Clone)]
enum Plan {
    Null,
    /// The same bytes for every value (Redact, Fixed).
    Const(Box<[u8]>),
    Text(StrOp),
    Int {
        width: IntWidth,
        format: Format,
        op: NumOp,
    },
    Float {
        single: bool,
        format: Format,
        op: NumOp,
    },
    Numeric {
        format: Format,
        op: NumOp,
    },
    Uuid {
        format: Format,
        tokenize: bool,
        key: Keyed,
    },
    Bytea {
        format: Format,
        key: Keyed,
        bytes: usize,
    },
    DateTime {
        kind: DtKind,
        to: TruncateTo,
        format: Format,
    },
    Json {
        jsonb_binary: bool,
        op: JsonOp,
    },
    Array {
        format: Format,
        elem: Box<FieldMasker>,
    },
}

#[derive(Clone)]
enum NumOp {
    Hash(Keyed),
    Tokenize(Keyed),
    Round(RoundSpec),
    Noise { key: Keyed, ratio: f64 },
}

#[derive(Clone)]
enum JsonOp {
    Str(StrOp),
    Num(NumOp),
}

impl FieldMasker {
    /// A masker for values of type `ty` sent in `format`. `hash_key` is the rule's HMAC key
    /// (a `Hash` mask without one masks to NULL).
    pub fn new(
        mask: &Mask,
        ty: &PgType,
        format: Format,
        hash_key: Option<Arc<[u8]>>,
        session: &Session,
    ) -> FieldMasker {
        FieldMasker {
            plan: plan(mask, ty, format, hash_key.as_deref(), session),
            scratch: Scratch::default(),
        }
    }

    /// True when every value becomes NULL, whatever it is: the caller may skip the call.
    pub fn always_null(&self) -> bool {
        matches!(self.plan, Plan::Null)
    }

    /// `value` is the raw field bytes of a non-NULL field (the caller keeps NULL as NULL and
    /// never calls this for NULL). Appends the masked field bytes to `out` and returns
    /// [`Masked::Value`], or returns [`Masked::Null`] (nothing appended) when the field must
    /// become NULL.
    pub fn apply(&mut self, value: &[u8], out: &mut Vec<u8>) -> Masked {
        let start = out.len();
        match self.apply_inner(value, out) {
            Some(()) => Masked::Value,
            None => {
                out.truncate(start);
                Masked::Null
            }
        }
    }

    fn apply_inner(&mut self, value: &[u8], out: &mut Vec<u8>) -> Option<()> {
        let FieldMasker { plan, scratch } = self;
        match plan {
            Plan::Null => None,
            Plan::Const(bytes) => {
                out.extend_from_slice(bytes);
                Some(())
            }
            Plan::Text(op) => {
                op.apply(std::str::from_utf8(value).ok()?, out);
                Some(())
            }
            Plan::Int { width, format, op } => {
                let x = number::parse_int(value, *width, *format)?;
                let y = match op {
                    NumOp::Hash(key) => number::hash_int(key, x, *width),
                    NumOp::Tokenize(key) => number::tokenize_int(key, x, *width),
                    NumOp::Round(spec) => number::round_int(x, spec, *width, &mut scratch.dec)?,
                    NumOp::Noise { key, ratio } => number::noise_int(key, x, *ratio, *width),
                };
                number::write_int(y, *width, *format, out);
                Some(())
            }
            Plan::Float { single, format, op } => {
                let v = number::parse_float(value, *single, *format)?;
                let y = match op {
                    NumOp::Round(spec) => number::round_float(v, spec, *single, &mut scratch.buf),
                    NumOp::Noise { key, ratio } => {
                        number::noise_float(key, v, *ratio, *single, &mut scratch.buf)
                    }
                    NumOp::Hash(_) | NumOp::Tokenize(_) => return None,
                };
                number::write_float(y, *single, *format, out);
                Some(())
            }
            Plan::Numeric { format, op } => {
                let dec = &mut scratch.dec;
                let kind = match format {
                    Format::Text => dec.parse_text(value)?,
                    Format::Binary => dec.parse_binary(value)?,
                };
                if kind != NumKind::Finite {
                    number::write_numeric_special(kind, *format, out);
                    return Some(());
                }
                match op {
                    NumOp::Round(spec) => dec.round_multiple(spec.m, spec.f)?,
                    NumOp::Noise { key, ratio } => {
                        let scale = dec.dscale;
                        let v = dec.to_f64(&mut scratch.buf);
                        if !v.is_finite() {
                            return None;
                        }
                        scratch.buf.clear();
                        dec.write_text(&mut scratch.buf);
                        let u = unit_from_digest(&key.digest(&[&scratch.buf]));
                        let y = v * (1.0 + u * *ratio);
                        if !y.is_finite() {
                            return None;
                        }
                        dec.set_f64(y, scale, &mut scratch.buf)?;
                    }
                    NumOp::Hash(_) | NumOp::Tokenize(_) => return None,
                }
                match format {
                    Format::Text => dec.write_text(out),
                    Format::Binary => dec.write_binary(out)?,
                }
                Some(())
            }
            Plan::Uuid {
                format,
                tokenize,
                key,
            } => {
                let u = scalar::parse_uuid(value, *format)?;
                let r = if *tokenize {
                    scalar::tokenize_uuid(key, &u)
                } else {
                    scalar::hash_uuid(key, &u)
                };
                scalar::write_uuid(&r, *format, out);
                Some(())
            }
            Plan::Bytea { format, key, bytes } => {
                let raw: &[u8] = match format {
                    Format::Text => {
                        scratch.buf.clear();
                        scalar::parse_bytea_text(value, &mut scratch.buf)?;
                        &scratch.buf
                    }
                    Format::Binary => value,
                };
                let d = scalar::hash_bytea(key, raw);
                scalar::write_bytea(&d[..*bytes], *format, out);
                Some(())
            }
            Plan::DateTime { kind, to, format } => {
                datetime::truncate(*kind, *to, *format, value, out)
            }
            Plan::Json { jsonb_binary, op } => {
                let body = if *jsonb_binary {
                    if value.first() != Some(&1) {
                        return None;
                    }
                    out.push(1);
                    &value[1..]
                } else {
                    value
                };
                mask_json(op, body, out, scratch)
            }
            Plan::Array { format, elem } => {
                let each = |e: &[u8], o: &mut Vec<u8>| {
                    Some(match elem.apply(e, o) {
                        Masked::Value => ElemOut::Value,
                        Masked::Null => ElemOut::Null,
                    })
                };
                match format {
                    Format::Text => array::text_array(value, out, &mut scratch.arr, each)?,
                    Format::Binary => array::binary_array(value, out, each)?,
                };
                Some(())
            }
        }
    }
}

/// Masks the leaves of a JSON document, copying everything between them.
fn mask_json(op: &JsonOp, body: &[u8], out: &mut Vec<u8>, scratch: &mut Scratch) -> Option<()> {
    std::str::from_utf8(body).ok()?;
    let Scratch {
        buf,
        buf2,
        dec,
        stack,
        ..
    } = scratch;
    let mut copied = 0;
    json::walk(body, stack, |a, b, leaf| {
        let tok = &body[a..b];
        match (op, leaf) {
            (JsonOp::Str(sop), Leaf::Str { key: false }) => {
                let inner = &tok[1..tok.len() - 1];
                let s: &[u8] = if memchr::memchr(b'\\', inner).is_none() {
                    inner
                } else {
                    buf.clear();
                    json::unescape(inner, false, buf).ok_or(json::Stop::Invalid)?;
                    buf
                };
                let s = std::str::from_utf8(s).map_err(|_| json::Stop::Invalid)?;
                buf2.clear();
                sop.apply(s, buf2);
                out.extend_from_slice(&body[copied..a]);
                json::write_string(buf2, out);
                copied = b;
            }
            (JsonOp::Str(sop), Leaf::Num) => {
                out.extend_from_slice(&body[copied..a]);
                match sop {
                    StrOp::Tokenize { key } => text::tokenize_json_number(key, tok, out),
                    _ => out.extend_from_slice(b"null"),
                }
                copied = b;
            }
            (JsonOp::Num(nop), Leaf::Num) => {
                out.extend_from_slice(&body[copied..a]);
                mask_json_number(nop, tok, out, dec);
                copied = b;
            }
            _ => {}
        }
        Ok(())
    })
    .ok()?;
    out.extend_from_slice(&body[copied..]);
    Some(())
}

/// `Round` (exact, in decimal) or `Noise` on a JSON number; `null` when the result has no JSON
/// form.
fn mask_json_number(op: &NumOp, tok: &[u8], out: &mut Vec<u8>, dec: &mut Dec) {
    match op {
        NumOp::Round(spec) => {
            if dec.parse_text(tok) == Some(NumKind::Finite)
                && dec.round_multiple(spec.m, spec.f).is_some()
            {
                dec.write_json(out);
            } else {
                out.extend_from_slice(b"null");
            }
        }
        NumOp::Noise { key, ratio } => {
            let Some(v) = std::str::from_utf8(tok)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
            else {
                out.extend_from_slice(b"null");
                return;
            };
            let u = unit_from_digest(&key.digest(&[tok]));
            let y = v * (1.0 + u * ratio);
            let integral = !tok.iter().any(|b| matches!(b, b'.' | b'e' | b'E'));
            if !y.is_finite() {
                out.extend_from_slice(b"null");
            } else if integral && y.abs() < 9.0e15 {
                // An integer stays an integer.
                let _ = std::io::Write::write_fmt(out, format_args!("{}", y.round() as i64));
            } else {
                number::write_float_text(y, false, out);
            }
        }
        NumOp::Hash(_) | NumOp::Tokenize(_) => out.extend_from_slice(b"null"),
    }
}

fn int_width(ty: &PgType) -> Option<IntWidth> {
    match ty {
        PgType::Int2 => Some(IntWidth::I2),
        PgType::Int4 => Some(IntWidth::I4),
        PgType::Int8 => Some(IntWidth::I8),
        _ => None,
    }
}

fn dt_kind(ty: &PgType) -> Option<DtKind> {
    match ty {
        PgType::Date => Some(DtKind::Date),
        PgType::Timestamp => Some(DtKind::Timestamp),
        PgType::TimestampTz => Some(DtKind::TimestampTz),
        _ => None,
    }
}

/// Works out, once per column, what each value will go through.
fn plan(mask: &Mask, ty: &PgType, format: Format, key: Option<&[u8]>, session: &Session) -> Plan {
    if matches!(mask, Mask::Null) {
        return Plan::Null;
    }
    if let PgType::Array(inner) = ty {
        if matches!(**inner, PgType::Array(_) | PgType::Other) {
            return Plan::Null;
        }
        return Plan::Array {
            format,
            elem: Box::new(FieldMasker {
                plan: plan(mask, inner, format, key, session),
                scratch: Scratch::default(),
            }),
        };
    }
    let jsonb_binary = matches!(ty, PgType::Jsonb) && format == Format::Binary;
    let is_json = matches!(ty, PgType::Json | PgType::Jsonb);
    let hash_key = || key.and_then(Keyed::new);
    let str_plan = |op: Option<StrOp>| match (op, ty) {
        (Some(op), PgType::Text) => Plan::Text(op),
        (Some(op), PgType::Json | PgType::Jsonb) => Plan::Json {
            jsonb_binary,
            op: JsonOp::Str(op),
        },
        _ => Plan::Null,
    };
    match mask {
        Mask::Null => Plan::Null,
        Mask::Redact => match ty {
            PgType::Text => Plan::Const(REDACTED.as_bytes().into()),
            PgType::Json | PgType::Jsonb => {
                let mut v = Vec::new();
                if jsonb_binary {
                    v.push(1);
                }
                json::write_string(REDACTED.as_bytes(), &mut v);
                Plan::Const(v.into())
            }
            _ => Plan::Null,
        },
        Mask::Fixed { value } => match encode_fixed(ty, format, value, session) {
            Some(bytes) => Plan::Const(bytes.into()),
            None => Plan::Null,
        },
        Mask::Partial {
            keep_first,
            keep_last,
        } => str_plan(Some(StrOp::Partial {
            keep_first: *keep_first as usize,
            keep_last: *keep_last as usize,
        })),
        Mask::Email => str_plan(Some(StrOp::Email)),
        Mask::Hash { length, .. } => {
            let Some(k) = hash_key() else {
                return Plan::Null;
            };
            let len = text::hash_len(*length);
            if let Some(width) = int_width(ty) {
                return Plan::Int {
                    width,
                    format,
                    op: NumOp::Hash(k),
                };
            }
            match ty {
                PgType::Uuid => Plan::Uuid {
                    format,
                    tokenize: false,
                    key: k,
                },
                PgType::Bytea => Plan::Bytea {
                    format,
                    key: k,
                    bytes: len.div_ceil(2),
                },
                _ => str_plan(Some(StrOp::Hash { key: k, len })),
            }
        }
        Mask::Tokenize => {
            let Some(k) = text::tokenize_key() else {
                return Plan::Null;
            };
            if let Some(width) = int_width(ty) {
                return Plan::Int {
                    width,
                    format,
                    op: NumOp::Tokenize(k),
                };
            }
            match ty {
                PgType::Uuid => Plan::Uuid {
                    format,
                    tokenize: true,
                    key: k,
                },
                _ => str_plan(Some(StrOp::Tokenize { key: k })),
            }
        }
        Mask::Truncate { to } => match dt_kind(ty) {
            Some(_) if format == Format::Text && !session.date_style_iso => Plan::Null,
            Some(kind) => Plan::DateTime {
                kind,
                to: *to,
                format,
            },
            None => Plan::Null,
        },
        Mask::Round { to } => match RoundSpec::new(*to) {
            Some(spec) => num_plan(ty, format, is_json, jsonb_binary, NumOp::Round(spec)),
            None => Plan::Null,
        },
        Mask::Noise { ratio } => {
            let Some(keys) = process_keys() else {
                return Plan::Null;
            };
            if !ratio.is_finite() || *ratio < 0.0 {
                return Plan::Null;
            }
            let op = NumOp::Noise {
                key: keys.noise.clone(),
                ratio: *ratio,
            };
            num_plan(ty, format, is_json, jsonb_binary, op)
        }
    }
}

fn num_plan(ty: &PgType, format: Format, is_json: bool, jsonb_binary: bool, op: NumOp) -> Plan {
    if let Some(width) = int_width(ty) {
        return Plan::Int { width, format, op };
    }
    match ty {
        PgType::Float4 | PgType::Float8 => Plan::Float {
            single: matches!(ty, PgType::Float4),
            format,
            op,
        },
        PgType::Numeric => Plan::Numeric { format, op },
        _ if is_json => Plan::Json {
            jsonb_binary,
            op: JsonOp::Num(op),
        },
        _ => Plan::Null,
    }
}

/// The encoding of a `Fixed` value in the column's type and format, or `None` when the value
/// is not a valid value of the type.
fn encode_fixed(ty: &PgType, format: Format, value: &str, session: &Session) -> Option<Vec<u8>> {
    let v = value.as_bytes();
    let mut out = Vec::new();
    match ty {
        PgType::Bool => scalar::write_bool(scalar::parse_bool(v)?, format, &mut out),
        PgType::Int2 | PgType::Int4 | PgType::Int8 => {
            let width = int_width(ty)?;
            let x = number::parse_int_text(v)?;
            if !(width.min()..=width.max()).contains(&x) {
                return None;
            }
            number::write_int(x, width, format, &mut out);
        }
        PgType::Float4 | PgType::Float8 => {
            let single = matches!(ty, PgType::Float4);
            // Read as f64 first so a float4 literal too large for float4 is refused rather
            // than silently made infinite.
            let x = number::parse_float_text(v, false)?;
            if single && x.is_finite() && !(x as f32).is_finite() {
                return None;
            }
            number::write_float(x, single, format, &mut out);
        }
        PgType::Numeric => {
            let mut dec = Dec::default();
            match dec.parse_text(v)? {
                NumKind::Finite => match format {
                    Format::Text => dec.write_text(&mut out),
                    Format::Binary => dec.write_binary(&mut out)?,
                },
                kind => number::write_numeric_special(kind, format, &mut out),
            }
        }
        PgType::Text => {
            if v.contains(&0) {
                return None;
            }
            out.extend_from_slice(v);
        }
        PgType::Uuid => scalar::write_uuid(&scalar::parse_uuid_text(v)?, format, &mut out),
        PgType::Date | PgType::Timestamp | PgType::TimestampTz => {
            if format == Format::Text && !session.date_style_iso {
                return None;
            }
            out = datetime::encode_fixed(dt_kind(ty)?, value, format)?;
        }
        PgType::Json | PgType::Jsonb => {
            let jsonb = matches!(ty, PgType::Jsonb);
            if !json::validate(v, jsonb) {
                return None;
            }
            if jsonb && format == Format::Binary {
                out.push(1);
            }
            out.extend_from_slice(v);
        }
        PgType::Bytea => {
            let mut raw = Vec::new();
            scalar::parse_bytea_text(v, &mut raw)?;
            scalar::write_bytea(&raw, format, &mut out);
        }
        PgType::Array(_) | PgType::Other => return None,
    }
    Some(out)
}
