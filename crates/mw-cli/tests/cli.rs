#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
//! The `mw` binary as an operator uses it: exit codes, JSON keys, stdin input.

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn mw(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mw"))
        .args(args)
        .current_dir(workspace())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mw starts");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("mw finishes")
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn eval_json_reports_every_required_key_and_passes_the_hard_gates() {
    let output = mw(
        &[
            "eval",
            "golden/golden_v1.jsonl",
            "--classifier",
            "rules",
            "--json",
        ],
        None,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON object");
    for key in [
        "n",
        "intent_accuracy",
        "macro_f1",
        "tier0_recall",
        "tier0_false_positive_rate",
        "unsafe_automations",
        "invalid_outputs_accepted",
        "hard_gates_passed",
        "per_intent",
        "automation_rate",
    ] {
        assert!(report.get(key).is_some(), "missing key {key}");
    }
    assert!(report["n"].as_u64().unwrap() >= 200);
    assert_eq!(report["hard_gates_passed"], true);
    assert_eq!(report["unsafe_automations"], 0);
    assert!(
        report["intent_accuracy"].as_f64().unwrap() >= 0.80,
        "accuracy {}",
        report["intent_accuracy"]
    );
    let per_intent = report["per_intent"]["order_status_tracking"]
        .as_object()
        .unwrap();
    for key in ["precision", "recall", "support"] {
        assert!(per_intent.contains_key(key));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !mw_core::contains_pii(&text),
        "the eval report must not carry personal data"
    );
}

#[test]
fn recorded_outputs_that_are_invalid_are_all_rejected() {
    let output = mw(
        &[
            "eval",
            "golden/golden_v1.jsonl",
            "--classifier",
            "recorded",
            "--json",
        ],
        None,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["invalid_outputs_accepted"], 0);
    assert!(report["invalid_outputs_rejected"].as_u64().unwrap() >= 10);
    assert_eq!(report["tier3_executions"], 0);
    assert_eq!(report["tier2_without_deterministic_match"], 0);
}

#[test]
fn eval_fails_with_exit_1_when_a_hard_gate_fails() {
    let dir = tempdir();
    let file = dir.join("bad.jsonl");
    // Labelled Tier 0, but nothing in it is: the "missed Tier 0" gate must fail.
    std::fs::write(
        &file,
        r#"{"id":"x1","channel":"email","text":"Where is my order? It has been a week.","order":null,"expected":{"intent":"legal_threat","alt_intents":[],"tier0":true},"model_output":null}"#,
    )
    .unwrap();
    let output = mw(&["eval", file.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("hard gates FAILED"));
}

#[test]
fn eval_rejects_malformed_files_with_the_line_number() {
    let dir = tempdir();
    let file = dir.join("broken.jsonl");
    std::fs::write(&file, "{\"id\":\"a\"}\n").unwrap();
    let output = mw(&["eval", file.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 1"));
}

#[test]
fn explain_prints_the_decision_and_every_reason() {
    let event = r##"{"channel":"email","text":"Hi, where is my order #10482? It has been a few days. Thanks","customer_name":"Maria Lopez",
        "now":"2026-11-18T15:00:00Z",
        "order":{"orderId":"5563920117","orderName":"#10482","status":"confirmed","fulfillmentStatus":"fulfilled",
                 "createdAt":"2026-11-13T09:12:00Z","shippingMethod":"Standard",
                 "fulfillment":[{"tracking":[{"trackingNumber":"1Z999AA10123456784","trackingCompany":"UPS"}]}]}}"##;
    let output = mw(&["explain"], Some(event));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("tier_2 · order_status_tracking"), "{text}");
    assert!(text.contains("t_order_status_verified"), "{text}");
    assert!(text.contains("[verifier] verifier_allowed"), "{text}");

    let json = mw(
        &["explain", "--json"],
        Some(&event.replace("where is my order", "I am filing a chargeback for my order")),
    );
    let decision: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(decision["tier"], "tier_0");
    assert!(decision["reply"].is_null());
    assert_eq!(decision["team_name"], "Chargebacks / Disputes Team");
}

#[test]
fn explain_rejects_bad_input_clearly() {
    let output = mw(&["explain"], Some("{\"txt\": \"typo in the field name\"}"));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a valid event"));
}

#[test]
fn templates_lint_passes_on_the_shipped_catalog_and_fails_on_a_broken_one() {
    let output = mw(&["templates", "lint"], None);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let dir = tempdir();
    let catalog = std::fs::read_to_string(workspace().join("templates/catalog_v1.yaml")).unwrap();
    std::fs::write(
        dir.join("catalog_v1.yaml"),
        catalog.replacen("{{ order_id }}", "{{ customer_message }}", 1),
    )
    .unwrap();
    std::fs::copy(
        workspace().join("templates/brand.yaml"),
        dir.join("brand.yaml"),
    )
    .unwrap();
    let output = mw(&["templates", "lint", "--dir", dir.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("customer_message"));
}

#[test]
fn rules_print_default_round_trips_through_check() {
    let printed = mw(&["rules", "print-default"], None);
    assert!(printed.status.success());
    let dir = tempdir();
    let file = dir.join("rules.yaml");
    std::fs::write(&file, &printed.stdout).unwrap();
    assert!(
        mw(&["rules", "check", file.to_str().unwrap()], None)
            .status
            .success()
    );
    std::fs::write(&file, "version: 1\nmin_score: 1\n").unwrap();
    assert_eq!(
        mw(&["rules", "check", file.to_str().unwrap()], None)
            .status
            .code(),
        Some(1)
    );
}

fn tempdir() -> PathBuf {
    let dir = common::temp_path("cli");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
