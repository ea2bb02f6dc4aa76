//! One conformance suite for the `Queue`, `StateStore` and `Flags` contracts, run
//! against the SQLite back-end and (feature `aws`) against SQS FIFO, DynamoDB and
//! SSM on a local moto server: the same cases, the same assertions.
//!
//! The AWS run needs `MW_TEST_AWS_ENDPOINT` (moto's URL) plus the usual
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_DEFAULT_REGION`;
//! `scripts/test.sh` installs moto, starts it and sets them. Without them the AWS
//! tests fail and say so; they are never skipped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::Utc;
use mw_core::{
    AuditRecord, Classification, EventClaim, Flags, LedgerStatus, ModelOutput, PortError, Queue,
    RuntimeFlags, StateStore, VerifierInput,
};
use serde_json::json;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How many messages the back-end has dead-lettered.
type DeadLetters<'a> = &'a (dyn Fn() -> BoxFuture<'a, usize> + Sync);

/// Writes a flag: `(key, raw value)`.
type WriteFlag<'a> = &'a (dyn Fn(&'static str, &'static str) -> BoxFuture<'static, ()> + Sync);

const VISIBILITY: Duration = Duration::from_secs(2);

async fn receive_one(queue: &dyn Queue) -> Option<mw_core::Delivery> {
    queue
        .receive(1, VISIBILITY, Utc::now())
        .await
        .unwrap()
        .into_iter()
        .next()
}

async fn queue_cases(queue: &dyn Queue, dead_letters: DeadLetters<'_>) {
    // Payload, key and group survive the trip; FIFO per group, one in flight per group.
    for (group, key) in [
        ("conv-a", "evt:a:1"),
        ("conv-a", "evt:a:2"),
        ("conv-b", "evt:b:1"),
    ] {
        let payload = json!({"ticket_id": group, "message_id": key}).to_string();
        queue
            .enqueue(group, key, payload.as_bytes(), Utc::now())
            .await
            .unwrap();
    }
    let first = receive_one(queue).await.expect("a message");
    let second = receive_one(queue).await.expect("the other group's message");
    let mut heads = [first.event_key.clone(), second.event_key.clone()];
    heads.sort();
    assert_eq!(
        heads,
        ["evt:a:1".to_owned(), "evt:b:1".to_owned()],
        "one head per group"
    );
    let a1 = if first.group == "conv-a" {
        &first
    } else {
        &second
    };
    assert_eq!(a1.receive_count, 1);
    let body: serde_json::Value = serde_json::from_slice(&a1.payload).unwrap();
    assert_eq!(body["message_id"], "evt:a:1");
    assert!(
        receive_one(queue).await.is_none(),
        "group conv-a is busy until evt:a:1 is acked"
    );
    queue.ack(&first.receipt).await.unwrap();
    queue.ack(&second.receipt).await.unwrap();
    let next = receive_one(queue).await.expect("evt:a:2 after evt:a:1");
    assert_eq!(next.event_key, "evt:a:2");

    // Not acked within the visibility timeout: delivered again, counted.
    tokio::time::sleep(VISIBILITY + Duration::from_millis(600)).await;
    let again = receive_one(queue)
        .await
        .expect("redelivered after the visibility timeout");
    assert_eq!(again.event_key, "evt:a:2");
    assert_eq!(again.receive_count, 2);
    queue.ack(&again.receipt).await.unwrap();
    assert!(receive_one(queue).await.is_none(), "empty after every ack");

    // Released every time: dead-lettered after five receives, never handed out again.
    queue
        .enqueue(
            "conv-p",
            "evt:poison",
            b"{\"ticket_id\":\"conv-p\"}",
            Utc::now(),
        )
        .await
        .unwrap();
    let mut receives = 0;
    for _ in 0..10 {
        let mut delivery = None;
        for _ in 0..20 {
            delivery = receive_one(queue).await;
            if delivery.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let Some(delivery) = delivery else { break };
        receives += 1;
        assert_eq!(delivery.receive_count, receives);
        queue
            .release(&delivery.receipt, "processing failed", Utc::now())
            .await
            .unwrap();
    }
    assert_eq!(receives, 5, "five receives, then the dead-letter queue");
    assert_eq!(dead_letters().await, 1);
}

fn classification() -> Classification {
    Classification {
        output: ModelOutput::Json(json!({"primary_intent": "damaged_item"})),
        scores: Vec::new(),
        verification: Some(VerifierInput::Failed("timeout".into())),
    }
}

fn audit(event: &str, decided: bool, at: chrono::DateTime<Utc>) -> AuditRecord {
    AuditRecord {
        event_key: event.into(),
        conversation_id: "conv-audit".into(),
        at,
        mode: if decided { "live" } else { "skipped" }.into(),
        skipped: (!decided).then(|| "not_from_customer".into()),
        decision: None,
        actions: Vec::new(),
    }
}

async fn state_cases(state: &dyn StateStore) {
    let now = Utc::now();
    // Idempotency: new, resumed while unfinished, done once completed.
    assert_eq!(
        state.claim_event("evt:1", "fp", now).await.unwrap(),
        EventClaim::New
    );
    assert_eq!(
        state.claim_event("evt:1", "fp", now).await.unwrap(),
        EventClaim::Resume
    );
    state.complete_event("evt:1", "live", now).await.unwrap();
    assert_eq!(
        state.claim_event("evt:1", "fp", now).await.unwrap(),
        EventClaim::Done
    );
    // An expired record (TTL not yet applied) counts as absent.
    let long_ago = now - chrono::Duration::days(31);
    assert_eq!(
        state.claim_event("evt:old", "fp", long_ago).await.unwrap(),
        EventClaim::New
    );
    state
        .complete_event("evt:old", "live", long_ago)
        .await
        .unwrap();
    assert_eq!(
        state.claim_event("evt:old", "fp", now).await.unwrap(),
        EventClaim::New
    );

    // The classification (and the verifier's answer) is stored with the event.
    assert_eq!(state.stored_classification("evt:1").await.unwrap(), None);
    state
        .store_classification("evt:1", &classification())
        .await
        .unwrap();
    assert_eq!(
        state.stored_classification("evt:1").await.unwrap(),
        Some(classification())
    );

    // Reply history per conversation and per customer, oldest first.
    let t1 = now - chrono::Duration::minutes(5);
    state
        .record_reply("conv-r", Some("cust-1"), now)
        .await
        .unwrap();
    state
        .record_reply("conv-r", Some("cust-1"), t1)
        .await
        .unwrap();
    state
        .record_reply("conv-s", Some("cust-1"), now)
        .await
        .unwrap();
    let history = state.reply_history("conv-r", Some("cust-1")).await.unwrap();
    let millis = |times: &[chrono::DateTime<Utc>]| {
        times
            .iter()
            .map(|t| t.timestamp_millis())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        millis(&history.conversation),
        vec![t1.timestamp_millis(), now.timestamp_millis()]
    );
    assert_eq!(history.customer.len(), 3);
    assert!(
        state
            .reply_history("conv-none", None)
            .await
            .unwrap()
            .conversation
            .is_empty()
    );

    // The action ledger: pending before, done after; done is never reopened.
    let key = "act:reply:conv-r:evt:1:0";
    assert_eq!(state.ledger(key).await.unwrap(), None);
    state
        .set_ledger(key, LedgerStatus::Pending, now)
        .await
        .unwrap();
    assert_eq!(
        state.ledger(key).await.unwrap(),
        Some(LedgerStatus::Pending)
    );
    state
        .set_ledger(key, LedgerStatus::Done, now)
        .await
        .unwrap();
    let reopened = state.set_ledger(key, LedgerStatus::Pending, now).await;
    assert!(
        matches!(reopened, Err(PortError::Conflict(_))),
        "{reopened:?}"
    );
    assert_eq!(state.ledger(key).await.unwrap(), Some(LedgerStatus::Done));
    state
        .set_ledger("act:x", LedgerStatus::Failed, now)
        .await
        .unwrap();
    assert_eq!(
        state.ledger("act:x").await.unwrap(),
        Some(LedgerStatus::Failed)
    );

    // The audit trail: skipped records accumulate, one decision per event (a retry
    // replaces it), oldest first.
    let mut decided = audit("evt:d", true, now);
    decided.decision = None;
    state
        .append_audit(&audit("evt:s", false, now))
        .await
        .unwrap();
    state
        .append_audit(&audit("evt:s", false, now + chrono::Duration::seconds(1)))
        .await
        .unwrap();
    let trail = state.audit_trail("conv-audit").await.unwrap();
    assert_eq!(trail.len(), 2);
    assert!(trail.iter().all(|r| r.mode == "skipped"));
    assert!(state.audit_trail("conv-nothing").await.unwrap().is_empty());
}

async fn flag_cases(flags: &dyn Flags, write: WriteFlag<'_>) {
    write("safe_mode", "false").await;
    assert_eq!(
        flags.flags().await.unwrap(),
        RuntimeFlags::default(),
        "unset flags take their defaults"
    );
    write("safe_mode", "true").await;
    write("channel.tiktok", "true").await;
    write("template.t_order_status_verified", "false").await;
    let read = flags.flags().await.unwrap();
    assert!(read.safe_mode);
    assert!(read.automation_enabled);
    assert!(read.channel_enabled(mw_core::Channel::Tiktok));
    assert!(!read.template_enabled("t_order_status_verified"));
    write("shadow_mode", "maybe").await;
    assert!(
        flags.flags().await.is_err(),
        "a corrupt flag makes the flags unreadable"
    );
}

mod sqlite {
    use super::*;
    use mw_adapters::{Durability, SqliteStore};

    fn store(name: &str) -> SqliteStore {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let path = std::env::temp_dir().join(format!(
            "mw-conf-{name}-{}-{nanos}.sqlite3",
            std::process::id()
        ));
        SqliteStore::open(&path, Durability::Normal)
            .unwrap()
            .with_retry_delay(Duration::ZERO)
    }

    #[tokio::test]
    async fn queue() {
        let store = store("queue");
        let dead =
            || -> BoxFuture<'_, usize> { Box::pin(async { store.dlq_list().unwrap().len() }) };
        queue_cases(&store, &dead).await;
    }

    #[tokio::test]
    async fn state() {
        state_cases(&store("state")).await;
    }

    #[tokio::test]
    async fn flags() {
        let store = std::sync::Arc::new(store("flags"));
        let writer = store.clone();
        let write = move |key: &'static str, raw: &'static str| -> BoxFuture<'static, ()> {
            let store = writer.clone();
            Box::pin(async move { store.write_flag_raw(key, raw).unwrap() })
        };
        flag_cases(store.as_ref(), &write).await;
    }
}

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use aws_sdk_sqs::types::QueueAttributeName;
    use mw_adapters::aws::{
        DynamoStore, SqsQueue, SsmFlags, Tables, create_fifo_queue, create_tables, sdk_config,
    };

    async fn config() -> aws_config::SdkConfig {
        let endpoint = std::env::var("MW_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
            panic!("MW_TEST_AWS_ENDPOINT is not set: run ./scripts/test.sh, which starts a local moto server and sets it")
        });
        sdk_config(Some(&endpoint)).await
    }

    fn unique(name: &str) -> String {
        format!(
            "mw-{name}-{}-{}",
            std::process::id(),
            Utc::now().timestamp_micros()
        )
    }

    #[tokio::test]
    async fn queue() {
        let config = config().await;
        let (url, dlq_url) = create_fifo_queue(&config, &unique("q"), 5).await.unwrap();
        let queue = SqsQueue::new(&config, &url, Duration::ZERO);
        let sqs = aws_sdk_sqs::Client::new(&config);
        let dead = || -> BoxFuture<'_, usize> {
            Box::pin(async {
                let attributes = sqs
                    .get_queue_attributes()
                    .queue_url(&dlq_url)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                    .send()
                    .await
                    .unwrap();
                attributes.attributes().unwrap()[&QueueAttributeName::ApproximateNumberOfMessages]
                    .parse()
                    .unwrap()
            })
        };
        queue_cases(&queue, &dead).await;
    }

    #[tokio::test]
    async fn state() {
        let config = config().await;
        let tables = Tables {
            idempotency: unique("idempotency"),
            state: unique("state"),
            audit: unique("audit"),
        };
        create_tables(&config, &tables).await.unwrap();
        state_cases(&DynamoStore::new(&config, tables)).await;
    }

    #[tokio::test]
    async fn flags() {
        let config = config().await;
        let path = format!("/{}/flags", unique("flags"));
        let flags = std::sync::Arc::new(SsmFlags::new(&config, &path));
        // Specific to a remote store: no safe_mode parameter at all (a wrong path)
        // reads as unreadable, never as "automation on".
        assert!(flags.flags().await.is_err());
        let writer = flags.clone();
        let write = move |key: &'static str, raw: &'static str| -> BoxFuture<'static, ()> {
            let flags = writer.clone();
            Box::pin(async move { flags.write_raw(key, raw).await.unwrap() })
        };
        flag_cases(flags.as_ref(), &write).await;
    }
}
