//! Prometheus metrics, served at `/metrics` on the admin address:
//! `palisade_operator_reconciles_total{kind}`,
//! `palisade_operator_reconcile_failures_total{kind,error}`,
//! `palisade_operator_reconcile_duration_seconds{kind}` and `palisade_operator_leader`.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::Error;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// DatabasePolicy or Pod.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub kind: String,
    /// A bounded label from [`Error::metric_label`].
    pub error: String,
}

/// The operator's metrics and the registry that exposes them.
pub struct Metrics {
    pub registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    duration: Family<KindLabels, Histogram>,
    /// 1 while this replica holds the leader lease.
    pub leader: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("palisade_operator");
        let reconciles = Family::<KindLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        // 5 ms to ~20 s: a reconcile is a handful of API calls.
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 12))
        });
        let leader = Gauge::<i64, AtomicI64>::default();
        registry.register("reconciles", "Reconciles run, by kind", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by kind and error",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciles took, by kind",
            duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease and reconciles",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            failures,
            duration,
            leader,
        }
    }
}

impl Metrics {
    /// Records one reconcile of `kind` that took `elapsed` and ended with `error`, if any.
    pub fn observe(&self, kind: &str, elapsed: Duration, error: Option<&Error>) {
        let labels = KindLabels { kind: kind.into() };
        self.reconciles.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if let Some(e) = error {
            self.failures
                .get_or_create(&FailureLabels {
                    kind: kind.into(),
                    error: e.metric_label().into(),
                })
                .inc();
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reconciles_failures_and_durations_by_kind() {
        let m = Metrics::default();
        m.observe("DatabasePolicy", Duration::from_millis(20), None);
        m.observe(
            "DatabasePolicy",
            Duration::from_millis(20),
            Some(&Error::StoreGone),
        );
        m.leader.set(1);
        let text = m.encode().unwrap();
        assert!(
            text.contains("palisade_operator_reconciles_total{kind=\"DatabasePolicy\"} 2"),
            "{text}"
        );
        assert!(text.contains(
            "palisade_operator_reconcile_failures_total{kind=\"DatabasePolicy\",error=\"store_gone\"} 1"
        ), "{text}");
        assert!(
            text.contains(
                "palisade_operator_reconcile_duration_seconds_count{kind=\"DatabasePolicy\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("palisade_operator_leader 1"), "{text}");
    }
}
