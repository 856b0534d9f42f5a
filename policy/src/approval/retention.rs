//! How long settled requests stay readable. Approval history is audit evidence (who let
//! which statement run, and who asked), so it outlives the hold; Teleport's users complain
//! that its requests vanish once expired.

use std::time::{Duration, SystemTime};

use crate::crd::ApprovalState;
use crate::timestamp;

/// Settled requests are kept this long unless configured otherwise.
pub const DEFAULT_HISTORY_RETENTION: Duration = Duration::from_secs(90 * 86_400);

/// Whether a request may be deleted: it is settled (`state` as `approval::evaluate` gives
/// it, so an expired one counts) and `retention` has passed since its `expires_at`.
/// `expires_at` is the measure because every request is settled by then at the latest —
/// decisions and withdrawals come before it — and it is always recorded. A request whose
/// `expires_at` cannot be read is kept: history is deleted only when surely old.
pub fn past_retention(
    state: ApprovalState,
    expires_at: &str,
    retention: Duration,
    now: SystemTime,
) -> bool {
    if state == ApprovalState::Pending {
        return false;
    }
    match timestamp::parse(expires_at) {
        Ok(end) => end
            .checked_add(retention)
            .is_some_and(|deadline| now >= deadline),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_requests_go_after_retention() {
        let end = "2026-11-26T10:05:00Z";
        let t = timestamp::parse(end).unwrap();
        let r = DEFAULT_HISTORY_RETENTION;
        for state in [
            ApprovalState::Approved,
            ApprovalState::Denied,
            ApprovalState::Expired,
            ApprovalState::Withdrawn,
        ] {
            assert!(!past_retention(
                state,
                end,
                r,
                t + r - Duration::from_secs(1)
            ));
            assert!(past_retention(state, end, r, t + r));
        }
        assert!(!past_retention(ApprovalState::Pending, end, r, t + r * 10));
        assert!(!past_retention(
            ApprovalState::Denied,
            "garbage",
            r,
            t + r * 10
        ));
        assert_eq!(DEFAULT_HISTORY_RETENTION.as_secs(), 90 * 24 * 3600);
    }
}
