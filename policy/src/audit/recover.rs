//! Finding where a stream stopped, so a restarted writer continues its chain.
//!
//! **Rotation naming** (what the file sink does and what this assumes): the live file is
//! the configured path, e.g. `audit.jsonl`; when it reaches its size limit it is renamed
//! `audit.jsonl.1` after `audit.jsonl.1` has become `audit.jsonl.2`, and so on (logrotate's
//! numbering: a higher number is older), and a new empty `audit.jsonl` is started. Rotation
//! happens only between complete lines, and the chain runs on across files: the first event
//! of `audit.jsonl` links to the last of `audit.jsonl.1`.
//!
//! **Recovery** reads backwards from the end of the live file to its last complete line
//! that is a sealed event; if the live file has none (just rotated, or only a torn line), it
//! looks in `audit.jsonl.1`, then `.2`. Bytes after the last newline are a **torn** line — a
//! write cut short by a crash — which is reported, not used. The sink then writes a newline
//! before its next line, so the fragment stays in the file as evidence, on a line of its own,
//! and the verifier sees the chain continue across it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::chain::{Head, frame};
use super::event::Kind;
use super::timestamp::Timestamp;

/// The rotated file number `n` of `base` (`n == 0` is `base` itself).
pub fn rotated_path(base: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return base.to_path_buf();
    }
    let mut name = base.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The stream's files that exist, newest first: `base`, `base.1`, `base.2`, … up to the
/// first number that is missing.
pub fn log_files(base: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if base.exists() {
        files.push(base.to_path_buf());
    }
    for n in 1.. {
        let path = rotated_path(base, n);
        if !path.exists() {
            break;
        }
        files.push(path);
    }
    files
}

/// What recovery found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The head to continue from (genesis when there is no event at all).
    pub head: Head,
    /// The kind of the last event (a checkpoint means nothing is left unsealed).
    pub last_kind: Option<Kind>,
    /// When the last event was written.
    pub last_ts: Option<Timestamp>,
    /// The file the last event is in.
    pub file: Option<PathBuf>,
    /// A torn final line in the live file: the sink writes `\n` before its next line.
    pub torn: Option<Span>,
    /// Complete lines after the last event that are not sealed events (torn fragments an
    /// earlier restart terminated, or damage); the verifier judges them.
    pub skipped: Vec<Span>,
}

/// A run of bytes in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub path: PathBuf,
    pub offset: u64,
    pub len: u64,
}

/// Why recovery failed: only I/O (damaged lines are skipped and reported, not fatal).
#[derive(Debug, thiserror::Error)]
#[error("reading {path}: {source}")]
pub struct RecoverError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Finds the head of the stream whose live file is `base` (see the module documentation).
pub fn recover(base: &Path) -> Result<Recovery, RecoverError> {
    let mut recovery = Recovery::default();
    for (i, path) in log_files(base).into_iter().enumerate() {
        let err = |source| RecoverError {
            path: path.clone(),
            source,
        };
        let mut file = File::open(&path).map_err(err)?;
        let found = last_event(&mut file, &path, i == 0, &mut recovery).map_err(err)?;
        if let Some((head, kind, ts)) = found {
            recovery.head = head;
            recovery.last_kind = Some(kind);
            recovery.last_ts = Some(ts);
            recovery.file = Some(path);
            return Ok(recovery);
        }
    }
    Ok(recovery)
}

/// The part of a line recovery needs.
#[derive(Deserialize)]
struct Envelope {
    kind: Kind,
}

const CHUNK: u64 = 64 * 1024;

