//! Verifying audit logs, in the manner of CloudTrail's `validate-logs`.
//!
//! The files of one stream (a sidecar's `audit.jsonl` and its rotated `audit.jsonl.N`, in
//! any order) are read line by line, ordered by their first sequence number and walked as
//! one chain. Every line is checked against its own hash, its link to the one before (`seq`
//! one more, `prev` equal to that one's `hash`), and, for a checkpoint, its seal and its
//! signature against the trusted public keys. Where the chain breaks, the walk looks at the
//! rest of the log to name what happened — an edit, a deletion, an insertion, a reordering, a
//! file cut short — reports it with the sequence number and byte offset, picks the chain up
//! again and goes on, so one damaged line does not hide the next.
//!
//! What cannot be told from the bytes alone is said so:
//! - Without trusted keys, signatures are not checked, and a log rewritten from scratch with
//!   a fresh chain verifies; with the key, such a rewrite fails (its checkpoints are unsigned,
//!   signed by an unknown key, or carry signatures that no longer match).
//! - The events after the last checkpoint (the **unsealed tail**) rest on the chain alone:
//!   a live log and a crash both leave one. It is reported, and it is invalid only when it
//!   is longer, in events or in time, than its writer ever leaves unsealed (so a checkpoint
//!   was removed). Cutting the newest file back to an earlier line removes sealed events
//!   without a trace in the remaining bytes — as deleting CloudTrail's newest files does —
//!   which is what `--until` is for: a live writer seals at least once a period, so a log
//!   sealed only up to before the requested end is reported as not covering it.
//!
//! Memory: the walk keeps a small record per event (~150 bytes), not the lines.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::chain::{GENESIS, frame};
use super::checkpoint::{SignatureCheck, check_signature};
use super::event::{Checkpoint, Interval, Kind};
use super::key::PublicKey;
use super::report::{
    Coverage, FileReport, Gap, Problem, ProblemKind, Report, SegmentReport, SignatureStatus,
    Signatures, TailReport, TornLine, status,
};
use super::timestamp::Timestamp;

/// What to verify against.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Trusted public keys; empty means signatures are not checked.
    pub keys: Vec<PublicKey>,
    /// The log must cover from this time …
    pub since: Option<Timestamp>,
    /// … through this time.
    pub until: Option<Timestamp>,
}

/// Why verification could not run at all (a damaged log is a report, not an error).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("no log files given")]
    NoFiles,
}

/// Verifies log files (see the module documentation).
pub fn verify_files(paths: &[PathBuf], options: &Options) -> Result<Report, VerifyError> {
    if paths.is_empty() {
        return Err(VerifyError::NoFiles);
    }
    let mut scans = Vec::with_capacity(paths.len());
    let mut seen = Vec::new();
    for path in paths {
        // The same file named twice (a glob and a name) is read once.
        let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
        if seen.contains(&canonical) {
            continue;
        }
        seen.push(canonical);
        let name = path.display().to_string();
        let err = |source| VerifyError::Read {
            path: name.clone(),
            source,
        };
        let file = File::open(path).map_err(err)?;
        scans.push(scan(&name, BufReader::new(file), &options.keys).map_err(err)?);
    }
    Ok(analyse(scans, options))
}

/// Verifies logs held in memory, as (name, bytes) pairs.
pub fn verify_bytes(logs: &[(&str, &[u8])], options: &Options) -> Report {
    let scans = logs
        .iter()
        .map(|(name, bytes)| {
            // Reading from a slice cannot fail.
            scan(name, *bytes, &options.keys).unwrap_or_else(|_| Scan::empty(name))
        })
        .collect();
    analyse(scans, options)
}

/// One file, read.
struct Scan {
    name: String,
    bytes: u64,
    recs: Vec<Rec>,
}

impl Scan {
    fn empty(name: &str) -> Scan {
        Scan {
            name: name.to_string(),
            bytes: 0,
            recs: Vec::new(),
        }
    }

    fn first_seq(&self) -> Option<u64> {
        self.recs.iter().find_map(|r| r.event().map(|e| e.seq))
    }
}

