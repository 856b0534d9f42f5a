//! The trail end to end: a generated log of a few thousand events with signed checkpoints,
//! split across rotated files, verifies `valid`; each way of tampering with it is caught with
//! the right reason, sequence number and byte offset; a crash is told apart from tampering;
//! and every event kind validates against the published JSON Schema.

use std::collections::BTreeMap;
use std::time::Duration;

use super::chain::{Chain, Head, frame};
use super::event::*;
use super::key::SigningKey;
use super::recover::{Recovery, recover, rotated_path};
use super::report::{ProblemKind, Report, SignatureStatus};
use super::schema::event_schema;
use super::timestamp::Timestamp;
use super::trail::Trail;
use super::verify::{Options, verify_bytes, verify_files};
use crate::model::{Operation, RuleAction};

const EVENTS: usize = 3000;

fn t0() -> Timestamp {
    Timestamp::parse_user("2026-11-26T05:00:00Z").unwrap()
}

fn at(ms: u64) -> Timestamp {
    t0().add(Duration::from_millis(ms))
}

fn key() -> SigningKey {
    SigningKey::from_seed(&[42; 32]).unwrap()
}

fn other_key() -> SigningKey {
    SigningKey::from_seed(&[43; 32]).unwrap()
}

fn with_key() -> Options {
    Options {
        keys: vec![key().public_key().clone()],
        ..Options::default()
    }
}

fn identity() -> Identity {
    Identity {
        service_account: Some("ml/trainer".into()),
        pod: Some("trainer-6d9f".into()),
        workload: Some("Job/train-fraud-v3".into()),
        labels: BTreeMap::from([("palisade.dev/model".into(), "fraud-v3".into())]),
        db_user: "trainer".into(),
        user: None,
        groups: vec![],
        authenticated_by: "serviceAccount".into(),
    }
}

fn policy() -> PolicyRef {
    PolicyRef {
        namespace: "ml".into(),
        name: "features-db".into(),
        hash: format!("sha256:{}", "7".repeat(64)),
    }
}

/// One event of each kind but checkpoint, as the sidecar would fill them in.
fn sample(kind: Kind, ts: Timestamp, n: usize) -> Event {
    let mut e = Event::new(kind, ts);
    e.policy = Some(policy());
    if kind == Kind::PolicyLoaded {
        return e;
    }
    e.session = Some(format!("5b7c{:04}", n / 50));
    e.identity = Some(identity());
    e.database = Some(Database {
        host: "features-pg.data.svc".into(),
        name: "features".into(),
    });
    if matches!(kind, Kind::Statement | Kind::Approval) {
        e.statement = Some(Statement {
            fingerprint: format!("sha256:{}", "a".repeat(64)),
            text: Some("SELECT email, plan FROM customers WHERE id = $1".into()),
            operations: vec![Operation::Select],
            read: vec!["public.customers".into()],
            written: vec![],
            columns: vec![
                "public.customers.email".into(),
                "public.customers.plan".into(),
            ],
            index: n.is_multiple_of(7).then_some(1),
        });
        e.decision = Some(Decision {
            action: if kind == Kind::Approval {
                RuleAction::RequireApproval
            } else {
                RuleAction::Allow
            },
            rule: None,
            masked: vec!["public.customers.email".into()],
            approval: (kind == Kind::Approval).then(|| "features-db-7f3a9c".into()),
        });
    }
    match kind {
        Kind::Statement => {
            e.result = Some(StatementResult {
                rows: Some(1),
                tag: Some("SELECT 1".into()),
                error: n.is_multiple_of(11).then(|| "42501".into()),
                ms: 0.41,
            });
            e.data_version = Some(DataVersion {
                txid: (771 + n).to_string(),
                lsn: "0/16B3748".into(),
            });
        }
        Kind::Approval => {
            e.approval = Some(ApprovalTransition {
                name: "features-db-7f3a9c".into(),
                state: "Approved".into(),
                justification: Some("quarterly churn model".into()),
                estimate: Some(Estimate { rows: Some(1840) }),
                decisions: vec![ApprovalDecision {
                    verdict: "Approve".into(),
                    user: "bob@example.com".into(),
                    groups: vec!["data-stewards".into()],
                    comment: Some("ok for Q4".into()),
                    at: ts,
                }],
                waited_ms: Some(93_000.5),
            });
        }
        Kind::SessionEnd => {
            e.result = Some(StatementResult {
                ms: 5_000.0,
                ..StatementResult::default()
            });
        }
        _ => {}
    }
    e
}

