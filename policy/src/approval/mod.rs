//! Approvals (SPEC §2.3): who may decide a held statement, where decisions leave it, what an
//! update may change, and what an approval allows afterwards.
//!
//! Plain inputs and outputs — a request's spec and state, the rule's `approval` settings, a
//! decision with its verified identity, the time — so the operator's admission webhook (in a
//! cluster) and the sidecar's admin endpoint (standalone) judge by the same code.

mod decide;
mod estimate;
mod grants;
mod justification;
mod name;
mod refusal;
mod retention;
mod update;

pub use decide::{
    admit, current_state, evaluate, is_approver, requester_identity, tally, withdraw,
};
pub use estimate::{explain_statement, rows_touched};
pub use grants::{
    DEFAULT_GRANT_CAPACITY, GrantStore, GrantTtl, MAX_GRANT_TTL, ONCE_GRANT_WINDOW, identity_key,
};
pub use justification::{
    JUSTIFICATION_SETTING, JustificationRequired, check_justification, justification_set,
};
pub use name::{MAX_NAME_LEN, request_name};
pub use refusal::Refusal;
pub use retention::{DEFAULT_HISTORY_RETENTION, past_retention};
pub use update::{Decider, admit_update, check_decisions_update, check_spec_update, stamp};
