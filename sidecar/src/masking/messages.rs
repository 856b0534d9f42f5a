//! The server's own messages in a masked session. PostgreSQL writes values into some of
//! them: a failed cast prints its input, a constraint violation the failing row, a
//! unique violation the key. While a statement that touches masked columns is in flight,
//! ErrorResponse and NoticeResponse bodies are made safe by their shapes
//! ([`palisade_policy::server_message`]); notifications, which other sessions and
//! triggers send, pass through the MaskingRule's detectors.

use std::sync::Arc;

use palisade_policy::analysis::RelationName;
use palisade_policy::decision::SearchPath;
use palisade_policy::mask::{DetectorSet, Format, PgType, REDACTED, Scan};
use palisade_policy::mask_plan::{Catalog, MaskRules};
use palisade_policy::server_message::{MessageContext, Safe, make_safe};

use crate::protocol::frame::message;
use crate::verdict::Verdict;

/// Statement texts a session keeps for telling its own words from stored values; past
/// this, names in messages are masked rather than compared.
const TEXTS_KEPT: usize = 64;

/// The statements in flight that touch masked columns, since the session was last idle.
#[derive(Default)]
pub struct InPlay {
    texts: Vec<Arc<str>>,
    /// More statements than [`TEXTS_KEPT`], or one whose text is unknown.
    untold: bool,
    active: bool,
}

impl InPlay {
    /// A statement touching masked columns goes to the server; `text` is what the client
    /// wrote (empty when unknown).
    pub fn add(&mut self, text: &Arc<str>) {
        self.active = true;
        if text.is_empty() || self.texts.len() >= TEXTS_KEPT {
            self.untold = true;
        } else if !self
            .texts
            .iter()
            .any(|t| Arc::ptr_eq(t, text) || **t == **text)
        {
            self.texts.push(text.clone());
        }
    }

    /// Every response has arrived.
    pub fn clear(&mut self) {
        self.texts.clear();
        self.untold = false;
        self.active = false;
    }

    pub fn is_active(&self) -> bool {
        self.active
    }
}

/// What [`make_safe`] asks of the session.
struct Context<'a> {
    rules: &'a MaskRules,
    catalog: &'a Catalog,
    path: &'a SearchPath,
    in_play: &'a InPlay,
}

impl MessageContext for Context<'_> {
    fn client_wrote(&self, name: &[u8]) -> bool {
        // The server prints identifiers folded to lower case; the client may have typed
        // them in any case.
        let Ok(name) = std::str::from_utf8(name) else {
            return false;
        };
        let name = name.to_lowercase();
        self.in_play
            .texts
            .iter()
            .any(|text| text.to_lowercase().contains(&name))
    }

    fn column_masked(&self, schema: Option<&str>, table: Option<&str>, column: &str) -> bool {
        match table {
            Some(table) => {
                self.rules
                    .column_masked(&relation(schema, table), column, self.path, self.catalog)
            }
            None => self.rules.any_column_named(column),
        }
    }

    fn relation_masked(&self, schema: Option<&str>, table: Option<&str>) -> bool {
        match table {
            Some(table) => {
                self.rules
                    .relation_masked(&relation(schema, table), self.path, self.catalog)
            }
            None => true,
        }
    }
}

fn relation(schema: Option<&str>, table: &str) -> RelationName {
    RelationName {
        schema: schema.map(str::to_string),
        name: table.to_string(),
    }
}

/// An ErrorResponse or NoticeResponse raised while masked columns are in play, made safe.
pub fn safe_message(
    msg: &[u8],
    rules: &MaskRules,
    catalog: &Catalog,
    path: &SearchPath,
    in_play: &InPlay,
) -> Verdict {
    let ctx = Context {
        rules,
        catalog,
        path,
        in_play,
    };
    match make_safe(msg.get(5..).unwrap_or_default(), &ctx) {
        Safe::Unchanged => Verdict::Forward,
        Safe::Rewritten(body) => Verdict::Replace(message(msg[0], &body)),
    }
}

/// Fields of ErrorResponse and NoticeResponse whose text can carry values: message,
/// detail, hint, context, internal query.
const TEXT_FIELDS: &[u8] = b"MDHWq";