fn kind_for(n: usize) -> Kind {
    match n % 50 {
        0 => Kind::SessionStart,
        49 => Kind::SessionEnd,
        25 => Kind::Approval,
        _ if n == 1 => Kind::PolicyLoaded,
        _ => Kind::Statement,
    }
}

/// `EVENTS` events, the first half 20 ms apart and the rest 100 ms apart, with the default
/// interval (so both count- and time-driven checkpoints occur), sealed at close, plus `tail`
/// events after that (a crash's unsealed tail).
fn generate(key: Option<SigningKey>, tail: usize) -> Vec<String> {
    let mut trail = Trail::new("ml/trainer-6d9f/features", Interval::DEFAULT, key, t0()).unwrap();
    let mut lines = Vec::new();
    let mut ms = 0;
    for n in 0..EVENTS {
        ms += if n < EVENTS / 2 { 20 } else { 100 };
        lines.extend(
            trail
                .append(sample(kind_for(n), at(ms), n), at(ms))
                .unwrap(),
        );
    }
    lines.extend(trail.close(at(ms)).unwrap());
    for n in 0..tail {
        ms += 100;
        lines.extend(
            trail
                .append(sample(Kind::Statement, at(ms), n), at(ms))
                .unwrap(),
        );
    }
    lines
}

/// Splits lines into rotated files (oldest first): `audit.jsonl.2`, `audit.jsonl.1`,
/// `audit.jsonl`, as [`files`] names them.
fn split(lines: &[String], cuts: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&lines.len())) {
        let mut text = String::new();
        for l in &lines[start..cut] {
            text.push_str(l);
            text.push('\n');
        }
        out.push(text);
        start = cut;
    }
    out
}

fn names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match n - 1 - i {
            0 => "audit.jsonl".to_string(),
            k => format!("audit.jsonl.{k}"),
        })
        .collect()
}

fn verify(files: &[String], options: &Options) -> Report {
    let names = names(files.len());
    // Given newest first, as a shell glob might: order must not matter.
    let logs: Vec<(&str, &[u8])> = names
        .iter()
        .zip(files)
        .rev()
        .map(|(n, f)| (n.as_str(), f.as_bytes()))
        .collect();
    verify_bytes(&logs, options)
}

fn verify_one(lines: &[String], options: &Options) -> Report {
    verify(&split(lines, &[]), options)
}

/// The byte offset of line `i` in a single file made of `lines`.
fn offset(lines: &[String], i: usize) -> u64 {
    lines[..i].iter().map(|l| l.len() as u64 + 1).sum()
}

fn seq_of(line: &str) -> u64 {
    frame(line.as_bytes()).unwrap().seq
}

/// The kind, read from its fixed place right after the hash (parsing whole events in a
/// debug build costs more than the verification under test).
fn kind_of(line: &str) -> Kind {
    let rest = &line[line.find("\",\"kind\":\"").unwrap() + 10..];
    let name = &rest[..rest.find('"').unwrap()];
    Kind::ALL.into_iter().find(|k| k.as_str() == name).unwrap()
}

/// The signed log, generated once: without and with a 37-event unsealed tail.
fn signed(tail: usize) -> Vec<String> {
    static PLAIN: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    static TAIL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    match tail {
        0 => PLAIN.get_or_init(|| generate(Some(key()), 0)).clone(),
        37 => TAIL.get_or_init(|| generate(Some(key()), 37)).clone(),
        _ => generate(Some(key()), tail),
    }
}

/// The index of a statement line somewhere in the middle of the log.
fn middle_statement(lines: &[String]) -> usize {
    (lines.len() / 2..)
        .find(|&i| {
            kind_of(&lines[i]) == Kind::Statement && kind_of(&lines[i + 1]) == Kind::Statement
        })
        .unwrap()
}

