//! The OpenAI classifier and verifier against the fake OpenAI server: the request
//! field by field, and every way a call can fail closed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mw_adapters::http::RetryPolicy;
use mw_adapters::openai::{
    CLASSIFIER_PROMPT, OpenAiClassifier, OpenAiClient, OpenAiConfig, OpenAiVerifier,
    VERIFIER_PROMPT, strict_schema,
};
use mw_core::{
    Channel, Classifier, ClassifyRequest, Intent, ModelOutput, Verifier, VerifierInput,
    VerifierRequest, decision_schema, validate_decision, verifier_schema,
};
use mw_fakes::{FakeOpenAi, FakeReply};
use serde_json::{Value, json};

const KEY: &str = "sk-test-key";

fn decision() -> Value {
    json!({"schema_version": "mw_decision_v1", "language": "en", "primary_intent": "damaged_item",
        "secondary_intents": [], "routing": {"destination_team": "Returns Admin", "confidence": 0.9,
        "needs_manual_triage": false, "tags": []},
        "automation": {"tier": "TIER_1_SAFE_ASSIST", "action": "SEND_TEMPLATE", "template_id": "t_damaged_item_intake",
        "confidence": 0.9, "requires_deterministic_match": false},
        "risk": {"flags": [], "force_human": false}, "clarifying_questions": [], "notes_for_agent": ""})
}

async fn setup(deadline: Duration) -> (FakeOpenAi, Arc<OpenAiClient>) {
    let fake = FakeOpenAi::start(KEY).await.unwrap();
    let mut config = OpenAiConfig::new(KEY, "gpt-test");
    config.base_url = fake.base_url();
    config.retry = RetryPolicy {
        timeout: Duration::from_millis(700),
        attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        deadline,
    };
    (fake, Arc::new(OpenAiClient::new(config).unwrap()))
}

fn request(text: &str) -> ClassifyRequest {
    ClassifyRequest {
        channel: Some(Channel::Email),
        redacted_text: text.into(),
    }
}

#[tokio::test]
async fn the_classification_request_has_every_documented_field() {
    let (fake, client) = setup(Duration::from_secs(5)).await;
    fake.script(vec![FakeReply::Content(decision())]);
    let classifier = OpenAiClassifier::new(client);
    let long = "my mug arrived cracked ".repeat(600);
    let answer = classifier.classify(&request(&long)).await;
    assert_eq!(answer.output, ModelOutput::Json(decision()));
    let body = &fake.requests()[0];
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["temperature"], 0);
    assert_eq!(body["max_completion_tokens"], 600);
    assert_eq!(body["store"], false);
    assert_eq!(body["response_format"]["type"], "json_schema");
    let format = &body["response_format"]["json_schema"];
    assert_eq!(format["name"], "mw_decision_v1");
    assert_eq!(format["strict"], true);
    assert_eq!(format["schema"], strict_schema(decision_schema()));
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(
        messages[0],
        json!({"role": "system", "content": CLASSIFIER_PROMPT})
    );
    assert!(messages.len() >= 2 + 16, "few-shot examples are sent");
    let last = messages.last().unwrap();
    assert_eq!(last["role"], "user");
    let content = last["content"].as_str().unwrap();
    assert!(content.starts_with("Channel: email\n<<<CUSTOMER_MESSAGE\n"));
    let text = content
        .trim_start_matches("Channel: email\n<<<CUSTOMER_MESSAGE\n")
        .trim_end_matches("\nCUSTOMER_MESSAGE>>>");
    assert_eq!(
        text.chars().count(),
        8_000,
        "input truncated to 8,000 characters"
    );
    fake.stop().await;
}

