//! The Lambda handlers in-process: ingress request → SQS FIFO on moto → worker
//! batch (DynamoDB, SSM, Secrets Manager on moto) → the fake Richpanel. Same
//! outcomes as the `mw serve` tests, plus a partially failing batch.
//!
//! Needs `MW_TEST_AWS_ENDPOINT` (moto) and AWS test credentials in the
//! environment; `scripts/test.sh` starts moto and sets them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use bytes::Bytes;
use chrono::Utc;
use http::Method;
use mw_adapters::aws::{
    DynamoStore, SsmFlags, Tables, create_fifo_queue, create_tables, sdk_config,
};
use mw_core::StateStore;
use mw_fakes::{FakeRichpanel, Fault, RouteMatch};
use mw_lambda::{IngressFunction, LambdaEnv, WorkerFunction};
use serde_json::{Value, json};

const RP_KEY: &str = "rp-lambda-key";
const TOKEN: &str = "lambda-webhook-token";
const TRACKING_URL: &str = "https://carrier.example/track/1Z999AA10123456784";

fn unique(name: &str) -> String {
    format!(
        "mw-{name}-{}-{}",
        std::process::id(),
        Utc::now().timestamp_micros()
    )
}

async fn secret(config: &aws_config::SdkConfig, name: &str, value: Value) -> String {
    aws_sdk_secretsmanager::Client::new(config)
        .create_secret()
        .name(unique(name))
        .secret_string(value.to_string())
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

struct Stack {
    env: LambdaEnv,
    config: aws_config::SdkConfig,
    tables: Tables,
    rp: FakeRichpanel,
    bot: String,
}

async fn stack() -> Stack {
    let endpoint = std::env::var("MW_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("MW_TEST_AWS_ENDPOINT is not set: run ./scripts/test.sh, which starts a local moto server and sets it")
    });
    let config = sdk_config(Some(&endpoint)).await;
    let (queue_url, _dlq) = create_fifo_queue(&config, &unique("events"), 5)
        .await
        .unwrap();
    let tables = Tables {
        idempotency: unique("idempotency"),
        state: unique("state"),
        audit: unique("audit"),
    };
    create_tables(&config, &tables).await.unwrap();
    let flags_path = format!("/{}/flags", unique("stage"));
    let flags = SsmFlags::new(&config, &flags_path);
    flags.write("safe_mode", &json!(false)).await.unwrap();
    flags
        .write("automation_enabled", &json!(true))
        .await
        .unwrap();
    let rp = FakeRichpanel::start(RP_KEY).await.unwrap();
    let bot = rp.add_user("Support Bot", "bot@shop.example");
    let env = LambdaEnv {
        stage: "test".into(),
        queue_url: Some(queue_url),
        webhook_secret: Some(
            secret(&config, "webhook", json!({"tokens": ["old-token", TOKEN]})).await,
        ),
        endpoint_url: Some(endpoint),
        idempotency_table: Some(tables.idempotency.clone()),
        state_table: Some(tables.state.clone()),
        audit_table: Some(tables.audit.clone()),
        flags_path: Some(flags_path),
        richpanel_secret: Some(secret(&config, "richpanel", json!({"api_key": RP_KEY})).await),
        openai_secret: Some(secret(&config, "openai", json!({"api_key": ""})).await),
        bot_author_id: Some(bot.clone()),
        richpanel_base_url: Some(rp.base_url()),
        richpanel_rate_limit: Some(1000),
        richpanel_rate_window_secs: Some(1.0),
        event_timeout_secs: Some(20),
        ..LambdaEnv::default()
    };
    Stack {
        env,
        config,
        tables,
        rp,
        bot,
    }
}

impl Stack {
    fn ticket(&self, id: &str, text: &str) {
        self.rp
            .insert_email_ticket(id, "jane.doe@example.com", text);
    }

    fn bot_comments(&self, id: &str) -> Vec<String> {
        self.rp.comments_by(id, &self.bot)
    }

    fn tags(&self, id: &str) -> Vec<String> {
        self.rp.tag_names(id)
    }

