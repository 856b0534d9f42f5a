//! The per-stream hash chain.
//!
//! Every event line starts with the same four members, in this order and form:
//!
//! ```text
//! {"ts":"2026-11-26T05:00:00.123456Z","seq":42,"prev":"sha256:<64 hex>","hash":"sha256:<64 hex>",…}
//! ```
//!
//! - `seq` is 1 for a stream's first event and one more for each event after it.
//! - `prev` is the previous event's `hash`; the first event's is [`GENESIS`].
//! - `hash` is `sha256:` + lowercase hex SHA-256 of the event's **canonical form**: the
//!   line's exact bytes (UTF-8, no trailing newline) with the 81 bytes
//!   `,"hash":"sha256:<64 hex>"` removed — the member that always follows `prev`'s value.
//!
//! Hashing the bytes written, rather than a re-serialization, means a verifier needs no JSON
//! canonicalization rules and any change to any byte of an event shows. Deleting, inserting
//! or reordering events breaks the `seq`/`prev` links; rewriting a run of events and
//! re-linking them is what the signed checkpoints ([`super::checkpoint`]) catch.

use std::fmt;
use std::ops::Range;

use sha2::{Digest, Sha256};

use super::event::Event;

/// `prev` of a stream's first event.
pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// Length of `sha256:` + 64 hex digits.
const HASH_LEN: usize = 7 + 64;

/// Where a chain stands: the last event's `seq` and `hash` (seq 0 and [`GENESIS`] before
/// the first event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Head {
    /// The head of a stream with no events.
    pub fn genesis() -> Head {
        Head {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }
}

impl Default for Head {
    fn default() -> Self {
        Head::genesis()
    }
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq {} {}", self.seq, self.hash)
    }
}

/// Why an event could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("serialising an audit event: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("the chain is at seq {0}, the largest there is")]
    Exhausted(u64),
    #[error("a serialised event does not start with ts, seq and prev: {0}")]
    Frame(#[from] FrameError),
}

/// Seals events into chained lines.
#[derive(Clone, Debug)]
pub struct Chain {
    head: Head,
}

impl Default for Chain {
    fn default() -> Self {
        Chain::new()
    }
}

impl Chain {
    /// A new stream, at genesis.
    pub fn new() -> Chain {
        Chain {
            head: Head::genesis(),
        }
    }

    /// Continues a stream from a recovered head (see [`super::recover`]).
    pub fn resume(head: Head) -> Chain {
        Chain { head }
    }

    /// The last sealed event.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Gives `event` the next `seq`, links it to the head, hashes it and returns the line to
    /// write (without its newline). `event.hash` is set to the hash it was sealed with.
    pub fn seal(&mut self, event: &mut Event) -> Result<String, ChainError> {
        let seq = self
            .head
            .seq
            .checked_add(1)
            .ok_or(ChainError::Exhausted(self.head.seq))?;
        event.seq = seq;
        event.prev.clone_from(&self.head.hash);
        event.hash = None;
        let canonical = serde_json::to_string(&*event)?;
        // The member goes right after `prev`'s value: find where that ends.
        let at = prefix_end(canonical.as_bytes())?;
        let hash = hash_canonical(canonical.as_bytes());
        let mut line = String::with_capacity(canonical.len() + 81);
        line.push_str(&canonical[..at]);
        line.push_str(",\"hash\":\"");
        line.push_str(&hash);
        line.push('"');
        line.push_str(&canonical[at..]);
        event.hash = Some(hash.clone());
        self.head = Head { seq, hash };
        Ok(line)
    }
}

/// `sha256:` + hex SHA-256 of a canonical form.
pub fn hash_canonical(canonical: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(canonical)))
}

/// Why a line is not a sealed event's line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FrameError(pub &'static str);

/// The fixed-form head of a sealed line: its `ts`, `seq`, `prev` and `hash` as written, and
/// where the `hash` member sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    pub ts: &'a str,
    pub seq: u64,
    pub prev: &'a str,
    pub hash: &'a str,
    member: Range<usize>,
}

impl Frame<'_> {
    /// The hash the line's content actually has (equal to [`Frame::hash`] unless edited).
    pub fn content_hash(&self, line: &[u8]) -> String {
        let mut hasher = Sha256::new();
        hasher.update(&line[..self.member.start]);
        hasher.update(&line[self.member.end..]);
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }
}

/// Reads the fixed-form beginning of a sealed line (without its newline).
pub fn frame(line: &[u8]) -> Result<Frame<'_>, FrameError> {
    let mut r = Reader { s: line, at: 0 };
    r.expect(b"{\"ts\":\"", "does not start with {\"ts\":\"")?;
    let ts = r.take(27, "ts is not 27 characters")?;
    r.expect(b"\",\"seq\":", "ts is not followed by seq")?;
    let seq = r.number()?;
    r.expect(b",\"prev\":\"", "seq is not followed by prev")?;
    let prev = r.hash("prev is not sha256:<64 hex>")?;
    r.expect(b"\"", "prev is not sha256:<64 hex>")?;
    let start = r.at;
    r.expect(b",\"hash\":\"", "prev is not followed by hash")?;
    let hash = r.hash("hash is not sha256:<64 hex>")?;
    r.expect(b"\"", "hash is not sha256:<64 hex>")?;
    let end = r.at;
    // The rest must at least close the object; the JSON parse judges the rest.
    if line.last() != Some(&b'}') || end >= line.len() {
        return Err(FrameError("the line does not end with }"));
    }
    Ok(Frame {
        ts,
        seq,
        prev,
        hash,
        member: start..end,
    })
}

