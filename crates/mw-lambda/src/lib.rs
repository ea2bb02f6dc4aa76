//! # mw-lambda
//!
//! The two AWS Lambda functions of mw, on the same core and adapters as `mw serve`:
//!
//! - [`IngressFunction`]: behind the HTTP API, the very ingress handler of
//!   `mw serve` (authentication, validation, 200 only after a durable enqueue),
//!   storing into SQS FIFO. Webhook tokens come from Secrets Manager, refreshed
//!   within 5 minutes for rotation.
//! - [`WorkerFunction`]: the SQS event source's batches through the worker
//!   pipeline (DynamoDB state, SSM flags, Richpanel, OpenAI or the rules), with
//!   partial batch responses: a failed message and every later one in the batch are
//!   reported, so one bad message neither redelivers its batch nor breaks the order
//!   of a conversation.
//!
//! Configuration is environment variables ([`LambdaEnv`]); a cold start makes no
//! network call except fetching secrets.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use mw_adapters::aws::{DynamoStore, Secrets, SqsQueue, SsmFlags, Tables, sdk_config};
use mw_adapters::metrics::Metrics;
use mw_adapters::worker::{CachedFlags, WorkerDeps, process_logged};
use mw_adapters::{AuthMode, Ingress, WebhookAuth};
use mw_cli::Engine;
use mw_cli::serve::ServeSettings;
use mw_core::{Delivery, Marker, PortError, Processed};
use tracing::warn;

/// How long secrets are cached (webhook token rotation takes effect within it).
pub const SECRETS_TTL: Duration = Duration::from_secs(300);

/// The functions' configuration, from environment variables.
#[derive(Debug, Clone, Default)]
pub struct LambdaEnv {
    /// `MW_STAGE` (dev, staging, prod): the metrics dimension.
    pub stage: String,
    /// `MW_QUEUE_URL`: the FIFO queue.
    pub queue_url: Option<String>,
    /// `MW_WEBHOOK_SECRET_ARN`: `{"token": …, "tokens": [...]}`.
    pub webhook_secret: Option<String>,
    /// `MW_AWS_ENDPOINT_URL`: another AWS endpoint (a local emulator).
    pub endpoint_url: Option<String>,
    /// `MW_IDEMPOTENCY_TABLE`.
    pub idempotency_table: Option<String>,
    /// `MW_STATE_TABLE`.
    pub state_table: Option<String>,
    /// `MW_AUDIT_TABLE`.
    pub audit_table: Option<String>,
    /// `MW_FLAGS_PATH`, e.g. `/mw/prod/flags`.
    pub flags_path: Option<String>,
    /// `MW_RICHPANEL_SECRET_ARN`: `{"api_key": …}`.
    pub richpanel_secret: Option<String>,
    /// `MW_OPENAI_SECRET_ARN`: `{"api_key": …}`; an empty key means the rules.
    pub openai_secret: Option<String>,
    /// `MW_RICHPANEL_BOT_AUTHOR_ID`.
    pub bot_author_id: Option<String>,
    /// `MW_OPENAI_MODEL`.
    pub openai_model: Option<String>,
    /// `MW_RICHPANEL_BASE_URL` (default: Richpanel's API).
    pub richpanel_base_url: Option<String>,
    /// `MW_OPENAI_BASE_URL` (default: OpenAI's API).
    pub openai_base_url: Option<String>,
    /// `MW_RICHPANEL_RATE_LIMIT`: requests per window [default: 50].
    pub richpanel_rate_limit: Option<u32>,
    /// `MW_RICHPANEL_RATE_WINDOW_SECS` [default: 30].
    pub richpanel_rate_window_secs: Option<f64>,
    /// `MW_EVENT_TIMEOUT_SECS`: longest processing of one event [default: 60].
    pub event_timeout_secs: Option<u64>,
}

