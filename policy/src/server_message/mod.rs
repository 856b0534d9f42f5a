//! Making the server's own ErrorResponse and NoticeResponse messages safe while masked
//! columns are in play.
//!
//! PostgreSQL writes values into its messages: `invalid input syntax for type integer:
//! "ada@example.com"` for a cast in a WHERE clause, `Failing row contains (…)` for a
//! constraint, `Key (email)=(…) already exists.` for a unique index. The sidecar never holds
//! the masked values, so it cannot search for them; it works from the messages' shapes
//! instead. A message whose shape is one of PostgreSQL's templates ([`templates`]) is
//! rewritten with each value replaced by a marker; any other message raised while a masked
//! column is in play keeps its SQLSTATE, severity, position and name fields, and its text
//! is replaced by a note naming the SQLSTATE. The rest of the fields that can carry data
//! (detail, hint, context, internal query) are kept only when they match a template too.
//!
//! Messages are handled as bytes: the templates are ASCII, the values are in the client's
//! encoding, whatever it is. A server whose `lc_messages` is not English matches no
//! template, so its messages are withheld while masking is in play: safe, if terse.

mod matcher;
mod templates;

use matcher::{Piece, Slot, Template};

/// What replaces a value in a rewritten message: the marker the `Redact` mask writes.
pub const MARKER: &str = crate::mask::REDACTED;

/// What the sidecar knows of the session, for deciding which parts of a message may pass.
pub trait MessageContext {
    /// Whether the client wrote `name` itself (in a statement now in play), so that
    /// seeing it again tells it nothing: `relation "nosuch" does not exist` after a typo.
    fn client_wrote(&self, name: &[u8]) -> bool;
    /// Whether `column` of the relation is masked for the session (`None`: unknown, the
    /// server did not say).
    fn column_masked(&self, schema: Option<&str>, table: Option<&str>, column: &str) -> bool;
    /// Whether any column of the relation is masked for the session.
    fn relation_masked(&self, schema: Option<&str>, table: Option<&str>) -> bool;
}

/// What became of a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Safe {
    /// Every field is safe as the server wrote it.
    Unchanged,
    /// The message body (fields and the closing NUL) to send instead.
    Rewritten(Vec<u8>),
}

/// Field codes of ErrorResponse and NoticeResponse (protocol "Error and Notice Message Fields").
mod field {
    pub const SEVERITY: u8 = b'S';
    pub const SEVERITY_V: u8 = b'V';
    pub const CODE: u8 = b'C';
    pub const MESSAGE: u8 = b'M';
    pub const DETAIL: u8 = b'D';
    pub const HINT: u8 = b'H';
    pub const POSITION: u8 = b'P';
    pub const INTERNAL_POSITION: u8 = b'p';
    pub const SCHEMA: u8 = b's';
    pub const TABLE: u8 = b't';
    pub const COLUMN: u8 = b'c';
    pub const DATA_TYPE: u8 = b'd';
    pub const CONSTRAINT: u8 = b'n';
    pub const FILE: u8 = b'F';
    pub const LINE: u8 = b'L';
    pub const ROUTINE: u8 = b'R';
}

/// Fields that carry no data: kept as they are. Unknown field codes are dropped, since a
/// later server version could put anything in them.
const KEPT: &[u8] = &[
    field::SEVERITY,
    field::SEVERITY_V,
    field::CODE,
    field::POSITION,
    field::INTERNAL_POSITION,
    field::SCHEMA,
    field::TABLE,
    field::COLUMN,
    field::DATA_TYPE,
    field::CONSTRAINT,
    field::FILE,
    field::LINE,
    field::ROUTINE,
];

/// Name fields: what the server itself says the message is about.
const NAMES: &[u8] = &[
    field::SCHEMA,
    field::TABLE,
    field::COLUMN,
    field::DATA_TYPE,
    field::CONSTRAINT,
];

