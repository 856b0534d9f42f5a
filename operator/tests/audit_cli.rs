//! `kubectl palisade audit verify` as a user runs it: the real binary on a log written with
//! the audit trail's own writer, intact and tampered with.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use palisade_policy::audit::event::{Database, Identity, PolicyRef};
use palisade_policy::audit::{Event, Interval, Kind, SigningKey, Timestamp, Trail};

fn verify(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-palisade"))
        .arg("audit")
        .arg("verify")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A stream of 1500 events (session starts and ends, statements) with checkpoints signed by
/// `seed`'s key, split into a rotated file and the live one. Returns (rotated, live).
fn write_log(dir: &Path, seed: u8) -> (PathBuf, PathBuf) {
    let key = SigningKey::from_seed(&[seed; 32]).unwrap();
    let t0 = Timestamp::parse_user("2026-11-26T05:00:00Z").unwrap();
    let mut trail = Trail::new("ml/trainer-0/features", Interval::DEFAULT, Some(key), t0).unwrap();
    let mut lines = Vec::new();
    for n in 0..1500u64 {
        let now = t0.add(Duration::from_millis(50 * n));
        let kind = match n % 20 {
            0 => Kind::SessionStart,
            19 => Kind::SessionEnd,
            _ => Kind::Statement,
        };
        let mut e = Event::new(kind, now);
        e.session = Some(format!("s{}", n / 20));
        e.policy = Some(PolicyRef {
            namespace: "ml".into(),
            name: "features-db".into(),
            hash: "sha256:00".into(),
        });
        e.identity = Some(Identity {
            db_user: "trainer".into(),
            authenticated_by: "serviceAccount".into(),
            ..Identity::default()
        });
        e.database = Some(Database {
            host: "pg".into(),
            name: "features".into(),
        });
        lines.extend(trail.append(e, now).unwrap());
    }
    lines.extend(trail.close(t0.add(Duration::from_secs(75))).unwrap());
    let text = |ls: &[String]| ls.iter().map(|l| format!("{l}\n")).collect::<String>();
    let rotated = dir.join("audit.jsonl.1");
    let live = dir.join("audit.jsonl");
    std::fs::write(&rotated, text(&lines[..800])).unwrap();
    std::fs::write(&live, text(&lines[800..])).unwrap();
    (rotated, live)
}

fn public_key_file(dir: &Path, seed: u8) -> PathBuf {
    let key = SigningKey::from_seed(&[seed; 32]).unwrap();
    let path = dir.join(format!("key-{seed}.pub"));
    std::fs::write(&path, key.public_key().to_pem()).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn an_intact_log_is_valid_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (rotated, live) = write_log(dir.path(), 1);
    let key = public_key_file(dir.path(), 1);
    // Given newest first, as `audit.jsonl*` globs them.
    let out = verify(&[s(&live), s(&rotated), "--public-key", s(&key)]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("2/2 files valid"), "{text}");
    assert!(
        text.contains(&format!("File {}: valid (seq 1 to 800", s(&rotated))),
        "{text}"
    );
    assert!(text.contains("signature verified"), "{text}");
    assert!(text.contains("Result: valid"), "{text}");

    // A file named twice (a glob and a name) is read once.
    let out = verify(&[s(&live), s(&rotated), s(&live)]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // Without the key it still verifies the chain, and says what it did not check.
    let out = verify(&[s(&live), s(&rotated)]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("Signatures: NOT checked"));

    // -o json is one JSON document.
    let out = verify(&[
        s(&live),
        s(&rotated),
        "--public-key",
        s(&key),
        "--since",
        "2026-11-26",
        "--until",
        "2026-11-26T05:01:15Z",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["result"], "valid");
    assert_eq!(json["valid"], true);
    assert_eq!(json["files"][0]["path"], s(&rotated));
    assert_eq!(json["coverage"]["fromGenesis"], true);
    assert_eq!(json["coverage"]["status"], "valid");
    assert_eq!(json["signatures"]["checked"], true);
    assert!(json["segments"].as_array().unwrap().len() >= 2);
}

#[test]
fn tampering_exits_1_and_names_the_first_broken_event() {
    let dir = tempfile::tempdir().unwrap();
    let (rotated, live) = write_log(dir.path(), 1);
    let key = public_key_file(dir.path(), 1);
    // Edit one statement in the live file.
    let text = std::fs::read_to_string(&live).unwrap();
    let line = text.lines().nth(10).unwrap();
    let offset = text.find(line).unwrap();
    std::fs::write(
        &live,
        text.replacen(line, &line.replace("trainer", "trainee"), 1),
    )
    .unwrap();
    let out = verify(&[s(&rotated), s(&live), "--public-key", s(&key)]);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!("File {}: INVALID: edited", s(&live))),
        "{report}"
    );
    assert!(
        report.contains(&format!("File {}: valid", s(&rotated))),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "First broken: seq 811 in {} at byte {offset}",
            s(&live)
        )),
        "{report}"
    );
    assert!(report.contains("Result: INVALID"), "{report}");
    let out = verify(&[s(&rotated), s(&live), "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["firstBroken"]["kind"], "edited");
    assert_eq!(json["firstBroken"]["seq"], 811);
    assert_eq!(json["firstBroken"]["offset"], offset);

    // Only the live file of an intact log: it starts mid-stream, which is not tampering
    // (older files are rotated away), unless the range asked for begins earlier.
    let (_, live) = write_log(dir.path(), 1);
    let out = verify(&[s(&live), "--public-key", s(&key)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a log starting mid-stream is not broken"
    );
    let out = verify(&[
        s(&live),
        "--public-key",
        s(&key),
        "--since",
        "2026-11-26T05:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("not covered"), "{}", stdout(&out));
}

#[test]
fn a_log_signed_by_another_key_fails_with_the_right_key() {
    let dir = tempfile::tempdir().unwrap();
    let (rotated, live) = write_log(dir.path(), 2);
    let key = public_key_file(dir.path(), 1);
    let out = verify(&[s(&rotated), s(&live), "--public-key", s(&key)]);
    assert_eq!(out.status.code(), Some(1));
    let report = stdout(&out);
    assert!(report.contains("INVALID: unknown key"), "{report}");
    // Trusting both keys (a key rotation) accepts it.
    let other = public_key_file(dir.path(), 2);
    let out = verify(&[
        s(&rotated),
        s(&live),
        "--public-key",
        s(&key),
        "--public-key",
        s(&other),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn bad_input_gets_a_one_line_reason_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (rotated, live) = write_log(dir.path(), 1);
    let missing = dir.path().join("nope.jsonl");
    let private = dir.path().join("key.pem");
    std::fs::write(
        &private,
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEICG2w+O+wbfelXVWxfytfnk/LR/cP2C6VPlPEOfubqN6\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let garbage = dir.path().join("garbage.pub");
    std::fs::write(&garbage, "hello").unwrap();
    for (args, needle) in [
        (vec![s(&live), s(&missing)], "nope.jsonl"),
        (vec![s(&live), "--public-key", s(&missing)], "nope.jsonl"),
        (vec![s(&live), "--public-key", s(&private)], "private key"),
        (
            vec![s(&live), "--public-key", s(&garbage)],
            "BEGIN PUBLIC KEY",
        ),
        (vec![s(&live), "--since", "last tuesday"], "--since"),
        (vec![s(&live), "--until", "2026-13-40"], "--until"),
        (
            vec![s(&live), "--since", "2026-11-27", "--until", "2026-11-26"],
            "is after",
        ),
        (vec![s(&rotated), s(dir.path())], "Is a directory"),
    ] {
        let out = verify(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // No files at all is a usage error too.
    assert_eq!(verify(&[]).status.code(), Some(2));
}

#[test]
fn help_explains_every_output_word() {
    let out = verify(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for word in [
        "--public-key",
        "--since",
        "--until",
        "valid",
        "INVALID",
        "edited",
        "deleted",
        "inserted",
        "reordered",
        "truncated",
        "bad signature",
        "unknown key",
        "unsigned",
        "not covered",
        "first broken",
        "gap",
        "unsealed tail",
        "torn line",
        "signature not checked",
        "Exit status",
    ] {
        assert!(help.contains(word), "{word}: {help}");
    }
}
