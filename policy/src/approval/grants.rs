//! After approval, the same identity may rerun the same statement shape (fingerprint) for the
//! rule's `grantTtl` without asking again; `"0"` allows only the approved execution itself.
//!
//! Kept in memory by the sidecar that held the statement: a grant is a convenience for the
//! person who was approved, and losing it on a restart only means asking again. Bounded, so
//! a flood of approvals cannot grow it without end.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::decision::Identity;
use crate::duration::parse_duration;

/// How long an approval lets its statement be rerun.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantTtl {
    /// Only the approved execution (`grantTtl: "0"`).
    Once,
    /// Reruns of the same shape for this long.
    For(Duration),
}

impl GrantTtl {
    /// Reads a rule's `grantTtl`: `"0"`, or a duration (`1h`; a zero one such as `0s` is
    /// also once).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim() == "0" {
            return Ok(GrantTtl::Once);
        }
        let d =
            parse_duration(text).map_err(|e| format!("{e}, or \"0\" for this execution only"))?;
        Ok(if d.is_zero() {
            GrantTtl::Once
        } else {
            GrantTtl::For(d)
        })
    }
}

/// How long a once-only grant waits to be used. The approved statement runs as soon as the
/// approval arrives; this only bounds a grant whose client went away before it could.
pub const ONCE_GRANT_WINDOW: Duration = Duration::from_secs(60);

/// The longest a grant lasts, whatever `grantTtl` says.
pub const MAX_GRANT_TTL: Duration = Duration::from_secs(366 * 86_400);

/// Grants kept at most, unless said otherwise.
pub const DEFAULT_GRANT_CAPACITY: usize = 10_000;

