//! What [`super::verify`] found, as a structured report (`-o json`) and as text, in the
//! manner of CloudTrail's `validate-logs`: every file and every checkpoint segment is
//! `valid` or `INVALID: <reasons>`, then the problems one per line with their sequence
//! number and byte offset, gaps, the unsealed tail, torn lines and the time covered.

use std::fmt::Write as _;

use serde::Serialize;

use super::timestamp::Timestamp;

/// Why something is invalid. Each names what happened to the log, not how it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProblemKind {
    /// An event's content was changed (it no longer matches its hash, or an event was
    /// rewritten with a new hash that its successor does not chain to), or a line that held
    /// an event can no longer be read.
    Edited,
    /// Events are missing: a line, a run of lines, a whole rotated file, or a checkpoint.
    Deleted,
    /// A line that is not part of the chain was added.
    Inserted,
    /// Events are all there but not in chain order.
    Reordered,
    /// A file was cut short in the middle of a line, with events after it missing.
    Truncated,
    /// A checkpoint signed with a trusted key whose signature does not hold: the chain it
    /// seals was rewritten.
    BadSignature,
    /// A checkpoint signed with a key that is not among the trusted ones.
    UnknownKey,
    /// Trusted keys were given, but a checkpoint (or the whole log) carries no signature.
    Unsigned,
    /// The log does not cover the requested `--since`/`--until` range.
    NotCovered,
}

impl ProblemKind {
    /// The word used in text output.
    pub fn word(&self) -> &'static str {
        match self {
            ProblemKind::Edited => "edited",
            ProblemKind::Deleted => "deleted",
            ProblemKind::Inserted => "inserted",
            ProblemKind::Reordered => "reordered",
            ProblemKind::Truncated => "truncated",
            ProblemKind::BadSignature => "bad signature",
            ProblemKind::UnknownKey => "unknown key",
            ProblemKind::Unsigned => "unsigned",
            ProblemKind::NotCovered => "not covered",
        }
    }
}

/// One thing wrong with the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub kind: ProblemKind,
    /// The position in the chain where it breaks: the first missing seq, the seq of the
    /// edited event or checkpoint, the seq expected where a line was inserted or moved.
    pub seq: Option<u64>,
    /// The file where it shows, as given.
    pub file: Option<String>,
    /// The byte offset in that file of the line where it shows.
    pub offset: Option<u64>,
    /// What happened, for a person.
    pub message: String,
}

/// A file's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileReport {
    pub path: String,
    /// `valid`, or `INVALID: ` and the reasons.
    pub status: String,
    pub valid: bool,
    /// Sealed events read in it (unreadable lines not counted).
    pub events: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub bytes: u64,
}

/// How a segment's checkpoint signature came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SignatureStatus {
    /// Verified with a trusted key.
    Verified,
    /// No trusted key was given, so it was not checked.
    NotChecked,
    /// The checkpoint carries no signature.
    Unsigned,
    /// Signed by a key that is not trusted.
    UnknownKey,
    /// The signature does not hold.
    Bad,
}

impl SignatureStatus {
    pub fn word(&self) -> &'static str {
        match self {
            SignatureStatus::Verified => "signature verified",
            SignatureStatus::NotChecked => "signature not checked",
            SignatureStatus::Unsigned => "unsigned",
            SignatureStatus::UnknownKey => "unknown key",
            SignatureStatus::Bad => "bad signature",
        }
    }
}

/// The events a checkpoint seals since the previous one, and the checkpoint itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentReport {
    /// The first seq after the previous checkpoint (or the first seq given).
    pub from_seq: u64,
    /// The checkpoint's own seq.
    pub to_seq: u64,
    pub events: u64,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub key_id: Option<String>,
    pub signature: SignatureStatus,
    pub status: String,
    pub valid: bool,
}

/// The events after the last checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TailReport {
    pub from_seq: u64,
    pub to_seq: u64,
    pub events: u64,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// `valid` (the chain is intact, just not sealed yet: a live log or a crash), or
    /// `INVALID: ` when it is longer than its writer ever leaves unsealed.
    pub status: String,
    pub valid: bool,
}