/// The safe form of an ErrorResponse or NoticeResponse body (without its tag and length),
/// for a session in which masked columns are in play.
pub fn make_safe(body: &[u8], ctx: &dyn MessageContext) -> Safe {
    let parsed = parse(body);
    let mut changed = parsed.is_none();
    let fields = parsed.unwrap_or_default();
    let message = Message { fields: &fields };
    let mut out = Vec::with_capacity(body.len() + 64);
    let text = message.get(field::MESSAGE).unwrap_or_default();
    let rewritten_text = rewrite(&templates::MESSAGES, text, &message, ctx);
    let withheld = rewritten_text.is_none();
    for &(code, value) in &fields {
        let kept: Option<std::borrow::Cow<'_, [u8]>> = match code {
            field::MESSAGE => Some(match &rewritten_text {
                Some(text) => text.clone(),
                None => withheld_note(message.get(field::CODE)).into_bytes().into(),
            }),
            _ if KEPT.contains(&code) => Some(value.into()),
            field::DETAIL if !withheld => rewrite(&templates::DETAILS, value, &message, ctx),
            field::HINT if !withheld => rewrite(&templates::HINTS, value, &message, ctx),
            // Context (`W`) names the code and statement that raised the message, values
            // of PL/pgSQL variables and SQL functions' arguments among them; the internal
            // query (`q`) is SQL that may embed values. Neither is needed to act on it.
            _ => None,
        };
        match kept {
            Some(kept) => {
                changed |= *kept != *value;
                out.push(code);
                out.extend_from_slice(&kept);
                out.push(0);
            }
            None => changed = true,
        }
    }
    if withheld {
        out.push(field::HINT);
        out.extend_from_slice(WITHHELD_HINT.as_bytes());
        out.push(0);
        changed = true;
    }
    out.push(0);
    if changed {
        Safe::Rewritten(out)
    } else {
        Safe::Unchanged
    }
}

const WITHHELD_HINT: &str = "the statement reads or writes masked columns, and the text of this message is not one Palisade can show without them; an exempt subject sees the server's text";

fn withheld_note(code: Option<&[u8]>) -> String {
    let code = code
        .filter(|c| c.len() == 5 && c.iter().all(u8::is_ascii_alphanumeric))
        .map_or_else(
            || "unknown".to_string(),
            |c| String::from_utf8_lossy(c).into(),
        );
    format!(
        "palisade: the server's message was withheld because a masked column is in play (SQLSTATE {code})"
    )
}

/// The fields of a body, in order; `None` if it is not well formed (then every field is
/// dropped but what can be rebuilt).
fn parse(mut body: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut fields = Vec::new();
    loop {
        let (&code, rest) = body.split_first()?;
        if code == 0 {
            return Some(fields);
        }
        let end = rest.iter().position(|&b| b == 0)?;
        fields.push((code, &rest[..end]));
        body = &rest[end + 1..];
    }
}

struct Message<'a, 'b> {
    fields: &'b [(u8, &'a [u8])],
}

impl<'a> Message<'a, '_> {
    fn get(&self, code: u8) -> Option<&'a [u8]> {
        self.fields
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| *v)
    }

    fn name(&self, code: u8) -> Option<&'a str> {
        self.get(code).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// A name the server also reports in a name field (`t`, `c`, `n` …).
    fn names(&self, name: &[u8]) -> bool {
        NAMES.iter().any(|&code| self.get(code) == Some(name))
    }

    /// Whether a name field holds bytes that are not UTF-8: rules cannot be matched
    /// against it, so it counts as masked.
    fn unreadable(&self, code: u8) -> bool {
        self.get(code).is_some() && self.name(code).is_none()
    }
}

