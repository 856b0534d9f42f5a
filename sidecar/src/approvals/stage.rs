//! A session's approval stage (SPEC §2.3): a statement a rule says needs approval is put
//! to its approvers and held, unread, on the client's own connection until they decide.
//! The client is told at once (a NoticeResponse naming the request and how to approve it);
//! everything it sends after the statement waits behind it, while the server side of the
//! session stays as it was, transaction included. Approved, the statement goes on exactly
//! as sent; denied, timed out or withdrawn (a cancel, or the client going away), it is
//! answered with an error that names the request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use palisade_policy::Operation;
use palisade_policy::analysis::{fingerprint, normalize};
use palisade_policy::approval::{GrantTtl, check_justification, explain_statement};
use palisade_policy::crd::{ApprovalRequestSpec, ApprovalState, Estimate, Requester, Verdict};
use palisade_policy::decision::{Decision, Identity};
use palisade_policy::dialect::SqlDialect;
use palisade_policy::duration::parse_duration;
use palisade_policy::model::Approval;
use palisade_policy::timestamp;
use tokio::sync::watch;
use tracing::warn;

use super::desk::{ApprovalDesk, NewRequest};
use crate::cancel::CancelSignal;
use crate::config::LoadedPolicy;
use crate::protocol::error::{PgError, sqlstate};

/// What the stage makes of a statement a rule says needs approval.
pub enum Judged {
    /// Approved already: this very execution, or a rerun within `grantTtl`.
    Allow,
    /// Put to the approvers: hold the statement, and send the client this notice now.
    Hold(Bytes),
    /// Not put to anyone (a justification is missing, the rule cannot be followed), or
    /// decided against: the error the client gets.
    Refuse(PgError),
    /// Estimate the rows it touches first: send this `EXPLAIN` on the session's
    /// connection, hand its result to [`ApprovalStage::set_estimate`], then judge again.
    Explain(String),
}

/// Whether the session can run an `EXPLAIN` for the estimate now, and how.
#[derive(Clone, Copy)]
pub enum Estimating {
    /// Not now: something else is in flight, or a transaction block is open (an EXPLAIN
    /// that failed there would abort the client's transaction).
    No,
    /// Yes; `generic_plan`: the server has `EXPLAIN (GENERIC_PLAN)` (16 and later), for a
    /// statement with parameters.
    Yes { generic_plan: bool },
}

type Wait = Pin<Box<dyn Future<Output = ApprovalState> + Send>>;

struct Held {
    request: Request,
    wait: Wait,
}

/// A request this session filed, as the error for its outcome names it.
#[derive(Clone)]
struct Request {
    name: String,
    fingerprint: String,
    rule: String,
    policy: String,
    timeout: String,
}

struct Released {
    request: Request,
    state: ApprovalState,
}

/// One session's approvals.
pub struct ApprovalStage {
    desk: Arc<ApprovalDesk>,
    /// The client's cancel requests.
    cancel: Option<CancelSignal>,
    /// The admin endpoint approvers reach, for the notice's command.
    admin_url: Option<String>,
    /// From `SET palisade.justification = '…'`.
    justification: Option<String>,
    held: Option<Held>,
    /// A request decided (or closed) whose statement has not been looked at again yet.
    released: Option<Released>,
    /// The statement (fingerprint) an EXPLAIN is running for.
    estimating: Option<String>,
    /// Its result: rows, or `None` when it could not be had.
    estimate: Option<(String, Option<u64>)>,
}

impl ApprovalStage {
    pub fn new(
        desk: Arc<ApprovalDesk>,
        cancel: Option<CancelSignal>,
        admin_url: Option<String>,
    ) -> Self {
        ApprovalStage {
            desk,
            cancel,
            admin_url,
            justification: None,
            held: None,
            released: None,
            estimating: None,
            estimate: None,
        }
    }

    /// The rows the EXPLAIN [`Judged::Explain`] asked for came to.
    pub fn set_estimate(&mut self, rows: Option<u64>) {
        if let Some(fingerprint) = self.estimating.take() {
            self.estimate = Some((fingerprint, rows));
        }
    }

    /// `SET palisade.justification = …` (`None`: reset).
    pub fn set_justification(&mut self, justification: Option<String>) {
        self.justification = justification.filter(|j| !j.trim().is_empty());
    }

    /// Whether a statement is held now, waiting for its approvers.
    pub fn holding(&self) -> bool {
        self.held.is_some()
    }

