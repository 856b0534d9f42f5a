//! The approval requests of a sidecar running without a cluster (SPEC §2.3): kept in memory,
//! listed and decided through the admin endpoint, and waited on by the sessions whose
//! statements they hold. Who may decide and where decisions leave a request is
//! `palisade_policy::approval`'s to say; this is only the ledger and the bell.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use palisade_policy::approval::{
    self, DEFAULT_HISTORY_RETENTION, GrantStore, GrantTtl, Refusal, request_name,
};
use palisade_policy::crd::{ApprovalDecision, ApprovalRequestSpec, ApprovalState};
use palisade_policy::decision::Identity;
use palisade_policy::model::Approval;
use palisade_policy::timestamp;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::info;

use super::cluster::ClusterApprovals;

/// Requests kept at most: the oldest settled ones go first once this many are held.
const MAX_REQUESTS: usize = 10_000;

/// One state change of a request, for its history and the audit trail.
#[derive(Clone, Debug, Serialize)]
pub struct Transition {
    pub state: ApprovalState,
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

struct Entry {
    /// `namespace/name` of the policy whose rule held the statement.
    policy_key: String,
    namespace: String,
    spec: ApprovalRequestSpec,
    approval: Approval,
    ttl: GrantTtl,
    identity: Identity,
    state: ApprovalState,
    created: SystemTime,
    transitions: Vec<Transition>,
    bell: watch::Sender<ApprovalState>,
    /// Why the request could not be put to its approvers (in a cluster: not filed).
    failure: Option<String>,
}

/// A statement to put to its approvers.
pub struct NewRequest {
    pub policy_key: String,
    pub namespace: String,
    /// The spec, with `decisions` empty and `expiresAt` set.
    pub spec: ApprovalRequestSpec,
    pub approval: Approval,
    pub ttl: GrantTtl,
    /// The requester, for the grant an approval leaves.
    pub identity: Identity,
}

/// A request as the session holding its statement sees it.
pub struct Ticket {
    pub name: String,
    pub state: watch::Receiver<ApprovalState>,
}

/// Why a decision was not taken.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("no approval request named {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(
        "this sidecar files its approval requests in the cluster, where approvers are verified by the API server: decide with kubectl palisade approve|deny {name} -n {namespace}"
    )]
    InCluster { name: String, namespace: String },
}

/// Every request this sidecar holds or held, and the grants approvals left.
pub struct ApprovalDesk {
    inner: Mutex<Inner>,
    retention: Duration,
    /// In a cluster, requests are also ApprovalRequest objects, decided there.
    cluster: Option<Arc<ClusterApprovals>>,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<String, Entry>,
    grants: GrantStore,
}

impl Default for ApprovalDesk {
    fn default() -> Self {
        ApprovalDesk::new(DEFAULT_HISTORY_RETENTION, None)
    }
}

impl ApprovalDesk {
    /// A desk that keeps settled requests readable for `retention`; with `cluster`, each
    /// request is filed and decided in the cluster.
    pub fn new(retention: Duration, cluster: Option<Arc<ClusterApprovals>>) -> Self {
        ApprovalDesk {
            inner: Mutex::default(),
            retention,
            cluster,
        }
    }