/// Scans `file` backwards for its last sealed event, noting a torn end (if `live`) and the
/// unreadable complete lines passed over.
fn last_event(
    file: &mut File,
    path: &Path,
    live: bool,
    recovery: &mut Recovery,
) -> io::Result<Option<(Head, Kind, Timestamp)>> {
    let len = file.metadata()?.len();
    // `buf` holds the file's bytes from `pos` to `len`.
    let mut buf: Vec<u8> = Vec::new();
    let mut pos = len;
    // Reads one more chunk in front of `buf`; false at the start of the file.
    let mut more = |buf: &mut Vec<u8>, pos: &mut u64| -> io::Result<bool> {
        if *pos == 0 {
            return Ok(false);
        }
        let start = pos.saturating_sub(CHUNK);
        let mut chunk = vec![0; usize::try_from(*pos - start).unwrap_or(0)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(buf);
        *buf = chunk;
        *pos = start;
        Ok(true)
    };
    // Find the last newline: everything after it is a torn line.
    let mut end = loop {
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            break Some(pos + i as u64);
        }
        if !more(&mut buf, &mut pos)? {
            break None;
        }
    };
    let complete_end = end.map_or(0, |nl| nl + 1);
    if live && complete_end < len {
        recovery.torn = Some(Span {
            path: path.to_path_buf(),
            offset: complete_end,
            len: len - complete_end,
        });
    }
    // Walk complete lines backwards; `nl` is the newline ending the current line.
    while let Some(nl) = end {
        let start = loop {
            let rel_nl = (nl - pos) as usize;
            if let Some(i) = buf[..rel_nl].iter().rposition(|&b| b == b'\n') {
                break pos + i as u64 + 1;
            }
            if !more(&mut buf, &mut pos)? {
                break 0;
            }
        };
        let line = &buf[(start - pos) as usize..(nl - pos) as usize];
        if let Ok(f) = frame(line)
            && let Ok(env) = serde_json::from_slice::<Envelope>(line)
            && let Ok(ts) = Timestamp::parse_event(f.ts)
        {
            let head = Head {
                seq: f.seq,
                hash: f.hash.to_string(),
            };
            return Ok(Some((head, env.kind, ts)));
        }
        recovery.skipped.push(Span {
            path: path.to_path_buf(),
            offset: start,
            len: nl - start,
        });
        end = start.checked_sub(1);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::Chain;
    use crate::audit::event::Event;
    use std::io::Write;

    fn lines(chain: &mut Chain, n: usize) -> String {
        let mut out = String::new();
        for _ in 0..n {
            let mut e = Event::new(Kind::Statement, Timestamp::from_unix_micros(5).unwrap());
            e.session = Some("x".repeat(500));
            out.push_str(&chain.seal(&mut e).unwrap());
            out.push('\n');
        }
        out
    }

    #[test]
    fn names_rotated_files_like_logrotate() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let base = dir.join("audit.jsonl");
        assert_eq!(rotated_path(&base, 2), dir.join("audit.jsonl.2"));
        assert!(log_files(&base).is_empty());
        std::fs::write(&base, "").unwrap();
        std::fs::write(rotated_path(&base, 1), "").unwrap();
        std::fs::write(rotated_path(&base, 3), "").unwrap();
        assert_eq!(log_files(&base), vec![base.clone(), rotated_path(&base, 1)]);
    }

    #[test]
    fn recovers_the_head_past_a_torn_line_and_across_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("audit.jsonl");
        // Nothing yet: genesis.
        assert_eq!(recover(&base).unwrap(), Recovery::default());
        let mut chain = Chain::new();
        // Enough bytes to need several backwards chunks.
        std::fs::write(rotated_path(&base, 1), lines(&mut chain, 300)).unwrap();
        let head = chain.head().clone();
        // The live file holds only a torn line: the head is in the rotated file.
        std::fs::write(&base, "{\"ts\":\"2026-").unwrap();
        let r = recover(&base).unwrap();
        assert_eq!(r.head, head);
        assert_eq!(r.last_kind, Some(Kind::Statement));
        assert_eq!(r.file, Some(rotated_path(&base, 1)));
        assert_eq!(
            r.torn,
            Some(Span {
                path: base.clone(),
                offset: 0,
                len: 12
            })
        );
        // A restarted writer terminated the fragment and went on; then crashed mid-line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&base)
            .unwrap();
        f.write_all(b"\n").unwrap();
        f.write_all(lines(&mut chain, 2).as_bytes()).unwrap();
        f.write_all(b"{\"ts\":\"2026-11-26T05:00").unwrap();
        let r = recover(&base).unwrap();
        assert_eq!(&r.head, chain.head());
        assert_eq!(r.file, Some(base.clone()));
        assert_eq!(r.torn.as_ref().map(|t| t.len), Some(23));
        assert!(r.skipped.is_empty());
        // Restarted again, it terminated that fragment too and crashed before writing more:
        // the fragment is now a complete line, passed over and reported.
        f.write_all(b"\n").unwrap();
        drop(f);
        let r = recover(&base).unwrap();
        assert_eq!(&r.head, chain.head());
        assert_eq!(r.torn, None);
        assert_eq!(r.skipped.len(), 1);
        assert_eq!(r.skipped[0].len, 23);
    }
}
