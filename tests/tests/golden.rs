//! The golden corpus through the whole pure pipeline, with both classifiers.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use chrono::{TimeZone, Utc};
use mw_cli::eval::{decide_line, evaluate};
use mw_cli::{ClassifierSource, Engine};
use mw_core::AppliedTier;
use mw_tests::golden_lines;

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 18, 15, 0, 0)
        .single()
        .unwrap()
}

#[test]
fn decisions_are_reproducible() {
    let engine = Engine::embedded().unwrap();
    let lines = golden_lines().unwrap();
    let first = evaluate(&engine, &lines, "rules", now(), || {});
    let second = evaluate(&engine, &lines, "rules", now(), || {});
    assert_eq!(first, second);
}

#[test]
fn the_rules_classifier_meets_the_accuracy_bar_and_every_hard_gate() {
    let engine = Engine::embedded().unwrap();
    let report = evaluate(&engine, &golden_lines().unwrap(), "rules", now(), || {});
    assert!(report.hard_gates_passed, "{report:#?}");
    assert!(
        report.intent_accuracy >= 0.80,
        "accuracy {}",
        report.intent_accuracy
    );
    assert_eq!(report.tier0_recall, 1.0);
    assert!(
        report.tier0_false_positive_rate <= 0.10,
        "{}",
        report.tier0_false_positive_rate
    );
}

/// Differential: whatever the classifier says, the deterministic safety layer
/// decides the same on Tier 0 and never lets either side automate it.
#[test]
fn both_classifiers_agree_on_escalation_and_safety() {
    let engine = Engine::embedded().unwrap();
    let mut compared = 0;
    for line in golden_lines().unwrap() {
        let (_, rules) = decide_line(&engine, &line, &ClassifierSource::Rules, now());
        let recorded_source = ClassifierSource::Recorded(line.model_output.clone());
        let (_, recorded) = decide_line(&engine, &line, &recorded_source, now());
        let prescreened = engine.policy.prescreen().scan(&line.text).is_some();
        for decision in [&rules, &recorded] {
            if prescreened {
                assert_eq!(decision.tier, AppliedTier::Tier0, "{}", line.id);
            }
            if decision.tier == AppliedTier::Tier0 || line.expected.tier0 {
                assert!(!decision.sends_customer_message(), "{}", line.id);
            }
            assert!(decision.actions.len() <= 3);
        }
        compared += 1;
    }
    assert!(compared >= 200);
}