/// An ErrorResponse or NoticeResponse with its text fields scanned by the detectors.
pub fn scan_message(msg: &[u8], detectors: &mut DetectorSet) -> Verdict {
    let Some(body) = msg.get(5..) else {
        return Verdict::Forward;
    };
    let mut out = Vec::with_capacity(body.len());
    let mut scratch = Vec::new();
    let mut changed = false;
    let mut rest = body;
    while let Some((&code, after)) = rest.split_first() {
        if code == 0 {
            break;
        }
        let Some(end) = after.iter().position(|&b| b == 0) else {
            // Malformed: the server's framing is broken; keep nothing of it.
            return Verdict::Discard;
        };
        let value = &after[..end];
        out.push(code);
        scratch.clear();
        let scanned = TEXT_FIELDS
            .contains(&code)
            .then(|| detectors.scan(&PgType::Text, Format::Text, value, &mut scratch));
        match scanned {
            Some(Scan::Rewritten) => {
                out.extend_from_slice(&scratch);
                changed = true;
            }
            Some(Scan::Null) => {
                out.extend_from_slice(REDACTED.as_bytes());
                changed = true;
            }
            _ => out.extend_from_slice(value),
        }
        out.push(0);
        rest = &after[end + 1..];
    }
    out.push(0);
    if changed {
        Verdict::Replace(message(msg[0], &out))
    } else {
        Verdict::Forward
    }
}

/// A NotificationResponse (`A`: process id, channel, payload) with its payload scanned by
/// the detectors. Another session, or a trigger, may have built the payload from columns
/// this session sees masked; the detectors find what content-based rules name.
pub fn scan_notification(msg: &[u8], detectors: &mut DetectorSet) -> Verdict {
    let Some((head, payload)) = notification_payload(msg) else {
        // Malformed: nothing a client could read from it safely either.
        return Verdict::Discard;
    };
    let mut out = Vec::new();
    let payload: &[u8] = match detectors.scan(&PgType::Text, Format::Text, payload, &mut out) {
        Scan::Unchanged => return Verdict::Forward,
        Scan::Rewritten => &out,
        // A payload cannot be NULL: the marker stands for the whole of it.
        Scan::Null => REDACTED.as_bytes(),
    };
    let mut body = Vec::with_capacity(head.len() + payload.len() + 1);
    body.extend_from_slice(head);
    body.extend_from_slice(payload);
    body.push(0);
    Verdict::Replace(message(msg[0], &body))
}

/// Splits a NotificationResponse's body into process id and channel (kept as they are)
/// and the payload (without its closing NUL).
fn notification_payload(msg: &[u8]) -> Option<(&[u8], &[u8])> {
    let body = msg.get(5..)?;
    let channel_end = 4 + body.get(4..)?.iter().position(|&b| b == 0)?;
    let head = &body[..=channel_end];
    let rest = &body[channel_end + 1..];
    let payload_end = rest.iter().position(|&b| b == 0)?;
    Some((head, &rest[..payload_end]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_policy::masking::{Detector, Entity, Mask};

    fn notification(channel: &str, payload: &str) -> Vec<u8> {
        let mut body = 4242u32.to_be_bytes().to_vec();
        body.extend_from_slice(channel.as_bytes());
        body.push(0);
        body.extend_from_slice(payload.as_bytes());
        body.push(0);
        message(b'A', &body).to_vec()
    }

    #[test]
    fn notification_payloads_pass_through_the_detectors() {
        let mut detectors = DetectorSet::new(
            &[Detector {
                entities: vec![Entity::Email],
                mask: Mask::Redact,
            }],
            None,
        );
        let msg = notification("signups", "new customer ada@example.com joined");
        let Verdict::Replace(out) = scan_notification(&msg, &mut detectors) else {
            panic!("the e-mail address was not masked");
        };
        let (head, payload) = notification_payload(&out).expect("well formed");
        assert_eq!(&head[..4], &4242u32.to_be_bytes());
        assert_eq!(&head[4..], b"signups\0");
        let payload = std::str::from_utf8(payload).expect("utf-8");
        assert!(!payload.contains("ada@example.com"), "{payload}");
        assert!(payload.starts_with("new customer "), "{payload}");

        let plain = notification("signups", "nothing to see");
        assert!(matches!(
            scan_notification(&plain, &mut detectors),
            Verdict::Forward
        ));
        assert!(matches!(
            scan_notification(&plain[..8], &mut detectors),
            Verdict::Discard
        ));
    }

    #[test]
    fn error_texts_pass_through_the_detectors() {
        let mut detectors = DetectorSet::new(
            &[Detector {
                entities: vec![Entity::Email],
                mask: Mask::Redact,
            }],
            None,
        );
        let mut body = Vec::new();
        for (code, value) in [
            (b'S', "ERROR"),
            (b'C', "22P02"),
            (
                b'M',
                r#"invalid input syntax for type integer: "ada@example.com""#,
            ),
            (b't', "memo"),
        ] {
            body.push(code);
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
        body.push(0);
        let msg = message(b'E', &body);
        let Verdict::Replace(out) = scan_message(&msg, &mut detectors) else {
            panic!("the e-mail address was not masked");
        };
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("ada@example.com"), "{text}");
        assert!(text.contains("22P02") && text.contains("memo"), "{text}");
        assert!(
            text.contains(r#"invalid input syntax for type integer: "[REDACTED]""#),
            "{text}"
        );
    }
}
