//! Checkpoints: signed seals over the chain.
//!
//! A `checkpoint` event is an ordinary link of the chain (it has its own `seq`, `prev` and
//! `hash`) whose `checkpoint` part names the head it seals — `headSeq` = its `seq` - 1 and
//! `head` = its `prev` — and, when a signing key is configured, carries an Ed25519
//! signature over [`message`]. Since every hash covers everything before it, a valid
//! signature on a checkpoint vouches for the whole stream up to it: rewriting any earlier
//! event, even with every later hash recomputed, changes `head` and so breaks the signature.
//!
//! The signed message is domain-separated and binds the stream, the checkpoint's own `seq`,
//! the sealed head (seq and hash), the time and the writer's interval, so a signature cannot
//! be replayed at another position, in another stream, at another time, or with a relaxed
//! interval (systemd's sealed journal once accepted entries sealed for a later epoch; binding
//! the sequence number rules that out here).

use std::time::Duration;

use super::event::{Checkpoint, Event, Interval, Kind};
use super::key::{PublicKey, SigningKey};
use super::timestamp::Timestamp;

/// The tag that starts every signed message; `v1` changes if the message ever does.
pub const DOMAIN: &str = "palisade audit checkpoint v1";

impl Interval {
    /// A checkpoint after every 1000 events, and at least every 60 seconds (also when idle).
    ///
    /// Why these numbers: after a crash, the events since the last checkpoint rest on the
    /// chain alone (their order and content still check, but nothing signed vouches for
    /// them against a rewrite), so the interval bounds that exposure — at most 1000 events
    /// or one minute, against CloudTrail's hourly digests. The cost is one line and one
    /// Ed25519 signature per interval: at 1000 events that is 0.1% of the lines, and one
    /// signature against the thousand hashes and serialisations the events cost. The idle
    /// heartbeat (1440 lines a day, under 1 MB) is what lets a verifier tell that a log covers
    /// a requested time range: a live writer seals at least once a minute, so a log whose
    /// last seal is older than the range's end was cut short or its writer stopped.
    pub const DEFAULT: Interval = Interval {
        events: 1000,
        seconds: 60,
    };

    /// The time part as a duration.
    pub fn period(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

impl Default for Interval {
    fn default() -> Self {
        Interval::DEFAULT
    }
}

/// Why a checkpoint could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error(
        "the audit stream name must be 1 to 253 characters without control characters, got {0:?}"
    )]
    Stream(String),
    #[error("the checkpoint interval must be at least 1 event and 1 second")]
    Interval,
}

/// Checks a stream name: it is written into signed messages line by line, so it must not
/// hold a line break (or any control character).
pub fn check_stream(stream: &str) -> Result<(), CheckpointError> {
    if stream.is_empty() || stream.len() > 253 || stream.chars().any(char::is_control) {
        return Err(CheckpointError::Stream(stream.to_string()));
    }
    Ok(())
}

/// Checks an interval.
pub fn check_interval(interval: &Interval) -> Result<(), CheckpointError> {
    if interval.events == 0 || interval.seconds == 0 {
        return Err(CheckpointError::Interval);
    }
    Ok(())
}

/// The exact bytes a checkpoint's signature covers (UTF-8, each line ending in `\n`):
///
/// ```text
/// palisade audit checkpoint v1
/// stream <stream>
/// seq <the checkpoint's own seq>
/// head <headSeq> <head>
/// ts <the checkpoint's ts>
/// interval <events> <seconds>
/// ```
pub fn message(seq: u64, ts: &Timestamp, checkpoint: &Checkpoint) -> Vec<u8> {
    format!(
        "{DOMAIN}\nstream {}\nseq {seq}\nhead {} {}\nts {ts}\ninterval {} {}\n",
        checkpoint.stream,
        checkpoint.head_seq,
        checkpoint.head,
        checkpoint.interval.events,
        checkpoint.interval.seconds
    )
    .into_bytes()
}

/// A checkpoint event sealing `head` (the chain's current head), to be sealed next — so at
/// seq `head_seq + 1`, which the signature binds.
pub fn build(
    stream: &str,
    interval: Interval,
    head_seq: u64,
    head: &str,
    ts: Timestamp,
    key: Option<&SigningKey>,
) -> Result<Event, CheckpointError> {
    check_stream(stream)?;
    check_interval(&interval)?;
    let mut checkpoint = Checkpoint {
        stream: stream.to_string(),
        head_seq,
        head: head.to_string(),
        interval,
        key_id: None,
        signature: None,
    };
    if let Some(key) = key {
        let seq = head_seq.saturating_add(1);
        checkpoint.signature = Some(key.sign_hex(&message(seq, &ts, &checkpoint)));
        checkpoint.key_id = Some(key.key_id().to_string());
    }
    let mut event = Event::new(Kind::Checkpoint, ts);
    event.checkpoint = Some(checkpoint);
    Ok(event)
}

