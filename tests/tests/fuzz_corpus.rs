//! Replays the fuzz invariants (`fuzz/src/checks.rs`, shared with the cargo-fuzz
//! targets) over every committed crash reproducer in `fuzz/regressions/<target>/`
//! and over inputs derived from the golden set, so the checks run on every
//! `cargo test` even when no crash was ever found.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

#[path = "../../fuzz/src/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

type Check = fn(&[u8]) -> Result<(), String>;

const TARGETS: [(&str, Check); 5] = [
    ("webhook_payload", checks::check_webhook_payload),
    ("model_output", checks::check_model_output),
    ("template_render", checks::check_template_render),
    ("redact", checks::check_redact),
    ("rules_classifier", checks::check_rules_classifier),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check_of(target: &str) -> Check {
    TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, check)| *check)
        .unwrap()
}

/// Runs `check` over `inputs`, collecting failures as `label: message`.
fn run(target: &str, inputs: &[(String, Vec<u8>)], failures: &mut Vec<String>) {
    let check = check_of(target);
    for (label, data) in inputs {
        if let Err(message) = check(data) {
            failures.push(format!("{target} {label}: {message}"));
        }
    }
}

#[test]
fn every_regression_reproducer_passes() {
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (target, _) in TARGETS {
        let dir = repo_root().join("fuzz/regressions").join(target);
        assert!(
            dir.is_dir(),
            "{} is missing: every fuzz target keeps its reproducers there",
            dir.display()
        );
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .filter(|path| path.file_name().is_some_and(|name| name != "README.md"))
            .collect();
        files.sort();
        let inputs: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|path| (path.display().to_string(), std::fs::read(path).unwrap()))
            .collect();
        replayed += inputs.len();
        run(target, &inputs, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("replayed {replayed} regression input(s)");
}

struct GoldenLine {
    id: String,
    channel: String,
    text: String,
    order: Option<Value>,
    model_output: Option<Value>,
}

fn golden() -> Vec<GoldenLine> {
    let text = std::fs::read_to_string(repo_root().join("golden/golden_v1.jsonl")).unwrap();
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap();
            let field = |key: &str| value[key].as_str().unwrap().to_owned();
            GoldenLine {
                id: field("id"),
                channel: field("channel"),
                text: field("text"),
                order: Some(value["order"].clone()).filter(|order| !order.is_null()),
                model_output: Some(value["model_output"].clone())
                    .filter(|output| !output.is_null()),
            }
        })
        .collect()
}

/// Webhook bodies as `fuzz/seeds.py` builds them.
fn webhook_inputs(index: usize, line: &GoldenLine) -> Vec<Vec<u8>> {
    let id = &line.id;
    let mut payloads = vec![
        json!({"ticket_id": id, "message_id": format!("m-{id}"), "channel": line.channel, "text": line.text}),
        json!({"conversation_id": id, "channel": line.channel, "text": line.text,
               "customer": {"id": format!("c-{id}"), "name": "Ana Gómez", "email": "ana@example.com"}}),
        json!({"id": index + 1, "dedupe_id": index + 1000, "text": line.text, "customer_name": "Ana"}),
    ];
    if let Some(order) = &line.order {
        payloads.push(
            json!({"ticket_id": id, "channel": line.channel, "order": order,
            "messages": [{"id": format!("msg-{id}"), "text": line.text, "sender": "customer"}]}),
        );
    }
    payloads
        .iter()
        .map(|payload| serde_json::to_vec(payload).unwrap())
        .collect()
}

/// Hostile variable values for template inputs.
const HOSTILE: [&str; 8] = [
    "{{ brand.links }}",
    "{% for x in range(99999) %}{{ x }}{% endfor %}",
    "{% raw %}{{ order_id }}{% endraw %}",
    "<script>alert(document.cookie)</script>",
    "\u{0}\u{1}\u{1b}[31mred\u{1b}[0m\r\n\t",
    "\u{202e}evil\u{200b}\u{feff}",
    "partially fulfilled",
    "\u{1F4E6} envío Ñandú 漢字",
];

