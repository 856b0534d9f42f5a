//! Approvals on the admin endpoint, for a sidecar without a cluster (SPEC §2.3):
//!
//! - `GET /approvals`: every request kept, newest first, as an `ApprovalRequestList`;
//! - `GET /approvals/{name}`: one request, as the resource it stands for in a cluster;
//! - `POST /approvals/{name}/decisions` with `{"verdict": "Approve"|"Deny", "comment": "…"}`
//!   and `Authorization: Bearer <ID token>`: the approver is who the token says, verified
//!   like a client's login against the request's policy's `spec.identity.oidc`. 401 without
//!   a valid token, 403 for a non-approver or the requester, 404 for an unknown request,
//!   409 once it is no longer pending.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_policy::approval::{Decider, stamp};
use palisade_policy::crd::{ApprovalDecision, Verdict};
use palisade_policy::identity::VerifiedToken;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::desk::DeskError;
use crate::oidc::LoginError;
use crate::server::Sidecar;

/// The body of `POST /approvals/{name}/decisions`. Anything else a client sends — a user, a
/// time — is not read: those come from the verified token and the clock.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    verdict: Verdict,
    #[serde(default)]
    comment: Option<String>,
}

/// A JSON error body, like the API server's `Status`, with the HTTP status it goes with.
fn failure(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    let mut response = (
        status,
        Json(json!({
            "kind": "Status",
            "status": "Failure",
            "code": status.as_u16(),
            "message": message,
        })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

pub async fn list(State(sidecar): State<Arc<Sidecar>>) -> Json<Value> {
    Json(json!({
        "apiVersion": "palisade.dev/v1alpha1",
        "kind": "ApprovalRequestList",
        "items": sidecar.approvals.list(SystemTime::now()),
    }))
}

pub async fn get(State(sidecar): State<Arc<Sidecar>>, Path(name): Path<String>) -> Response {
    match sidecar.approvals.get(&name) {
        Some(request) => Json(request).into_response(),
        None => failure(
            StatusCode::NOT_FOUND,
            format!("no approval request named {name:?}"),
        ),
    }
}

pub async fn decide(
    State(sidecar): State<Arc<Sidecar>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Json<DecisionBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(policy_key) = sidecar.approvals.policy_of(&name) else {
        return failure(
            StatusCode::NOT_FOUND,
            format!("no approval request named {name:?}"),
        );
    };
    // Who is deciding comes first: an anonymous caller learns nothing more.
    let approver = match approver(&sidecar, &policy_key, &headers) {
        Ok(a) => a,
        Err(e) => {
            warn!(request = %name, reason = %e, "approval decision refused: approver not verified");
            return failure(StatusCode::UNAUTHORIZED, e);
        }
    };
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => {
            return failure(
                StatusCode::BAD_REQUEST,
                format!(
                    "{}; send {{\"verdict\": \"Approve\" or \"Deny\", \"comment\": \"…\"}}",
                    e.body_text()
                ),
            );
        }
    };
    let now = SystemTime::now();
    let decider = Decider {
        user: approver.user.clone(),
        groups: approver.groups.clone(),
    };
    let decision = stamp(
        &ApprovalDecision {
            verdict: body.verdict,
            comment: body.comment.filter(|c| !c.is_empty()),
            user: None,
            groups: Vec::new(),
            at: None,
        },
        &decider,
        now,
    );
    match sidecar.approvals.decide(&name, decision, now) {
        Ok(request) => {
            info!(request = %name, approver = %approver.user, verdict = ?body.verdict, "approval decision taken");
            Json(request).into_response()
        }
        Err(e @ DeskError::InCluster { .. }) => failure(StatusCode::CONFLICT, e.to_string()),
        Err(DeskError::NotFound(_)) => failure(
            StatusCode::NOT_FOUND,
            format!("no approval request named {name:?}"),
        ),
        Err(DeskError::Refused(refusal)) => {
            info!(request = %name, approver = %approver.user, reason = %refusal, "approval decision refused");
            let status =
                StatusCode::from_u16(refusal.http_status()).unwrap_or(StatusCode::FORBIDDEN);
            failure(status, refusal.to_string())
        }
    }
}

/// The approver the request's bearer token names, verified against the issuer of the
/// policy that held the statement.
fn approver(
    sidecar: &Sidecar,
    policy_key: &str,
    headers: &HeaderMap,
) -> Result<VerifiedToken, String> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or("approvers prove who they are with an OIDC ID token: send Authorization: Bearer <ID token> (kubectl palisade approve --token-file F)")?;
    let policy = sidecar
        .policy(policy_key)
        .ok_or_else(|| format!("policy {policy_key} is no longer loaded by this sidecar"))?;
    // The same issuer and keys a client's login is verified with, reloaded as they change.
    let oidc = policy.oidc.as_ref().ok_or_else(|| {
        format!("policy {policy_key} has no spec.identity.oidc, so no approver can be verified; configure the issuer approvers log in with")
    })?;
    oidc.verify(token).map_err(|e| match e {
        LoginError::NoKeys(why) => format!("the approver's token cannot be verified: {why}"),
        LoginError::Token(e) => format!("the approver's token was not accepted: {e}"),
    })
}