    /// What the SQS event source would hand the worker: up to 10 messages, in the
    /// Lambda event's JSON shape.
    async fn batch(&self) -> SqsEvent {
        let sqs = aws_sdk_sqs::Client::new(&self.config);
        let received = sqs
            .receive_message()
            .queue_url(self.env.queue_url.as_deref().unwrap())
            .max_number_of_messages(10)
            .visibility_timeout(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        let records: Vec<Value> = received
            .messages()
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, Value> = m
                    .attributes()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                    .collect();
                let key = m.message_attributes().unwrap()["event_key"]
                    .string_value()
                    .unwrap();
                json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                       "attributes": attributes,
                       "messageAttributes": {"event_key": {"stringValue": key, "dataType": "String"}},
                       "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:events.fifo",
                       "awsRegion": "us-east-1"})
            })
            .collect();
        serde_json::from_value(json!({"Records": records})).unwrap()
    }

    /// The event source's part after a batch: delete what succeeded.
    async fn delete_succeeded(&self, event: &SqsEvent, failed: &[String]) {
        let sqs = aws_sdk_sqs::Client::new(&self.config);
        for record in &event.records {
            if !failed.contains(record.message_id.as_ref().unwrap()) {
                sqs.delete_message()
                    .queue_url(self.env.queue_url.as_deref().unwrap())
                    .receipt_handle(record.receipt_handle.as_deref().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

async fn post(ingress: &IngressFunction, token: &str, body: Value) -> (u16, Value) {
    let request = http::Request::builder()
        .method("POST")
        .uri("/webhook/richpanel")
        .header("x-richpanel-webhook-token", token)
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_string()))
        .unwrap();
    let response = ingress.handle(request).await;
    (
        response.status().as_u16(),
        serde_json::from_str(response.body()).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_to_queue_to_worker_to_richpanel_with_a_partially_failing_batch() {
    let stack = stack().await;
    stack.ticket(
        "t_cb",
        "If this isn't refunded today I'm filing a chargeback with my bank.",
    );
    stack.ticket("t_bad", "My mug arrived cracked, what can I do?");
    stack.ticket("t_os", "Hi, where is my order #1001? It's been a few days.");
    stack.rp.insert_order("shop", json!({"orderId": "5100000001001", "orderDbKey": "gid://shopify/Order/5100000001001",
        "orderName": "#1001", "status": "confirmed", "fulfillmentStatus": "fulfilled", "amount": 42.0,
        "createdAt": Utc::now().to_rfc3339(), "shippingMethod": "Standard Shipping",
        "fulfillment": [{"status": "in_transit", "createdAt": Utc::now().to_rfc3339(),
            "tracking": [{"trackingNumber": "1Z999AA10123456784", "trackingCompany": "UPS", "trackingUrl": TRACKING_URL}]}]}));
    stack.rp.link_order("t_os", "shop", "5100000001001");

    let ingress = IngressFunction::init(&stack.env).await.unwrap();
    let (status, _) = post(&ingress, "wrong-token", json!({"ticket_id": "t_cb"})).await;
    assert_eq!(status, 401);
    for id in ["t_cb", "t_bad", "t_os"] {
        let (status, body) = post(&ingress, TOKEN, json!({"ticket_id": id})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "accepted");
    }
    // Rotation: the old token is active too (a second delivery of t_cb).
    let (status, _) = post(
        &ingress,
        "old-token",
        json!({"ticket_id": "t_cb", "trigger": "again"}),
    )
    .await;
    assert_eq!(status, 200);

    let worker = WorkerFunction::init(&stack.env).await.unwrap();
    // t_bad's conversation cannot be read (3 × 500: all of the client's attempts).
    stack.rp.fault(
        RouteMatch::new(Method::GET, "/v1/tickets/t_bad"),
        Fault::Status {
            status: 500,
            body: "{}".into(),
        },
        3,
    );
    let event = stack.batch().await;
    let groups: Vec<String> = event
        .records
        .iter()
        .map(|r| r.attributes["MessageGroupId"].clone())
        .collect();
    assert!(groups.contains(&"t_bad".to_owned()) && groups.contains(&"t_os".to_owned()));
    let response = worker.handle(event.clone(), None).await;
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    let bad_at = groups.iter().position(|group| group == "t_bad").unwrap();
    let expected: Vec<String> = event.records[bad_at..]
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    assert_eq!(
        failed, expected,
        "the failed message and every later one are reported ({groups:?})"
    );
    stack.delete_succeeded(&event, &failed).await;

    // Until the queue is empty, the event source hands out what is left.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let event = stack.batch().await;
        if event.records.is_empty() {
            break;
        }
        let response = worker.handle(event.clone(), None).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "{:?}",
            response.batch_item_failures
        );
        stack.delete_succeeded(&event, &[]).await;
    }

    // Tier 0: only tags and the Tier 0 team.
    let tags = stack.tags("t_cb");
    assert!(
        tags.contains(&"route-chargebacks-disputes-team".to_owned())
            && tags.contains(&"mw-tier-0".to_owned()),
        "{tags:?}"
    );
    assert!(stack.bot_comments("t_cb").is_empty());
    // Tier 2: the verified reply with its tracking link, exactly once.
    let replies = stack.bot_comments("t_os");
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(replies[0].contains(TRACKING_URL));
    // The failed event was retried and decided.
    assert!(
        stack
            .tags("t_bad")
            .contains(&"mw-routing-applied".to_owned())
    );
    assert_eq!(stack.bot_comments("t_bad").len(), 1);
    // The audit trail is in DynamoDB, without message text.
    let store = DynamoStore::new(&stack.config, stack.tables.clone());
    let trail = store.audit_trail("t_os").await.unwrap();
    let decision = trail
        .iter()
        .rev()
        .find_map(|r| r.decision.as_ref())
        .unwrap();
    assert_eq!(
        decision.reply.as_ref().unwrap().template_id,
        "t_order_status_verified"
    );
    assert!(
        !serde_json::to_string(&trail)
            .unwrap()
            .contains("where is my order")
    );

    // Safe mode through SSM: route-only from then on.
    SsmFlags::new(&stack.config, stack.env.flags_path.as_deref().unwrap())
        .write("safe_mode", &json!(true))
        .await
        .unwrap();
    let worker = WorkerFunction::init(&stack.env).await.unwrap();
    stack.ticket("t_safe", "Hi, where is my order #1001?");
    stack.rp.link_order("t_safe", "shop", "5100000001001");
    let (status, _) = post(&ingress, TOKEN, json!({"ticket_id": "t_safe"})).await;
    assert_eq!(status, 200);
    let event = stack.batch().await;
    assert_eq!(event.records.len(), 1);
    assert!(
        worker
            .handle(event.clone(), None)
            .await
            .batch_item_failures
            .is_empty()
    );
    stack.delete_succeeded(&event, &[]).await;
    assert!(stack.bot_comments("t_safe").is_empty());
    assert!(
        stack
            .tags("t_safe")
            .contains(&"mw-routing-applied".to_owned())
    );
    stack.rp.stop().await;
}
