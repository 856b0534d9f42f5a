//! What a stage of the session's pipeline makes of one message. The relay frames bytes
//! and applies verdicts; the stages (governance, masking, …) decide them and know nothing
//! of the relay.

use bytes::Bytes;

/// What becomes of one message.
pub enum Verdict {
    Forward,
    Replace(Bytes),
    Discard,
    /// Send these bytes first and look at the message again once the session allows
    /// (the masking catalog refresh): the message stays where it is, unread.
    Defer(Bytes),
    /// Send these bytes back to the message's sender (the client) and keep the message
    /// where it is, unread, until the session releases it (a statement held for approval).
    /// Everything the client sends after it waits behind it.
    Hold(Bytes),
}