/// `text` rewritten by the first of `templates` it matches, or `None` if none does.
fn rewrite<'t>(
    templates: &[Template],
    text: &'t [u8],
    message: &Message<'_, '_>,
    ctx: &dyn MessageContext,
) -> Option<std::borrow::Cow<'t, [u8]>> {
    let (template, ranges) = templates.iter().find_map(|t| Some((t, t.matches(text)?)))?;
    // Every key in a message is over the same columns (one constraint): the first names
    // them before any value is printed, so it can be trusted whatever the values hold.
    let key_columns = template
        .pieces()
        .iter()
        .zip(&ranges)
        .find(|(piece, _)| matches!(piece, Piece::Slot(Slot::Key)))
        .map(|(_, range)| key_columns(&text[range.clone()]));
    let key_masked = match key_columns {
        Some(Some(columns)) => columns_masked(columns, message, ctx),
        Some(None) => true,
        None => false,
    };
    let mut out = Vec::with_capacity(text.len());
    for (piece, range) in template.pieces().iter().zip(&ranges) {
        let value = &text[range.clone()];
        match piece {
            Piece::Literal(literal) => out.extend_from_slice(literal),
            Piece::Slot(Slot::Value) => out.extend_from_slice(MARKER.as_bytes()),
            Piece::Slot(Slot::Keep) => out.extend_from_slice(value),
            Piece::Slot(Slot::Name) => {
                if value.is_empty() || message.names(value) || ctx.client_wrote(value) {
                    out.extend_from_slice(value);
                } else {
                    out.extend_from_slice(MARKER.as_bytes());
                }
            }
            Piece::Slot(Slot::Key) if key_masked => {
                out.push(b'(');
                out.extend_from_slice(key_columns.flatten().unwrap_or_default());
                out.extend_from_slice(b")=(");
                out.extend_from_slice(MARKER.as_bytes());
                out.push(b')');
            }
            Piece::Slot(Slot::Key) => out.extend_from_slice(value),
            Piece::Slot(Slot::Row) => {
                if row_masked(message, ctx) {
                    out.push(b'(');
                    out.extend_from_slice(MARKER.as_bytes());
                    out.push(b')');
                } else {
                    out.extend_from_slice(value);
                }
            }
        }
    }
    Some(if out == text {
        std::borrow::Cow::Borrowed(text)
    } else {
        std::borrow::Cow::Owned(out)
    })
}

/// The column list of a key, `(a, lower(b))=(…)`: everything up to the first `)=(`, which
/// the server prints before any value.
fn key_columns(key: &[u8]) -> Option<&[u8]> {
    let inner = key.strip_prefix(b"(")?;
    let end = inner.windows(3).position(|w| w == b")=(")?;
    Some(&inner[..end])
}

/// Whether any identifier in a key's column list (plain columns, or the columns of an
/// index expression such as `lower(email::text)`) is a masked column of the message's
/// table. Words that are not columns (function and type names) only ever add a false
/// "masked", never hide one.
fn columns_masked(columns: &[u8], message: &Message<'_, '_>, ctx: &dyn MessageContext) -> bool {
    if message.unreadable(field::SCHEMA) || message.unreadable(field::TABLE) {
        return true;
    }
    let (schema, table) = (message.name(field::SCHEMA), message.name(field::TABLE));
    identifiers(columns)
        .iter()
        .any(|word| match std::str::from_utf8(word) {
            Ok(word) => ctx.column_masked(schema, table, word),
            Err(_) => true,
        })
}

/// Identifier-like words of SQL text: runs of letters, digits, `_`, `$` and non-ASCII
/// bytes, and double-quoted names (`""` inside one is a quote).
fn identifiers(text: &[u8]) -> Vec<std::borrow::Cow<'_, [u8]>> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
    let mut words = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'"' {
            let mut name = Vec::new();
            i += 1;
            while i < text.len() {
                if text[i] == b'"' {
                    if text.get(i + 1) == Some(&b'"') {
                        name.push(b'"');
                        i += 2;
                        continue;
                    }
                    break;
                }
                name.push(text[i]);
                i += 1;
            }
            i += 1;
            words.push(name.into());
        } else if word(text[i]) {
            let start = i;
            while i < text.len() && word(text[i]) {
                i += 1;
            }
            if !text[start].is_ascii_digit() {
                words.push(text[start..i].into());
            }
        } else {
            i += 1;
        }
    }
    words
}

/// Whether a `Failing row contains (…)` row may hold masked values: its table has masked
/// columns, or the server did not say which table it is.
fn row_masked(message: &Message<'_, '_>, ctx: &dyn MessageContext) -> bool {
    message.get(field::TABLE).is_none()
        || message.unreadable(field::SCHEMA)
        || message.unreadable(field::TABLE)
        || ctx.relation_masked(message.name(field::SCHEMA), message.name(field::TABLE))
}

#[cfg(test)]
mod tests;
