//! The tamper-evident audit trail (SPEC §5): the event, the hash chain that links a
//! stream's events, the signed checkpoints that seal it, recovery of the chain after a
//! restart, and the verifier behind `kubectl palisade audit verify`.
//!
//! - [`event`]: the event as serde types, field for field as the SPEC shows; [`schema`]: its
//!   JSON Schema; [`timestamp`]: the one form `ts` is written in.
//! - [`chain`]: the canonical form, `hash` and `prev`, and sealing events into lines.
//! - [`checkpoint`] and [`key`]: what a checkpoint signs, with which key, and how the public
//!   key is published.
//! - [`trail`]: the writer's side — chain plus checkpoint schedule, no I/O.
//! - [`recover`]: where a stream's files stopped (reads files), and the rotation naming.
//! - [`verify`] and [`report`]: checking logs and saying what was found.
//!
//! Nothing here writes files or reads the clock on its own; the sidecar's sinks do that.

pub mod chain;
pub mod checkpoint;
pub mod event;
pub mod key;
pub mod recover;
pub mod report;
pub mod schema;
pub mod timestamp;
pub mod trail;
pub mod verify;

#[cfg(test)]
mod tests;

pub use chain::{Chain, GENESIS, Head};
pub use event::{Event, Interval, Kind};
pub use key::{KeyError, PublicKey, SigningKey};
pub use recover::{Recovery, recover};
pub use report::Report;
pub use timestamp::Timestamp;
pub use trail::Trail;
pub use verify::{Options, VerifyError, verify_bytes, verify_files};