/// One line.
struct Rec {
    offset: u64,
    /// Bytes, without the newline.
    len: u64,
    body: Body,
}

enum Body {
    Event(Ev),
    /// Not a sealed event; `terminated` is false for a last line without a newline.
    Unreadable {
        terminated: bool,
    },
}

impl Rec {
    fn event(&self) -> Option<&Ev> {
        match &self.body {
            Body::Event(e) => Some(e),
            Body::Unreadable { .. } => None,
        }
    }
}

/// What the walk needs of an event.
struct Ev {
    seq: u64,
    prev: [u8; 32],
    hash: [u8; 32],
    /// The content hashes to the claimed `hash`.
    content_ok: bool,
    ts: Timestamp,
    checkpoint: Option<Box<Seal>>,
}

/// What the walk needs of a checkpoint.
struct Seal {
    stream: String,
    /// `headSeq` and `head` name the event just before it.
    head_ok: bool,
    /// The checkpoint part is missing or unreadable.
    missing: bool,
    interval: Interval,
    key_id: Option<String>,
    /// `None` when no keys were given.
    signature: Option<SignatureCheck>,
}

/// The members read from a line besides its frame. Unknown members are allowed: newer
/// writers may add parts, and every byte is covered by the hash anyway.
#[derive(Deserialize)]
struct Envelope {
    ts: Timestamp,
    seq: u64,
    prev: String,
    hash: String,
    kind: String,
    #[serde(default)]
    checkpoint: Option<serde_json::Value>,
}

fn scan(name: &str, mut reader: impl BufRead, keys: &[PublicKey]) -> io::Result<Scan> {
    let mut scan = Scan::empty(name);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        let terminated = line.last() == Some(&b'\n');
        if terminated {
            line.pop();
        }
        scan.recs.push(Rec {
            offset: scan.bytes,
            len: line.len() as u64,
            body: parse_line(&line, terminated, keys),
        });
        scan.bytes += n as u64;
    }
    Ok(scan)
}

fn decode_hash(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.strip_prefix("sha256:")?, &mut out).ok()?;
    Some(out)
}

fn parse_line(line: &[u8], terminated: bool, keys: &[PublicKey]) -> Body {
    let unreadable = Body::Unreadable { terminated };
    let Ok(f) = frame(line) else {
        return unreadable;
    };
    let Ok(env) = serde_json::from_slice::<Envelope>(line) else {
        return unreadable;
    };
    let (Some(prev), Some(hash)) = (decode_hash(f.prev), decode_hash(f.hash)) else {
        return unreadable;
    };
    // The frame and the JSON read the same bytes; a mismatch means duplicate members.
    if env.seq != f.seq || env.prev != f.prev || env.hash != f.hash {
        return unreadable;
    }
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.as_str() == env.kind.as_str());
    let checkpoint = (kind == Some(Kind::Checkpoint)).then(|| {
        let part = env
            .checkpoint
            .and_then(|v| serde_json::from_value::<Checkpoint>(v).ok());
        Box::new(match part {
            Some(cp) => Seal {
                head_ok: f.seq > 0 && cp.head_seq == f.seq - 1 && cp.head == f.prev,
                missing: false,
                interval: cp.interval,
                key_id: cp.key_id.clone(),
                signature: (!keys.is_empty()).then(|| check_signature(f.seq, &env.ts, &cp, keys)),
                stream: cp.stream,
            },
            None => Seal {
                stream: String::new(),
                head_ok: false,
                missing: true,
                interval: Interval::DEFAULT,
                key_id: None,
                signature: (!keys.is_empty()).then_some(SignatureCheck::Unsigned),
            },
        })
    });
    Body::Event(Ev {
        seq: f.seq,
        prev,
        hash,
        content_ok: f.content_hash(line) == f.hash,
        ts: env.ts,
        checkpoint,
    })
}

/// A map from a hash to the lines carrying it; nearly always one, so the rare second one
/// goes to a side table rather than making every entry a vector.
#[derive(Default)]
struct MultiIndex {
    first: HashMap<[u8; 32], usize>,
    more: HashMap<[u8; 32], Vec<usize>>,
}

