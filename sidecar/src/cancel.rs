//! Cancel keys. Clients see the backend's real process id — `pg_backend_pid()`, the pid in
//! a NotificationResponse and `pg_terminate_backend(pid)` must agree with what the client
//! was told — but a secret the sidecar made up, so a key seen by the client never reaches
//! the backend directly: a CancelRequest is mapped back to the session it belongs to and
//! re-sent upstream with that backend's real secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

// A panic elsewhere cannot leave these maps half-updated (each change is one insert or
// remove), so a poisoned lock is simply taken over.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use crate::config::Upstream;
use crate::protocol::startup::CancelKey;

struct Target {
    upstream: Arc<Upstream>,
    key: CancelKey,
    /// Counts the session's cancel requests: a statement held for approval (which the
    /// server never saw) is withdrawn by one.
    cancels: watch::Sender<u64>,
    /// Set while the session holds a statement for approval.
    holding: Arc<AtomicBool>,
}

/// What a session hears of its client's cancel requests.
pub struct CancelSignal {
    /// Bumped once per cancel request.
    pub cancels: watch::Receiver<u64>,
    /// The session sets it while it holds a statement: the cancel is then the session's
    /// to act on, and must not reach the server, where it would cancel whatever the
    /// session runs next.
    pub holding: Arc<AtomicBool>,
}

#[derive(Default)]
pub struct CancelRegistry {
    map: Mutex<HashMap<CancelKey, Target>>,
}

impl CancelRegistry {
    /// Issues a client-facing key for a session whose upstream backend has `key`: the
    /// same process id, a fresh secret. Backends of different upstreams may share a pid;
    /// the secret tells their keys apart.
    pub fn register(&self, upstream: Arc<Upstream>, key: CancelKey) -> CancelKey {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let ours = CancelKey {
                pid: key.pid,
                secret: rand::random(),
            };
            if ours.secret != key.secret && !map.contains_key(&ours) {
                map.insert(
                    ours,
                    Target {
                        upstream,
                        key,
                        cancels: watch::Sender::new(0),
                        holding: Arc::default(),
                    },
                );
                return ours;
            }
        }
    }

    pub fn unregister(&self, ours: &CancelKey) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(ours);
    }

    /// Cancel requests for the session with key `ours`, as they come.
    pub fn subscribe(&self, ours: &CancelKey) -> Option<CancelSignal> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(ours)
            .map(|t| CancelSignal {
                cancels: t.cancels.subscribe(),
                holding: t.holding.clone(),
            })
    }

    /// Tells the session with key `ours` that its client asked to cancel. True when the
    /// session holds a statement, which the cancel withdraws: nothing is to be sent upstream.
    pub fn signal(&self, ours: &CancelKey) -> bool {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(t) = map.get(ours) else {
            return false;
        };
        t.cancels.send_modify(|n| *n = n.wrapping_add(1));
        t.holding.load(Ordering::SeqCst)
    }

    /// The upstream and real key for a client's cancel key.
    pub fn lookup(&self, ours: &CancelKey) -> Option<(Arc<Upstream>, CancelKey)> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(ours)
            .map(|t| (t.upstream.clone(), t.key))
    }
}
