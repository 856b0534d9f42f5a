//! The messages that say what a result looks like and where it comes from: Bind (result
//! formats), Describe/Execute/Close (which statement or portal), RowDescription (each
//! column's source table, column number, type and format) and DataRow (the fields).
//! Every reader takes a whole message (tag and length included) and returns `None` for a
//! malformed one; the server then rejects the same bytes with its own error.

use super::frame::{be_i32, read_cstr};

fn be_i16(bytes: &[u8]) -> Option<i16> {
    Some(i16::from_be_bytes(bytes.get(..2)?.try_into().ok()?))
}

fn be_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Bind: which portal, from which statement, with which result formats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    pub portal: String,
    pub statement: String,
    /// Empty: all text; one: all that; else one per column.
    pub result_formats: Vec<i16>,
}

pub fn bind(msg: &[u8]) -> Option<Bind> {
    let (portal, rest) = read_cstr(msg.get(5..)?)?;
    let (statement, rest) = read_cstr(rest)?;
    let n = usize::try_from(be_i16(rest)?).ok()?;
    let mut at = 2 + 2 * n;
    let params = usize::try_from(be_i16(rest.get(at..)?)?).ok()?;
    at += 2;
    for _ in 0..params {
        let len = be_i32(rest.get(at..)?)?;
        at += 4;
        if len > 0 {
            at = at.checked_add(usize::try_from(len).ok()?)?;
        }
    }
    let n = usize::try_from(be_i16(rest.get(at..)?)?).ok()?;
    at += 2;
    let mut result_formats = Vec::with_capacity(n);
    for _ in 0..n {
        result_formats.push(be_i16(rest.get(at..)?)?);
        at += 2;
    }
    Some(Bind {
        portal: text(portal),
        statement: text(statement),
        result_formats,
    })
}

/// The format of result column `i` under Bind's format codes.
pub fn format_of(formats: &[i16], i: usize) -> i16 {
    match formats {
        [] => 0,
        [all] => *all,
        many => many.get(i).copied().unwrap_or(0),
    }
}

/// Describe or Close: `S` (statement) or `P` (portal), and its name.
pub fn target(msg: &[u8]) -> Option<(u8, String)> {
    let kind = *msg.get(5)?;
    let (name, _) = read_cstr(msg.get(6..)?)?;
    Some((kind, text(name)))
}

/// Execute: the portal's name.
pub fn execute_portal(msg: &[u8]) -> Option<String> {
    let (name, _) = read_cstr(msg.get(5..)?)?;
    Some(text(name))
}

/// Parse: the statement's name and text, as sent.
pub fn parse(msg: &[u8]) -> Option<(&[u8], &[u8])> {
    let (name, rest) = read_cstr(msg.get(5..)?)?;
    let (sql, _) = read_cstr(rest)?;
    Some((name, sql))
}

/// One column of a RowDescription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// The table a plain column is read from, 0 for a computed one.
    pub table_oid: u32,
    pub attnum: i16,
    pub type_oid: u32,
    pub format: i16,
}

pub fn row_description(msg: &[u8]) -> Option<Vec<Field>> {
    let body = msg.get(5..)?;
    let n = usize::try_from(be_i16(body)?).ok()?;
    let mut rest = body.get(2..)?;
    let mut fields = Vec::with_capacity(n);
    for _ in 0..n {
        let (name, after) = read_cstr(rest)?;
        let fixed = after.get(..18)?;
        fields.push(Field {
            name: text(name),
            table_oid: be_u32(fixed)?,
            attnum: be_i16(&fixed[4..])?,
            type_oid: be_u32(&fixed[6..])?,
            format: be_i16(&fixed[16..])?,
        });
        rest = &after[18..];
    }
    Some(fields)
}

/// The fields of a DataRow: `None` entries are SQL NULL. Calls `each` per field in order
/// and returns false for a malformed message.
pub fn data_row_fields<'m>(msg: &'m [u8], mut each: impl FnMut(usize, Option<&'m [u8]>)) -> bool {
    let Some(body) = msg.get(5..) else {
        return false;
    };
    let Some(n) = be_i16(body).and_then(|n| usize::try_from(n).ok()) else {
        return false;
    };
    let mut at = 2;
    for i in 0..n {
        let Some(len) = body.get(at..).and_then(be_i32) else {
            return false;
        };
        at += 4;
        if len < 0 {
            each(i, None);
            continue;
        }
        let end = match usize::try_from(len).ok().and_then(|l| at.checked_add(l)) {
            Some(end) if end <= body.len() => end,
            _ => return false,
        };
        each(i, Some(&body[at..end]));
        at = end;
    }
    at == body.len()
}

/// A ParameterStatus: name and value.
pub fn parameter_status(msg: &[u8]) -> Option<(&[u8], &[u8])> {
    let (name, rest) = read_cstr(msg.get(5..)?)?;
    let (value, _) = read_cstr(rest)?;
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::message;
    use bytes::{BufMut, BytesMut};

    #[test]
    fn bind_formats_are_found_after_the_parameters() {
        let mut body = BytesMut::new();
        body.put_slice(b"p1\0s1\0");
        body.put_i16(1);
        body.put_i16(1);
        body.put_i16(2);
        body.put_i32(3);
        body.put_slice(b"abc");
        body.put_i32(-1);
        body.put_i16(2);
        body.put_i16(0);
        body.put_i16(1);
        let msg = message(b'B', &body);
        let b = bind(&msg).unwrap();
        assert_eq!(b.portal, "p1");
        assert_eq!(b.statement, "s1");
        assert_eq!(b.result_formats, vec![0, 1]);
        assert_eq!(format_of(&b.result_formats, 1), 1);
        assert_eq!(format_of(&[1], 7), 1);
        assert_eq!(format_of(&[], 0), 0);
        // Truncated: no panic, no answer.
        assert_eq!(bind(&msg[..msg.len() - 3]), None);
    }

    #[test]
    fn row_description_and_data_row() {
        let mut body = BytesMut::new();
        body.put_i16(1);
        body.put_slice(b"email\0");
        body.put_u32(16384);
        body.put_i16(3);
        body.put_u32(25);
        body.put_i16(-1);
        body.put_i32(-1);
        body.put_i16(1);
        let fields = row_description(&message(b'T', &body)).unwrap();
        assert_eq!(fields[0].table_oid, 16384);
        assert_eq!(fields[0].attnum, 3);
        assert_eq!(fields[0].type_oid, 25);
        assert_eq!(fields[0].format, 1);

        let mut row = BytesMut::new();
        row.put_i16(2);
        row.put_i32(2);
        row.put_slice(b"hi");
        row.put_i32(-1);
        let msg = message(b'D', &row);
        let mut seen = Vec::new();
        assert!(data_row_fields(&msg, |i, f| seen.push((i, f.map(<[u8]>::to_vec)))));
        assert_eq!(seen, vec![(0, Some(b"hi".to_vec())), (1, None)]);
        assert!(!data_row_fields(&msg[..msg.len() - 1], |_, _| {}));
    }
}