impl MultiIndex {
    fn insert(&mut self, key: [u8; 32], i: usize) {
        match self.first.entry(key) {
            Entry::Occupied(_) => self.more.entry(key).or_default().push(i),
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
        }
    }

    fn get(&self, key: &[u8; 32]) -> impl Iterator<Item = usize> + '_ {
        self.first
            .get(key)
            .copied()
            .into_iter()
            .chain(self.more.get(key).into_iter().flatten().copied())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Not reached yet.
    Pending,
    /// On the chain.
    Accepted,
    /// Not part of the chain.
    Inserted,
    /// Seen before its place in the chain (reported); accepted when the chain reaches it.
    OutOfPlace,
    /// Not an event.
    Unreadable,
}

#[derive(Clone, Copy)]
struct HeadRef {
    seq: u64,
    hash: [u8; 32],
    idx: Option<usize>,
}

struct Walk<'a> {
    files: &'a [Scan],
    /// (file, line) of each line, files in chain order.
    lines: Vec<(usize, usize)>,
    state: Vec<State>,
    by_hash: MultiIndex,
    by_prev: MultiIndex,
    head: Option<HeadRef>,
    chain: Vec<usize>,
    pending_unreadable: Vec<usize>,
    problems: Vec<Problem>,
    gaps: Vec<Gap>,
    torn: Vec<TornLine>,
}

impl<'a> Walk<'a> {
    fn new(files: &'a [Scan]) -> Walk<'a> {
        let mut lines = Vec::new();
        for (f, scan) in files.iter().enumerate() {
            lines.extend((0..scan.recs.len()).map(|l| (f, l)));
        }
        let mut walk = Walk {
            files,
            state: vec![State::Pending; lines.len()],
            lines,
            by_hash: MultiIndex::default(),
            by_prev: MultiIndex::default(),
            head: None,
            chain: Vec::new(),
            pending_unreadable: Vec::new(),
            problems: Vec::new(),
            gaps: Vec::new(),
            torn: Vec::new(),
        };
        for i in 0..walk.lines.len() {
            if let Some(e) = walk.rec(i).event() {
                let (hash, prev) = (e.hash, e.prev);
                walk.by_hash.insert(hash, i);
                walk.by_prev.insert(prev, i);
            } else {
                walk.state[i] = State::Unreadable;
            }
        }
        walk
    }

    fn rec(&self, i: usize) -> &'a Rec {
        let (f, l) = self.lines[i];
        &self.files[f].recs[l]
    }