/// A `template_render` input (see `checks::check_template_render`) for the line,
/// rendering template number `template` with the text and hostile values.
fn template_input(index: usize, template: usize, line: &GoldenLine) -> Vec<u8> {
    let order = line.order.clone().unwrap_or(Value::Null);
    let text = |key: &str, default: &str| {
        order
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_owned()
    };
    let hostile = HOSTILE[index % HOSTILE.len()];
    let mut fields = vec![
        line.text.clone(),
        text("orderName", "#10544"),
        text("status", "confirmed"),
        text("fulfillmentStatus", "unfulfilled").replace('_', " "),
        hostile.to_owned(),
        "UPS".to_owned(),
        text("statusUrl", ""),
        hostile.to_owned(),
        ["Standard", "Rushed", "Priority", hostile][index % 4].to_owned(),
        "3 business days".to_owned(),
    ];
    assert_eq!(fields.len(), checks::TEMPLATE_SCALARS.len());
    fields.extend(
        [
            line.text.as_str(),
            hostile,
            "",
            "9400111899562537866361",
            "USPS",
            hostile,
        ]
        .map(str::to_owned),
    );
    let header = vec![
        u8::try_from(template % 256).unwrap(),
        u8::try_from(index % 2).unwrap(),
        u8::try_from(index % 6).unwrap(),
    ];
    let mut data = header;
    for field in fields {
        data.push(checks::TEMPLATE_FIELD_SEPARATOR);
        data.extend_from_slice(field.as_bytes());
    }
    data
}

#[test]
fn golden_derived_inputs_pass_every_check() {
    let lines = golden();
    assert!(lines.len() > 100, "the golden set looks truncated");
    let mut inputs: Vec<(&str, String, Vec<u8>)> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        for (variant, body) in webhook_inputs(index, line).into_iter().enumerate() {
            inputs.push(("webhook_payload", format!("{}#{variant}", line.id), body));
        }
        if let Some(output) = &line.model_output {
            inputs.push((
                "model_output",
                line.id.clone(),
                serde_json::to_vec(output).unwrap(),
            ));
            let mut tier3 = output.clone();
            tier3["automation"]["tier"] = json!("TIER_3_AUTO_ACTION");
            inputs.push((
                "model_output",
                format!("{}#tier3", line.id),
                serde_json::to_vec(&tier3).unwrap(),
            ));
            let mut extra = output.clone();
            extra["free_text_reply"] = json!("Your refund is approved");
            inputs.push((
                "model_output",
                format!("{}#extra", line.id),
                serde_json::to_vec(&extra).unwrap(),
            ));
        }
        for target in ["redact", "rules_classifier"] {
            inputs.push((target, line.id.clone(), line.text.as_bytes().to_vec()));
        }
        // Every template, across the lines: the line number picks it.
        for template in [index, index + 7] {
            inputs.push((
                "template_render",
                format!("{}#t{template}", line.id),
                template_input(index, template, line),
            ));
        }
    }
    let mut failures = Vec::new();
    for (target, _) in TARGETS {
        let of_target: Vec<(String, Vec<u8>)> = inputs
            .iter()
            .filter(|(name, _, _)| *name == target)
            .map(|(_, label, data)| (label.clone(), data.clone()))
            .collect();
        assert!(
            !of_target.is_empty(),
            "no golden-derived input for {target}"
        );
        run(target, &of_target, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hostile_but_handled_inputs_pass() {
    // Rejected input is fine: invalid model output is routed to a human, a
    // non-JSON webhook body is a 400.
    assert!(checks::check_model_output(b"{not json").is_ok());
    assert!(checks::check_webhook_payload(b"not json").is_ok());
    // A value that looks like template syntax is inserted verbatim.
    let mut data = vec![0, 0, 0];
    for value in ["{{ brand.name }}", "{% if true %}x{% endif %}"] {
        data.push(checks::TEMPLATE_FIELD_SEPARATOR);
        data.extend_from_slice(value.as_bytes());
    }
    assert!(checks::check_template_render(&data).is_ok());
    assert!(checks::check_redact("card 4111 1111 1111 1111, jane@example.com".as_bytes()).is_ok());
    assert!(checks::check_rules_classifier("I will sue you, see you in court".as_bytes()).is_ok());
}
