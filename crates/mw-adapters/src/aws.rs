//! The AWS back-end (feature `aws`): the core's `Queue` on SQS FIFO, `StateStore`
//! on DynamoDB, `Flags` on SSM Parameter Store, and secrets from Secrets Manager.
//! Same contracts as the SQLite back-end; one conformance suite tests both.
//!
//! - **Queue**: group = conversation id, deduplication id = SHA-256 of the event key,
//!   the event key as a message attribute; dead-lettering is the queue's redrive
//!   policy (5 receives).
//! - **State**: three tables keyed by `pk` (the audit table also by `sk`), each item
//!   with an `expires_at` TTL attribute in epoch seconds. DynamoDB deletes expired
//!   items lazily, so every read ignores them and every conditional write treats
//!   them as absent.
//! - **Flags**: one parameter per flag under a path (`/mw/prod/flags/safe_mode` =
//!   `true`), read through the worker's cache (≤ 30 s); unreadable, or no `safe_mode` parameter at all
//!   (a wrong path), ⇒ `Err` (⇒ safe mode).
//! - **Secrets**: JSON secrets, cached; webhook secrets hold `token` and/or
//!   `tokens` (all active at once, for rotation).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use chrono::{DateTime, Utc};
use mw_core::{
    AuditRecord, Classification, Delivery, Enqueued, EventClaim, Flags, LedgerStatus, PortError,
    Queue, ReplyHistory, RuntimeFlags, StateStore, fingerprint,
};
use serde_json::Value;

/// How long an event's idempotency record is kept.
const IDEMPOTENCY_TTL: chrono::Duration = chrono::Duration::days(30);
/// How long conversation state and reply history are kept.
const STATE_TTL: chrono::Duration = chrono::Duration::days(90);
/// How long audit records are kept.
const AUDIT_TTL: chrono::Duration = chrono::Duration::days(60);

/// The SDK configuration from the environment (region, credentials), optionally
/// against another endpoint (a local emulator).
pub async fn sdk_config(endpoint_url: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

fn unavailable(service: &str, error: impl std::error::Error) -> PortError {
    PortError::Unavailable(format!(
        "{service}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(error)
    ))
}

/// The `Queue` on an SQS FIFO queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    retry_delay: Duration,
}

impl SqsQueue {
    /// The queue at `url`; a released message becomes visible again after
    /// `retry_delay` × its receive count.
    pub fn new(config: &aws_config::SdkConfig, url: &str, retry_delay: Duration) -> SqsQueue {
        SqsQueue {
            client: aws_sdk_sqs::Client::new(config),
            url: url.to_owned(),
            retry_delay,
        }
    }

    /// The SDK client (for operators' tools and tests).
    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }
}

/// Turns an SQS message into a delivery; `None` when it lacks what we put in.
pub fn sqs_delivery(message: &aws_sdk_sqs::types::Message) -> Option<Delivery> {
    let attributes = message.attributes();
    let system = |name: MessageSystemAttributeName| attributes.and_then(|a| a.get(&name)).cloned();
    Some(Delivery {
        receipt: message.receipt_handle()?.to_owned(),
        event_key: message
            .message_attributes()
            .and_then(|a| a.get("event_key"))
            .and_then(|value| value.string_value())?
            .to_owned(),
        group: system(MessageSystemAttributeName::MessageGroupId)?,
        payload: message.body()?.as_bytes().to_vec(),
        receive_count: system(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|count| count.parse().ok())
            .unwrap_or(1),
    })
}

#[async_trait]
impl Queue for SqsQueue {
    async fn enqueue(
        &self,
        group: &str,
        event_key: &str,
        payload: &[u8],
        _now: DateTime<Utc>,
    ) -> Result<Enqueued, PortError> {
        let body = std::str::from_utf8(payload)
            .map_err(|_| PortError::Invalid("the payload is not UTF-8 text".into()))?;
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(event_key)
            .build()
            .map_err(|error| PortError::Invalid(error.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(group)
            .message_deduplication_id(fingerprint(event_key.as_bytes()))
            .message_attributes("event_key", attribute)
            .send()
            .await
            .map_err(|error| unavailable("SQS SendMessage", error))?;
        // SQS drops a duplicate silently within its deduplication window; the
        // idempotency record catches any duplicate after it.
        Ok(Enqueued::Accepted)
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        _now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, PortError> {
        let response = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(visibility.as_secs().min(43_200) as i32)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|error| unavailable("SQS ReceiveMessage", error))?;
        Ok(response
            .messages()
            .iter()
            .filter_map(sqs_delivery)
            .collect())
    }

    async fn ack(&self, receipt: &str) -> Result<(), PortError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|error| unavailable("SQS DeleteMessage", error))?;
        Ok(())
    }