/// A line that is not a readable event but whose absence does not break the chain: a write
/// cut short by a crash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TornLine {
    pub file: String,
    pub offset: u64,
    pub bytes: u64,
    /// At the very end of the newest file, without a newline (the writer has not restarted
    /// since, or is writing it now).
    pub r#final: bool,
}

/// A run of missing sequence numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gap {
    pub from_seq: u64,
    pub to_seq: u64,
    /// The file holding the last event before the gap, and the first after it.
    pub after_file: Option<String>,
    pub before_file: Option<String>,
}

/// What time the log covers, against what was asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Coverage {
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// The log starts at the stream's first event (seq 1).
    pub from_genesis: bool,
    /// The last checkpoint: everything up to it is sealed.
    pub sealed_through_seq: Option<u64>,
    pub sealed_through: Option<Timestamp>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// `valid` when the requested range (if any) is covered, else `INVALID: not covered`.
    pub status: String,
    pub valid: bool,
}

/// What was done about signatures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Signatures {
    /// Trusted keys were given, so signatures were checked.
    pub checked: bool,
    /// The ids of the trusted keys.
    pub keys: Vec<String>,
    pub verified: u64,
    pub bad: u64,
    pub unknown_key: u64,
    pub unsigned: u64,
}

/// The verifier's whole answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `valid` or `INVALID`.
    pub result: String,
    pub valid: bool,
    /// The stream names the checkpoints carry.
    pub streams: Vec<String>,
    /// In chain order (by first seq), whatever order they were given in.
    pub files: Vec<FileReport>,
    pub segments: Vec<SegmentReport>,
    pub unsealed_tail: Option<TailReport>,
    pub torn_lines: Vec<TornLine>,
    pub gaps: Vec<Gap>,
    /// Everything wrong, in the order found.
    pub problems: Vec<Problem>,
    /// The earliest place in the files where the log is broken.
    pub first_broken: Option<Problem>,
    pub coverage: Coverage,
    pub signatures: Signatures,
}

/// `valid`, or `INVALID: ` and the distinct reasons in a fixed order.
pub fn status(kinds: impl IntoIterator<Item = ProblemKind>) -> String {
    let mut kinds: Vec<ProblemKind> = kinds.into_iter().collect();
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() {
        "valid".to_string()
    } else {
        let words: Vec<&str> = kinds.iter().map(ProblemKind::word).collect();
        format!("INVALID: {}", words.join(", "))
    }
}

fn opt_ts(t: &Option<Timestamp>) -> String {
    t.map_or_else(|| "-".to_string(), |t| t.to_string())
}

fn span(from: &Option<Timestamp>, to: &Option<Timestamp>) -> String {
    format!("{} to {}", opt_ts(from), opt_ts(to))
}

fn seqs(from: u64, to: u64) -> String {
    if from == to {
        format!("seq {from}")
    } else {
        format!("seq {from} to {to}")
    }
}

