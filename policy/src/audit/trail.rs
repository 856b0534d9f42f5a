//! The writer's side: a [`Chain`] plus the checkpoint schedule, turning events into the
//! lines a sink appends. It does no I/O and reads no clock — the caller passes `now` — so
//! the sidecar's writer task owns the timing and the tests own time.
//!
//! The schedule ([`Interval`], default 1000 events / 60 s): a checkpoint right after the
//! N-th event since the last one, and before any event or on [`Trail::tick`] once the period
//! has passed since the last one — also when nothing happened, so a live writer seals at
//! least once a period (the heartbeat a verifier's coverage check relies on). After a restart
//! ([`Trail::resume`]) the first thing written is a checkpoint sealing whatever the crash
//! left unsealed.

use super::chain::{Chain, ChainError, Head};
use super::checkpoint::{self, CheckpointError};
use super::event::{Event, Interval, Kind};
use super::key::SigningKey;
use super::recover::Recovery;
use super::timestamp::Timestamp;

/// Why the trail could not produce a line.
#[derive(Debug, thiserror::Error)]
pub enum TrailError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("a {0} event is written by the trail itself, not appended")]
    Reserved(&'static str),
}

/// One stream's writer state.
#[derive(Debug)]
pub struct Trail {
    chain: Chain,
    stream: String,
    interval: Interval,
    key: Option<SigningKey>,
    /// Events sealed since the last checkpoint.
    unsealed: u64,
    /// When the last checkpoint was written (or the trail started).
    last_checkpoint: Timestamp,
    /// A checkpoint is owed before anything else (after a resume).
    seal_first: bool,
}

impl Trail {
    /// A new stream. `stream` names it in every checkpoint (e.g. `namespace/pod/database`).
    pub fn new(
        stream: &str,
        interval: Interval,
        key: Option<SigningKey>,
        now: Timestamp,
    ) -> Result<Trail, TrailError> {
        checkpoint::check_stream(stream)?;
        checkpoint::check_interval(&interval)?;
        Ok(Trail {
            chain: Chain::new(),
            stream: stream.to_string(),
            interval,
            key,
            unsealed: 0,
            last_checkpoint: now,
            seal_first: false,
        })
    }

    /// Continues a stream from what [`super::recover::recover`] found. Unless the log ended
    /// on a checkpoint, the next line written is one.
    pub fn resume(
        stream: &str,
        interval: Interval,
        key: Option<SigningKey>,
        recovery: &Recovery,
        now: Timestamp,
    ) -> Result<Trail, TrailError> {
        let mut trail = Trail::new(stream, interval, key, now)?;
        trail.chain = Chain::resume(recovery.head.clone());
        trail.seal_first = recovery.head.seq > 0 && recovery.last_kind != Some(Kind::Checkpoint);
        Ok(trail)
    }

    /// The last sealed event.
    pub fn head(&self) -> &Head {
        self.chain.head()
    }

    /// Seals `event` and returns the lines to append, in order: a checkpoint first if one
    /// is owed, the event, and a checkpoint after it if it completes an interval's count.
    pub fn append(&mut self, mut event: Event, now: Timestamp) -> Result<Vec<String>, TrailError> {
        if event.kind == Kind::Checkpoint {
            return Err(TrailError::Reserved("checkpoint"));
        }
        let mut lines = Vec::with_capacity(2);
        if self.seal_first || self.period_over(now) {
            lines.push(self.checkpoint(now)?);
        }
        lines.push(self.chain.seal(&mut event)?);
        self.unsealed += 1;
        if self.unsealed >= self.interval.events {
            lines.push(self.checkpoint(now)?);
        }
        Ok(lines)
    }

    /// The heartbeat: a checkpoint if one is owed or the period has passed, else nothing.
    /// Call it at least every few seconds when idle.
    pub fn tick(&mut self, now: Timestamp) -> Result<Option<String>, TrailError> {
        if self.seal_first || self.period_over(now) {
            return self.checkpoint(now).map(Some);
        }
        Ok(None)
    }