    async fn release(
        &self,
        receipt: &str,
        error: &str,
        _now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        tracing::warn!(error = %mw_core::redact(error), "event released for a retry");
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(self.retry_delay.as_secs() as i32)
            .send()
            .await
            .map_err(|error| unavailable("SQS ChangeMessageVisibility", error))?;
        Ok(())
    }
}

/// The three DynamoDB tables of the state store.
#[derive(Debug, Clone)]
pub struct Tables {
    /// Event records and the action ledger (`pk`).
    pub idempotency: String,
    /// Conversation state and reply history (`pk`).
    pub state: String,
    /// The audit trail (`pk` = conversation, `sk`).
    pub audit: String,
}

/// The `StateStore` on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    tables: Tables,
}

type Item = HashMap<String, AttributeValue>;

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|value| value.as_s().ok())
        .map(String::as_str)
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|value| value.as_n().ok())
        .and_then(|value| value.parse().ok())
}

/// Whether an item is still alive (TTL deletion is lazy).
fn alive(item: &Item, now: DateTime<Utc>) -> bool {
    number(item, "expires_at").is_none_or(|at| at > now.timestamp())
}

fn conditional_failed<E>(error: &aws_sdk_dynamodb::error::SdkError<E>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(|service| service.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

impl DynamoStore {
    /// The store on these tables.
    pub fn new(config: &aws_config::SdkConfig, tables: Tables) -> DynamoStore {
        DynamoStore {
            client: aws_sdk_dynamodb::Client::new(config),
            tables,
        }
    }

    /// The SDK client (for operators' tools and tests).
    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    async fn get(&self, table: &str, key: Item) -> Result<Option<Item>, PortError> {
        let response = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| unavailable("DynamoDB GetItem", error))?;
        Ok(response
            .item()
            .filter(|item| alive(item, Utc::now()))
            .cloned())
    }

    async fn event(&self, event_key: &str) -> Result<Option<Item>, PortError> {
        self.get(
            &self.tables.idempotency,
            HashMap::from([("pk".to_owned(), s(format!("evt#{event_key}")))]),
        )
        .await
    }

    async fn times(&self, pk: String) -> Result<Vec<DateTime<Utc>>, PortError> {
        let item = self
            .get(
                &self.tables.state,
                HashMap::from([("pk".to_owned(), s(pk))]),
            )
            .await?;
        let mut times: Vec<DateTime<Utc>> = item
            .as_ref()
            .and_then(|item| item.get("replies"))
            .and_then(|value| value.as_l().ok())
            .map(|list| {
                list.iter()
                    .filter_map(|value| value.as_n().ok()?.parse::<i64>().ok())
                    .filter_map(DateTime::from_timestamp_millis)
                    .collect()
            })
            .unwrap_or_default();
        times.sort();
        Ok(times)
    }

    async fn append_time(&self, pk: String, at: DateTime<Utc>) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.tables.state)
            .key("pk", s(pk))
            .update_expression(
                "SET replies = list_append(if_not_exists(replies, :empty), :at), expires_at = :exp",
            )
            .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":at", AttributeValue::L(vec![n(at.timestamp_millis())]))
            .expression_attribute_values(":exp", n((at + STATE_TTL).timestamp()))
            .send()
            .await
            .map_err(|error| unavailable("DynamoDB UpdateItem", error))?;
        Ok(())
    }
}

