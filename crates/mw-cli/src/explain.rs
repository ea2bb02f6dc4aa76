//! `mw explain`: one event on stdin, the decision and every reason on stdout.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use mw_core::{Channel, Decision, Order, OrderLookup, ReplyHistory, RuntimeFlags};
use serde::Deserialize;

use crate::engine::{ClassifierSource, Engine, MessageInput};

/// The event to explain. A golden-set line is accepted as is (its `id` and
/// `expected` are ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainInput {
    /// Channel (default email).
    #[serde(default)]
    pub channel: Channel,
    /// Customer text.
    pub text: String,
    /// The one linked order, if any.
    #[serde(default)]
    pub order: Option<Order>,
    /// How many orders are linked when more than one (overrides `order`).
    #[serde(default)]
    pub linked_orders: Option<usize>,
    /// Customer display name.
    #[serde(default)]
    pub customer_name: Option<String>,
    /// A model output to use instead of the rules classifier.
    #[serde(default)]
    pub model_output: Option<serde_json::Value>,
    /// Runtime flags (default: the defaults).
    #[serde(default)]
    pub flags: Option<RuntimeFlags>,
    /// Reply history.
    #[serde(default)]
    pub history: ReplyHistory,
    /// Evaluation time (default: now).
    #[serde(default)]
    pub now: Option<DateTime<Utc>>,
    /// Ignored (golden-set lines).
    #[serde(default)]
    pub id: Option<String>,
    /// Ignored (golden-set lines).
    #[serde(default)]
    pub expected: Option<serde_json::Value>,
}

/// Decides on the input.
pub fn explain(engine: &Engine, input: &ExplainInput, now: DateTime<Utc>) -> Decision {
    let order = match (input.linked_orders, &input.order) {
        (Some(count), _) if count > 1 => OrderLookup::Several { count },
        (_, Some(order)) => OrderLookup::One {
            order: Box::new(order.clone()),
        },
        _ => OrderLookup::None,
    };
    let source = match &input.model_output {
        Some(value) => ClassifierSource::Recorded(Some(value.clone())),
        None => ClassifierSource::Rules,
    };
    let flags = input.flags.clone().unwrap_or_default();
    let classification = engine.classify(&input.text, &source);
    engine.decide(
        &MessageInput {
            channel: Some(input.channel),
            text: &input.text,
            customer_name: input.customer_name.as_deref(),
            order: &order,
            flags: Some(&flags),
            history: &input.history,
            now: input.now.unwrap_or(now),
        },
        &classification,
    )
}

/// Human-readable rendering of a decision.
pub fn render(decision: &Decision) -> String {
    let mut out = String::new();
    let automation = decision
        .automation_confidence
        .map_or("-".to_owned(), |c| format!("{c:.2}"));
    let _ = writeln!(
        out,
        "decision   {} · {} → {} (routing confidence {:.2}, automation {automation})",
        decision.tier.as_str(),
        decision.primary_intent,
        decision.team_name,
        decision.routing_confidence,
    );
    if !decision.secondary_intents.is_empty() {
        let others: Vec<&str> = decision
            .secondary_intents
            .iter()
            .map(|i| i.as_str())
            .collect();
        let _ = writeln!(out, "also seen  {}", others.join(", "));
    }
    let _ = writeln!(out, "tags       {}", decision.tags.join(", "));
    match &decision.reply {
        Some(reply) => {
            let _ = writeln!(
                out,
                "reply      {} v{} ({})",
                reply.template_id, reply.template_version, reply.language
            );
            for line in reply.body.lines() {
                let _ = writeln!(out, "           | {line}");
            }
        }
        None => {
            let _ = writeln!(out, "reply      none (no customer message)");
        }
    }
    let _ = writeln!(
        out,
        "close      {}",
        if decision.close { "yes" } else { "no" }
    );
    let actions: Vec<String> = decision
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{}. {}", i + 1, a.kind()))
        .collect();
    let _ = writeln!(out, "actions    {}", actions.join("  "));
    let _ = writeln!(out, "reasons");
    for reason in &decision.reasons {
        let _ = writeln!(
            out,
            "  [{}] {}: {}",
            reason.gate.as_str(),
            reason.code,
            reason.detail
        );
    }
    out
}
