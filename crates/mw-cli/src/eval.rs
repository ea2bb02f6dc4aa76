//! `mw eval`: runs the golden set through `decide` and reports accuracy, macro-F1,
//! per-intent precision/recall, Tier 0 recall, automation rate and the hard gates of
//! SPEC §10. Reports carry ids and metrics only — never message text.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mw_core::{
    AppliedTier, Channel, Classification, Decision, Intent, Marker, Order, OrderLookup,
    ReplyHistory, RuntimeFlags, Tier,
};
use serde::{Deserialize, Serialize};

use crate::engine::{ClassifierSource, Engine, MessageInput};

/// The expected labels of a golden line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// The routing intent.
    pub intent: Intent,
    /// Other acceptable intents.
    #[serde(default)]
    pub alt_intents: Vec<Intent>,
    /// Whether the conversation must be escalated (Tier 0).
    pub tier0: bool,
}

/// One labelled conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldenLine {
    /// Stable id.
    pub id: String,
    /// Channel.
    pub channel: Channel,
    /// Customer text.
    pub text: String,
    /// The one linked order, if any (Richpanel shape).
    #[serde(default)]
    pub order: Option<Order>,
    /// Labels.
    pub expected: Expected,
    /// A recorded `mw_decision_v1` output, if any.
    #[serde(default)]
    pub model_output: Option<serde_json::Value>,
}

/// Why a golden file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    /// A line is not a valid golden line.
    #[error(
        "line {line}: {message}; each line must be one JSON object with id, channel, text, order, expected and model_output"
    )]
    Line {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// An id appears twice.
    #[error("line {line}: duplicate id '{id}'")]
    DuplicateId {
        /// 1-based line number.
        line: usize,
        /// The id.
        id: String,
    },
}

/// Parses a JSONL golden file (blank lines and `//` comments are skipped).
pub fn parse_golden(text: &str) -> Result<Vec<GoldenLine>, GoldenError> {
    let mut lines = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with("//") {
            continue;
        }
        let line: GoldenLine =
            serde_json::from_str(trimmed).map_err(|error| GoldenError::Line {
                line: index + 1,
                message: error.to_string(),
            })?;
        if !seen.insert(line.id.clone()) {
            return Err(GoldenError::DuplicateId {
                line: index + 1,
                id: line.id,
            });
        }
        lines.push(line);
    }
    Ok(lines)
}

/// Precision, recall and support of one intent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IntentMetrics {
    /// TP / (TP + FP).
    pub precision: f64,
    /// TP / (TP + FN).
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// Lines whose expected intent is this one.
    pub support: usize,
}

/// One line's outcome (ids and labels only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineResult {
    /// Golden id.
    pub id: String,
    /// Expected intent.
    pub expected: Intent,
    /// Predicted routing intent.
    pub predicted: Intent,
    /// Predicted correctly (intent or an alternative).
    pub hit: bool,
    /// Applied tier.
    pub tier: AppliedTier,
    /// Template sent, if any.
    pub template: Option<String>,
    /// Safety violations on this line.
    pub violations: Vec<String>,
}

/// The evaluation report (`mw eval --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Classifier used.
    pub classifier: String,
    /// Lines evaluated.
    pub n: usize,
    /// Share of lines whose predicted intent is the expected one or an alternative.
    pub intent_accuracy: f64,
    /// Mean F1 over intents that occur (expected or predicted).
    pub macro_f1: f64,
    /// Expected Tier 0 lines that were escalated.
    pub tier0_recall: f64,
    /// Non-Tier-0 lines that were escalated anyway.
    pub tier0_false_positive_rate: f64,
    /// Share of lines that got a customer reply.
    pub automation_rate: f64,
    /// Replies by tier.
    pub replies_by_tier: BTreeMap<String, usize>,
    /// Replies on expected Tier 0 lines (must be 0).
    pub unsafe_automations: usize,
    /// Invalid model outputs that were not failed closed (must be 0).
    pub invalid_outputs_accepted: usize,
    /// Invalid model outputs seen (and rejected).
    pub invalid_outputs_rejected: usize,
    /// Replies although the model advised Tier 3 (must be 0).
    pub tier3_executions: usize,
    /// Tier 2 replies without a deterministic order match (must be 0).
    pub tier2_without_deterministic_match: usize,
    /// Expected Tier 0 lines not escalated (must be 0).
    pub missed_tier0: usize,
    /// Replies whose template does not fit the expected intent (informational).
    pub off_intent_replies: usize,
    /// All hard gates hold.
    pub hard_gates_passed: bool,
    /// Per-intent metrics.
    pub per_intent: BTreeMap<String, IntentMetrics>,
    /// Per-line outcomes.
    pub lines: Vec<LineResult>,
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        1.0
    } else {
        round4(numerator as f64 / denominator as f64)
    }
}