fn ledger_text(status: LedgerStatus) -> &'static str {
    match status {
        LedgerStatus::Pending => "pending",
        LedgerStatus::Done => "done",
        LedgerStatus::Failed => "failed",
    }
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn claim_event(
        &self,
        event_key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<EventClaim, PortError> {
        let created = self
            .client
            .put_item()
            .table_name(&self.tables.idempotency)
            .item("pk", s(format!("evt#{event_key}")))
            .item("status", s("processing"))
            .item("fingerprint", s(fingerprint))
            .item("created_at", n(now.timestamp_millis()))
            .item("expires_at", n((now + IDEMPOTENCY_TTL).timestamp()))
            // An expired record (not yet deleted by TTL) counts as absent.
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", n(now.timestamp()))
            .send()
            .await;
        match created {
            Ok(_) => Ok(EventClaim::New),
            Err(error) if conditional_failed(&error) => {
                let item = self.event(event_key).await?;
                Ok(match item.as_ref().and_then(|item| text(item, "status")) {
                    Some("done") => EventClaim::Done,
                    _ => EventClaim::Resume,
                })
            }
            Err(error) => Err(unavailable("DynamoDB PutItem", error)),
        }
    }

    async fn complete_event(
        &self,
        event_key: &str,
        mode: &str,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.tables.idempotency)
            .key("pk", s(format!("evt#{event_key}")))
            .update_expression("SET #status = :done, #mode = :mode, updated_at = :now")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#mode", "mode")
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":mode", s(mode))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .send()
            .await
            .map_err(|error| unavailable("DynamoDB UpdateItem", error))?;
        Ok(())
    }

    async fn stored_classification(
        &self,
        event_key: &str,
    ) -> Result<Option<Classification>, PortError> {
        let item = self.event(event_key).await?;
        Ok(item
            .as_ref()
            .and_then(|item| text(item, "classification"))
            .and_then(|json| serde_json::from_str(json).ok()))
    }

    async fn store_classification(
        &self,
        event_key: &str,
        classification: &Classification,
    ) -> Result<(), PortError> {
        let json = serde_json::to_string(classification)
            .map_err(|error| PortError::Invalid(error.to_string()))?;
        self.client
            .update_item()
            .table_name(&self.tables.idempotency)
            .key("pk", s(format!("evt#{event_key}")))
            .update_expression("SET classification = :c")
            .expression_attribute_values(":c", s(json))
            .send()
            .await
            .map_err(|error| unavailable("DynamoDB UpdateItem", error))?;
        Ok(())
    }

    async fn reply_history(
        &self,
        conversation_id: &str,
        customer_id: Option<&str>,
    ) -> Result<ReplyHistory, PortError> {
        let conversation = self.times(format!("conv#{conversation_id}")).await?;
        let customer = match customer_id {
            Some(customer) => self.times(format!("cust#{customer}")).await?,
            None => Vec::new(),
        };
        Ok(ReplyHistory {
            conversation,
            customer,
        })
    }

    async fn record_reply(
        &self,
        conversation_id: &str,
        customer_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), PortError> {
        self.append_time(format!("conv#{conversation_id}"), at)
            .await?;
        if let Some(customer) = customer_id {
            self.append_time(format!("cust#{customer}"), at).await?;
        }
        Ok(())
    }

    async fn ledger(&self, key: &str) -> Result<Option<LedgerStatus>, PortError> {
        let item = self
            .get(
                &self.tables.idempotency,
                HashMap::from([("pk".to_owned(), s(format!("act#{key}")))]),
            )
            .await?;
        Ok(match item.as_ref().and_then(|item| text(item, "status")) {
            Some("pending") => Some(LedgerStatus::Pending),
            Some("done") => Some(LedgerStatus::Done),
            Some("failed") => Some(LedgerStatus::Failed),
            _ => None,
        })
    }

    async fn set_ledger(
        &self,
        key: &str,
        status: LedgerStatus,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        // A done action is never reopened (a concurrent worker finished it).
        let written = self
            .client
            .put_item()
            .table_name(&self.tables.idempotency)
            .item("pk", s(format!("act#{key}")))
            .item("status", s(ledger_text(status)))
            .item("updated_at", n(now.timestamp_millis()))
            .item("expires_at", n((now + IDEMPOTENCY_TTL).timestamp()))
            .condition_expression(
                "attribute_not_exists(pk) OR #status <> :done OR :new = :done OR expires_at < :now",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":new", s(ledger_text(status)))
            .expression_attribute_values(":now", n(now.timestamp()))
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(error) if conditional_failed(&error) => Err(PortError::Conflict(format!(
                "action {key} is already done; it is not reopened"
            ))),
            Err(error) => Err(unavailable("DynamoDB PutItem", error)),
        }
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<(), PortError> {
        let json =
            serde_json::to_string(record).map_err(|error| PortError::Invalid(error.to_string()))?;
        // One decision record per event (a retry replaces it); skipped records
        // accumulate. `seq` orders the trail by write.
        let sk = match record.decision {
            Some(_) => format!("d#{}", record.event_key),
            None => format!(
                "s#{:013}#{}",
                record.at.timestamp_millis(),
                record.event_key
            ),
        };
        self.client
            .put_item()
            .table_name(&self.tables.audit)
            .item("pk", s(record.conversation_id.clone()))
            .item("sk", s(sk))
            .item("seq", n(Utc::now().timestamp_micros()))
            .item("at", n(record.at.timestamp_millis()))
            .item("record", s(json))
            .item("expires_at", n((record.at + AUDIT_TTL).timestamp()))
            .send()
            .await
            .map_err(|error| unavailable("DynamoDB PutItem", error))?;
        if let Some(decision) = &record.decision {
            self.client
                .update_item()
                .table_name(&self.tables.state)
                .key("pk", s(format!("state#{}", record.conversation_id)))
                .update_expression(
                    "SET last_intent = :i, last_team = :t, last_tier = :tier, updated_at = :u, expires_at = :e",
                )
                .expression_attribute_values(":i", s(decision.primary_intent.as_str()))
                .expression_attribute_values(":t", s(decision.team_name.clone()))
                .expression_attribute_values(":tier", s(decision.tier.as_str()))
                .expression_attribute_values(":u", n(record.at.timestamp_millis()))
                .expression_attribute_values(":e", n((record.at + STATE_TTL).timestamp()))
                .send()
                .await
                .map_err(|error| unavailable("DynamoDB UpdateItem", error))?;
        }
        Ok(())
    }

    async fn audit_trail(&self, conversation_id: &str) -> Result<Vec<AuditRecord>, PortError> {
        let now = Utc::now();
        let mut items: Vec<Item> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let response = self
                .client
                .query()
                .table_name(&self.tables.audit)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(conversation_id))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|error| unavailable("DynamoDB Query", error))?;
            items.extend(
                response
                    .items()
                    .iter()
                    .filter(|item| alive(item, now))
                    .cloned(),
            );
            match response.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        // In write order (a replaced decision moves to its retry's place).
        items.sort_by_key(|item| number(item, "seq").unwrap_or_default());
        Ok(items
            .iter()
            .filter_map(|item| text(item, "record"))
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect())
    }
}