impl LambdaEnv {
    /// Reads the variables through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> LambdaEnv {
        let value = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        LambdaEnv {
            stage: value("MW_STAGE").unwrap_or_else(|| "dev".into()),
            queue_url: value("MW_QUEUE_URL"),
            webhook_secret: value("MW_WEBHOOK_SECRET_ARN"),
            endpoint_url: value("MW_AWS_ENDPOINT_URL"),
            idempotency_table: value("MW_IDEMPOTENCY_TABLE"),
            state_table: value("MW_STATE_TABLE"),
            audit_table: value("MW_AUDIT_TABLE"),
            flags_path: value("MW_FLAGS_PATH"),
            richpanel_secret: value("MW_RICHPANEL_SECRET_ARN"),
            openai_secret: value("MW_OPENAI_SECRET_ARN"),
            bot_author_id: value("MW_RICHPANEL_BOT_AUTHOR_ID"),
            openai_model: value("MW_OPENAI_MODEL"),
            richpanel_base_url: value("MW_RICHPANEL_BASE_URL"),
            openai_base_url: value("MW_OPENAI_BASE_URL"),
            richpanel_rate_limit: value("MW_RICHPANEL_RATE_LIMIT").and_then(|v| v.parse().ok()),
            richpanel_rate_window_secs: value("MW_RICHPANEL_RATE_WINDOW_SECS")
                .and_then(|v| v.parse().ok()),
            event_timeout_secs: value("MW_EVENT_TIMEOUT_SECS").and_then(|v| v.parse().ok()),
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> LambdaEnv {
        LambdaEnv::from_lookup(|name| std::env::var(name).ok())
    }
}

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A required variable is not set.
    #[error("{0} is not set; the deploy template sets it (deploy/template.yaml)")]
    Missing(&'static str),
    /// A secret or service could not be read.
    #[error(transparent)]
    Port(#[from] PortError),
    /// The settings are invalid.
    #[error("{0}")]
    Settings(String),
}

fn required<'a>(value: &'a Option<String>, name: &'static str) -> Result<&'a str, InitError> {
    value.as_deref().ok_or(InitError::Missing(name))
}

/// JSON logs on stderr (CloudWatch), the level from `MW_LOG` [default: info].
pub fn init_logs() {
    mw_cli::serve::init_logs(
        mw_cli::serve::LogFormat::Json,
        &std::env::var("MW_LOG").unwrap_or_else(|_| "info".into()),
    );
}

/// The webhook ingress function.
pub struct IngressFunction {
    queue: Arc<SqsQueue>,
    secrets: Secrets,
    secret_id: String,
    metrics: Arc<Metrics>,
    current: Mutex<(Vec<String>, Arc<Ingress>)>,
}

impl IngressFunction {
    /// Starts: reads the webhook secret (the only network call before the first
    /// event).
    pub async fn init(env: &LambdaEnv) -> Result<IngressFunction, InitError> {
        let config = sdk_config(env.endpoint_url.as_deref()).await;
        let queue = Arc::new(SqsQueue::new(
            &config,
            required(&env.queue_url, "MW_QUEUE_URL")?,
            Duration::ZERO,
        ));
        let secret_id = required(&env.webhook_secret, "MW_WEBHOOK_SECRET_ARN")?.to_owned();
        let secrets = Secrets::new(&config, SECRETS_TTL);
        let tokens = secrets.webhook_tokens(&secret_id).await?;
        let metrics = Arc::new(Metrics::new());
        let ingress = Arc::new(ingress_for(&tokens, queue.clone(), metrics.clone()));
        Ok(IngressFunction {
            queue,
            secrets,
            secret_id,
            metrics,
            current: Mutex::new((tokens, ingress)),
        })
    }

    /// Handles one webhook request.
    pub async fn handle(&self, request: http::Request<Bytes>) -> http::Response<String> {
        self.ingress().await.handle(request).await
    }

    /// The handler for the current tokens (re-read when the cached secret expires;
    /// if it cannot be read, the last tokens stay active).
    async fn ingress(&self) -> Arc<Ingress> {
        let fresh = self.secrets.webhook_tokens(&self.secret_id).await;
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match fresh {
            Ok(tokens) if tokens != current.0 => {
                let ingress = Arc::new(ingress_for(
                    &tokens,
                    self.queue.clone(),
                    self.metrics.clone(),
                ));
                *current = (tokens, ingress);
            }
            Ok(_) => {}
            Err(error) => {
                warn!(error = %error, "webhook secret unreadable; keeping the last tokens")
            }
        }
        current.1.clone()
    }
}

fn ingress_for(tokens: &[String], queue: Arc<SqsQueue>, metrics: Arc<Metrics>) -> Ingress {
    let auth = WebhookAuth::new(
        AuthMode::Token {
            header: "x-richpanel-webhook-token".into(),
        },
        tokens,
    );
    // The HTTP API throttles (deploy/template.yaml); no second throttle here.
    Ingress::new(auth, queue, None, metrics)
}

/// The SQS worker function.
pub struct WorkerFunction {
    deps: WorkerDeps,
    event_timeout: Duration,
    stage: String,
}

impl WorkerFunction {
    /// Starts: reads the Richpanel and OpenAI secrets (the only network calls
    /// before the first event) and builds the pipeline's ports.
    pub async fn init(env: &LambdaEnv) -> Result<WorkerFunction, InitError> {
        let config = sdk_config(env.endpoint_url.as_deref()).await;
        let secrets = Secrets::new(&config, SECRETS_TTL);
        let richpanel_key = secrets
            .field(
                required(&env.richpanel_secret, "MW_RICHPANEL_SECRET_ARN")?,
                "api_key",
            )
            .await?;
        let openai_key = match &env.openai_secret {
            Some(id) => secrets.optional_field(id, "api_key").await?,
            None => None,
        };
        let settings = ServeSettings {
            richpanel_base_url: env.richpanel_base_url.clone(),
            richpanel_api_key: Some(richpanel_key),
            // Route-only processing (the first deploy) needs no bot author; without
            // one, a reply is rejected by Richpanel and tagged for a human.
            richpanel_bot_author_id: Some(env.bot_author_id.clone().unwrap_or_else(|| {
                warn!("MW_RICHPANEL_BOT_AUTHOR_ID is not set: replies will fail and be tagged mw-send-failed");
                "unset-bot-author".into()
            })),
            richpanel_rate_limit: env.richpanel_rate_limit,
            richpanel_rate_window_secs: env.richpanel_rate_window_secs,
            openai_base_url: env.openai_base_url.clone(),
            openai_api_key: openai_key,
            openai_model: env.openai_model.clone(),
            ..ServeSettings::default()
        };
        let engine = Engine::embedded().map_err(|error| InitError::Settings(error.to_string()))?;
        let components = settings
            .components(engine)
            .map_err(|error| InitError::Settings(error.to_string()))?;
        let actions = components
            .actions
            .ok_or_else(|| InitError::Settings("no Richpanel client was configured".into()))?;
        let tables = Tables {
            idempotency: required(&env.idempotency_table, "MW_IDEMPOTENCY_TABLE")?.to_owned(),
            state: required(&env.state_table, "MW_STATE_TABLE")?.to_owned(),
            audit: required(&env.audit_table, "MW_AUDIT_TABLE")?.to_owned(),
        };
        let deps = WorkerDeps {
            queue: Arc::new(SqsQueue::new(
                &config,
                required(&env.queue_url, "MW_QUEUE_URL")?,
                Duration::ZERO,
            )),
            state: Arc::new(DynamoStore::new(&config, tables)),
            flags: Arc::new(CachedFlags::new(
                Arc::new(SsmFlags::new(
                    &config,
                    required(&env.flags_path, "MW_FLAGS_PATH")?,
                )),
                Duration::from_secs(30),
            )),
            vendor: components.vendor,
            actions,
            classifier: components.classifier,
            verifier: components.verifier,
            policy: components.policy,
            renderer: components.renderer,
            mode: "live",
            metrics: components.metrics,
            wake: Arc::new(tokio::sync::Notify::new()),
        };
        Ok(WorkerFunction {
            deps,
            event_timeout: Duration::from_secs(env.event_timeout_secs.unwrap_or(60).max(1)),
            stage: env.stage.clone(),
        })
    }

    /// Processes a batch in order. The first message that fails, and every
    /// message after it, are reported as failures (FIFO: later messages of the
    /// same conversation must not overtake it); so are messages left when less
    /// than 5 s of the invocation remain before `deadline`.
    pub async fn handle(&self, event: SqsEvent, deadline: Option<Instant>) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        let mut failing = false;
        for message in &event.records {
            let id = message.message_id.clone().unwrap_or_default();
            let remaining =
                deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
            if !failing && remaining.is_some_and(|left| left < Duration::from_secs(5)) {
                warn!("invocation deadline near; leaving the rest of the batch for a retry");
                failing = true;
            }
            if !failing {
                let timeout = remaining.map_or(self.event_timeout, |left| {
                    self.event_timeout
                        .min(left.saturating_sub(Duration::from_secs(5)))
                });
                failing = match delivery(message) {
                    Some(delivery) => match process_logged(&self.deps, &delivery, timeout).await {
                        Ok(processed) => {
                            emit_metrics(&self.stage, &processed);
                            false
                        }
                        Err(_) => true,
                    },
                    None => {
                        warn!("an SQS message lacks its body, group or event key; retrying it");
                        true
                    }
                };
            }
            if failing {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }
}

/// The delivery of an SQS event record.
pub fn delivery(message: &SqsMessage) -> Option<Delivery> {
    Some(Delivery {
        receipt: message.receipt_handle.clone().unwrap_or_default(),
        event_key: message
            .message_attributes
            .get("event_key")?
            .string_value
            .clone()?,
        group: message.attributes.get("MessageGroupId")?.clone(),
        payload: message.body.as_ref()?.as_bytes().to_vec(),
        receive_count: message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|count| count.parse().ok())
            .unwrap_or(1),
    })
}

/// One CloudWatch Embedded Metric Format line (namespace `mw`, dimension
/// `Stage`): `Decisions` and `ModelFailures`, for the model-failure alarm.
pub fn emf_line(stage: &str, model_failure: bool, now_ms: i64) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": "mw",
                "Dimensions": [["Stage"]],
                "Metrics": [{"Name": "Decisions", "Unit": "Count"}, {"Name": "ModelFailures", "Unit": "Count"}],
            }],
        },
        "Stage": stage,
        "Decisions": 1,
        "ModelFailures": u8::from(model_failure),
    })
    .to_string()
}