/// Re-seals lines `from..` on top of line `from - 1`, as someone who can compute hashes but
/// has no key would, after `edit` changed them; checkpoints are made to name their new head.
fn reseal(lines: &mut [String], from: usize, mut edit: impl FnMut(usize, &mut Event)) {
    let head = if from == 0 {
        Head::genesis()
    } else {
        let f = frame(lines[from - 1].as_bytes()).unwrap();
        Head {
            seq: f.seq,
            hash: f.hash.to_string(),
        }
    };
    let mut chain = Chain::resume(head);
    for (i, line) in lines.iter_mut().enumerate().skip(from) {
        let mut e: Event = serde_json::from_str(line).unwrap();
        edit(i, &mut e);
        let head = chain.head().clone();
        if let Some(cp) = e.checkpoint.as_mut() {
            cp.head_seq = head.seq;
            cp.head = head.hash.clone();
        }
        *line = chain.seal(&mut e).unwrap();
    }
}

fn kinds(report: &Report) -> Vec<ProblemKind> {
    report.problems.iter().map(|p| p.kind).collect()
}

fn assert_first_broken(report: &Report, kind: ProblemKind, seq: u64, file: &str, offset: u64) {
    let p = report.first_broken.as_ref().expect("a first broken place");
    assert_eq!(
        (p.kind, p.seq, p.file.as_deref(), p.offset),
        (kind, Some(seq), Some(file), Some(offset)),
        "{}",
        report.to_text()
    );
}

#[test]
fn a_generated_log_verifies_valid_across_rotation() {
    let lines = signed(37);
    assert!(lines.len() > EVENTS + 3);
    let files = split(&lines, &[1000, 2200]);
    let report = verify(&files, &with_key());
    assert!(report.valid, "{}", report.to_text());
    assert_eq!(report.result, "valid");
    assert_eq!(report.files.len(), 3);
    assert_eq!(report.files[0].path, "audit.jsonl.2");
    assert!(report.files.iter().all(|f| f.status == "valid"));
    // Checkpoints after 1000 events, then every 60 s, and at close.
    assert!(report.segments.len() >= 4, "{}", report.segments.len());
    assert!(
        report
            .segments
            .iter()
            .all(|s| s.valid && s.signature == SignatureStatus::Verified)
    );
    assert_eq!(report.signatures.verified, report.segments.len() as u64);
    let tail = report.unsealed_tail.as_ref().unwrap();
    assert_eq!((tail.events, tail.valid), (37, true));
    assert_eq!(tail.to_seq, lines.len() as u64);
    assert_eq!(report.coverage.first_seq, Some(1));
    assert!(report.coverage.from_genesis);
    assert_eq!(report.streams, ["ml/trainer-6d9f/features"]);
    assert!(report.first_broken.is_none());
    let text = report.to_text();
    assert!(text.contains("3/3 files valid"), "{text}");
    assert!(text.contains("Result: valid"), "{text}");
    assert!(text.contains("Unsealed tail seq"), "{text}");
    // The JSON report is JSON.
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(json["result"], "valid");
    assert_eq!(json["segments"][0]["signature"], "verified");
}

#[test]
fn without_the_key_signatures_are_not_checked_and_said_so() {
    let lines = signed(0);
    let report = verify_one(&lines, &Options::default());
    assert!(report.valid);
    assert!(!report.signatures.checked);
    assert!(
        report
            .segments
            .iter()
            .all(|s| s.signature == SignatureStatus::NotChecked)
    );
    assert!(report.to_text().contains("Signatures: NOT checked"));
}

#[test]
fn an_edited_field_is_named_with_its_seq_and_offset() {
    let mut lines = signed(0);
    let i = middle_statement(&lines);
    lines[i] = lines[i].replace("\"rows\":1", "\"rows\":9");
    let report = verify_one(&lines, &with_key());
    assert!(!report.valid);
    assert_eq!(kinds(&report), [ProblemKind::Edited]);
    assert_first_broken(
        &report,
        ProblemKind::Edited,
        seq_of(&lines[i]),
        "audit.jsonl",
        offset(&lines, i),
    );
    // Only the segment holding it is invalid; the file is too.
    let bad: Vec<_> = report.segments.iter().filter(|s| !s.valid).collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].status, "INVALID: edited");
    assert!(bad[0].from_seq <= seq_of(&lines[i]) && seq_of(&lines[i]) <= bad[0].to_seq);
    assert_eq!(report.files[0].status, "INVALID: edited");
    assert!(report.to_text().contains("Result: INVALID"));
}

