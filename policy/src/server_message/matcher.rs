//! Message templates in PostgreSQL's shapes, and matching message text against them.
//!
//! A template is literal text with slots: `%v` a value (always replaced), `%n` a name (kept
//! if the client wrote it or the server reports it in a name field), `%k` text that is no
//! stored value (a type name, a limit, an encoding), `%K` a key `(columns)=(values)`, `%R`
//! a row `(…)`; `%%` is a percent sign. Two slots never touch: a literal between them is
//! what tells where one ends.

use std::ops::Range;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Value,
    Name,
    Keep,
    Key,
    Row,
}

impl Slot {
    /// Values take the longest text that lets the rest match, since they may contain the
    /// literal that follows (`"` in `…: "%v"`); names and kept text the shortest.
    fn greedy(self) -> bool {
        matches!(self, Slot::Value | Slot::Key | Slot::Row)
    }

    /// Kept text is passed on unread, so it may only be what a type name, a limit or an
    /// error's own words look like: short, with no quote or colon that would let a value
    /// printed after it pass as part of it.
    fn admits(self, text: &[u8]) -> bool {
        match self {
            Slot::Keep => text.len() <= MAX_KEPT && !text.iter().any(|b| matches!(b, b'"' | b':')),
            _ => true,
        }
    }
}

/// The longest `%k` text.
const MAX_KEPT: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Literal(Vec<u8>),
    Slot(Slot),
}

#[derive(Clone, Debug)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// How many places a slot may end at before a match is given up: bounds the work a
/// message built to confuse the matcher can cause. No match means the text is withheld.
const MAX_TRIES: usize = 64;

impl Template {
    /// The template for `spec`, or an error naming what is wrong with it.
    pub fn new(spec: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut bytes = spec.bytes();
        while let Some(b) = bytes.next() {
            if b != b'%' {
                literal.push(b);
                continue;
            }
            let slot = match bytes.next() {
                Some(b'%') => {
                    literal.push(b'%');
                    continue;
                }
                Some(b'v') => Slot::Value,
                Some(b'n') => Slot::Name,
                Some(b'k') => Slot::Keep,
                Some(b'K') => Slot::Key,
                Some(b'R') => Slot::Row,
                other => {
                    return Err(format!(
                        "template {spec:?}: unknown slot %{}",
                        other.map_or(String::new(), |b| (b as char).to_string())
                    ));
                }
            };
            if literal.is_empty() && matches!(pieces.last(), Some(Piece::Slot(_))) {
                return Err(format!("template {spec:?}: two slots with nothing between"));
            }
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Slot(slot));
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Template { pieces })
    }

    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Where each piece lies in `text` if the whole text has the template's shape.
    pub fn matches(&self, text: &[u8]) -> Option<Vec<Range<usize>>> {
        let mut ranges = Vec::with_capacity(self.pieces.len());
        self.match_from(0, text, 0, &mut ranges).then_some(ranges)
    }

    fn match_from(
        &self,
        index: usize,
        text: &[u8],
        at: usize,
        ranges: &mut Vec<Range<usize>>,
    ) -> bool {
        let Some(piece) = self.pieces.get(index) else {
            return at == text.len();
        };
        match piece {
            Piece::Literal(literal) => {
                if !text[at..].starts_with(literal) {
                    return false;
                }
                ranges.push(at..at + literal.len());
                if self.match_from(index + 1, text, at + literal.len(), ranges) {
                    return true;
                }
                ranges.pop();
                false
            }
            Piece::Slot(slot) => {
                let Some(next) = self.pieces.get(index + 1) else {
                    if !slot.admits(&text[at..]) {
                        return false;
                    }
                    ranges.push(at..text.len());
                    return true;
                };
                let Piece::Literal(next) = next else {
                    return false;
                };
                if index + 2 == self.pieces.len() {
                    // The last literal ends the text: one place the slot can end.
                    let Some(end) = text.len().checked_sub(next.len()) else {
                        return false;
                    };
                    if end < at || !text[end..].starts_with(next) || !slot.admits(&text[at..end]) {
                        return false;
                    }
                    ranges.push(at..end);
                    ranges.push(end..text.len());
                    return true;
                }
                let ends: Vec<usize> = (at..=text.len().saturating_sub(next.len()))
                    .filter(|&i| text[i..].starts_with(next))
                    .collect();
                let ordered: Box<dyn Iterator<Item = &usize>> = if slot.greedy() {
                    Box::new(ends.iter().rev())
                } else {
                    Box::new(ends.iter())
                };
                for &end in ordered
                    .filter(|&&end| slot.admits(&text[at..end]))
                    .take(MAX_TRIES)
                {
                    ranges.push(at..end);
                    if self.match_from(index + 1, text, end, ranges) {
                        return true;
                    }
                    ranges.pop();
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(template: &str, text: &str) -> Option<Vec<String>> {
        let t = Template::new(template).unwrap();
        let ranges = t.matches(text.as_bytes())?;
        Some(
            t.pieces()
                .iter()
                .zip(ranges)
                .filter(|(p, _)| matches!(p, Piece::Slot(_)))
                .map(|(_, r)| text[r].to_string())
                .collect(),
        )
    }

    #[test]
    fn values_take_the_longest_text_names_the_shortest() {
        assert_eq!(
            parts(
                r#"invalid input syntax for type %k: "%v""#,
                r#"invalid input syntax for type integer: "a": "b""#
            ),
            Some(vec!["integer".into(), r#"a": "b"#.into()])
        );
        assert_eq!(
            parts(
                r#"new row for relation "%n" violates check constraint "%n""#,
                r#"new row for relation "c" violates check constraint "c_name_check""#
            ),
            Some(vec!["c".into(), "c_name_check".into()])
        );
        assert_eq!(
            parts(
                "Key %K conflicts with existing key %K.",
                "Key (a)=(1) conflicts with existing key (a)=(2)."
            ),
            Some(vec!["(a)=(1)".into(), "(a)=(2)".into()])
        );
    }

    #[test]
    fn kept_text_cannot_swallow_a_value() {
        assert_eq!(
            parts(
                "invalid input syntax for type %k",
                r#"invalid input syntax for type integer: "ada@x.io""#
            ),
            None
        );
        assert_eq!(
            parts(
                "invalid input syntax for type %k",
                "invalid input syntax for type json"
            ),
            Some(vec!["json".into()])
        );
    }

    #[test]
    fn the_whole_text_must_match() {
        assert_eq!(parts("division by zero", "division by zero!"), None);
        assert_eq!(
            parts("integer out of range", "integer out of range"),
            Some(vec![])
        );
        assert_eq!(
            parts(
                r#"relation "%n" does not exist"#,
                r#"relation "x" does exist"#
            ),
            None
        );
        assert_eq!(parts(r#"x "%v""#, r#"x ""#), None);
        assert_eq!(parts(r#"x "%v""#, r#"x """#), Some(vec![String::new()]));
    }

    #[test]
    fn malformed_templates_are_refused() {
        assert!(Template::new("a %v%n b").is_err());
        assert!(Template::new("a %q").is_err());
        assert!(
            Template::new("100%% sure")
                .unwrap()
                .matches(b"100% sure")
                .is_some()
        );
    }
}
