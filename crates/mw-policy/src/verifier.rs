//! The deterministic Tier 2 verifier used with the rules classifier: allows an
//! order-status reply only when the order link is deterministic, the message is
//! plainly about order status, and nothing conflicting or risky is present.

use async_trait::async_trait;
use mw_core::{Intent, Verifier, VerifierInput, VerifierRequest};
use serde_json::{Value, json};

use crate::prescreen::Prescreen;
use crate::rules::RulesClassifier;

/// Rules-based implementation of `mw_tier2_verifier_v1`.
#[derive(Debug, Clone)]
pub struct RulesVerifier {
    rules: RulesClassifier,
    prescreen: Prescreen,
}

fn answer(allow: bool, confidence: f64, downgrade: &str, reason: &str, notes: &str) -> Value {
    json!({
        "schema_version": "mw_tier2_verifier_v1",
        "allow_tier2": allow,
        "confidence": (confidence.clamp(0.0, 1.0) * 1000.0).round() / 1000.0,
        "downgrade_to_tier": downgrade,
        "reason_code": reason,
        "notes": notes,
    })
}

impl RulesVerifier {
    /// A verifier over the given rules and pre-screen.
    pub fn new(rules: RulesClassifier, prescreen: Prescreen) -> RulesVerifier {
        RulesVerifier { rules, prescreen }
    }

    /// Verifies one request; the answer is a `mw_tier2_verifier_v1` value.
    pub fn verify_request(&self, request: &VerifierRequest) -> Value {
        if self.prescreen.scan(&request.redacted_message).is_some() {
            return answer(
                false,
                0.95,
                "TIER_0_ESCALATION",
                "ESCALATION_PRESENT",
                "Tier 0 keyword present",
            );
        }
        if !request.deterministic_match {
            return answer(
                false,
                0.95,
                "TIER_1_SAFE_ASSIST",
                "DETERMINISTIC_MATCH_FALSE",
                "no deterministic order match",
            );
        }
        if !request.proposed_intent.is_order_status() {
            return answer(
                false,
                0.95,
                "ROUTE_ONLY",
                "NOT_ORDER_STATUS",
                "proposed intent is not order status",
            );
        }
        let outcome = self.rules.classify_text(&request.redacted_message);
        let order_status = |intent: &Intent| intent.is_order_status();
        if outcome
            .raw_scores
            .iter()
            .any(|(intent, score)| !order_status(intent) && intent.priority() <= 3 && *score >= 1.0)
        {
            return answer(
                false,
                0.9,
                "ROUTE_ONLY",
                "CONFLICTING_INTENT",
                "another actionable intent is present",
            );
        }
        if !order_status(&outcome.primary) {
            return answer(
                false,
                0.9,
                "ROUTE_ONLY",
                "NOT_ORDER_STATUS",
                "the message is not mainly about order status",
            );
        }
        let best = |keep: &dyn Fn(&Intent) -> bool| {
            outcome
                .raw_scores
                .iter()
                .filter(|(i, _)| keep(i))
                .map(|(_, s)| *s)
                .fold(0.0, f64::max)
        };
        let margin = best(&order_status) - best(&|intent: &Intent| !order_status(intent));
        let confidence = (0.5 + 0.15 * margin).min(0.95);
        if confidence >= 0.8 {
            answer(
                true,
                confidence,
                "TIER_1_SAFE_ASSIST",
                "OK",
                "plain order-status request",
            )
        } else {
            answer(
                false,
                confidence,
                "TIER_1_SAFE_ASSIST",
                "TOO_AMBIGUOUS",
                "order-status evidence is weak",
            )
        }
    }
}

#[async_trait]
impl Verifier for RulesVerifier {
    async fn verify(&self, request: &VerifierRequest) -> VerifierInput {
        VerifierInput::Json(self.verify_request(request))
    }
}
