//! What the masker needs to know about a result column: its type, its wire format, and the
//! session settings that change how values of that type are spelled in text.

/// The wire format of a result column: the format code of RowDescription (0 text, 1 binary).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Text,
    Binary,
}

impl Format {
    /// The format for a RowDescription/Bind format code; `None` for a code PostgreSQL does not
    /// define (the caller should then not mask but fail the column closed).
    pub fn from_code(code: i16) -> Option<Format> {
        match code {
            0 => Some(Format::Text),
            1 => Some(Format::Binary),
            _ => None,
        }
    }
}

/// A result column's type as far as masking cares.
///
/// `Text` covers the types whose text and binary forms are both the plain string bytes:
/// `text`, `varchar`, `bpchar`, `name`, and the extension type `citext` (found by name, see
/// [`PgType::from_type_name`], because extension OIDs differ per database).
///
/// `name` is limited to 63 bytes by the server, but clients read it as a plain string and do
/// not check; the masks keep or shorten a value's byte length, except a `Hash` longer than 63
/// digits, a longer `Fixed` value, and `Email` on a near-63-byte value with a one- or
/// two-character local part, which can give a longer string.
///
/// The single-byte `"char"` type (OID 18) is deliberately **not** `Text`: its binary form is
/// exactly one byte, and clients decode it as an 8-bit integer, so a `[REDACTED]` marker or a
/// hash would make the row undecodable. It maps to `Other`, which masks to NULL.
#[derive(Clone, Debug, PartialEq)]
pub enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Text,
    Uuid,
    Date,
    Timestamp,
    TimestampTz,
    Json,
    Jsonb,
    Bytea,
    Array(Box<PgType>),
    Other,
}

impl PgType {
    /// The masking type of a built-in type OID, including the array types of the supported
    /// element types. Anything else is `Other` (masked to NULL: fail closed).
    pub fn from_builtin_oid(oid: u32) -> PgType {
        match oid {
            16 => PgType::Bool,
            21 => PgType::Int2,
            23 => PgType::Int4,
            20 => PgType::Int8,
            700 => PgType::Float4,
            701 => PgType::Float8,
            1700 => PgType::Numeric,
            25 | 1043 | 1042 | 19 => PgType::Text,
            2950 => PgType::Uuid,
            1082 => PgType::Date,
            1114 => PgType::Timestamp,
            1184 => PgType::TimestampTz,
            114 => PgType::Json,
            3802 => PgType::Jsonb,
            17 => PgType::Bytea,
            1000 => array(PgType::Bool),
            1005 => array(PgType::Int2),
            1007 => array(PgType::Int4),
            1016 => array(PgType::Int8),
            1021 => array(PgType::Float4),
            1022 => array(PgType::Float8),
            1231 => array(PgType::Numeric),
            1009 | 1015 | 1014 | 1003 => array(PgType::Text),
            2951 => array(PgType::Uuid),
            1182 => array(PgType::Date),
            1115 => array(PgType::Timestamp),
            1185 => array(PgType::TimestampTz),
            199 => array(PgType::Json),
            3807 => array(PgType::Jsonb),
            1001 => array(PgType::Bytea),
            _ => PgType::Other,
        }
    }

    /// The masking type of a type known by name (`pg_type.typname`), for types whose OID is
    /// not fixed: `citext` and `_citext` (its array) from the extension. Built-in names are
    /// accepted too. Unknown names are `Other`.
    pub fn from_type_name(name: &str) -> PgType {
        match name {
            "citext" => PgType::Text,
            "_citext" => array(PgType::Text),
            _ => match builtin_oid_of_name(name) {
                Some(oid) => PgType::from_builtin_oid(oid),
                None => PgType::Other,
            },
        }
    }

    /// The element type of an array type, `None` for a scalar.
    pub fn element(&self) -> Option<&PgType> {
        match self {
            PgType::Array(inner) => Some(inner),
            _ => None,
        }
    }
}

fn array(elem: PgType) -> PgType {
    PgType::Array(Box::new(elem))
}

fn builtin_oid_of_name(name: &str) -> Option<u32> {
    let oid = match name {
        "bool" => 16,
        "int2" => 21,
        "int4" => 23,
        "int8" => 20,
        "float4" => 700,
        "float8" => 701,
        "numeric" => 1700,
        "text" => 25,
        "varchar" => 1043,
        "bpchar" => 1042,
        "name" => 19,
        "uuid" => 2950,
        "date" => 1082,
        "timestamp" => 1114,
        "timestamptz" => 1184,
        "json" => 114,
        "jsonb" => 3802,
        "bytea" => 17,
        _ => return None,
    };
    Some(oid)
}

/// Session settings that change the text form of values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    /// The server's `DateStyle` starts with `ISO` (the default, `ISO, MDY`). Date and time text
    /// is only parsed and produced in ISO style; in any other style text-format date/time values
    /// that a mask would have to change become NULL.
    pub date_style_iso: bool,
}

impl Session {
    /// From the value of the `DateStyle` ParameterStatus, e.g. `"ISO, MDY"` or `"SQL, DMY"`.
    pub fn from_date_style(date_style: &str) -> Session {
        let first = date_style.split(',').next().unwrap_or("").trim();
        Session {
            date_style_iso: first.eq_ignore_ascii_case("iso"),
        }
    }
}