    /// Ready once the held statement's request is settled; it is then looked at again,
    /// and [`judge`](Self::judge) finds the outcome.
    pub fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(held) = &mut self.held else {
            return Poll::Ready(());
        };
        let Poll::Ready(state) = held.wait.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        let Some(held) = self.held.take() else {
            return Poll::Ready(());
        };
        self.set_holding(false);
        // The desk has the last word: an approval that landed just as the deadline
        // passed still counts.
        let state = match state {
            ApprovalState::Expired | ApprovalState::Withdrawn => {
                self.desk
                    .close(&held.request.name, state, SystemTime::now())
            }
            other => other,
        };
        self.released = Some(Released {
            request: held.request,
            state,
        });
        Poll::Ready(())
    }

    /// A statement `decision` says needs approval, with its text as the server reads it.
    pub fn judge(
        &mut self,
        policy: &LoadedPolicy,
        decision: &Decision,
        text: &str,
        identity: &Identity,
        dialect: &SqlDialect,
        estimating: Estimating,
    ) -> Judged {
        let rule = decision.rule().unwrap_or_default().to_string();
        let key = policy.key();
        let Some(normalized) = normalize(text) else {
            return Judged::Refuse(refusal(
                format!(
                    "palisade: statement requires approval under rule \"{rule}\" of policy {key}, but its text cannot be normalized to put it to approvers"
                ),
                "rewrite the statement in plain PostgreSQL syntax",
            ));
        };
        let fingerprint = fingerprint(&normalized);
        if let Some(released) = self.released.take()
            && released.request.fingerprint == fingerprint
        {
            return match released.state {
                ApprovalState::Approved => Judged::Allow,
                state => Judged::Refuse(self.outcome_error(&released.request, state)),
            };
        }
        if self.desk.take_grant(identity, &fingerprint) {
            return Judged::Allow;
        }
        let approval = policy
            .rendered
            .spec
            .rules
            .iter()
            .find(|r| r.name == rule)
            .and_then(|r| r.approval.clone());
        let Some(approval) = approval else {
            return Judged::Refuse(refusal(
                format!(
                    "palisade: rule \"{rule}\" of policy {key} requires approval but says nothing of who approves"
                ),
                "give the rule an approval section with approvers",
            ));
        };
        if let Err(e) = check_justification(&rule, &approval, self.justification.as_deref()) {
            return Judged::Refuse(refusal(
                format!(
                    "palisade: rule \"{}\" of policy {key} needs a justification before this statement is put to its approvers",
                    e.rule
                ),
                "run SET palisade.justification = 'why you need this'; then run the statement again",
            ));
        }
        let (timeout, ttl) = match settings(&approval) {
            Ok(s) => s,
            Err(e) => {
                return Judged::Refuse(refusal(
                    format!("palisade: rule \"{rule}\" of policy {key}: {e}"),
                    "fix the rule's approval settings",
                ));
            }
        };
        let writes = decision
            .operations
            .iter()
            .any(|o| matches!(o, Operation::Update | Operation::Delete | Operation::Merge));
        let estimate = match self.estimate.take() {
            Some((fp, rows)) if fp == fingerprint => rows,
            _ => match (writes, estimating) {
                (true, Estimating::Yes { generic_plan }) => {
                    match explain_statement(text, dialect, generic_plan) {
                        Some(explain) => {
                            self.estimating = Some(fingerprint);
                            return Judged::Explain(explain);
                        }
                        None => None,
                    }
                }
                _ => None,
            },
        };
        let now = SystemTime::now();
        let spec = ApprovalRequestSpec {
            policy: policy.rendered.name.clone(),
            rule: rule.clone(),
            requester: requester(identity),
            statement: normalized,
            fingerprint: fingerprint.clone(),
            operations: decision.operations.iter().copied().collect(),
            tables: decision
                .read
                .iter()
                .chain(&decision.written)
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            columns: decision.columns.iter().cloned().collect(),
            estimate: estimate.map(|rows| Estimate { rows }),
            justification: self.justification.clone(),
            expires_at: timestamp::format(now + timeout),
            decisions: Vec::new(),
        };
        let ticket = self.desk.open(
            NewRequest {
                policy_key: key.clone(),
                namespace: policy.rendered.namespace.clone(),
                spec,
                approval,
                ttl,
                identity: identity.clone(),
            },
            now,
        );
        let request = Request {
            name: ticket.name,
            fingerprint,
            rule,
            policy: key,
            timeout: humantime::format_duration(timeout).to_string(),
        };
        let notice = self.notice(&request);
        let cancels = self.cancel.as_ref().map(|c| c.cancels.clone());
        self.held = Some(Held {
            wait: Box::pin(wait(ticket.state, cancels, timeout)),
            request,
        });
        self.set_holding(true);
        Judged::Hold(notice)
    }

    fn set_holding(&self, holding: bool) {
        if let Some(c) = &self.cancel {
            c.holding.store(holding, Ordering::SeqCst);
        }
    }

    fn notice(&self, request: &Request) -> Bytes {
        let namespace = request.policy.split('/').next().unwrap_or_default();
        let how = match &self.admin_url {
            // In a cluster, through the API server, which knows who the approver is.
            _ if self.desk.in_cluster() => format!(
                "approvers run: kubectl palisade approve {} -n {namespace}",
                request.name
            ),
            Some(url) => format!(
                "approvers run: kubectl palisade approve {} --sidecar {url} --token-file <their ID token>",
                request.name
            ),
            None => format!("approvers run: kubectl palisade approve {}", request.name),
        };
        PgError::notice(format!(
            "palisade: statement held for approval: request {} (rule \"{}\" of policy {})",
            request.name, request.rule, request.policy
        ))
        .with_detail(format!(
            "It runs as soon as it is approved; it waits at most {}. Cancelling (Ctrl-C) withdraws the request.",
            request.timeout
        ))
        .with_hint(how)
        .to_message()
    }

    fn outcome_error(&self, request: &Request, state: ApprovalState) -> PgError {
        let name = &request.name;
        let origin = format!("rule \"{}\" of policy {}", request.rule, request.policy);
        match state {
            ApprovalState::Withdrawn => PgError::error(
                sqlstate::QUERY_CANCELED,
                format!(
                    "canceling statement due to user request: palisade approval request {name} withdrawn"
                ),
            )
            .with_detail(format!("The statement was held under {origin}.")),
            ApprovalState::Denied => {
                let by = self.desk.get(name).and_then(|view| {
                    view["spec"]["decisions"]
                        .as_array()?
                        .iter()
                        .rev()
                        .find(|d| d["verdict"] == serde_json::json!(Verdict::Deny))
                        .map(|d| {
                            let user = d["user"].as_str().unwrap_or("an approver");
                            match d["comment"].as_str() {
                                Some(c) => format!(" by {user}: {c}"),
                                None => format!(" by {user}"),
                            }
                        })
                });
                refusal(
                    format!(
                        "palisade: approval request {name} was denied{}",
                        by.unwrap_or_default()
                    ),
                    "ask the approver, or rework the statement",
                )
                .with_detail(format!("The statement was held under {origin}."))
            }
            ApprovalState::Expired if self.desk.failure(name).is_some() => refusal(
                format!(
                    "palisade: approval request {name} could not be put to its approvers: {}",
                    self.desk.failure(name).unwrap_or_default()
                ),
                "the sidecar's service account needs to create approvalrequests in the policy's namespace; see the sidecar's log",
            )
            .with_detail(format!("The statement was held under {origin}.")),
            ApprovalState::Expired => refusal(
                format!(
                    "palisade: approval request {name} expired: no decision within {}",
                    request.timeout
                ),
                "run the statement again to ask again, when an approver is available",
            )
            .with_detail(format!("The statement was held under {origin}.")),
            // Not reached: Approved runs, and a released request is never Pending.
            ApprovalState::Approved | ApprovalState::Pending => refusal(
                format!("palisade: approval request {name} is {state:?}"),
                "run the statement again",
            ),
        }
    }
}