/// Where `prev`'s value ends in a canonical (hash-less) line.
fn prefix_end(canonical: &[u8]) -> Result<usize, FrameError> {
    let mut r = Reader {
        s: canonical,
        at: 0,
    };
    r.expect(b"{\"ts\":\"", "does not start with {\"ts\":\"")?;
    r.take(27, "ts is not 27 characters")?;
    r.expect(b"\",\"seq\":", "ts is not followed by seq")?;
    r.number()?;
    r.expect(b",\"prev\":\"", "seq is not followed by prev")?;
    r.hash("prev is not sha256:<64 hex>")?;
    r.expect(b"\"", "prev is not sha256:<64 hex>")?;
    Ok(r.at)
}

struct Reader<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn expect(&mut self, lit: &[u8], why: &'static str) -> Result<(), FrameError> {
        if self.s[self.at..].starts_with(lit) {
            self.at += lit.len();
            Ok(())
        } else {
            Err(FrameError(why))
        }
    }

    fn take(&mut self, n: usize, why: &'static str) -> Result<&'a str, FrameError> {
        let bytes = self.s.get(self.at..self.at + n).ok_or(FrameError(why))?;
        let text = std::str::from_utf8(bytes).map_err(|_| FrameError(why))?;
        self.at += n;
        Ok(text)
    }

    fn number(&mut self) -> Result<u64, FrameError> {
        const WHY: &str = "seq is not a number";
        let digits = self.s[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        // One form per number: no leading zeros.
        if digits == 0 || (digits > 1 && self.s[self.at] == b'0') {
            return Err(FrameError(WHY));
        }
        let text = self.take(digits, WHY)?;
        text.parse().map_err(|_| FrameError(WHY))
    }

    fn hash(&mut self, why: &'static str) -> Result<&'a str, FrameError> {
        let text = self.take(HASH_LEN, why)?;
        let hex_ok = text.strip_prefix("sha256:").is_some_and(|h| {
            h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if hex_ok {
            Ok(text)
        } else {
            Err(FrameError(why))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::{Kind, PolicyRef};
    use crate::audit::timestamp::Timestamp;

    fn event() -> Event {
        let mut e = Event::new(Kind::PolicyLoaded, Timestamp::from_unix_micros(0).unwrap());
        e.policy = Some(PolicyRef {
            namespace: "ml".into(),
            name: "features-db".into(),
            hash: "sha256:abc".into(),
        });
        e
    }

    #[test]
    fn seals_into_the_documented_canonical_form() {
        let mut chain = Chain::new();
        let mut e = event();
        let line = chain.seal(&mut e).unwrap();
        assert!(line.starts_with(&format!(
            "{{\"ts\":\"1970-01-01T00:00:00.000000Z\",\"seq\":1,\"prev\":\"{GENESIS}\",\"hash\":\"sha256:"
        )));
        // The canonical form is the line minus the hash member, hashed as bytes.
        let hash = e.hash.clone().unwrap();
        let member = format!(",\"hash\":\"{hash}\"");
        assert_eq!(member.len(), 81);
        let canonical = line.replacen(&member, "", 1);
        assert_eq!(hash_canonical(canonical.as_bytes()), hash);
        let f = frame(line.as_bytes()).unwrap();
        assert_eq!((f.seq, f.prev, f.hash), (1, GENESIS, hash.as_str()));
        assert_eq!(f.content_hash(line.as_bytes()), hash);
        // The line reads back as the event it was sealed from.
        let back: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(back, e);
        assert_eq!(chain.head(), &Head { seq: 1, hash });
    }

    #[test]
    fn links_each_event_to_the_previous_one() {
        let mut chain = Chain::new();
        let lines: Vec<String> = (0..3).map(|_| chain.seal(&mut event()).unwrap()).collect();
        let frames: Vec<Frame> = lines.iter().map(|l| frame(l.as_bytes()).unwrap()).collect();
        assert_eq!(frames[1].prev, frames[0].hash);
        assert_eq!(frames[2].prev, frames[1].hash);
        assert_eq!(frames[2].seq, 3);
        // A resumed chain continues where the other stopped.
        let mut resumed = Chain::resume(chain.head().clone());
        let next = resumed.seal(&mut event()).unwrap();
        let f = frame(next.as_bytes()).unwrap();
        assert_eq!((f.seq, f.prev), (4, frames[2].hash));
    }

    #[test]
    fn an_edit_changes_the_content_hash_but_not_the_claimed_one() {
        let mut chain = Chain::new();
        let line = chain.seal(&mut event()).unwrap();
        let edited = line.replace("features-db", "features-dc");
        let f = frame(edited.as_bytes()).unwrap();
        assert_ne!(f.content_hash(edited.as_bytes()), f.hash);
    }

    #[test]
    fn frame_refuses_other_shapes() {
        let mut chain = Chain::new();
        let line = chain.seal(&mut event()).unwrap();
        for bad in [
            line.replacen("\"seq\":1", "\"seq\":01", 1),
            line.replacen("{\"ts\"", "{ \"ts\"", 1),
            line.replacen("\"prev\"", "\"prev \"", 1),
            line.replacen(",\"hash\"", ",\"hush\"", 1),
            line.replacen("sha256:0000", "sha256:000A", 1),
            "{}".to_string(),
            String::new(),
        ] {
            assert!(frame(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
