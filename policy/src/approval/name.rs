//! Names of ApprovalRequests: `<policy>-<6 hex>` (`features-db-7f3a9c`), short enough for a
//! label value and the `kubectl palisade approve NAME` a person types.

use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::crd::Requester;

/// Longest name: a label value's limit, so the name can also label the pod's Events.
pub const MAX_NAME_LEN: usize = 63;

/// Hex digits after the policy name.
const SUFFIX_HEX: usize = 6;

/// The name for a request: the policy's name, then six hex digits of a hash over the
/// statement's fingerprint, the requester and the time (to the nanosecond), so two requests
/// differ even for the same statement and person. Six digits can still collide; on
/// AlreadyExists the caller asks again with the next `attempt`.
pub fn request_name(
    policy: &str,
    fingerprint: &str,
    requester: &Requester,
    at: SystemTime,
    attempt: u32,
) -> String {
    let mut h = Sha256::new();
    let nanos = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    // Length-prefixed fields, so different inputs never hash the same bytes.
    for part in [
        fingerprint,
        requester.user.as_deref().unwrap_or(""),
        requester.service_account.as_deref().unwrap_or(""),
        requester.pod.as_deref().unwrap_or(""),
        requester.db_user.as_deref().unwrap_or(""),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(nanos.to_be_bytes());
    h.update(attempt.to_be_bytes());
    let suffix = &hex::encode(h.finalize())[..SUFFIX_HEX];
    format!("{}-{suffix}", name_prefix(policy))
}

/// The policy's name made fit: lowercase, only `a-z0-9-.`, short enough for the suffix,
/// starting and ending with an alphanumeric — a valid DNS subdomain, as Kubernetes names
/// must be. Policy names already are; this guards the standalone mode, where the name comes
/// from a file.
fn name_prefix(policy: &str) -> String {
    let cleaned: String = policy
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(MAX_NAME_LEN - SUFFIX_HEX - 1)
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        "approval".into()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn alice() -> Requester {
        Requester {
            user: Some("alice@example.com".into()),
            db_user: Some("analyst".into()),
            ..Requester::default()
        }
    }

    fn valid(name: &str) -> bool {
        name.len() <= MAX_NAME_LEN
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric())
    }

    #[test]
    fn names_are_policy_and_six_hex() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_687_500);
        let name = request_name("features-db", "sha256:ab", &alice(), t, 0);
        assert!(name.starts_with("features-db-"), "{name}");
        assert_eq!(name.len(), "features-db-".len() + 6);
        assert!(
            name["features-db-".len()..]
                .chars()
                .all(|c| c.is_ascii_hexdigit())
        );
        assert!(valid(&name));
        // Deterministic for the same inputs; different when any differs.
        assert_eq!(
            name,
            request_name("features-db", "sha256:ab", &alice(), t, 0)
        );
        let others = [
            request_name("features-db", "sha256:ac", &alice(), t, 0),
            request_name("features-db", "sha256:ab", &Requester::default(), t, 0),
            request_name(
                "features-db",
                "sha256:ab",
                &alice(),
                t + Duration::from_nanos(1),
                0,
            ),
            request_name("features-db", "sha256:ab", &alice(), t, 1),
        ];
        for other in others {
            assert_ne!(name, other);
        }
    }

    #[test]
    fn awkward_policy_names_still_make_valid_names() {
        let t = UNIX_EPOCH;
        for policy in ["Features_DB", &"a".repeat(300), "--", "", "db.v2-", "ÜBER"] {
            let name = request_name(policy, "f", &alice(), t, 0);
            assert!(valid(&name), "{policy:?} gave {name:?}");
        }
        assert!(request_name("Features_DB", "f", &alice(), t, 0).starts_with("features-db-"));
        assert!(request_name("--", "f", &alice(), t, 0).starts_with("approval-"));
    }
}