impl Drop for ApprovalStage {
    /// The session ended with a statement still held: the client went away.
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            self.desk.close(
                &held.request.name,
                ApprovalState::Withdrawn,
                SystemTime::now(),
            );
        }
    }
}

fn refusal(message: String, hint: &str) -> PgError {
    PgError::error(sqlstate::INSUFFICIENT_PRIVILEGE, message).with_hint(hint)
}

/// The rule's timeout and grant TTL.
fn settings(approval: &Approval) -> Result<(Duration, GrantTtl), String> {
    let timeout = parse_duration(&approval.timeout)
        .map_err(|e| format!("approval.timeout {:?}: {e}", approval.timeout))?;
    let ttl = GrantTtl::parse(&approval.grant_ttl)
        .map_err(|e| format!("approval.grantTtl {:?}: {e}", approval.grant_ttl))?;
    Ok((timeout, ttl))
}

fn requester(identity: &Identity) -> Requester {
    Requester {
        user: identity.user.clone(),
        groups: identity.groups.clone(),
        service_account: identity.service_account.clone(),
        pod: identity.pod.clone(),
        workload: identity.workload.clone(),
        db_user: Some(identity.db_user.clone()),
    }
}

/// Waits for the request to settle, the timeout to pass, or the client to cancel.
async fn wait(
    mut state: watch::Receiver<ApprovalState>,
    cancels: Option<watch::Receiver<u64>>,
    timeout: Duration,
) -> ApprovalState {
    let settled = async {
        loop {
            let now = *state.borrow_and_update();
            if now != ApprovalState::Pending {
                return now;
            }
            if state.changed().await.is_err() {
                // The desk forgot the request: nobody can approve it any more.
                warn!("approval request dropped while held");
                return ApprovalState::Expired;
            }
        }
    };
    let cancelled = async {
        match cancels {
            Some(mut c) => {
                c.borrow_and_update();
                if c.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        s = settled => s,
        () = tokio::time::sleep(timeout) => ApprovalState::Expired,
        () = cancelled => ApprovalState::Withdrawn,
    }
}