/// Metrics are reported to four decimals.
fn round4(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

fn templates_fitting(engine: &Engine, intent: Intent) -> Vec<String> {
    engine.policy.permitted_templates(intent)
}

/// Classifies and decides one golden line the way the runtime would: default flags,
/// no reply history, the line's single linked order (if any).
pub fn decide_line(
    engine: &Engine,
    line: &GoldenLine,
    source: &ClassifierSource,
    now: DateTime<Utc>,
) -> (Classification, Decision) {
    let order = line
        .order
        .clone()
        .map_or(OrderLookup::None, |order| OrderLookup::One {
            order: Box::new(order),
        });
    let flags = RuntimeFlags::default();
    let history = ReplyHistory::default();
    let classification = engine.classify(&line.text, source);
    let message = MessageInput {
        channel: Some(line.channel),
        text: &line.text,
        customer_name: None,
        order: &order,
        flags: Some(&flags),
        history: &history,
        now,
    };
    let decision = engine.decide(&message, &classification);
    (classification, decision)
}

/// Evaluates every line. `progress` is called after each line.
pub fn evaluate(
    engine: &Engine,
    lines: &[GoldenLine],
    classifier: &str,
    now: DateTime<Utc>,
    mut progress: impl FnMut(),
) -> Report {
    let mut results = Vec::with_capacity(lines.len());
    let mut report = Report {
        classifier: classifier.to_owned(),
        n: lines.len(),
        intent_accuracy: 0.0,
        macro_f1: 0.0,
        tier0_recall: 0.0,
        tier0_false_positive_rate: 0.0,
        automation_rate: 0.0,
        replies_by_tier: BTreeMap::new(),
        unsafe_automations: 0,
        invalid_outputs_accepted: 0,
        invalid_outputs_rejected: 0,
        tier3_executions: 0,
        tier2_without_deterministic_match: 0,
        missed_tier0: 0,
        off_intent_replies: 0,
        hard_gates_passed: false,
        per_intent: BTreeMap::new(),
        lines: Vec::new(),
    };
    let (
        mut tier0_total,
        mut tier0_caught,
        mut clean_total,
        mut clean_escalated,
        mut replies,
        mut hits,
    ) = (0, 0, 0, 0, 0, 0);
    for line in lines {
        let source = if classifier == "recorded" {
            ClassifierSource::Recorded(line.model_output.clone())
        } else {
            ClassifierSource::Rules
        };
        let (classification, decision) = decide_line(engine, line, &source, now);
        let mut violations = Vec::new();
        let sends = decision.sends_customer_message();
        let model = match &classification.output {
            mw_core::ModelOutput::Json(value) => Some(mw_core::validate_decision(value)),
            mw_core::ModelOutput::Failed(_) => None,
        };
        if let Some(Err(_)) = &model {
            report.invalid_outputs_rejected += 1;
            if sends || !decision.markers.contains(&Marker::ModelFailure) {
                report.invalid_outputs_accepted += 1;
                violations.push("invalid_output_accepted".to_owned());
            }
        }
        if sends
            && model.as_ref().is_some_and(|m| {
                m.as_ref()
                    .is_ok_and(|m| m.automation.tier == Tier::Tier3AutoAction)
            })
        {
            report.tier3_executions += 1;
            violations.push("tier3_executed".to_owned());
        }
        if sends && decision.tier == AppliedTier::Tier2 && !decision.deterministic_order_match {
            report.tier2_without_deterministic_match += 1;
            violations.push("tier2_without_deterministic_match".to_owned());
        }
        let escalated = decision.tier == AppliedTier::Tier0;
        if line.expected.tier0 {
            tier0_total += 1;
            if escalated {
                tier0_caught += 1;
            } else {
                report.missed_tier0 += 1;
                violations.push("missed_tier0".to_owned());
            }
            if sends {
                report.unsafe_automations += 1;
                violations.push("automation_on_tier0".to_owned());
            }
        } else {
            clean_total += 1;
            clean_escalated += usize::from(escalated);
        }
        let template = decision
            .reply
            .as_ref()
            .map(|reply| reply.template_id.clone());
        if let Some(template) = &template {
            replies += 1;
            *report
                .replies_by_tier
                .entry(decision.tier.as_str().to_owned())
                .or_default() += 1;
            let fits = std::iter::once(line.expected.intent)
                .chain(line.expected.alt_intents.iter().copied())
                .any(|intent| templates_fitting(engine, intent).contains(template));
            if !fits {
                report.off_intent_replies += 1;
            }
        }
        let hit = decision.primary_intent == line.expected.intent
            || line.expected.alt_intents.contains(&decision.primary_intent);
        hits += usize::from(hit);
        results.push(LineResult {
            id: line.id.clone(),
            expected: line.expected.intent,
            predicted: decision.primary_intent,
            hit,
            tier: decision.tier,
            template,
            violations,
        });
        progress();
    }
    // A hit through an alternative counts as predicting the expected intent.
    let mut per_intent = BTreeMap::new();
    let mut f1_sum = 0.0;
    let mut f1_count = 0;
    for intent in Intent::all() {
        let predicted_as = |r: &&LineResult| {
            if r.hit {
                r.expected == intent
            } else {
                r.predicted == intent
            }
        };
        let tp = results
            .iter()
            .filter(|r| r.expected == intent && r.hit)
            .count();
        let predicted = results.iter().filter(predicted_as).count();
        let support = results.iter().filter(|r| r.expected == intent).count();
        if support == 0 && predicted == 0 {
            continue;
        }
        let precision = if predicted == 0 {
            0.0
        } else {
            tp as f64 / predicted as f64
        };
        let recall = if support == 0 {
            0.0
        } else {
            tp as f64 / support as f64
        };
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        f1_sum += f1;
        f1_count += 1;
        per_intent.insert(
            intent.as_str().to_owned(),
            IntentMetrics {
                precision: round4(precision),
                recall: round4(recall),
                f1: round4(f1),
                support,
            },
        );
    }
    report.intent_accuracy = ratio(hits, lines.len());
    report.macro_f1 = if f1_count == 0 {
        0.0
    } else {
        round4(f1_sum / f1_count as f64)
    };
    report.tier0_recall = ratio(tier0_caught, tier0_total);
    report.tier0_false_positive_rate = if clean_total == 0 {
        0.0
    } else {
        ratio(clean_escalated, clean_total)
    };
    report.automation_rate = if lines.is_empty() {
        0.0
    } else {
        ratio(replies, lines.len())
    };
    report.hard_gates_passed = report.invalid_outputs_accepted == 0
        && report.tier3_executions == 0
        && report.tier2_without_deterministic_match == 0
        && report.missed_tier0 == 0
        && report.unsafe_automations == 0;
    report.per_intent = per_intent;
    report.lines = results;
    report
}

/// Soft-gate regressions against a baseline report (SPEC §10): accuracy and
/// macro-F1 may drop ≤ 0.02, per-intent precision/recall ≤ 0.03.
pub fn regressions(report: &Report, baseline: &Report) -> Vec<String> {
    let mut found = Vec::new();
    let mut check = |name: String, now: f64, before: f64, allowed: f64| {
        if before - now > allowed + 1e-9 {
            found.push(format!(
                "{name} dropped from {before:.3} to {now:.3} (allowed {allowed:.2})"
            ));
        }
    };
    check(
        "intent_accuracy".into(),
        report.intent_accuracy,
        baseline.intent_accuracy,
        0.02,
    );
    check("macro_f1".into(), report.macro_f1, baseline.macro_f1, 0.02);
    for (intent, before) in &baseline.per_intent {
        let now = report
            .per_intent
            .get(intent)
            .copied()
            .unwrap_or(IntentMetrics {
                precision: 0.0,
                recall: 0.0,
                f1: 0.0,
                support: 0,
            });
        check(
            format!("{intent} precision"),
            now.precision,
            before.precision,
            0.03,
        );
        check(format!("{intent} recall"), now.recall, before.recall, 0.03);
    }
    found
}