/// `sha256:<hex>` naming one identity for grants: its OIDC user, service account, owning
/// workload and database user. Groups are left out — the approval was for a person, not for
/// their groups at that moment — and so are the pod and its labels, which a restart or a
/// rollout replaces while the workload stays the same. The workload is in because many
/// workloads share one service account (`default`), and an approval for one is not one for
/// the others.
pub fn identity_key(identity: &Identity) -> String {
    let mut h = Sha256::new();
    // Length-prefixed, so no two different identities write the same bytes.
    for part in [
        identity.user.as_deref(),
        identity.service_account.as_deref(),
        identity.workload.as_deref(),
        Some(identity.db_user.as_str()),
    ] {
        match part {
            Some(p) => {
                h.update([1]);
                h.update((p.len() as u64).to_be_bytes());
                h.update(p.as_bytes());
            }
            None => h.update([0]),
        }
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

#[derive(Clone, Debug)]
struct Grant {
    once: bool,
    until: Instant,
}

/// Approved (identity, fingerprint) pairs and until when they may run.
#[derive(Debug)]
pub struct GrantStore {
    grants: HashMap<(String, String), Grant>,
    capacity: usize,
}

impl Default for GrantStore {
    fn default() -> Self {
        GrantStore::new(DEFAULT_GRANT_CAPACITY)
    }
}

impl GrantStore {
    /// A store that keeps at most `capacity` grants (at least one).
    pub fn new(capacity: usize) -> Self {
        GrantStore {
            grants: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records an approval of `fingerprint` for `identity`. A full store first drops expired
    /// grants, then the one closest to expiry.
    pub fn grant(&mut self, identity: &Identity, fingerprint: &str, ttl: GrantTtl, now: Instant) {
        let (once, until) = match ttl {
            GrantTtl::Once => (true, now + ONCE_GRANT_WINDOW),
            // An absurd TTL is cut to a year rather than overflowing the clock; if even that
            // cannot be represented the grant lapses at once, which only means asking again.
            GrantTtl::For(d) => (false, now.checked_add(d.min(MAX_GRANT_TTL)).unwrap_or(now)),
        };
        let key = (identity_key(identity), fingerprint.to_string());
        if !self.grants.contains_key(&key) && self.grants.len() >= self.capacity {
            self.prune(now);
            if self.grants.len() >= self.capacity
                && let Some(soonest) = self
                    .grants
                    .iter()
                    .min_by_key(|(_, g)| g.until)
                    .map(|(k, _)| k.clone())
            {
                self.grants.remove(&soonest);
            }
        }
        self.grants.insert(key, Grant { once, until });
    }

    /// Whether `identity` may run `fingerprint` now without asking; a once-only grant is used
    /// up by saying yes.
    pub fn take(&mut self, identity: &Identity, fingerprint: &str, now: Instant) -> bool {
        let key = (identity_key(identity), fingerprint.to_string());
        let Some(grant) = self.grants.get(&key) else {
            return false;
        };
        if now >= grant.until {
            self.grants.remove(&key);
            return false;
        }
        if grant.once {
            self.grants.remove(&key);
        }
        true
    }

    /// Drops expired grants.
    pub fn prune(&mut self, now: Instant) {
        self.grants.retain(|_, g| now < g.until);
    }

    pub fn len(&self) -> usize {
        self.grants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity {
            db_user: "analyst".into(),
            service_account: Some("ml/notebook".into()),
            user: Some("alice@example.com".into()),
            groups: vec!["contractors".into()],
            pod: Some("notebook-0".into()),
            workload: Some("StatefulSet/notebook".into()),
            ..Identity::default()
        }
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(GrantTtl::parse("0"), Ok(GrantTtl::Once));
        assert_eq!(GrantTtl::parse("0s"), Ok(GrantTtl::Once));
        assert_eq!(
            GrantTtl::parse("1h"),
            Ok(GrantTtl::For(Duration::from_secs(3600)))
        );
        let err = GrantTtl::parse("soon").unwrap_err();
        assert!(err.contains("or \"0\" for this execution only"), "{err}");
    }

    #[test]
    fn a_grant_covers_reruns_within_its_ttl_and_not_after() {
        let mut store = GrantStore::default();
        let t0 = Instant::now();
        store.grant(
            &alice(),
            "sha256:f1",
            GrantTtl::For(Duration::from_secs(3600)),
            t0,
        );
        assert!(store.take(&alice(), "sha256:f1", t0));
        assert!(store.take(&alice(), "sha256:f1", t0 + Duration::from_secs(3599)));
        assert!(!store.take(&alice(), "sha256:f1", t0 + Duration::from_secs(3600)));
        assert!(store.is_empty(), "an expired grant is dropped when found");
    }

    #[test]
    fn a_grant_is_for_that_identity_and_that_statement() {
        let mut store = GrantStore::default();
        let t0 = Instant::now();
        store.grant(
            &alice(),
            "sha256:f1",
            GrantTtl::For(Duration::from_secs(60)),
            t0,
        );
        assert!(!store.take(&alice(), "sha256:f2", t0));
        let bob = Identity {
            user: Some("bob@example.com".into()),
            ..alice()
        };
        assert!(!store.take(&bob, "sha256:f1", t0));
        let other_db_user = Identity {
            db_user: "admin".into(),
            ..alice()
        };
        assert!(!store.take(&other_db_user, "sha256:f1", t0));
        let other_workload = Identity {
            workload: Some("Job/export".into()),
            ..alice()
        };
        assert!(!store.take(&other_workload, "sha256:f1", t0));
        // Groups changing, or the pod being replaced, does not make another person.
        let regrouped = Identity {
            groups: vec![],
            pod: Some("notebook-1".into()),
            ..alice()
        };
        assert!(store.take(&regrouped, "sha256:f1", t0));
    }

    #[test]
    fn once_grants_are_used_up() {
        let mut store = GrantStore::default();
        let t0 = Instant::now();
        store.grant(&alice(), "sha256:f1", GrantTtl::Once, t0);
        assert!(store.take(&alice(), "sha256:f1", t0));
        assert!(!store.take(&alice(), "sha256:f1", t0));
        store.grant(&alice(), "sha256:f1", GrantTtl::Once, t0);
        assert!(!store.take(&alice(), "sha256:f1", t0 + ONCE_GRANT_WINDOW));
    }

    #[test]
    fn the_store_is_bounded_and_pruned() {
        let mut store = GrantStore::new(3);
        let t0 = Instant::now();
        for (i, ttl) in [30u64, 10, 20].iter().enumerate() {
            store.grant(
                &alice(),
                &format!("f{i}"),
                GrantTtl::For(Duration::from_secs(*ttl)),
                t0,
            );
        }
        assert_eq!(store.len(), 3);
        // Full: the grant closest to expiry (f1) makes room.
        store.grant(&alice(), "f3", GrantTtl::For(Duration::from_secs(40)), t0);
        assert_eq!(store.len(), 3);
        assert!(!store.take(&alice(), "f1", t0));
        assert!(store.take(&alice(), "f0", t0));
        // Expired ones go first.
        store.grant(
            &alice(),
            "f4",
            GrantTtl::For(Duration::from_secs(40)),
            t0 + Duration::from_secs(25),
        );
        assert_eq!(store.len(), 3);
        assert!(!store.take(&alice(), "f2", t0));
        store.prune(t0 + Duration::from_secs(1000));
        assert!(store.is_empty());
        // Renewing an existing grant never evicts another.
        let mut store = GrantStore::new(1);
        store.grant(&alice(), "f", GrantTtl::Once, t0);
        store.grant(&alice(), "f", GrantTtl::For(Duration::from_secs(5)), t0);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn identity_keys_are_stable_and_distinct() {
        assert_eq!(identity_key(&alice()), identity_key(&alice()));
        assert!(identity_key(&alice()).starts_with("sha256:"));
        let a = Identity {
            db_user: "ab".into(),
            user: Some("c".into()),
            ..Identity::default()
        };
        let b = Identity {
            db_user: "b".into(),
            user: Some("ca".into()),
            ..a.clone()
        };
        assert_ne!(identity_key(&a), identity_key(&b));
    }
}