/// `Flags` from SSM Parameter Store: one parameter per flag under `path`. Every
/// call reads the store; wrap it in [`crate::worker::CachedFlags`] (≤ 30 s).
#[derive(Debug, Clone)]
pub struct SsmFlags {
    client: aws_sdk_ssm::Client,
    path: String,
}

impl SsmFlags {
    /// Flags under `path` (e.g. `/mw/prod/flags`).
    pub fn new(config: &aws_config::SdkConfig, path: &str) -> SsmFlags {
        SsmFlags {
            client: aws_sdk_ssm::Client::new(config),
            path: path.trim_end_matches('/').to_owned(),
        }
    }

    /// Writes one flag (checked like `mw flags set`).
    pub async fn write(&self, key: &str, value: &Value) -> Result<(), PortError> {
        crate::flags::check_flag(key, value)?;
        self.write_raw(key, &value.to_string()).await
    }

    /// Writes a raw parameter value without checks (tests corrupt flags with it).
    pub async fn write_raw(&self, key: &str, raw: &str) -> Result<(), PortError> {
        self.client
            .put_parameter()
            .name(format!("{}/{key}", self.path))
            .value(raw)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map_err(|error| unavailable("SSM PutParameter", error))?;
        Ok(())
    }
}

#[async_trait]
impl Flags for SsmFlags {
    async fn flags(&self) -> Result<RuntimeFlags, PortError> {
        let mut pairs = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let response = self
                .client
                .get_parameters_by_path()
                .path(&self.path)
                .recursive(true)
                .with_decryption(true)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|error| unavailable("SSM GetParametersByPath", error))?;
            for parameter in response.parameters() {
                if let (Some(name), Some(value)) = (parameter.name(), parameter.value()) {
                    let key = name.rsplit('/').next().unwrap_or(name).to_owned();
                    pairs.push((key, value.to_owned()));
                }
            }
            match response.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        // A remote store read at the wrong path (or a deleted parameter) must not
        // turn automation on: without `safe_mode` the flags are unreadable.
        if !pairs.iter().any(|(key, _)| key == "safe_mode") {
            return Err(PortError::Invalid(format!(
                "no safe_mode parameter under {}; check MW_FLAGS_PATH (behaving as safe mode)",
                self.path
            )));
        }
        crate::flags::flags_from_pairs(pairs)
    }
}