#[test]
fn an_event_rewritten_with_a_fresh_hash_is_edited() {
    let mut lines = signed(0);
    let i = middle_statement(&lines);
    // Re-seal just that line: its own hash holds, its successor no longer chains to it.
    let mut copy = lines[..=i].to_vec();
    reseal(&mut copy, i, |_, e| {
        e.statement.as_mut().unwrap().read = vec!["public.nothing".into()]
    });
    lines[i] = copy[i].clone();
    let report = verify_one(&lines, &with_key());
    assert_eq!(kinds(&report), [ProblemKind::Edited]);
    assert_first_broken(
        &report,
        ProblemKind::Edited,
        seq_of(&lines[i]),
        "audit.jsonl",
        offset(&lines, i),
    );
}

#[test]
fn a_deleted_event_is_named() {
    let mut lines = signed(0);
    let i = middle_statement(&lines);
    let seq = seq_of(&lines[i]);
    lines.remove(i);
    let report = verify_one(&lines, &with_key());
    assert_eq!(kinds(&report), [ProblemKind::Deleted]);
    // The hole shows at the line after it, which now sits where the deleted one was.
    assert_first_broken(
        &report,
        ProblemKind::Deleted,
        seq,
        "audit.jsonl",
        offset(&lines, i),
    );
    assert_eq!(report.gaps.len(), 1);
    assert_eq!((report.gaps[0].from_seq, report.gaps[0].to_seq), (seq, seq));
}

#[test]
fn an_inserted_event_is_named() {
    let mut lines = signed(0);
    let i = middle_statement(&lines);
    // A forgery chained properly onto line i, placed before the real successor.
    let f = frame(lines[i].as_bytes()).unwrap();
    let (seq, hash) = (f.seq, f.hash.to_string());
    let mut chain = Chain::resume(Head { seq, hash });
    let forged = chain.seal(&mut sample(Kind::Statement, at(1), 3)).unwrap();
    lines.insert(i + 1, forged);
    let report = verify_one(&lines, &with_key());
    assert_eq!(
        kinds(&report),
        [ProblemKind::Inserted],
        "{}",
        report.to_text()
    );
    assert_first_broken(
        &report,
        ProblemKind::Inserted,
        seq + 1,
        "audit.jsonl",
        offset(&lines, i + 1),
    );

    // A copy of an earlier line.
    let mut lines = signed(0);
    let copy = lines[10].clone();
    lines.insert(i, copy);
    let report = verify_one(&lines, &with_key());
    assert_eq!(
        kinds(&report),
        [ProblemKind::Inserted],
        "{}",
        report.to_text()
    );
    assert_first_broken(
        &report,
        ProblemKind::Inserted,
        seq_of(&lines[i - 1]) + 1,
        "audit.jsonl",
        offset(&lines, i),
    );

    // A line of junk that claims a sequence number of its own.
    let mut lines = signed(0);
    let mut junk = Chain::resume(Head {
        seq: 99,
        hash: format!("sha256:{}", "e".repeat(64)),
    });
    let junk = junk.seal(&mut sample(Kind::Statement, at(1), 3)).unwrap();
    lines.insert(i, junk);
    let report = verify_one(&lines, &with_key());
    assert_eq!(
        kinds(&report),
        [ProblemKind::Inserted],
        "{}",
        report.to_text()
    );
}

#[test]
fn swapped_events_are_reordered() {
    let mut lines = signed(0);
    let i = middle_statement(&lines);
    let seq = seq_of(&lines[i]);
    lines.swap(i, i + 1);
    let report = verify_one(&lines, &with_key());
    assert_eq!(
        kinds(&report),
        [ProblemKind::Reordered],
        "{}",
        report.to_text()
    );
    assert_first_broken(
        &report,
        ProblemKind::Reordered,
        seq,
        "audit.jsonl",
        offset(&lines, i),
    );

    // Two events far apart.
    let mut lines = signed(0);
    lines.swap(i, i + 100);
    let report = verify_one(&lines, &with_key());
    assert!(!report.valid);
    assert!(
        kinds(&report).iter().all(|k| *k == ProblemKind::Reordered),
        "{}",
        report.to_text()
    );
    assert_first_broken(
        &report,
        ProblemKind::Reordered,
        seq,
        "audit.jsonl",
        offset(&lines, i),
    );
}

