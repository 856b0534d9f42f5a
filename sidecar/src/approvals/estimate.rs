//! The `EXPLAIN` a held `UPDATE`, `DELETE` or `MERGE` is estimated with, run on the
//! session's own connection before the request is filed (so the plan is the one this
//! session, its search_path and its snapshot of the statistics, would get). Its answer is
//! the sidecar's: read here and dropped, like the catalog refresh's.

use bytes::{BufMut, Bytes, BytesMut};
use palisade_policy::approval::rows_touched;

use crate::protocol::backend;
use crate::protocol::frame::message;
use crate::protocol::frontend;
use crate::protocol::results::data_row_fields;
use crate::verdict::Verdict;

/// The sidecar's EXPLAIN in flight.
#[derive(Default)]
pub struct ExplainProbe {
    plan: String,
}

impl ExplainProbe {
    /// The Query message that sends `explain`.
    pub fn query(explain: &str) -> Bytes {
        let mut body = BytesMut::with_capacity(explain.len() + 1);
        body.put_slice(explain.as_bytes());
        body.put_u8(0);
        message(frontend::QUERY, &body)
    }

    /// One server message of the answer. `Some(estimate)` once it is complete (at its
    /// ReadyForQuery): the rows, or `None` when the server could not plan the statement
    /// (its error is the statement's to raise when it runs, not the EXPLAIN's).
    pub fn feed(&mut self, msg: &[u8]) -> (Verdict, Option<Option<u64>>) {
        match msg[0] {
            backend::DATA_ROW => {
                let plan = &mut self.plan;
                data_row_fields(msg, |i, field| {
                    if let (0, Some(text)) = (i, field) {
                        plan.push_str(&String::from_utf8_lossy(text));
                    }
                });
                (Verdict::Discard, None)
            }
            backend::READY_FOR_QUERY => (Verdict::Discard, Some(rows_touched(&self.plan))),
            // Meant for the client whatever it asked.
            backend::PARAMETER_STATUS | backend::NOTIFICATION_RESPONSE => (Verdict::Forward, None),
            _ => (Verdict::Discard, None),
        }
    }
}