    /// Whether requests are decided in the cluster.
    pub fn in_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    // Every change under the lock is a single insert or field update, so a panic elsewhere
    // cannot leave the ledger half-written: a poisoned lock is simply taken over.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Files a request and hands back the ticket its session waits on.
    pub fn open(self: &Arc<Self>, new: NewRequest, now: SystemTime) -> Ticket {
        let mut inner = self.lock();
        self.prune(&mut inner, now);
        let mut attempt = 0;
        let name = loop {
            let name = request_name(
                policy_name(&new.policy_key),
                &new.spec.fingerprint,
                &new.spec.requester,
                now,
                attempt,
            );
            if !inner.requests.contains_key(&name) {
                break name;
            }
            attempt += 1;
        };
        let (bell, state) = watch::channel(ApprovalState::Pending);
        info!(request = %name, policy = %new.policy_key, rule = %new.spec.rule, "approval requested");
        if let Some(cluster) = &self.cluster {
            cluster.follow(
                self.clone(),
                name.clone(),
                new.namespace.clone(),
                new.spec.clone(),
                new.approval.clone(),
                bell.subscribe(),
            );
        }
        inner.requests.insert(
            name.clone(),
            Entry {
                policy_key: new.policy_key,
                namespace: new.namespace,
                spec: new.spec,
                approval: new.approval,
                ttl: new.ttl,
                identity: new.identity,
                state: ApprovalState::Pending,
                created: now,
                transitions: vec![Transition {
                    state: ApprovalState::Pending,
                    at: timestamp::format(now),
                    by: None,
                }],
                bell,
                failure: None,
            },
        );
        Ticket { name, state }
    }

    /// Appends a verified decision. The decision's `user`, `groups` and `at` must already be
    /// the verified ones ([`approval::stamp`]).
    pub fn decide(
        &self,
        name: &str,
        decision: ApprovalDecision,
        now: SystemTime,
    ) -> Result<Value, DeskError> {
        let mut inner = self.lock();
        let Inner { requests, grants } = &mut *inner;
        let entry = requests
            .get_mut(name)
            .ok_or_else(|| DeskError::NotFound(name.to_string()))?;
        if self.cluster.is_some() {
            return Err(DeskError::InCluster {
                name: name.to_string(),
                namespace: entry.namespace.clone(),
            });
        }
        let stored = entry.state;
        let state = approval::admit(&entry.spec, stored, &entry.approval, &decision, now)?;
        let by = decision.user.clone();
        entry.spec.decisions.push(decision);
        if state != stored {
            info!(request = %name, state = ?state, by = by.as_deref().unwrap_or("-"), "approval request decided");
            entry.decided(grants, state, now, by);
        }
        Ok(entry.view(name))
    }

    /// The approvers decided in the cluster: their decisions (as the webhook admitted and
    /// stamped them) and where they leave the request. Returns the request's final state,
    /// which is the session's if it settled first.
    pub fn settle_from_cluster(
        &self,
        name: &str,
        decisions: Vec<ApprovalDecision>,
        state: ApprovalState,
    ) -> ApprovalState {
        let mut inner = self.lock();
        let Inner { requests, grants } = &mut *inner;
        let Some(entry) = requests.get_mut(name) else {
            return state;
        };
        if entry.state != ApprovalState::Pending {
            return entry.state;
        }
        let by = decisions.last().and_then(|d| d.user.clone());
        entry.spec.decisions = decisions;
        info!(request = %name, state = ?state, by = by.as_deref().unwrap_or("-"), "approval request decided");
        entry.decided(grants, state, SystemTime::now(), by);
        state
    }

    /// The request could not be put to its approvers: its statement is refused, saying why.
    pub fn fail(&self, name: &str, reason: String) {
        let mut inner = self.lock();
        if let Some(entry) = inner.requests.get_mut(name)
            && entry.state == ApprovalState::Pending
        {
            entry.failure = Some(reason);
            entry.settle(ApprovalState::Expired, SystemTime::now(), None);
        }
    }

    /// Why the request could not be put to its approvers, if it could not.
    pub fn failure(&self, name: &str) -> Option<String> {
        self.lock()
            .requests
            .get(name)
            .and_then(|e| e.failure.clone())
    }