/// JSON secrets from Secrets Manager, cached for a while.
#[derive(Debug)]
pub struct Secrets {
    client: aws_sdk_secretsmanager::Client,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Value)>>,
}

impl Secrets {
    /// Secrets cached for `ttl`.
    pub fn new(config: &aws_config::SdkConfig, ttl: Duration) -> Secrets {
        Secrets {
            client: aws_sdk_secretsmanager::Client::new(config),
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The secret's JSON value.
    pub async fn json(&self, id: &str) -> Result<Value, PortError> {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, value)) = cache.get(id)
            && at.elapsed() < self.ttl
        {
            return Ok(value.clone());
        }
        let response = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|error| unavailable("Secrets Manager GetSecretValue", error))?;
        let value: Value = response
            .secret_string()
            .and_then(|text| serde_json::from_str(text).ok())
            .ok_or_else(|| {
                PortError::Invalid(format!("secret {id} does not hold a JSON object"))
            })?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(id.to_owned(), (Instant::now(), value.clone()));
        }
        Ok(value)
    }

    /// One string field of a secret (e.g. `api_key`), required.
    pub async fn field(&self, id: &str, field: &str) -> Result<String, PortError> {
        self.optional_field(id, field).await?.ok_or_else(|| {
            PortError::Invalid(format!(
                "secret {id} has no '{field}'; set it with `aws secretsmanager put-secret-value`"
            ))
        })
    }

    /// One string field of a secret, `None` when absent or blank (e.g. an OpenAI
    /// key not set yet: the rules classifier is used).
    pub async fn optional_field(&self, id: &str, field: &str) -> Result<Option<String>, PortError> {
        Ok(self
            .json(id)
            .await?
            .get(field)
            .and_then(Value::as_str)
            .filter(|value| !value.trim().is_empty())
            .map(str::to_owned))
    }

    /// The active webhook tokens: `token` and every entry of `tokens`.
    pub async fn webhook_tokens(&self, id: &str) -> Result<Vec<String>, PortError> {
        let value = self.json(id).await?;
        let mut tokens: Vec<String> = value
            .get("tokens")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(token) = value.get("token").and_then(Value::as_str) {
            tokens.push(token.to_owned());
        }
        tokens.retain(|token| !token.trim().is_empty());
        tokens.dedup();
        if tokens.is_empty() {
            return Err(PortError::Invalid(format!(
                "secret {id} holds no webhook token ('token' or 'tokens')"
            )));
        }
        Ok(tokens)
    }
}

/// Creates a FIFO queue `{name}.fifo` with its dead-letter queue `{name}-dlq.fifo`
/// (redrive after `max_receives`), as `deploy/template.yaml` does: for local
/// emulators and tests. Returns the queue and dead-letter queue URLs.
pub async fn create_fifo_queue(
    config: &aws_config::SdkConfig,
    name: &str,
    max_receives: u32,
) -> Result<(String, String), PortError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let sqs = aws_sdk_sqs::Client::new(config);
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .map_err(|error| unavailable("SQS CreateQueue", error))?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|error| unavailable("SQS GetQueueAttributes", error))?
        .attributes()
        .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    let redrive =
        serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives});
    let url = sqs
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::VisibilityTimeout, "180")
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(|error| unavailable("SQS CreateQueue", error))?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    Ok((url, dlq_url))
}

/// Creates the three state tables (on demand, `pk`, plus `sk` for the audit
/// table), as `deploy/template.yaml` does: for local emulators and tests.
pub async fn create_tables(
    config: &aws_config::SdkConfig,
    tables: &Tables,
) -> Result<(), PortError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let client = aws_sdk_dynamodb::Client::new(config);
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|error| PortError::Invalid(error.to_string()))
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|error| PortError::Invalid(error.to_string()))
    };
    for (name, sort_key) in [
        (&tables.idempotency, false),
        (&tables.state, false),
        (&tables.audit, true),
    ] {
        let mut request = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("pk")?)
            .key_schema(key("pk", KeyType::Hash)?);
        if sort_key {
            request = request
                .attribute_definitions(attribute("sk")?)
                .key_schema(key("sk", KeyType::Range)?);
        }
        request
            .send()
            .await
            .map_err(|error| unavailable("DynamoDB CreateTable", error))?;
    }
    Ok(())
}
