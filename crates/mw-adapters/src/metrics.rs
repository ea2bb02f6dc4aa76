//! Prometheus metrics (`/metrics`, text format).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::sqlite::QueueStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Result {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabel {
    tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VendorLabel {
    vendor: String,
}

/// Every metric the service exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    accepted: Family<Result, Counter>,
    rejected: Family<ReasonLabel, Counter>,
    decisions: Family<TierLabel, Counter>,
    actions: Family<ActionLabel, Counter>,
    processing_failures: Counter,
    vendor_latency: Family<VendorLabel, Histogram>,
    queue_depth: Gauge,
    in_flight: Gauge,
    oldest_age: Gauge,
    dlq_depth: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mw");
        let accepted = Family::<Result, Counter>::default();
        let rejected = Family::<ReasonLabel, Counter>::default();
        let decisions = Family::<TierLabel, Counter>::default();
        let actions = Family::<ActionLabel, Counter>::default();
        let processing_failures = Counter::default();
        let vendor_latency = Family::<VendorLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 12))
        });
        let (queue_depth, in_flight, oldest_age, dlq_depth) = (
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
        );
        registry.register(
            "events_accepted",
            "Webhook events stored (result: accepted, duplicate)",
            accepted.clone(),
        );
        registry.register(
            "events_rejected",
            "Webhook calls rejected, by reason",
            rejected.clone(),
        );
        registry.register("decisions", "Decisions by applied tier", decisions.clone());
        registry.register("actions", "Actions by kind and outcome", actions.clone());
        registry.register(
            "processing_failures",
            "Event processing attempts that failed and will be retried",
            processing_failures.clone(),
        );
        registry.register(
            "vendor_latency_seconds",
            "Latency of vendor calls",
            vendor_latency.clone(),
        );
        registry.register("queue_depth", "Messages in the queue", queue_depth.clone());
        registry.register(
            "queue_in_flight",
            "Messages being processed",
            in_flight.clone(),
        );
        registry.register(
            "queue_oldest_age_seconds",
            "Age of the oldest queued message",
            oldest_age.clone(),
        );
        registry.register(
            "dlq_depth",
            "Messages in the dead-letter queue",
            dlq_depth.clone(),
        );
        Metrics {
            registry,
            accepted,
            rejected,
            decisions,
            actions,
            processing_failures,
            vendor_latency,
            queue_depth,
            in_flight,
            oldest_age,
            dlq_depth,
        }
    }

    /// A webhook event stored (`accepted`) or recognised as a duplicate.
    pub fn event_accepted(&self, result: &str) {
        self.accepted
            .get_or_create(&Result {
                result: result.to_owned(),
            })
            .inc();
    }

    /// A webhook call rejected (`unauthorized`, `too_large`, `throttled`, `invalid`, `store_failed`).
    pub fn event_rejected(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// A decision at a tier.
    pub fn decision(&self, tier: &str) {
        self.decisions
            .get_or_create(&TierLabel {
                tier: tier.to_owned(),
            })
            .inc();
    }

    /// An action outcome.
    pub fn action(&self, kind: &str, outcome: &str) {
        let outcome = outcome.split(':').next().unwrap_or(outcome);
        self.actions
            .get_or_create(&ActionLabel {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// A failed processing attempt.
    pub fn processing_failure(&self) {
        self.processing_failures.inc();
    }

    /// A vendor call's latency.
    pub fn vendor_latency(&self, vendor: &str, seconds: f64) {
        self.vendor_latency
            .get_or_create(&VendorLabel {
                vendor: vendor.to_owned(),
            })
            .observe(seconds);
    }

    /// Renders the text format, with queue gauges from `stats`.
    pub fn render(&self, stats: QueueStats) -> String {
        self.queue_depth.set(stats.depth as i64);
        self.in_flight.set(stats.in_flight as i64);
        self.oldest_age.set(stats.oldest_age_secs as i64);
        self.dlq_depth.set(stats.dlq_depth as i64);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