    /// A held statement ended without a decision: Expired (its timeout) or Withdrawn (the
    /// client cancelled or went away). A request already settled stays as it is.
    pub fn close(&self, name: &str, state: ApprovalState, now: SystemTime) -> ApprovalState {
        let mut inner = self.lock();
        let Some(entry) = inner.requests.get_mut(name) else {
            return state;
        };
        // Decisions made in time still count when the deadline is read a moment late.
        let current = approval::evaluate(&entry.spec, entry.state, &entry.approval, now);
        let settled = match current {
            ApprovalState::Pending | ApprovalState::Expired => state,
            other => other,
        };
        if settled != entry.state {
            info!(request = %name, state = ?settled, "approval request closed");
            entry.settle(settled, now, None);
        }
        settled
    }

    /// Whether `identity` may rerun `fingerprint` without asking (an approval's grantTtl).
    pub fn take_grant(&self, identity: &Identity, fingerprint: &str) -> bool {
        self.lock()
            .grants
            .take(identity, fingerprint, Instant::now())
    }

    /// The request named `name`, as `GET /approvals/{name}` shows it.
    pub fn get(&self, name: &str) -> Option<Value> {
        self.lock().requests.get(name).map(|e| e.view(name))
    }

    /// Every request still kept, newest first.
    pub fn list(&self, now: SystemTime) -> Vec<Value> {
        let mut inner = self.lock();
        self.prune(&mut inner, now);
        let mut entries: Vec<(&String, &Entry)> = inner.requests.iter().collect();
        entries.sort_by(|a, b| b.1.created.cmp(&a.1.created).then(a.0.cmp(b.0)));
        entries.into_iter().map(|(n, e)| e.view(n)).collect()
    }

    /// The policy (`namespace/name`) and approval settings of a request, for judging a
    /// decision before it is made.
    pub fn policy_of(&self, name: &str) -> Option<String> {
        self.lock().requests.get(name).map(|e| e.policy_key.clone())
    }

    /// Drops settled requests past retention, then, over the cap, the oldest settled ones.
    fn prune(&self, inner: &mut Inner, now: SystemTime) {
        inner.requests.retain(|_, e| {
            !approval::past_retention(e.state, &e.spec.expires_at, self.retention, now)
        });
        while inner.requests.len() >= MAX_REQUESTS {
            let oldest = inner
                .requests
                .iter()
                .filter(|(_, e)| e.state != ApprovalState::Pending)
                .min_by_key(|(_, e)| e.created)
                .map(|(n, _)| n.clone());
            match oldest {
                Some(n) => {
                    inner.requests.remove(&n);
                }
                None => break,
            }
        }
        inner.grants.prune(Instant::now());
    }
}

impl Entry {
    /// Settled by decisions: an approval leaves a grant for reruns within grantTtl (the
    /// held execution itself needs none: its session is told directly).
    fn decided(
        &mut self,
        grants: &mut GrantStore,
        state: ApprovalState,
        now: SystemTime,
        by: Option<String>,
    ) {
        if state == ApprovalState::Approved
            && let GrantTtl::For(_) = self.ttl
        {
            grants.grant(
                &self.identity,
                &self.spec.fingerprint,
                self.ttl,
                Instant::now(),
            );
        }
        self.settle(state, now, by);
    }

    fn settle(&mut self, state: ApprovalState, now: SystemTime, by: Option<String>) {
        self.state = state;
        self.transitions.push(Transition {
            state,
            at: timestamp::format(now),
            by,
        });
        // No session may be listening any more (it went away): nothing to tell then.
        let _ = self.bell.send(state);
    }

    /// The request as the resource it stands for in a cluster, so one client reads both.
    fn view(&self, name: &str) -> Value {
        json!({
            "apiVersion": "palisade.dev/v1alpha1",
            "kind": "ApprovalRequest",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "creationTimestamp": timestamp::format(self.created),
                "labels": {"palisade.dev/policy": policy_name(&self.policy_key)},
            },
            "spec": self.spec,
            "status": {
                "state": self.state,
                "transitions": self.transitions,
            },
        })
    }
}

fn policy_name(key: &str) -> &str {
    key.rsplit_once('/').map_or(key, |(_, name)| name)
}
