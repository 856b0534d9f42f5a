//! The admin endpoint: liveness, readiness, Prometheus metrics and, standalone, the approval
//! requests (see [`approvals::http`]). Bound to loopback by default, since it is for the
//! kubelet, a scraper and approvers' commands on the same pod or machine.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::approvals;
use crate::server::Sidecar;

pub async fn serve(listener: TcpListener, sidecar: Arc<Sidecar>, shutdown: CancellationToken) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/approvals", get(approvals::http::list))
        .route("/approvals/{name}", get(approvals::http::get))
        .route(
            "/approvals/{name}/decisions",
            axum::routing::post(approvals::http::decide),
        )
        .with_state(sidecar);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        error!(error = %e, "admin endpoint failed");
    }
}

/// Ready once policies are loaded and every upstream accepts a TCP connection. A bare
/// connect is what PostgreSQL logs nothing for, so probes do not flood the server log.
async fn readyz(State(sidecar): State<Arc<Sidecar>>) -> impl IntoResponse {
    let upstreams = sidecar.upstreams();
    if upstreams.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no policy loaded\n".to_string(),
        );
    }
    let checks = upstreams
        .into_iter()
        .map(|(policy, host, port)| async move {
            let addr = format!("{host}:{port}");
            match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&addr)).await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(format!("{policy}: upstream {addr}: {e}")),
                Err(_) => Some(format!("{policy}: upstream {addr}: timed out")),
            }
        });
    let failures: Vec<String> = futures_util::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect();
    if failures.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n{}\n", failures.join("\n")),
        )
    }
}

async fn metrics(State(sidecar): State<Arc<Sidecar>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        sidecar.metrics.encode(),
    )
}
