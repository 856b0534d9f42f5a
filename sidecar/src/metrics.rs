//! Prometheus metrics, labelled by policy (`namespace/name`), served on the admin listener.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::masking::shared::Why;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabel {
    pub policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BytesLabel {
    pub policy: String,
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabel {
    pub policy: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CatalogQueryLabel {
    pub policy: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLabel {
    pub policy: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

type HistogramFamily = Family<PolicyLabel, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    connections: Family<PolicyLabel, Counter>,
    active: Family<PolicyLabel, Gauge>,
    bytes: Family<BytesLabel, Counter>,
    statements: Family<PolicyLabel, Counter>,
    upstream_errors: Family<UpstreamErrorLabel, Counter>,
    latency: HistogramFamily,
    reloads: Family<ResultLabel, Counter>,
    policies: Gauge,
    catalog_queries: Family<CatalogQueryLabel, Counter>,
    oidc_logins: Family<LoginLabel, Counter>,
}

fn latency_histogram() -> Histogram {
    // 25 µs … ~13 s: sidecar overhead lives at the bottom, slow queries at the top.
    Histogram::new(exponential_buckets(0.000_025, 2.0, 20))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("palisade");
        let connections = Family::<PolicyLabel, Counter>::default();
        let active = Family::<PolicyLabel, Gauge>::default();
        let bytes = Family::<BytesLabel, Counter>::default();
        let statements = Family::<PolicyLabel, Counter>::default();
        let upstream_errors = Family::<UpstreamErrorLabel, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let reloads = Family::<ResultLabel, Counter>::default();
        let policies = Gauge::default();
        let catalog_queries = Family::<CatalogQueryLabel, Counter>::default();
        let oidc_logins = Family::<LoginLabel, Counter>::default();
        registry.register(
            "connections",
            "Client connections accepted",
            connections.clone(),
        );
        registry.register(
            "connections_active",
            "Client connections open now",
            active.clone(),
        );
        registry.register("bytes", "Bytes relayed, by direction", bytes.clone());
        registry.register(
            "statements",
            "Statements relayed (simple Query and extended Execute messages)",
            statements.clone(),
        );
        registry.register(
            "upstream_errors",
            "Failures reaching the upstream database, by kind (connect, tls, auth)",
            upstream_errors.clone(),
        );
        registry.register(
            "statement_duration_seconds",
            "Time from a client request to the database's ReadyForQuery, seen at the sidecar",
            latency.clone(),
        );
        registry.register(
            "policy_reloads",
            "Policy directory reloads, by result",
            reloads.clone(),
        );
        registry.register("policies", "Policies being enforced", policies.clone());
        registry.register(
            "catalog_queries",
            "Catalog snapshot queries masking sent upstream, by reason (session_start, ddl, unknown_name, age)",
            catalog_queries.clone(),
        );
        registry.register(
            "oidc_logins",
            "Logins to policies with identity.oidc, by result: verified; no_token (let in without one, required: false); token_required (refused); jwks_unavailable (refused: the issuer's keys are not loaded); or why a token was refused (expired, not_yet_valid, wrong_issuer, wrong_audience, unknown_key, unusable_key, bad_signature, algorithm, groups_overage, claims, malformed)",
            oidc_logins.clone(),
        );
        Metrics {
            registry,
            connections,
            active,
            bytes,
            statements,
            upstream_errors,
            latency,
            reloads,
            policies,
            catalog_queries,
            oidc_logins,
        }
    }
}

impl Metrics {
    /// Handles for one session, looked up once so the data path only touches atomics.
    pub fn session(&self, policy: &str) -> SessionMetrics {
        let label = PolicyLabel {
            policy: policy.to_string(),
        };
        self.connections.get_or_create(&label).inc();
        let active = self.active.get_or_create(&label).clone();
        active.inc();
        let bytes = |direction| {
            self.bytes
                .get_or_create(&BytesLabel {
                    policy: policy.to_string(),
                    direction,
                })
                .clone()
        };
        SessionMetrics {
            active,
            to_server: bytes("client_to_server"),
            to_client: bytes("server_to_client"),
            statements: self.statements.get_or_create(&label).clone(),
            latency: self.latency.get_or_create(&label).clone(),
        }
    }

    /// Counters of one policy's catalog queries, by reason.
    pub fn catalog_queries(&self, policy: &str) -> CatalogQueries {
        let counter = |reason| {
            self.catalog_queries
                .get_or_create(&CatalogQueryLabel {
                    policy: policy.to_string(),
                    reason,
                })
                .clone()
        };
        CatalogQueries {
            session_start: counter("session_start"),
            ddl: counter("ddl"),
            unknown_name: counter("unknown_name"),
            age: counter("age"),
        }
    }

    pub fn upstream_error(&self, policy: &str, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabel {
                policy: policy.to_string(),
                kind,
            })
            .inc();
    }

    /// One login to a policy with `identity.oidc`, by result.
    pub fn oidc_login(&self, policy: &str, result: &'static str) {
        self.oidc_logins
            .get_or_create(&LoginLabel {
                policy: policy.to_string(),
                result,
            })
            .inc();
    }

    pub fn reload(&self, ok: bool, policies: usize) {
        let result = if ok { "success" } else { "failure" };
        self.reloads.get_or_create(&ResultLabel { result }).inc();
        if ok {
            self.policies.set(policies as i64);
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // fmt::Write into a String cannot fail; an error here would only mean a metric
        // refused to encode, and a partial page beats a panic on the admin endpoint.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One policy's catalog query counters.
#[derive(Clone)]
pub struct CatalogQueries {
    session_start: Counter,
    ddl: Counter,
    unknown_name: Counter,
    age: Counter,
}

impl CatalogQueries {
    pub fn count(&self, why: Why) {
        match why {
            Why::SessionStart => &self.session_start,
            Why::Ddl => &self.ddl,
            Why::UnknownName => &self.unknown_name,
            Why::Age => &self.age,
        }
        .inc();
    }
}

/// One session's metric handles.
pub struct SessionMetrics {
    active: Gauge,
    to_server: Counter,
    to_client: Counter,
    statements: Counter,
    latency: Histogram,
}

impl SessionMetrics {
    pub fn bytes(&self, from_client: bool, n: usize) {
        if from_client {
            self.to_server.inc_by(n as u64);
        } else {
            self.to_client.inc_by(n as u64);
        }
    }

    pub fn statement(&self) {
        self.statements.inc();
    }

    pub fn latency(&self, d: Duration) {
        self.latency.observe(d.as_secs_f64());
    }
}

impl Drop for SessionMetrics {
    fn drop(&mut self) {
        self.active.dec();
    }
}