/// What a checkpoint's signature says, given the keys a verifier trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Signed by this trusted key, and the signature holds.
    Verified { key_id: String },
    /// No key id or no signature.
    Unsigned,
    /// Signed, but by a key not among the trusted ones.
    UnknownKey { key_id: String },
    /// The key is trusted but the signature does not hold over this checkpoint.
    Bad { key_id: String },
}

/// Checks the signature of the checkpoint event at `seq` written at `ts`.
pub fn check_signature(
    seq: u64,
    ts: &Timestamp,
    checkpoint: &Checkpoint,
    keys: &[PublicKey],
) -> SignatureCheck {
    let (Some(key_id), Some(signature)) = (&checkpoint.key_id, &checkpoint.signature) else {
        return SignatureCheck::Unsigned;
    };
    let Some(key) = keys.iter().find(|k| k.key_id() == key_id) else {
        return SignatureCheck::UnknownKey {
            key_id: key_id.clone(),
        };
    };
    if key.verify_hex(&message(seq, ts, checkpoint), signature) {
        SignatureCheck::Verified {
            key_id: key_id.clone(),
        }
    } else {
        SignatureCheck::Bad {
            key_id: key_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts() -> Timestamp {
        Timestamp::from_unix_micros(1_000_000).unwrap()
    }

    #[test]
    fn signs_a_message_bound_to_stream_seq_head_time_and_interval() {
        let key = SigningKey::from_seed(&[3; 32]).unwrap();
        let keys = [key.public_key().clone()];
        let head = format!("sha256:{}", "ab".repeat(32));
        let e = build("ml/pod-0", Interval::DEFAULT, 41, &head, ts(), Some(&key)).unwrap();
        let cp = e.checkpoint.clone().unwrap();
        let text = String::from_utf8(message(42, &ts(), &cp)).unwrap();
        assert_eq!(
            text,
            format!(
                "palisade audit checkpoint v1\nstream ml/pod-0\nseq 42\nhead 41 {head}\nts 1970-01-01T00:00:01.000000Z\ninterval 1000 60\n"
            )
        );
        assert_eq!(
            check_signature(42, &ts(), &cp, &keys),
            SignatureCheck::Verified {
                key_id: key.key_id().into()
            }
        );
        // Replayed at another seq, time, stream, head or interval: the signature fails.
        let bad = SignatureCheck::Bad {
            key_id: key.key_id().into(),
        };
        assert_eq!(check_signature(43, &ts(), &cp, &keys), bad);
        let later = ts().add(Duration::from_secs(1));
        assert_eq!(check_signature(42, &later, &cp, &keys), bad);
        for change in [
            |c: &mut Checkpoint| c.stream = "ml/pod-1".into(),
            |c: &mut Checkpoint| c.head_seq = 40,
            |c: &mut Checkpoint| c.head = format!("sha256:{}", "cd".repeat(32)),
            |c: &mut Checkpoint| c.interval.events = 1_000_000,
        ] {
            let mut other = cp.clone();
            change(&mut other);
            assert_eq!(check_signature(42, &ts(), &other, &keys), bad);
        }
        // Without the key, or with only another one.
        let stranger = SigningKey::from_seed(&[4; 32]).unwrap();
        assert_eq!(
            check_signature(42, &ts(), &cp, &[stranger.public_key().clone()]),
            SignatureCheck::UnknownKey {
                key_id: key.key_id().into()
            }
        );
        let unsigned = build("ml/pod-0", Interval::DEFAULT, 41, &head, ts(), None).unwrap();
        assert_eq!(
            check_signature(42, &ts(), &unsigned.checkpoint.unwrap(), &keys),
            SignatureCheck::Unsigned
        );
    }

    #[test]
    fn refuses_streams_that_could_forge_message_lines() {
        assert!(build("a\nseq 1", Interval::DEFAULT, 0, "x", ts(), None).is_err());
        assert!(build("", Interval::DEFAULT, 0, "x", ts(), None).is_err());
        let zero = Interval {
            events: 0,
            seconds: 60,
        };
        assert_eq!(
            build("s", zero, 0, "x", ts(), None).unwrap_err(),
            CheckpointError::Interval
        );
    }
}