    fn ev(&self, i: usize) -> Option<&'a Ev> {
        self.rec(i).event()
    }

    fn file_name(&self, i: usize) -> &'a str {
        &self.files[self.lines[i].0].name
    }

    fn problem(&mut self, kind: ProblemKind, seq: u64, at: usize, message: String) {
        self.problems.push(Problem {
            kind,
            seq: Some(seq),
            file: Some(self.file_name(at).to_string()),
            offset: Some(self.rec(at).offset),
            message,
        });
    }

    /// "seq N (FILE at byte O)", for another line than the one a problem is reported at.
    fn describe(&self, i: usize) -> String {
        let seq = self
            .ev(i)
            .map_or_else(|| "?".to_string(), |e| e.seq.to_string());
        format!("seq {seq} ({})", self.place_of(i))
    }

    fn place_of(&self, i: usize) -> String {
        format!("{} at byte {}", self.file_name(i), self.rec(i).offset)
    }

    fn run(&mut self) {
        for i in 0..self.lines.len() {
            match self.state[i] {
                State::Pending => self.place(i),
                State::Unreadable => self.pending_unreadable.push(i),
                State::Accepted | State::Inserted | State::OutOfPlace => {}
            }
        }
        // Unreadable lines after the chain's last event: torn writes at the end.
        for u in std::mem::take(&mut self.pending_unreadable) {
            self.torn_line(u);
        }
    }

    fn torn_line(&mut self, u: usize) {
        let rec = self.rec(u);
        let last_file = self.lines[u].0 + 1 == self.files.len();
        let at_end = rec.offset + rec.len == self.files[self.lines[u].0].bytes;
        self.torn.push(TornLine {
            file: self.file_name(u).to_string(),
            offset: rec.offset,
            bytes: rec.len,
            r#final: last_file
                && at_end
                && matches!(rec.body, Body::Unreadable { terminated: false }),
        });
    }

    /// Finds line `i`'s place in the chain, naming what happened when it does not link.
    fn place(&mut self, i: usize) {
        let Some(e) = self.ev(i) else { return };
        let Some(_) = self.head else {
            if e.seq == 1 {
                self.head = Some(HeadRef {
                    seq: 0,
                    hash: [0; 32],
                    idx: None,
                });
                if e.prev != [0; 32] {
                    self.problem(
                        ProblemKind::Edited,
                        1,
                        i,
                        format!(
                            "the stream's first event does not chain to the genesis value {GENESIS}"
                        ),
                    );
                    self.accept(i);
                    return;
                }
            } else {
                // The log starts mid-stream (older files not given): nothing to link to.
                self.accept(i);
                self.settle_unreadable_as_torn();
                return;
            }
            return self.place(i);
        };
        loop {
            let Some(h) = self.head else { return };
            if e.prev == h.hash {
                if e.seq != h.seq + 1 {
                    self.problem(
                        ProblemKind::Edited,
                        h.seq + 1,
                        i,
                        format!(
                            "the event chains to seq {} but is numbered {}: its seq was rewritten",
                            h.seq, e.seq
                        ),
                    );
                }
                self.accept(i);
                self.settle_unreadable_as_torn();
                return;
            }
            // A copy of a line already on the chain.
            let copy_of = self
                .by_hash
                .get(&e.hash)
                .find(|&j| j != i && self.state[j] == State::Accepted);
            if let Some(j) = copy_of {
                self.state[i] = State::Inserted;
                let msg = format!("a copy of {} was added", self.describe(j));
                self.problem(ProblemKind::Inserted, h.seq + 1, i, msg);
                return;
            }
            let pred = self.by_hash.get(&e.prev).find(|&p| p != i);
            // The head's real successor, if it is somewhere else in the log.
            let successor = self
                .by_prev
                .get(&h.hash)
                .find(|&s| s != i && matches!(self.state[s], State::Pending | State::OutOfPlace));
            if let Some(s) = successor {
                if self.state[s] == State::OutOfPlace {
                    // Seen (and reported) earlier; the chain has reached it now.
                    self.accept(s);
                    continue;
                }
                if pred.is_some_and(|p| p > i) {
                    self.out_of_place(i, h);
                    return;
                }
                if pred.is_some_and(|p| self.state[p] == State::OutOfPlace) {
                    // The rest of a run already reported as out of place.
                    self.state[i] = State::OutOfPlace;
                    return;
                }
                if pred.is_none() && self.by_prev.get(&e.hash).next().is_none() {
                    self.state[i] = State::Inserted;
                    let msg = format!(
                        "a line numbered seq {} that is not part of the chain (seq {} follows seq {} at {})",
                        e.seq,
                        h.seq + 1,
                        h.seq,
                        self.place_of(s)
                    );
                    self.problem(ProblemKind::Inserted, h.seq + 1, i, msg);
                    return;
                }
                // The head's successor was moved further down.
                let msg = format!(
                    "seq {} belongs here, but is further on, at {}",
                    h.seq + 1,
                    self.place_of(s)
                );
                self.problem(ProblemKind::Reordered, h.seq + 1, i, msg);
                self.accept(s);
                continue;
            }
            match pred {
                Some(p) if p > i => {
                    self.out_of_place(i, h);
                    return;
                }
                Some(p) if self.state[p] == State::OutOfPlace => {
                    self.state[i] = State::OutOfPlace;
                    return;
                }
                // `i` continues the chain from an earlier event: whatever was accepted after
                // that event is a branch someone added, so the chain goes back to it.
                Some(p) if self.state[p] == State::Accepted && self.unwind_to(p) => continue,
                _ => {}
            }
            // Nothing in the log links `i` to the head: events between them are gone.
            if e.seq > h.seq + 1 {
                self.hole(h, i);
                return;
            }
            if e.seq == h.seq + 1 {
                let unreadable = std::mem::take(&mut self.pending_unreadable);
                if let Some(&u) = unreadable.first() {
                    let msg = format!(
                        "the line at byte {} is not a readable event, and seq {} chains to something else",
                        self.rec(u).offset,
                        e.seq
                    );
                    self.problem(ProblemKind::Edited, e.seq, u, msg);
                } else if let Some(hi) = h.idx {
                    let msg = format!(
                        "seq {} was rewritten: {} chains to a different version of it",
                        h.seq,
                        self.describe(i)
                    );
                    self.problem(ProblemKind::Edited, h.seq, hi, msg);
                }
                self.accept(i);
                return;
            }
            // Numbered at or before the head, linked to nothing: a forged line.
            self.state[i] = State::Inserted;
            let msg = format!(
                "a line numbered seq {} that is not part of the chain (after seq {})",
                e.seq, h.seq
            );
            self.problem(ProblemKind::Inserted, h.seq + 1, i, msg);
            return;
        }
    }

    fn out_of_place(&mut self, i: usize, h: HeadRef) {
        self.state[i] = State::OutOfPlace;
        let expected = h.seq + 1;
        let seq = self.ev(i).map_or(0, |e| e.seq);
        let msg = format!(
            "seq {seq} is here, ahead of the events it follows (seq {expected} was expected)"
        );
        self.problem(ProblemKind::Reordered, expected, i, msg);
    }

    /// Takes the chain back to line `p`, marking what followed it as inserted; false if `p`
    /// is not on the chain.
    fn unwind_to(&mut self, p: usize) -> bool {
        let Some(pos) = self.chain.iter().rposition(|&x| x == p) else {
            return false;
        };
        let branch: Vec<usize> = self.chain.split_off(pos + 1);
        if let Some(&first) = branch.first() {
            let seq = self.ev(first).map_or(0, |e| e.seq);
            let from = self.ev(p).map_or(0, |e| e.seq);
            let msg = if branch.len() == 1 {
                format!(
                    "a line numbered seq {seq} that is not part of the chain (the chain goes on from seq {from} past it)"
                )
            } else {
                format!(
                    "a line numbered seq {seq} and the {} after it are not part of the chain",
                    branch.len() - 1
                )
            };
            // Whatever was reported about the branch's own lines stays reported.
            self.problem(ProblemKind::Inserted, seq, first, msg);
        }
        for b in branch {
            self.state[b] = State::Inserted;
        }
        if let Some(e) = self.ev(p) {
            self.head = Some(HeadRef {
                seq: e.seq,
                hash: e.hash,
                idx: Some(p),
            });
        }
        true
    }

    /// Seqs between the head and line `i` are missing.
    fn hole(&mut self, h: HeadRef, i: usize) {
        let Some(e) = self.ev(i) else { return };
        let (from, to) = (h.seq + 1, e.seq - 1);
        let range = if from == to {
            format!("seq {from}")
        } else {
            format!("seq {from} to {to}")
        };
        let before_file = self.file_name(i).to_string();
        let after_file = h.idx.map(|hi| self.file_name(hi).to_string());
        let unreadable = std::mem::take(&mut self.pending_unreadable);
        let cut = unreadable
            .iter()
            .copied()
            .find(|&u| matches!(self.rec(u).body, Body::Unreadable { terminated: false }));
        if let Some(u) = cut {
            let msg = format!(
                "{} was cut off in the middle of a line at byte {}: {range} missing",
                self.file_name(u),
                self.rec(u).offset + self.rec(u).len
            );
            self.problem(ProblemKind::Truncated, from, u, msg);
        } else if let Some(&u) = unreadable.first() {
            let msg = format!(
                "the line at byte {} is not a readable event: {range} lost",
                self.rec(u).offset
            );
            self.problem(ProblemKind::Edited, from, u, msg);
        } else {
            let where_ = match &after_file {
                Some(a) if *a != before_file => {
                    format!(
                        " between {a} and {before_file} (a rotated file or the end of one removed)"
                    )
                }
                _ => String::new(),
            };
            self.problem(
                ProblemKind::Deleted,
                from,
                i,
                format!("{range} missing{where_}"),
            );
        }
        self.gaps.push(Gap {
            from_seq: from,
            to_seq: to,
            after_file,
            before_file: Some(before_file),
        });
        self.accept(i);
    }

    fn settle_unreadable_as_torn(&mut self) {
        for u in std::mem::take(&mut self.pending_unreadable) {
            self.torn_line(u);
        }
    }

    fn accept(&mut self, i: usize) {
        self.state[i] = State::Accepted;
        self.chain.push(i);
        let Some(e) = self.ev(i) else { return };
        if !e.content_ok {
            let msg = "its content does not match its hash".to_string();
            self.problem(ProblemKind::Edited, e.seq, i, msg);
        }
        if let Some(seal) = &e.checkpoint {
            if seal.missing {
                let msg = "a checkpoint without a readable checkpoint part".to_string();
                self.problem(ProblemKind::Edited, e.seq, i, msg);
            } else if !seal.head_ok {
                let msg = "the checkpoint does not name the event before it as the head it seals"
                    .to_string();
                self.problem(ProblemKind::Edited, e.seq, i, msg);
            }
            match &seal.signature {
                Some(SignatureCheck::Bad { key_id }) => {
                    let msg = format!(
                        "the checkpoint's signature by {key_id} does not hold: events it seals were rewritten"
                    );
                    self.problem(ProblemKind::BadSignature, e.seq, i, msg);
                }
                Some(SignatureCheck::UnknownKey { key_id }) => {
                    let msg =
                        format!("the checkpoint is signed by {key_id}, which is not a trusted key");
                    self.problem(ProblemKind::UnknownKey, e.seq, i, msg);
                }
                Some(SignatureCheck::Unsigned) => {
                    let msg = "the checkpoint carries no signature".to_string();
                    self.problem(ProblemKind::Unsigned, e.seq, i, msg);
                }
                Some(SignatureCheck::Verified { .. }) | None => {}
            }
        }
        self.head = Some(HeadRef {
            seq: e.seq,
            hash: e.hash,
            idx: Some(i),
        });
    }
}