#[tokio::test]
async fn the_verification_request_carries_the_match_the_intent_and_the_redacted_text() {
    let (fake, client) = setup(Duration::from_secs(5)).await;
    let answer = json!({"schema_version": "mw_tier2_verifier_v1", "allow_tier2": true, "confidence": 0.95,
        "downgrade_to_tier": "TIER_1_SAFE_ASSIST", "reason_code": "OK", "notes": ""});
    fake.script(vec![FakeReply::Content(answer.clone())]);
    let verifier = OpenAiVerifier::new(client);
    let result = verifier
        .verify(&VerifierRequest {
            deterministic_match: true,
            proposed_intent: Intent::OrderStatusTracking,
            proposed_template: "t_order_status_verified".into(),
            redacted_message: "where is order #[ORDER]?".into(),
        })
        .await;
    assert_eq!(result, VerifierInput::Json(answer));
    let body = &fake.requests()[0];
    assert_eq!(
        body["response_format"]["json_schema"]["name"],
        "mw_tier2_verifier_v1"
    );
    assert_eq!(
        body["response_format"]["json_schema"]["schema"],
        strict_schema(verifier_schema())
    );
    assert_eq!(body["messages"][0]["content"], VERIFIER_PROMPT);
    let user: Value =
        serde_json::from_str(body["messages"][1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        user,
        json!({"deterministic_order_match": true, "proposed_intent": "order_status_tracking",
               "proposed_template": "t_order_status_verified", "customer_message": "where is order #[ORDER]?"})
    );
    assert_eq!(fake.calls_for_schema("mw_tier2_verifier_v1"), 1);
    fake.stop().await;
}

async fn failure_of(reply: FakeReply) -> String {
    let (fake, client) = setup(Duration::from_secs(5)).await;
    fake.script(vec![reply]);
    let answer = OpenAiClassifier::new(client)
        .classify(&request("hello"))
        .await;
    fake.stop().await;
    match answer.output {
        ModelOutput::Failed(reason) => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn refusals_truncation_and_malformed_answers_fail_closed() {
    assert!(
        failure_of(FakeReply::Refusal("I can't help with that".into()))
            .await
            .contains("refused")
    );
    assert!(
        failure_of(FakeReply::Truncated("{\"schema_version\": \"mw_dec".into()))
            .await
            .contains("truncated")
    );
    assert!(
        failure_of(FakeReply::RawContent("not json at all".into()))
            .await
            .contains("not valid JSON")
    );
    assert!(failure_of(FakeReply::NonJson).await.contains("malformed"));
    // Valid JSON that violates the schema comes back as JSON and is rejected by
    // the core's validation (which marks the decision as a model failure).
    let (fake, client) = setup(Duration::from_secs(5)).await;
    let mut bad = decision();
    bad["automation"]["tier"] = json!("TIER_3_AUTO_ACTION_NOW");
    fake.script(vec![FakeReply::Content(bad)]);
    let answer = OpenAiClassifier::new(client)
        .classify(&request("hello"))
        .await;
    let ModelOutput::Json(value) = answer.output else {
        panic!("json expected")
    };
    assert!(validate_decision(&value).is_err());
    fake.stop().await;
}

#[tokio::test]
async fn insufficient_quota_is_never_retried_but_rate_limits_and_outages_are() {
    let (fake, client) = setup(Duration::from_secs(5)).await;
    let classifier = OpenAiClassifier::new(client);
    fake.script(vec![FakeReply::error(
        429,
        "insufficient_quota",
        Some("insufficient_quota"),
        "You exceeded your current quota",
        None,
    )]);
    let answer = classifier.classify(&request("hello")).await;
    assert!(
        matches!(&answer.output, ModelOutput::Failed(reason) if reason.contains("insufficient_quota")),
        "{answer:?}"
    );
    assert_eq!(fake.requests().len(), 1);

    fake.clear_requests();
    fake.script(vec![
        FakeReply::error(
            429,
            "requests",
            Some("rate_limit_exceeded"),
            "Rate limit reached",
            Some(1),
        ),
        FakeReply::error(
            503,
            "server_error",
            Some("server_error"),
            "overloaded",
            None,
        ),
        FakeReply::Content(decision()),
    ]);
    let started = Instant::now();
    let answer = classifier.classify(&request("hello")).await;
    assert_eq!(answer.output, ModelOutput::Json(decision()));
    assert_eq!(fake.requests().len(), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retry-after honoured"
    );

    fake.clear_requests();
    fake.script(vec![FakeReply::error(
        401,
        "invalid_request_error",
        Some("invalid_api_key"),
        "Incorrect API key provided",
        None,
    )]);
    let answer = classifier.classify(&request("hello")).await;
    assert!(
        matches!(&answer.output, ModelOutput::Failed(reason) if reason.contains("MW_OPENAI_API_KEY")),
        "{answer:?}"
    );
    assert_eq!(fake.requests().len(), 1);
    fake.stop().await;
}

#[tokio::test]
async fn a_slow_model_fails_closed_within_the_deadline() {
    let (fake, client) = setup(Duration::from_millis(1500)).await;
    fake.set_responder(|_| {
        FakeReply::Delay(
            Duration::from_secs(5),
            Box::new(FakeReply::Content(decision())),
        )
    });
    let started = Instant::now();
    let answer = OpenAiClassifier::new(client)
        .classify(&request("hello"))
        .await;
    assert!(
        matches!(&answer.output, ModelOutput::Failed(reason) if reason.contains("timeout")),
        "{answer:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    fake.stop().await;
}

#[tokio::test]
async fn the_probe_proves_key_model_and_strict_outputs() {
    let (fake, client) = setup(Duration::from_secs(5)).await;
    fake.set_responder(|_| FakeReply::Content(json!({"ok": true})));
    client.probe().await.unwrap();
    assert_eq!(fake.calls_for_schema("mw_probe"), 1);
    fake.stop().await;
}
