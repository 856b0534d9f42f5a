//! `kubectl palisade audit …`: the commands' logic, so the plugin's binary only parses
//! arguments. The verification itself is `palisade_policy::audit::verify`.

use std::io::Write;
use std::path::PathBuf;

use palisade_policy::audit::{Options, PublicKey, Report, Timestamp, verify_files};

/// What `audit verify` prints after its options in `--help`: every word of its output.
pub const VERIFY_HELP: &str = "\
Output, per file (in chain order, whatever order they were given in) and per checkpoint
segment (the events a checkpoint seals since the previous one):
  valid            the chain is intact here and, with --public-key, every seal verifies
  INVALID: <why>   one or more of:
    edited         an event's content no longer matches its hash, an event was rewritten
                   with a new hash its successor does not chain to, or a line that held an
                   event cannot be read
    deleted        events are missing: a line, a run of lines, a whole rotated file, or a
                   checkpoint (the unsealed tail is longer than its writer allows)
    inserted       a line that is not part of the chain was added
    reordered      events are all there but out of chain order
    truncated      a file was cut in the middle of a line, and the events after it are gone
    bad signature  a checkpoint's signature by a trusted key does not hold: what it seals
                   was rewritten
    unknown key    a checkpoint is signed by a key not given with --public-key
    unsigned       --public-key was given, but a checkpoint (or the whole log) is not signed
    not covered    the log does not cover --since/--until: it starts mid-stream after
                   --since, or its last checkpoint is before --until
Also reported:
  first broken     the earliest sequence number and byte offset where the log is broken
  gap              a run of missing sequence numbers, with the files on either side
  unsealed tail    events after the last checkpoint: the chain is intact but not yet
                   sealed, as a live log or a crash leaves it; not tampering
  torn line        a line cut short by a crash; the chain continues across it, or it is the
                   newest file's unfinished last line
  signature not checked
                   no --public-key was given: the chain is verified, but a log rewritten
                   from scratch would pass; give the key to rule that out

Files: one stream's log, e.g. audit.jsonl audit.jsonl.1 audit.jsonl.2 (a higher number is
older). A log that begins at a later sequence number than 1 (older files rotated away) is
reported as starting mid-stream, not as broken.

Exit status: 0 valid, 1 anything invalid, 2 bad input (a missing file, a bad key file, a
bad time).";

/// Why `audit verify` could not run (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{path}: {message}")]
    KeyFile { path: String, message: String },
    #[error("--{flag}: {message}")]
    Time { flag: &'static str, message: String },
    #[error("--since {since} is after --until {until}")]
    Range { since: Timestamp, until: Timestamp },
    #[error(transparent)]
    Verify(#[from] palisade_policy::audit::VerifyError),
    #[error("writing the report: {0}")]
    Output(#[from] std::io::Error),
    #[error("serialising the report: {0}")]
    Json(#[from] serde_json::Error),
}

/// `audit verify`'s inputs.
#[derive(Clone, Debug, Default)]
pub struct VerifyRequest {
    pub files: Vec<PathBuf>,
    pub public_keys: Vec<PathBuf>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub json: bool,
}

/// Verifies, writes the report to `out`, and says whether the log is valid.
pub fn verify(request: &VerifyRequest, out: &mut impl Write) -> Result<bool, AuditError> {
    let mut keys = Vec::new();
    for path in &request.public_keys {
        let key_file = |message: String| AuditError::KeyFile {
            path: path.display().to_string(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| key_file(e.to_string()))?;
        keys.push(PublicKey::from_pem(&bytes).map_err(|e| key_file(e.to_string()))?);
    }
    let time = |flag: &'static str, text: &Option<String>| {
        text.as_deref()
            .map(|t| {
                Timestamp::parse_user(t).map_err(|e| AuditError::Time {
                    flag,
                    message: e.to_string(),
                })
            })
            .transpose()
    };
    let since = time("since", &request.since)?;
    let until = time("until", &request.until)?;
    if let (Some(since), Some(until)) = (since, until)
        && since > until
    {
        return Err(AuditError::Range { since, until });
    }
    let options = Options { keys, since, until };
    let report = verify_files(&request.files, &options)?;
    write_report(&report, request.json, out)?;
    Ok(report.valid)
}

fn write_report(report: &Report, json: bool, out: &mut impl Write) -> Result<(), AuditError> {
    if json {
        serde_json::to_writer_pretty(&mut *out, report)?;
        writeln!(out)?;
    } else {
        out.write_all(report.to_text().as_bytes())?;
    }
    Ok(())
}