    /// On shutdown: seals what is unsealed, so a clean stop leaves no unsealed tail.
    pub fn close(&mut self, now: Timestamp) -> Result<Option<String>, TrailError> {
        if self.seal_first || self.unsealed > 0 {
            return self.checkpoint(now).map(Some);
        }
        Ok(None)
    }

    /// Writes a checkpoint now.
    pub fn checkpoint(&mut self, now: Timestamp) -> Result<String, TrailError> {
        let head = self.chain.head();
        let mut event = checkpoint::build(
            &self.stream,
            self.interval,
            head.seq,
            &head.hash,
            now,
            self.key.as_ref(),
        )?;
        let line = self.chain.seal(&mut event)?;
        self.unsealed = 0;
        self.last_checkpoint = now;
        self.seal_first = false;
        Ok(line)
    }

    fn period_over(&self, now: Timestamp) -> bool {
        now.since(&self.last_checkpoint) >= self.interval.period()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::frame;
    use std::time::Duration;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_micros(0)
            .unwrap()
            .add(Duration::from_secs(secs))
    }

    fn kinds(lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .map(|l| {
                let e: Event = serde_json::from_str(l).unwrap();
                e.kind.as_str().to_string()
            })
            .collect()
    }

    #[test]
    fn seals_by_count_by_time_and_when_idle() {
        let interval = Interval {
            events: 3,
            seconds: 60,
        };
        let mut trail = Trail::new("s", interval, None, at(0)).unwrap();
        let mut out = Vec::new();
        for i in 0..3 {
            out.extend(
                trail
                    .append(Event::new(Kind::Statement, at(i)), at(i))
                    .unwrap(),
            );
        }
        assert_eq!(
            kinds(&out),
            ["statement", "statement", "statement", "checkpoint"]
        );
        // One more event, then a minute passes: the next event is preceded by a seal.
        out = trail
            .append(Event::new(Kind::Statement, at(10)), at(10))
            .unwrap();
        assert_eq!(trail.tick(at(30)).unwrap(), None);
        out.extend(
            trail
                .append(Event::new(Kind::Statement, at(75)), at(75))
                .unwrap(),
        );
        assert_eq!(kinds(&out), ["statement", "checkpoint", "statement"]);
        // Idle: a heartbeat per period.
        let beat = trail.tick(at(136)).unwrap().unwrap();
        let cp: Event = serde_json::from_str(&beat).unwrap();
        let sealed = cp.checkpoint.unwrap();
        assert_eq!(sealed.head_seq, cp.seq - 1);
        assert_eq!(sealed.head, cp.prev);
        assert_eq!(trail.tick(at(137)).unwrap(), None);
        // Close seals only what is unsealed.
        assert_eq!(trail.close(at(138)).unwrap(), None);
        trail
            .append(Event::new(Kind::SessionEnd, at(139)), at(139))
            .unwrap();
        assert!(trail.close(at(140)).unwrap().is_some());
        assert!(
            trail
                .append(Event::new(Kind::Checkpoint, at(141)), at(141))
                .is_err()
        );
    }

    #[test]
    fn a_resumed_trail_seals_the_crash_tail_first() {
        let mut trail = Trail::new("s", Interval::DEFAULT, None, at(0)).unwrap();
        trail
            .append(Event::new(Kind::Statement, at(1)), at(1))
            .unwrap();
        let recovery = Recovery {
            head: trail.head().clone(),
            last_kind: Some(Kind::Statement),
            ..Recovery::default()
        };
        let mut resumed = Trail::resume("s", Interval::DEFAULT, None, &recovery, at(5)).unwrap();
        let out = resumed
            .append(Event::new(Kind::SessionStart, at(5)), at(5))
            .unwrap();
        assert_eq!(kinds(&out), ["checkpoint", "session_start"]);
        let f = frame(out[0].as_bytes()).unwrap();
        assert_eq!((f.seq, f.prev), (2, recovery.head.hash.as_str()));
    }
}
