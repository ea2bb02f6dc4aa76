#![allow(missing_docs, reason = "benchmark harness")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup fails loudly"
)]
//! Decisions per second on one core: `decide` end to end (validate a model output,
//! run the policy, render the template) and the rules classifier.
//!
//! Run: `cargo bench -p mw-cli --bench decide`.

use chrono::{TimeZone, Utc};
use divan::{Bencher, black_box, counter::ItemsCount};
use mw_cli::{ClassifierSource, Engine, MessageInput};
use mw_core::{
    Channel, Classification, DecideInput, ModelOutput, Order, OrderLookup, ReplyHistory,
    RuntimeFlags, VerifierInput, decide,
};
use serde_json::json;

fn main() {
    divan::main();
}

const TEXT: &str = "Hi, where is my order #10482? It's been a few days and I haven't seen any update. Thanks, Maria";

fn order() -> OrderLookup {
    let order: Order = serde_json::from_value(json!({
        "orderId": "5563920117", "orderName": "#10482", "status": "confirmed", "fulfillmentStatus": "fulfilled",
        "createdAt": "2026-11-13T09:12:00Z", "shippingMethod": "Standard Shipping",
        "statusUrl": "https://northwind.example/orders/10482/status",
        "fulfillment": [{"status": "in_transit", "tracking": [{"trackingNumber": "1Z999AA10123456784",
            "trackingCompany": "UPS", "trackingUrl": "https://www.ups.com/track?tracknum=1Z999AA10123456784"}]}]
    }))
    .unwrap_or_default();
    OrderLookup::One {
        order: Box::new(order),
    }
}

fn model_output() -> serde_json::Value {
    json!({
        "schema_version": "mw_decision_v1", "language": "en", "primary_intent": "order_status_tracking",
        "secondary_intents": [],
        "routing": {"destination_team": "Email Support Team", "confidence": 0.92, "needs_manual_triage": false, "tags": []},
        "automation": {"tier": "TIER_2_VERIFIED", "action": "SEND_TEMPLATE", "template_id": "t_order_status_verified",
                       "confidence": 0.9, "requires_deterministic_match": true},
        "risk": {"flags": [], "force_human": false}, "clarifying_questions": ["ASK_ORDER_NUMBER"], "notes_for_agent": ""
    })
}

/// Tier 2 path: schema validation, the whole policy, verifier answer, rendering.
#[divan::bench(sample_count = 1000)]
fn decide_tier2_reply(bencher: Bencher) {
    let engine = Engine::embedded().expect("the shipped engine loads");
    let order = order();
    let flags = RuntimeFlags::default();
    let history = ReplyHistory::default();
    let classification = Classification {
        output: ModelOutput::Json(model_output()),
        scores: vec![],
        verification: None,
    };
    let verifier = VerifierInput::Json(
        json!({"schema_version": "mw_tier2_verifier_v1", "allow_tier2": true,
        "confidence": 0.93, "downgrade_to_tier": "TIER_1_SAFE_ASSIST", "reason_code": "OK", "notes": ""}),
    );
    let now = Utc
        .with_ymd_and_hms(2026, 11, 18, 15, 0, 0)
        .single()
        .unwrap_or_default();
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        let decision = decide(
            &DecideInput {
                channel: Some(Channel::Email),
                text: black_box(TEXT),
                customer_name: Some("Maria Lopez"),
                order: &order,
                classification: &classification,
                verifier: &verifier,
                flags: Some(&flags),
                history: &history,
                now,
            },
            &engine.policy,
            &engine.catalog,
        );
        assert!(decision.reply.is_some());
        decision
    });
}

/// The rules classifier alone (redaction included).
#[divan::bench(sample_count = 1000)]
fn rules_classifier(bencher: Bencher) {
    let engine = Engine::embedded().expect("the shipped engine loads");
    bencher
        .counter(ItemsCount::new(1usize))
        .bench_local(|| engine.classify(black_box(TEXT), &ClassifierSource::Rules));
}

/// Everything `mw eval` does per line with the rules classifier: redact, classify,
/// decide, verify, decide again.
#[divan::bench(sample_count = 1000)]
fn rules_pipeline_end_to_end(bencher: Bencher) {
    let engine = Engine::embedded().expect("the shipped engine loads");
    let order = order();
    let flags = RuntimeFlags::default();
    let history = ReplyHistory::default();
    let now = Utc
        .with_ymd_and_hms(2026, 11, 18, 15, 0, 0)
        .single()
        .unwrap_or_default();
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        let classification = engine.classify(black_box(TEXT), &ClassifierSource::Rules);
        engine.decide(
            &MessageInput {
                channel: Some(Channel::Email),
                text: TEXT,
                customer_name: Some("Maria Lopez"),
                order: &order,
                flags: Some(&flags),
                history: &history,
                now,
            },
            &classification,
        )
    });
}

/// Components of `decide`, to see where the time goes.
mod parts {
    use super::*;
    use mw_core::{OrderFacts, Renderer, validate_decision};

    #[divan::bench(sample_count = 1000)]
    fn schema_validation(bencher: Bencher) {
        let value = model_output();
        bencher.bench_local(|| validate_decision(black_box(&value)).is_ok());
    }

    #[divan::bench(sample_count = 1000)]
    fn tier0_prescreen(bencher: Bencher) {
        let engine = Engine::embedded().expect("the shipped engine loads");
        bencher.bench_local(|| engine.policy.prescreen().scan(black_box(TEXT)).is_some());
    }

    #[divan::bench(sample_count = 1000)]
    fn render_tier2(bencher: Bencher) {
        let engine = Engine::embedded().expect("the shipped engine loads");
        let order = order();
        let now = Utc
            .with_ymd_and_hms(2026, 11, 18, 15, 0, 0)
            .single()
            .unwrap_or_default();
        let facts = OrderFacts::new(&order, TEXT, now);
        let vars = engine.catalog.variables(
            order.single(),
            &facts,
            Some("Maria Lopez"),
            mw_core::Language::En,
        );
        bencher.bench_local(|| {
            engine.catalog.render(
                "t_order_status_verified",
                mw_core::Language::En,
                Channel::Email,
                black_box(&vars),
            )
        });
    }
}