fn analyse(mut scans: Vec<Scan>, options: &Options) -> Report {
    // Chain order: by first seq; files without events last, in the order given.
    scans.sort_by_key(|s| s.first_seq().map_or((1, 0), |seq| (0, seq)));
    let mut walk = Walk::new(&scans);
    walk.run();
    let keys_given = !options.keys.is_empty();

    // Segments: the chain cut after each checkpoint.
    struct Seg {
        from_seq: u64,
        to_seq: u64,
        events: u64,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        checkpoint: Option<usize>,
    }
    let mut segs: Vec<Seg> = Vec::new();
    let mut current: Option<Seg> = None;
    let mut next_from: Option<u64> = None;
    for &i in &walk.chain {
        let Some(e) = walk.ev(i) else { continue };
        let seg = current.get_or_insert_with(|| Seg {
            from_seq: next_from.unwrap_or(e.seq),
            to_seq: e.seq,
            events: 0,
            from: None,
            to: None,
            checkpoint: None,
        });
        seg.to_seq = e.seq;
        seg.events += 1;
        seg.from = Some(seg.from.map_or(e.ts, |f| f.min(e.ts)));
        seg.to = Some(seg.to.map_or(e.ts, |t| t.max(e.ts)));
        if e.checkpoint.is_some() {
            let mut done = current.take().unwrap_or(Seg {
                from_seq: e.seq,
                to_seq: e.seq,
                events: 1,
                from: Some(e.ts),
                to: Some(e.ts),
                checkpoint: None,
            });
            done.checkpoint = Some(i);
            next_from = Some(e.seq + 1);
            segs.push(done);
        }
    }
    let tail = current;

    // The unsealed tail: no longer, in events or time, than its writer leaves unsealed.
    let last_cp = segs
        .last()
        .and_then(|s| s.checkpoint)
        .and_then(|i| walk.ev(i).map(|e| (i, e)));
    if let Some(tail) = &tail {
        let tail_lines: Vec<usize> = match last_cp {
            Some((cp, _)) => {
                let pos = walk.chain.iter().rposition(|&x| x == cp).unwrap_or(0);
                walk.chain[pos + 1..].to_vec()
            }
            None => walk.chain.clone(),
        };
        if let Some((cp_line, cp)) = last_cp
            && let Some(seal) = &cp.checkpoint
        {
            let interval = seal.interval;
            let late = cp.ts.add(unsealed_allowance(&interval));
            // The line where the missing checkpoint should have followed.
            let nth = usize::try_from(interval.events).unwrap_or(usize::MAX);
            let due = tail_lines.get(nth).or(tail_lines.last()).copied();
            if tail.events > interval.events
                && let Some(at) = due
            {
                let msg = format!(
                    "a checkpoint is missing: {} events follow {}, whose writer seals every {} events",
                    tail.events,
                    walk.describe(cp_line),
                    interval.events
                );
                let seq = walk.ev(at).map_or(0, |e| e.seq);
                walk.problem(ProblemKind::Deleted, seq, at, msg);
            } else if let Some(&at) = tail_lines
                .iter()
                .find(|&&t| walk.ev(t).is_some_and(|e| e.ts > late))
            {
                let msg = format!(
                    "a checkpoint is missing: {} was written more than twice the {} s interval after {}, yet its writer seals at least every {} s",
                    walk.describe(at),
                    interval.seconds,
                    walk.describe(cp_line),
                    interval.seconds
                );
                let seq = walk.ev(at).map_or(0, |e| e.seq);
                walk.problem(ProblemKind::Deleted, seq, at, msg);
            }
        }
    }
    if keys_given && segs.is_empty() {
        walk.problems.push(Problem {
            kind: ProblemKind::Unsigned,
            seq: None,
            file: None,
            offset: None,
            message: "no checkpoint: nothing in the log is sealed by a trusted key".into(),
        });
    }

    // Coverage.
    let accepted: Vec<&Ev> = walk.chain.iter().filter_map(|&i| walk.ev(i)).collect();
    let first_seq = accepted.first().map(|e| e.seq);
    let last_seq = accepted.last().map(|e| e.seq);
    let from = accepted.iter().map(|e| e.ts).min();
    let to = accepted.iter().map(|e| e.ts).max();
    let from_genesis = first_seq == Some(1);
    let sealed_through_seq = last_cp.map(|(_, e)| e.seq);
    let sealed_through = last_cp.map(|(_, e)| e.ts);
    let mut not_covered = Vec::new();
    if let Some(since) = options.since {
        let ok = match from {
            Some(f) => from_genesis || f <= since,
            None => false,
        };
        if !ok {
            not_covered.push(match from {
                Some(f) => format!(
                    "the log starts at {f} (seq {}), after --since {since}, and not at the stream's first event: earlier events are missing",
                    first_seq.unwrap_or(0)
                ),
                None => "the log holds no events".to_string(),
            });
        }
    }
    if let Some(until) = options.until
        && sealed_through.is_none_or(|t| t < until)
    {
        not_covered.push(match sealed_through {
            Some(t) => format!(
                "the log is sealed only through {t}, before --until {until}: later events were cut off, or the writer stopped"
            ),
            None => format!("nothing in the log is sealed, so nothing up to --until {until} is proven"),
        });
    }
    for message in &not_covered {
        walk.problems.push(Problem {
            kind: ProblemKind::NotCovered,
            seq: None,
            file: None,
            offset: None,
            message: message.clone(),
        });
    }
    let coverage = Coverage {
        first_seq,
        last_seq,
        from,
        to,
        from_genesis,
        sealed_through_seq,
        sealed_through,
        since: options.since,
        until: options.until,
        status: status(not_covered.iter().map(|_| ProblemKind::NotCovered)),
        valid: not_covered.is_empty(),
    };

    let problems = walk.problems.clone();
    let in_range = |p: &Problem, from: u64, to: u64| p.seq.is_some_and(|s| s >= from && s <= to);

    let mut signatures = Signatures {
        checked: keys_given,
        keys: options
            .keys
            .iter()
            .map(|k| k.key_id().to_string())
            .collect(),
        verified: 0,
        bad: 0,
        unknown_key: 0,
        unsigned: 0,
    };
    let mut streams: Vec<String> = Vec::new();
    let mut segments = Vec::with_capacity(segs.len());
    for (n, seg) in segs.iter().enumerate() {
        let from_seq = if n == 0 {
            seg.from_seq
        } else {
            segs[n - 1].to_seq + 1
        };
        let seal = seg
            .checkpoint
            .and_then(|i| walk.ev(i))
            .and_then(|e| e.checkpoint.as_deref());
        let signature = match seal.and_then(|s| s.signature.as_ref()) {
            None => SignatureStatus::NotChecked,
            Some(SignatureCheck::Verified { .. }) => SignatureStatus::Verified,
            Some(SignatureCheck::Unsigned) => SignatureStatus::Unsigned,
            Some(SignatureCheck::UnknownKey { .. }) => SignatureStatus::UnknownKey,
            Some(SignatureCheck::Bad { .. }) => SignatureStatus::Bad,
        };
        match signature {
            SignatureStatus::Verified => signatures.verified += 1,
            SignatureStatus::Bad => signatures.bad += 1,
            SignatureStatus::UnknownKey => signatures.unknown_key += 1,
            SignatureStatus::Unsigned => signatures.unsigned += 1,
            SignatureStatus::NotChecked => {}
        }
        if let Some(seal) = seal
            && !seal.missing
            && !streams.contains(&seal.stream)
        {
            streams.push(seal.stream.clone());
        }
        let st = status(
            problems
                .iter()
                .filter(|p| in_range(p, from_seq, seg.to_seq))
                .map(|p| p.kind),
        );
        segments.push(SegmentReport {
            from_seq,
            to_seq: seg.to_seq,
            events: seg.events,
            from: seg.from,
            to: seg.to,
            key_id: seal.and_then(|s| s.key_id.clone()),
            signature,
            valid: st == "valid",
            status: st,
        });
    }
    let unsealed_tail = tail.map(|t| {
        let from_seq = segs.last().map_or(t.from_seq, |s| s.to_seq + 1);
        let st = status(
            problems
                .iter()
                .filter(|p| in_range(p, from_seq, u64::MAX))
                .map(|p| p.kind),
        );
        TailReport {
            from_seq,
            to_seq: t.to_seq,
            events: t.events,
            from: t.from,
            to: t.to,
            valid: st == "valid",
            status: st,
        }
    });

    let files: Vec<FileReport> = scans
        .iter()
        .map(|scan| {
            let events: Vec<&Ev> = scan.recs.iter().filter_map(Rec::event).collect();
            let st = status(
                problems
                    .iter()
                    .filter(|p| p.file.as_deref() == Some(scan.name.as_str()))
                    .map(|p| p.kind),
            );
            FileReport {
                path: scan.name.clone(),
                valid: st == "valid",
                status: st,
                events: events.len() as u64,
                first_seq: events.first().map(|e| e.seq),
                last_seq: events.last().map(|e| e.seq),
                from: events.iter().map(|e| e.ts).min(),
                to: events.iter().map(|e| e.ts).max(),
                bytes: scan.bytes,
            }
        })
        .collect();

    let file_order = |name: &str| scans.iter().position(|s| s.name == name);
    let first_broken = problems
        .iter()
        .filter(|p| p.offset.is_some())
        .min_by_key(|p| (p.file.as_deref().and_then(file_order), p.offset))
        .cloned();
    let valid = problems.is_empty();
    Report {
        result: if valid { "valid" } else { "INVALID" }.to_string(),
        valid,
        streams,
        files,
        segments,
        unsealed_tail,
        torn_lines: walk.torn,
        gaps: walk.gaps,
        problems,
        first_broken,
        coverage,
        signatures,
    }
}

/// How long after the last checkpoint a writer with `interval` may leave events unsealed
/// before a verifier calls a checkpoint missing: twice the period, for clock steps and the
/// time an event waits in the writer's queue.
pub fn unsealed_allowance(interval: &Interval) -> Duration {
    interval.period().saturating_mul(2)
}