fn emit_metrics(stage: &str, processed: &Processed) {
    if let Processed::Decided { decision, .. } = processed {
        let failure = decision.markers.contains(&Marker::ModelFailure);
        println!(
            "{}",
            emf_line(stage, failure, chrono::Utc::now().timestamp_millis())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_read_and_blank_values_are_unset() {
        let env = LambdaEnv::from_lookup(|name| match name {
            "MW_STAGE" => Some("prod".into()),
            "MW_QUEUE_URL" => Some(" https://sqs.example/q.fifo ".into()),
            "MW_OPENAI_SECRET_ARN" => Some("  ".into()),
            _ => None,
        });
        assert_eq!(env.stage, "prod");
        assert_eq!(env.queue_url.as_deref(), Some("https://sqs.example/q.fifo"));
        assert_eq!(env.openai_secret, None);
        assert!(matches!(
            required(&env.flags_path, "MW_FLAGS_PATH"),
            Err(InitError::Missing("MW_FLAGS_PATH"))
        ));
    }

    #[test]
    fn metrics_lines_follow_the_embedded_metric_format() {
        let line: serde_json::Value = serde_json::from_str(&emf_line("prod", true, 1)).unwrap();
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "mw");
        assert_eq!(line["Stage"], "prod");
        assert_eq!(line["ModelFailures"], 1);
        assert_eq!(line["Decisions"], 1);
    }
}
