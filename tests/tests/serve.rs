//! `mw serve` in-process: a real SQLite file, real HTTP on 127.0.0.1. Every ingress
//! status code (checked against schemas/openapi.yaml), token rotation, HMAC replay
//! window, duplicate deliveries, per-conversation order, kill switch, unreadable flags.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::Arc;
use std::time::Duration;

use mw_adapters::WebhookAuth;
use mw_cli::serve::AuthModeArg;
use mw_core::StateStore;
use mw_tests::{start, tempdir};
use serde_json::{Value, json};

fn damaged(conversation: &str, message: &str) -> Value {
    json!({"ticket_id": conversation, "message_id": message, "channel": "email", "customer_name": "Maria Lopez",
           "text": "Hi, my mug arrived cracked in two pieces. Can you help me with this?"})
}

/// Validates a response body against the OpenAPI response schema of a status code.
fn check_openapi(path: &str, method: &str, status: u16, body: &Value) {
    let text = std::fs::read_to_string(mw_tests::repo_root().join("schemas/openapi.yaml")).unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]
        ["schema"];
    assert!(
        !schema.is_null(),
        "openapi.yaml documents no JSON body for {method} {path} {status}"
    );
    let mut root = schema.as_object().cloned().unwrap();
    root.insert("components".into(), doc["components"].clone());
    let validator = jsonschema::validator_for(&Value::Object(root)).unwrap();
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} {body} violates openapi.yaml: {errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ingress_status_code_matches_the_contract_and_the_openapi_spec() {
    let server = start("codes", |_| {}).await;
    let token = [("x-richpanel-webhook-token", "tok-a".to_owned())];
    let body = damaged("t_codes", "m1").to_string();
    let cases: Vec<(u16, (u16, Value))> = vec![
        (200, server.post(&body, &token).await),
        (200, server.post(&body, &token).await),
        (400, server.post("{not json", &token).await),
        (
            400,
            server
                .post(r#"{"text":"no conversation id"}"#, &token)
                .await,
        ),
        (
            400,
            server
                .post(r#"{"ticket_id":"../etc/passwd"}"#, &token)
                .await,
        ),
        (401, server.post(&body, &[]).await),
        (
            401,
            server
                .post(&body, &[("x-richpanel-webhook-token", "wrong".into())])
                .await,
        ),
        (
            413,
            server
                .post(
                    &json!({"ticket_id": "t_big", "text": "x".repeat(40_000)}).to_string(),
                    &token,
                )
                .await,
        ),
    ];
    for (expected, (status, response)) in &cases {
        assert_eq!(status, expected, "{response}");
        check_openapi("/webhook/richpanel", "post", *status, response);
    }
    assert_eq!(cases[0].1.1["status"], "accepted");
    assert_eq!(cases[1].1.1["status"], "duplicate");
    assert!(
        cases[2].1.1["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(
        cases[5].1.1,
        json!({"status": "unauthorized"}),
        "401 carries no detail"
    );

    let health = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    check_openapi("/healthz", "get", 200, &health.json().await.unwrap());
    server.drain().await;
    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mw_events_accepted_total{result=\"accepted\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mw_events_rejected_total{reason=\"unauthorized\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mw_decisions_total{tier=\"tier_1\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("mw_queue_depth"), "{metrics}");
    server.stop().await;

    let throttled = start("throttle", |s| {
        s.rate_limit_per_sec = Some(1);
        s.rate_limit_burst = Some(1);
    })
    .await;
    let first = throttled.post_token(&damaged("t_t", "m1")).await;
    let second = throttled.post_token(&damaged("t_t", "m2")).await;
    assert_eq!(first.0, 200);
    assert_eq!(second.0, 429);
    check_openapi("/webhook/richpanel", "post", 429, &second.1);
    throttled.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_active_tokens_rotate_without_downtime() {
    let server = start("rotate", |_| {}).await;
    for (token, expected) in [("tok-a", 200), ("tok-b", 200), ("tok-c", 401), ("", 401)] {
        let (status, _) = server
            .post(
                &damaged("t_rot", token)
                    .to_string()
                    .replace("\"message_id\":\"\"", "\"message_id\":\"x\""),
                &[("x-richpanel-webhook-token", token.into())],
            )
            .await;
        assert_eq!(status, expected, "token {token:?}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_signatures_outside_the_window_or_tampered_are_rejected() {
    let server = start("hmac", |s| {
        s.auth_mode = Some(AuthModeArg::Hmac);
        s.webhook_tokens = Some(vec!["old-secret".into(), "s3cret".into()]);
    })
    .await;
    let body = damaged("t_hmac", "m1").to_string();
    let now = chrono::Utc::now().timestamp();
    let signed = |timestamp: i64, secret: &str, body: &str| {
        vec![
            ("x-timestamp", timestamp.to_string()),
            (
                "x-signature",
                WebhookAuth::sign(secret, timestamp, body.as_bytes()),
            ),
        ]
    };
    assert_eq!(
        server.post(&body, &signed(now, "s3cret", &body)).await.0,
        200
    );
    assert_eq!(
        server
            .post(&body, &signed(now, "old-secret", &body))
            .await
            .0,
        200,
        "both secrets are active"
    );
    assert_eq!(
        server
            .post(&body, &signed(now - 400, "s3cret", &body))
            .await
            .0,
        401,
        "replay outside ±5 min"
    );
    assert_eq!(
        server
            .post(&body, &signed(now + 400, "s3cret", &body))
            .await
            .0,
        401
    );
    let tampered = body.replace("cracked", "fine");
    assert_eq!(
        server
            .post(&tampered, &signed(now, "s3cret", &body))
            .await
            .0,
        401
    );
    assert_eq!(
        server.post(&body, &signed(now, "wrong", &body)).await.0,
        401
    );
    assert_eq!(
        server
            .post(&body, &[("x-richpanel-webhook-token", "s3cret".into())])
            .await
            .0,
        401
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_concurrent_deliveries_are_processed_once() {
    let server = Arc::new(start("dupes", |_| {}).await);
    let mut posts = Vec::new();
    for _ in 0..8 {
        let server = server.clone();
        posts.push(tokio::spawn(async move {
            server.post_token(&damaged("t_dup", "m1")).await.0
        }));
    }
    for post in posts {
        assert_eq!(post.await.unwrap(), 200);
    }
    server.drain().await;
    // A late redelivery after processing is accepted at the door and dropped by the worker.
    assert_eq!(server.post_token(&damaged("t_dup", "m1")).await.0, 200);
    // Without a message id, identical payloads share one key (queued: "duplicate";
    // already processed: accepted, then dropped by the worker's idempotency record).
    let no_id = json!({"ticket_id": "t_dup2", "channel": "email", "text": "my package arrived with the lid broken, help"});
    for _ in 0..3 {
        assert_eq!(server.post_token(&no_id).await.0, 200);
    }
    server.drain().await;
    assert_eq!(server.replies("t_dup").len(), 1);
    assert_eq!(server.replies("t_dup2").len(), 1);
    let trail = server.store.audit_trail("t_dup").await.unwrap();
    assert_eq!(trail.iter().filter(|r| r.decision.is_some()).count(), 1);
    Arc::try_unwrap(server).ok().unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_conversation_order_is_kept_under_concurrency() {
    let server = start("order", |s| s.workers = Some(6)).await;
    for message in 1..=12 {
        for conversation in ["t_a", "t_b", "t_c"] {
            let body = json!({"ticket_id": conversation, "message_id": format!("m{message:02}"), "channel": "sms",
                              "text": format!("message number {message} about my order")});
            assert_eq!(server.post_token(&body).await.0, 200);
        }
    }
    server.drain().await;
    for conversation in ["t_a", "t_b", "t_c"] {
        let keys: Vec<String> = server
            .store
            .audit_trail(conversation)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.event_key)
            .collect();
        let expected: Vec<String> = (1..=12)
            .map(|m| format!("evt:rp:{conversation}:m{m:02}"))
            .collect();
        assert_eq!(keys, expected);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_takes_effect_without_a_restart() {
    let server = start("killswitch", |_| {}).await;
    server.post_token(&damaged("t_k1", "m1")).await;
    server.drain().await;
    assert_eq!(server.replies("t_k1").len(), 1);

    server.store.write_flag("safe_mode", &json!(true)).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    server.post_token(&damaged("t_k2", "m1")).await;
    server.drain().await;
    assert!(
        server.replies("t_k2").is_empty(),
        "safe mode: no customer message"
    );
    let tags = server.store.outbox(Some("t_k2")).unwrap();
    assert_eq!(tags.len(), 1, "still tagged and routed");
    let trail = server.store.audit_trail("t_k2").await.unwrap();
    assert!(
        trail[0]
            .decision
            .as_ref()
            .unwrap()
            .reasons
            .iter()
            .any(|r| r.code == "safe_mode")
    );

    server.store.write_flag("safe_mode", &json!(false)).unwrap();
    server
        .store
        .write_flag("channel.email", &json!(false))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    server.post_token(&damaged("t_k3", "m1")).await;
    server.drain().await;
    assert!(
        server.replies("t_k3").is_empty(),
        "email disabled: no customer message"
    );

    server
        .store
        .write_flag("channel.email", &json!(true))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    server.post_token(&damaged("t_k4", "m1")).await;
    server.drain().await;
    assert_eq!(server.replies("t_k4").len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_flags_mean_no_customer_message() {
    let server = start("badflags", |_| {}).await;
    server
        .store
        .write_flag_raw("safe_mode", "{corrupt")
        .unwrap();
    server.post_token(&damaged("t_bad", "m1")).await;
    server.drain().await;
    assert!(server.replies("t_bad").is_empty());
    let trail = server.store.audit_trail("t_bad").await.unwrap();
    let decision = trail[0].decision.as_ref().unwrap();
    assert!(
        decision
            .reasons
            .iter()
            .any(|r| r.code == "flags_unreadable"),
        "{:?}",
        decision.reasons
    );
    assert!(decision.tags.contains(&"route-returns-admin".to_owned()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_and_bot_messages_never_trigger_automation() {
    let server = start("loops", |_| {}).await;
    let body = json!({"ticket_id": "t_loop", "message_id": "c2", "channel": "email", "messages": [
        {"id": "c1", "sender": "customer", "text": "my mug arrived cracked"},
        {"id": "c2", "sender": "bot", "text": "Sorry about that! Please send photos."}]});
    server.post_token(&body).await;
    server.drain().await;
    assert!(server.store.outbox(Some("t_loop")).unwrap().is_empty());
    let trail = server.store.audit_trail("t_loop").await.unwrap();
    assert_eq!(trail[0].skipped.as_deref(), Some("not_from_customer"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_events_are_dead_lettered_after_five_receives_and_can_be_redriven() {
    let conversations = tempdir("conversations").join("conversations.jsonl");
    std::fs::write(
        &conversations,
        r#"{"id":"t_file","channel":"email","customer":{"name":"Ana Ruiz"},"messages":[{"id":"c1","sender":"customer","text":"The zipper on my new jacket broke on day one, it arrived defective"}],"order":null}"#,
    )
    .unwrap();
    let server = start("dlq", |s| {
        s.max_receives = Some(5);
        s.conversations_file = Some(conversations.clone());
    })
    .await;
    // No text in the payload and no such conversation anywhere: processing fails.
    assert_eq!(
        server
            .post_token(&json!({"ticket_id": "t_missing", "message_id": "m1"}))
            .await
            .0,
        200
    );
    // The conversations file supplies the text for payloads without it.
    assert_eq!(
        server.post_token(&json!({"ticket_id": "t_file"})).await.0,
        200
    );
    let mut dead = Vec::new();
    for _ in 0..200 {
        dead = server.store.dlq_list().unwrap();
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(dead.len(), 1, "one dead letter");
    assert_eq!(dead[0].event_key, "evt:rp:t_missing:m1");
    assert_eq!(dead[0].receive_count, 5);
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("MW_CONVERSATIONS_FILE"),
        "{:?}",
        dead[0].last_error
    );
    server.drain().await;
    assert_eq!(
        server.replies("t_file").len(),
        1,
        "the file conversation was processed"
    );
    let trail = server.store.audit_trail("t_file").await.unwrap();
    assert_eq!(
        trail[0].event_key, "evt:rp:t_file:c1",
        "keyed by the newest customer message"
    );

    let moved = server.store.dlq_redrive(&[], chrono::Utc::now()).unwrap();
    assert_eq!(moved, 1);
    assert!(server.store.dlq_list().unwrap().is_empty());
    let stats = server.store.stats(chrono::Utc::now()).unwrap();
    assert_eq!(
        stats.depth, 1,
        "back in the queue with a fresh receive count"
    );
    server.stop().await;
}