impl Report {
    /// The text a person reads.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let c = &self.coverage;
        if c.since.is_some() || c.until.is_some() {
            let _ = writeln!(
                out,
                "Results requested for {} to {}",
                c.since
                    .map_or("the stream's start".into(), |t| t.to_string()),
                c.until.map_or("the log's end".into(), |t| t.to_string())
            );
        }
        let _ = writeln!(
            out,
            "Results found for {}: seq {} to {}",
            span(&c.from, &c.to),
            c.first_seq.map_or("-".into(), |s| s.to_string()),
            c.last_seq.map_or("-".into(), |s| s.to_string()),
        );
        if !self.streams.is_empty() {
            let _ = writeln!(out, "Stream: {}", self.streams.join(", "));
        }
        let s = &self.signatures;
        if s.checked {
            let _ = writeln!(
                out,
                "Signatures: checked with {} ({} verified, {} bad, {} unknown key, {} unsigned)",
                s.keys.join(", "),
                s.verified,
                s.bad,
                s.unknown_key,
                s.unsigned
            );
        } else {
            let _ = writeln!(
                out,
                "Signatures: NOT checked (no --public-key): the chain is verified, but a log rewritten as a whole would pass"
            );
        }
        let _ = writeln!(out);
        let valid_files = self.files.iter().filter(|f| f.valid).count();
        let _ = writeln!(out, "{}/{} files valid", valid_files, self.files.len());
        for f in &self.files {
            let seqs = match (f.first_seq, f.last_seq) {
                (Some(a), Some(b)) => format!("seq {a} to {b}"),
                _ => "no events".to_string(),
            };
            let _ = writeln!(
                out,
                "File {}: {} ({}, {} events)",
                f.path, f.status, seqs, f.events
            );
        }
        let valid_segments = self.segments.iter().filter(|s| s.valid).count();
        let _ = writeln!(
            out,
            "{}/{} checkpoint segments valid",
            valid_segments,
            self.segments.len()
        );
        for seg in &self.segments {
            let _ = writeln!(
                out,
                "Segment seq {} to {} ({}): {} ({})",
                seg.from_seq,
                seg.to_seq,
                span(&seg.from, &seg.to),
                seg.status,
                seg.signature.word()
            );
        }
        if let Some(t) = &self.unsealed_tail {
            let note = if t.valid {
                "chain intact, not yet sealed by a checkpoint (a live log, or a crash)".to_string()
            } else {
                t.status.clone()
            };
            let _ = writeln!(
                out,
                "Unsealed tail seq {} to {} ({} events, {}): {}",
                t.from_seq,
                t.to_seq,
                t.events,
                span(&t.from, &t.to),
                note
            );
        }
        for t in &self.torn_lines {
            let what = if t.r#final {
                "a write cut short by a crash (or still being written); ignored"
            } else {
                "a write cut short by a crash; the chain continues across it"
            };
            let _ = writeln!(
                out,
                "Torn line: {} at byte {} ({} bytes): {}",
                t.file, t.offset, t.bytes, what
            );
        }
        for g in &self.gaps {
            let place = match (&g.after_file, &g.before_file) {
                (Some(a), Some(b)) if a == b => format!("in {a}"),
                (Some(a), Some(b)) => format!("between {a} and {b}"),
                (None, Some(b)) => format!("before {b}"),
                (Some(a), None) => format!("after {a}"),
                (None, None) => String::new(),
            };
            let _ = writeln!(out, "Gap: {} missing {place}", seqs(g.from_seq, g.to_seq));
        }
        if !self.problems.is_empty() {
            let _ = writeln!(out, "Problems:");
            for p in &self.problems {
                let _ = writeln!(out, "  {}", problem_line(p));
            }
        }
        if let Some(p) = &self.first_broken {
            let _ = writeln!(
                out,
                "First broken: {} ({})",
                location(p).unwrap_or_default(),
                p.kind.word()
            );
        }
        let _ = writeln!(
            out,
            "Coverage: {}{}",
            if c.from_genesis {
                "from the stream's first event"
            } else {
                "from mid-stream (earlier events not given)"
            },
            match (c.sealed_through_seq, &c.sealed_through) {
                (Some(seq), Some(ts)) => format!("; sealed through seq {seq} at {ts}"),
                _ => "; nothing sealed".to_string(),
            }
        );
        if c.since.is_some() || c.until.is_some() {
            let _ = writeln!(out, "Requested range: {}", c.status);
        }
        let _ = writeln!(
            out,
            "Result: {}{}",
            self.result,
            if self.problems.is_empty() {
                String::new()
            } else {
                format!(" ({} problems)", self.problems.len())
            }
        );
        out
    }
}

fn location(p: &Problem) -> Option<String> {
    let mut s = String::new();
    if let Some(seq) = p.seq {
        let _ = write!(s, "seq {seq}");
    }
    if let Some(file) = &p.file {
        let _ = write!(s, "{}{file}", if s.is_empty() { "" } else { " in " });
    }
    if let Some(offset) = p.offset {
        let _ = write!(s, " at byte {offset}");
    }
    (!s.is_empty()).then_some(s)
}

fn problem_line(p: &Problem) -> String {
    match location(p) {
        Some(at) => format!("{at}: {}: {}", p.kind.word(), p.message),
        None => format!("{}: {}", p.kind.word(), p.message),
    }
}