#[test]
fn a_crash_mid_line_is_an_unsealed_tail_not_tampering() {
    let lines = signed(37);
    let mut files = split(&lines, &[1500]);
    // Cut the live file in the middle of its last line.
    let newest = files.last_mut().unwrap();
    newest.truncate(newest.len() - 40);
    let report = verify(&files, &with_key());
    assert!(report.valid, "{}", report.to_text());
    assert_eq!(report.torn_lines.len(), 1);
    assert!(report.torn_lines[0].r#final);
    assert_eq!(report.torn_lines[0].file, "audit.jsonl");
    assert_eq!(report.unsealed_tail.as_ref().unwrap().events, 36);
    assert!(report.to_text().contains("Torn line: audit.jsonl"));
}

#[test]
fn a_restarted_writer_continues_the_chain_across_a_torn_line() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("audit.jsonl");
    let lines = generate(Some(key()), 20);
    let files = split(&lines, &[1200]);
    std::fs::write(rotated_path(&base, 1), &files[0]).unwrap();
    // The live file ends in a torn write.
    let live = &files[1][..files[1].len() - 25];
    std::fs::write(&base, live).unwrap();
    // What the file sink does on start: recover, terminate the fragment, go on.
    let recovery = recover(&base).unwrap();
    let torn = recovery.torn.clone().unwrap();
    assert_eq!(torn.offset + torn.len, live.len() as u64);
    assert_eq!(recovery.head.seq, lines.len() as u64 - 1);
    let restart = at(10_000_000);
    let mut trail = Trail::resume(
        "ml/trainer-6d9f/features",
        Interval::DEFAULT,
        Some(key()),
        &recovery,
        restart,
    )
    .unwrap();
    let mut text = String::from(live);
    text.push('\n');
    for n in 0..5 {
        for line in trail
            .append(sample(Kind::Statement, restart, n), restart)
            .unwrap()
        {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text.push_str(&trail.close(restart).unwrap().unwrap());
    text.push('\n');
    std::fs::write(&base, &text).unwrap();
    let report = verify_files(&[base.clone(), rotated_path(&base, 1)], &with_key()).unwrap();
    assert!(report.valid, "{}", report.to_text());
    assert_eq!(report.torn_lines.len(), 1);
    assert!(!report.torn_lines[0].r#final);
    assert_eq!(report.torn_lines[0].offset, torn.offset);
    // The restart sealed the crash's tail first: nothing is unsealed now.
    assert!(report.unsealed_tail.is_none());
    assert_eq!(
        report.files[0].path,
        rotated_path(&base, 1).display().to_string()
    );
}

#[test]
fn truncating_at_a_line_boundary() {
    let lines = signed(37);
    // Within the unsealed tail: indistinguishable from a crash, and reported as a tail.
    let report = verify_one(&lines[..lines.len() - 10], &with_key());
    assert!(report.valid, "{}", report.to_text());
    assert_eq!(report.unsealed_tail.as_ref().unwrap().events, 27);

    // Back into sealed events of the newest file: the remaining bytes are consistent, but
    // the log no longer covers the time it should, which --until asks about.
    let last_ts = serde_json::from_str::<Event>(lines.last().unwrap())
        .unwrap()
        .ts;
    let cut = lines.len() - 700;
    let until = Options {
        until: Some(last_ts),
        ..with_key()
    };
    let report = verify_one(&lines[..cut], &until);
    assert_eq!(
        kinds(&report),
        [ProblemKind::NotCovered],
        "{}",
        report.to_text()
    );
    assert!(report.coverage.status.starts_with("INVALID: not covered"));
    // The untouched log covers the same request up to its last checkpoint.
    let sealed = lines
        .iter()
        .rev()
        .find(|l| kind_of(l) == Kind::Checkpoint)
        .unwrap();
    let sealed_ts = serde_json::from_str::<Event>(sealed).unwrap().ts;
    let to_seal = Options {
        until: Some(sealed_ts),
        ..with_key()
    };
    assert!(verify_one(&lines, &to_seal).valid);
    assert!(!verify_one(&lines, &until).valid, "the tail is not sealed");

    // A rotated file cut at a line boundary: the next file does not chain on.
    let mut files = split(&lines, &[1000, 2000]);
    let middle = &files[1];
    let keep: usize = middle.split_inclusive('\n').take(900).map(str::len).sum();
    files[1].truncate(keep);
    let report = verify(&files, &with_key());
    assert_eq!(
        kinds(&report),
        [ProblemKind::Deleted],
        "{}",
        report.to_text()
    );
    assert_first_broken(
        &report,
        ProblemKind::Deleted,
        seq_of(&lines[1900]),
        "audit.jsonl",
        0,
    );
    assert_eq!(report.files[1].status, "valid");
    assert_eq!(report.files[2].status, "INVALID: deleted");
    assert_eq!(report.gaps[0].after_file.as_deref(), Some("audit.jsonl.1"));

    // A rotated file cut mid-line.
    let mut files = split(&lines, &[1000, 2000]);
    let cut_at = keep + 30;
    files[1].truncate(cut_at);
    let report = verify(&files, &with_key());
    assert_eq!(
        kinds(&report),
        [ProblemKind::Truncated],
        "{}",
        report.to_text()
    );
    assert_first_broken(
        &report,
        ProblemKind::Truncated,
        seq_of(&lines[1900]),
        "audit.jsonl.1",
        keep as u64,
    );
}

#[test]
fn a_deleted_rotated_file_is_a_gap() {
    let lines = signed(0);
    let mut files = split(&lines, &[1000, 2000]);
    files.remove(1);
    let names = ["audit.jsonl.2", "audit.jsonl"];
    let logs: Vec<(&str, &[u8])> = names
        .iter()
        .zip(&files)
        .map(|(n, f)| (*n, f.as_bytes()))
        .collect();
    let report = verify_bytes(&logs, &with_key());
    assert_eq!(
        kinds(&report),
        [ProblemKind::Deleted],
        "{}",
        report.to_text()
    );
    assert_eq!(report.gaps.len(), 1);
    let gap = &report.gaps[0];
    assert_eq!((gap.from_seq, gap.to_seq), (1001, 2000));
    assert_eq!(gap.after_file.as_deref(), Some("audit.jsonl.2"));
    assert_eq!(gap.before_file.as_deref(), Some("audit.jsonl"));
    assert_first_broken(&report, ProblemKind::Deleted, 1001, "audit.jsonl", 0);
    assert!(report.to_text().contains("Gap: seq 1001 to 2000 missing"));
}

#[test]
fn a_log_rewritten_without_the_key_fails_with_it() {
    let original = signed(0);
    // A fresh chain, no key: unsigned checkpoints.
    let fresh = generate(None, 0);
    let report = verify_one(&fresh, &with_key());
    assert!(!report.valid);
    assert!(kinds(&report).iter().all(|k| *k == ProblemKind::Unsigned));
    assert_eq!(report.signatures.unsigned, report.segments.len() as u64);
    // Without --public-key it passes: the documented limit.
    assert!(verify_one(&fresh, &Options::default()).valid);

    // Signed with another key.
    let forged = generate(Some(other_key()), 0);
    let report = verify_one(&forged, &with_key());
    assert!(kinds(&report).iter().all(|k| *k == ProblemKind::UnknownKey));
    assert!(!report.segments.is_empty());
    assert!(
        report
            .segments
            .iter()
            .all(|s| s.signature == SignatureStatus::UnknownKey)
    );
    // Trusting both keys (a rotation) accepts it.
    let both = Options {
        keys: vec![key().public_key().clone(), other_key().public_key().clone()],
        ..Options::default()
    };
    assert!(verify_one(&forged, &both).valid);

    // Rewritten from one event on, every hash recomputed, the original signatures kept:
    // the chain holds, the signatures do not.
    let mut rewritten = original.clone();
    let i = middle_statement(&rewritten);
    reseal(&mut rewritten, i, |n, e| {
        if n == i {
            e.identity.as_mut().unwrap().db_user = "someone-else".into();
        }
    });
    let report = verify_one(&rewritten, &with_key());
    assert!(!report.valid);
    assert!(
        kinds(&report)
            .iter()
            .all(|k| *k == ProblemKind::BadSignature)
    );
    let first_cp = (i..)
        .find(|&n| kind_of(&rewritten[n]) == Kind::Checkpoint)
        .unwrap();
    assert_first_broken(
        &report,
        ProblemKind::BadSignature,
        seq_of(&rewritten[first_cp]),
        "audit.jsonl",
        offset(&rewritten, first_cp),
    );
    // Segments before the rewrite still verify.
    assert_eq!(report.segments[0].signature, SignatureStatus::Verified);

    // No checkpoint at all.
    let bare: Vec<String> = fresh
        .iter()
        .filter(|l| kind_of(l) != Kind::Checkpoint)
        .cloned()
        .collect();
    let mut bare = bare;
    reseal(&mut bare, 0, |_, _| {});
    let report = verify_one(&bare, &with_key());
    assert_eq!(kinds(&report), [ProblemKind::Unsigned]);
    assert!(report.problems[0].message.contains("no checkpoint"));
}

#[test]
fn a_removed_checkpoint_shows_in_an_overlong_tail() {
    let lines = signed(0);
    // Drop the last three checkpoints and re-seal what follows the earlier one: no chain
    // break, but more events follow the last remaining checkpoint than its writer allows.
    let cps: Vec<usize> = (0..lines.len())
        .filter(|&i| kind_of(&lines[i]) == Kind::Checkpoint)
        .collect();
    let keep_cp = cps[cps.len() - 4];
    let mut kept: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| *i <= keep_cp || kind_of(l) != Kind::Checkpoint)
        .map(|(_, l)| l.clone())
        .collect();
    reseal(&mut kept, keep_cp + 1, |_, _| {});
    let report = verify_one(&kept, &with_key());
    assert_eq!(
        kinds(&report),
        [ProblemKind::Deleted],
        "{}",
        report.to_text()
    );
    assert!(
        report.problems[0]
            .message
            .contains("a checkpoint is missing")
    );
    assert!(!report.unsealed_tail.as_ref().unwrap().valid);
}

#[test]
fn coverage_against_since_and_until() {
    let lines = signed(0);
    let files = split(&lines, &[1000]);
    // From the stream's start, any --since is covered.
    let end = serde_json::from_str::<Event>(lines.last().unwrap())
        .unwrap()
        .ts;
    let early = Options {
        since: Some(t0()),
        until: Some(end),
        ..with_key()
    };
    let report = verify(&files, &early);
    assert!(report.valid, "{}", report.to_text());
    assert_eq!(report.coverage.status, "valid");
    // Without the oldest file, the log starts mid-stream, after --since.
    let report = verify_bytes(&[("audit.jsonl", files[1].as_bytes())], &early);
    assert_eq!(kinds(&report), [ProblemKind::NotCovered]);
    assert!(!report.coverage.from_genesis);
    assert!(
        report
            .to_text()
            .contains("Requested range: INVALID: not covered")
    );
}

#[test]
fn unreadable_lines_inside_the_chain_are_edits() {
    let mut lines = signed(0);
    let i = middle_statement(&lines);
    let seq = seq_of(&lines[i]);
    lines[i] = "this line was an event".into();
    let report = verify_one(&lines, &with_key());
    assert_eq!(
        kinds(&report),
        [ProblemKind::Edited],
        "{}",
        report.to_text()
    );
    assert_first_broken(
        &report,
        ProblemKind::Edited,
        seq,
        "audit.jsonl",
        offset(&lines, i),
    );
}

#[test]
fn every_event_kind_validates_against_the_schema() {
    let schema = event_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let lines = signed(0);
    let mut seen = std::collections::HashSet::new();
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{line}: {errors:?}");
        seen.insert(kind_of(line));
    }
    assert_eq!(seen.len(), Kind::ALL.len(), "{seen:?}");
    // An unsigned checkpoint too.
    let mut unsigned =
        super::checkpoint::build("s", Interval::DEFAULT, 0, super::GENESIS, t0(), None).unwrap();
    let line = Chain::new().seal(&mut unsigned).unwrap();
    assert!(
        validator.is_valid(&serde_json::from_str(&line).unwrap()),
        "{line}"
    );
    // And the schema says no to what is not an event.
    let statement = lines
        .iter()
        .find(|l| kind_of(l) == Kind::Statement)
        .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(statement).unwrap();
    v.as_object_mut().unwrap().remove("decision");
    assert!(!validator.is_valid(&v), "a statement without its decision");
    let mut v: serde_json::Value = serde_json::from_str(statement).unwrap();
    v["kind"] = "select".into();
    assert!(!validator.is_valid(&v));
    let mut v: serde_json::Value = serde_json::from_str(statement).unwrap();
    v["ts"] = "2026-11-26T05:00:00Z".into();
    assert!(!validator.is_valid(&v));
    let mut v: serde_json::Value = serde_json::from_str(statement).unwrap();
    v["checkpoint"] = serde_json::from_str::<serde_json::Value>(
        lines
            .iter()
            .find(|l| kind_of(l) == Kind::Checkpoint)
            .unwrap(),
    )
    .unwrap()["checkpoint"]
        .clone();
    assert!(!validator.is_valid(&v), "a checkpoint part on a statement");
}

#[test]
fn events_look_like_the_spec_example() {
    let mut e = sample(Kind::Statement, at(123), 1);
    let mut chain = Chain::new();
    let line = chain.seal(&mut e).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    // serde_json's map is sorted; the line itself keeps the SPEC's order.
    assert!(keys.contains(&"dataVersion"));
    let order = [
        "ts",
        "seq",
        "prev",
        "hash",
        "kind",
        "session",
        "policy",
        "identity",
        "database",
        "statement",
        "decision",
        "result",
        "dataVersion",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| line.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{line}");
    assert_eq!(v["identity"]["user"], serde_json::Value::Null);
    assert_eq!(v["identity"]["serviceAccount"], "ml/trainer");
    assert_eq!(v["identity"]["authenticatedBy"], "serviceAccount");
    assert_eq!(v["decision"]["rule"], serde_json::Value::Null);
    assert_eq!(v["decision"]["approval"], serde_json::Value::Null);
    assert_eq!(v["result"]["error"], serde_json::Value::Null);
    assert_eq!(v["statement"]["operations"][0], "Select");
    assert_eq!(v["dataVersion"]["lsn"], "0/16B3748");
    assert_eq!(v["ts"], "2026-11-26T05:00:00.123000Z");
    assert!(v.get("approval").is_none() && v.get("checkpoint").is_none());
    // A multi-statement Query's index appears only when there is one.
    assert!(v["statement"].get("index").is_none());
    let _ = Recovery::default();
}

#[test]
fn a_deleted_checkpoint_and_a_forged_signature() {
    let lines = signed(0);
    let cps: Vec<usize> = (0..lines.len())
        .filter(|&i| kind_of(&lines[i]) == Kind::Checkpoint)
        .collect();
    // A checkpoint in the middle deleted: its seq is missing, the chain says so.
    let mut gone = lines.clone();
    let cp = cps[1];
    gone.remove(cp);
    let report = verify_one(&gone, &with_key());
    assert_eq!(
        kinds(&report),
        [ProblemKind::Deleted],
        "{}",
        report.to_text()
    );
    assert_first_broken(
        &report,
        ProblemKind::Deleted,
        seq_of(&lines[cp]),
        "audit.jsonl",
        offset(&gone, cp),
    );
    assert_eq!(report.segments.len(), cps.len() - 1);

    // A signature replaced and everything after re-sealed: the chain holds, the seal not.
    let mut forged = lines.clone();
    reseal(&mut forged, cp, |n, e| {
        if n == cp {
            let c = e.checkpoint.as_mut().unwrap();
            c.signature = Some("00".repeat(64));
        }
    });
    let report = verify_one(&forged, &with_key());
    assert!(!report.valid);
    assert!(
        kinds(&report)
            .iter()
            .all(|k| *k == ProblemKind::BadSignature),
        "{}",
        report.to_text()
    );
    assert_first_broken(
        &report,
        ProblemKind::BadSignature,
        seq_of(&lines[cp]),
        "audit.jsonl",
        offset(&lines, cp),
    );
}
