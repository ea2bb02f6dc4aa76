//! The ports: every side effect and every replaceable decision step goes through one
//! of these traits. The crates above implement them; the core only names them.
//!
//! Pure ports ([`Policy`], [`TemplateCatalog`], [`Renderer`], [`Clock`], [`IdGen`])
//! are synchronous. I/O ports are `async` (via `async-trait`, no runtime implied).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::decision::{Action, Verdict};
use crate::model::{Conversation, Order, OrderLookup, ReplyHistory, RuntimeFlags};
use crate::order::OrderFacts;
use crate::schema::{ModelDecision, VerifierDecision};
use crate::vocab::{Channel, Intent, Language};

/// Template variables: name → JSON value.
pub type Variables = BTreeMap<String, serde_json::Value>;

/// Whether a variable is present and non-empty (not null, not a blank string, not an
/// empty list): the meaning of "required" for templates.
pub fn variable_present(variables: &Variables, name: &str) -> bool {
    match variables.get(name) {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::String(text)) => !text.trim().is_empty(),
        Some(serde_json::Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
    }
}

/// The current time.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// Fresh ids (correlation ids, receipts).
pub trait IdGen: Send + Sync {
    /// A new unique id.
    fn new_id(&self) -> String;
}

/// What the catalog says about one template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateInfo {
    /// Template id.
    pub id: String,
    /// Version.
    pub version: u32,
    /// Tier (0, 1 or 2).
    pub tier: u8,
    /// Catalog enablement.
    pub enabled: bool,
    /// May close the conversation after sending.
    pub auto_close_allowed: bool,
    /// Channels it may be sent on.
    pub channels: Vec<Channel>,
    /// Variables that must be present and non-empty.
    pub required: Vec<String>,
}

/// Read access to the template catalog.
pub trait TemplateCatalog: Send + Sync {
    /// The template with this id.
    fn template(&self, id: &str) -> Option<&TemplateInfo>;
}

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// Not in the catalog.
    #[error("template '{0}' is not in the catalog; add it to templates/ or fix the template id")]
    UnknownTemplate(String),
    /// A required variable is missing or empty.
    #[error("template '{template}' needs variable '{variable}', which is missing or empty")]
    MissingVariable {
        /// Template id.
        template: String,
        /// Variable name.
        variable: String,
    },
    /// The template engine failed (strict undefined, fuel exhausted, …).
    #[error("template '{template}' failed to render: {message}")]
    Engine {
        /// Template id.
        template: String,
        /// Engine message (no variable values).
        message: String,
    },
}

/// Renders catalog templates and builds their variables.
pub trait Renderer: TemplateCatalog {
    /// Template variables for an order (several fulfillments, ETA rule) and the
    /// customer's name, in the reply language.
    fn variables(
        &self,
        order: Option<&Order>,
        facts: &OrderFacts,
        customer_name: Option<&str>,
        language: Language,
    ) -> Variables;

    /// Renders `template_id` for a channel and language.
    fn render(
        &self,
        template_id: &str,
        language: Language,
        channel: Channel,
        variables: &Variables,
    ) -> Result<String, RenderError>;
}

/// A classifier's per-intent confidence (the rules classifier provides these; an
/// LLM does not).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IntentScore {
    /// Intent.
    pub intent: Intent,
    /// Confidence, 0..1.
    pub confidence: f64,
}

/// Raw classifier output, not yet validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ModelOutput {
    /// A JSON value claiming to be `mw_decision_v1`.
    Json(serde_json::Value),
    /// The classifier failed (timeout, refusal, truncation, …): the reason.
    Failed(String),
}

/// A classifier's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// The output to validate.
    pub output: ModelOutput,
    /// Per-intent scores, when the classifier has them.
    #[serde(default)]
    pub scores: Vec<IntentScore>,
    /// The Tier 2 verifier's answer for the same event, once asked: stored with the
    /// classification so that a retried event pays for neither call twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerifierInput>,
}

/// What a classifier receives: redacted text only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifyRequest {
    /// Channel, if known.
    pub channel: Option<Channel>,
    /// The customer's text, PII redacted.
    pub redacted_text: String,
}

/// Classifies a message into `mw_decision_v1`. Failures are values, not errors:
/// they end in route-only.
#[async_trait]
pub trait Classifier: Send + Sync {
    /// Classifies one message.
    async fn classify(&self, request: &ClassifyRequest) -> Classification;
}

/// The verifier's answer, not yet validated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum VerifierInput {
    /// The verifier was not asked.
    #[default]
    NotRun,
    /// A JSON value claiming to be `mw_tier2_verifier_v1`.
    Json(serde_json::Value),
    /// The verifier failed: the reason (deny).
    Failed(String),
}

/// The Tier 2 verifier.
#[async_trait]
pub trait Verifier: Send + Sync {
    /// Verifies one Tier 2 candidate.
    async fn verify(&self, request: &crate::decision::VerifierRequest) -> VerifierInput;
}

/// The verifier's answer after validation, as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum VerifierState {
    /// Not asked yet.
    NotRun,
    /// A valid answer.
    Answered(VerifierDecision),
    /// Failed or invalid: deny.
    Failed(String),
}

/// Everything the policy reads. Pure data: no I/O behind it.
pub struct PolicyInput<'a> {
    /// Conversation channel, if known.
    pub channel: Option<Channel>,
    /// The customer's raw text (the Tier 0 pre-screen runs on it).
    pub text: &'a str,
    /// The validated classifier output, or why there is none.
    pub model: Result<&'a ModelDecision, &'a str>,
    /// Per-intent scores, if any.
    pub scores: &'a [IntentScore],
    /// The verifier's state.
    pub verifier: &'a VerifierState,
    /// Runtime flags; `None` when they could not be read (⇒ safe mode).
    pub flags: Option<&'a RuntimeFlags>,
    /// Past automated replies.
    pub history: &'a ReplyHistory,
    /// Now.
    pub now: DateTime<Utc>,
    /// Linked-order facts.
    pub order: &'a OrderFacts,
    /// The template catalog.
    pub catalog: &'a dyn TemplateCatalog,
    /// Variables available to templates.
    pub variables: &'a Variables,
}

/// The authoritative tier policy.
pub trait Policy: Send + Sync {
    /// Decides the tier, route, markers and template for one event.
    fn evaluate(&self, input: &PolicyInput<'_>) -> Verdict;
}

/// An error from an I/O port. Messages say what to do and never carry message
/// bodies or secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// The resource does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Credentials were rejected.
    #[error("unauthorized: {0}; check the configured API key")]
    Unauthorized(String),
    /// The vendor throttled us.
    #[error("rate limited; retry after {retry_after_secs:?} s")]
    RateLimited {
        /// Seconds to wait, when given.
        retry_after_secs: Option<u64>,
    },
    /// Timed out.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Temporarily unavailable (5xx, connection error).
    #[error("unavailable: {0}; it will be retried")]
    Unavailable(String),
    /// The request or response was invalid (no retry).
    #[error("invalid: {0}")]
    Invalid(String),
    /// A conditional write found the record already present.
    #[error("already exists: {0}")]
    Conflict(String),
}

impl PortError {
    /// Whether the failure may go away by itself (throttling, timeouts, outages):
    /// the outcome of a write that failed this way is unknown, and the event is
    /// retried later rather than given up.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PortError::RateLimited { .. } | PortError::Timeout(_) | PortError::Unavailable(_)
        )
    }
}

/// Reads conversations.
#[async_trait]
pub trait Conversations: Send + Sync {
    /// The conversation with its messages.
    async fn conversation(&self, id: &str) -> Result<Conversation, PortError>;
}

/// Reads linked orders.
#[async_trait]
pub trait Orders: Send + Sync {
    /// The order(s) linked to a conversation.
    async fn linked_order(&self, conversation_id: &str) -> Result<OrderLookup, PortError>;
}

/// What executing an action did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionOutcome {
    /// Done.
    Applied,
    /// Already done earlier (found on reconcile); not repeated.
    AlreadyApplied,
    /// Written to the dry-run outbox instead of Richpanel.
    DryRun,
}

/// Executes actions on Richpanel (or a dry-run outbox).
#[async_trait]
pub trait Actions: Send + Sync {
    /// Executes one action under its idempotency key.
    async fn execute(
        &self,
        conversation_id: &str,
        action: &Action,
        idempotency_key: &str,
    ) -> Result<ActionOutcome, PortError>;

    /// Whether the action already took effect (after a crash or a dropped response),
    /// judged from the destination itself, never from our own ledger.
    async fn already_applied(
        &self,
        conversation_id: &str,
        action: &Action,
        idempotency_key: &str,
    ) -> Result<bool, PortError>;
}

/// Reads runtime flags.
#[async_trait]
pub trait Flags: Send + Sync {
    /// The current flags; an error means "unreadable" (⇒ safe mode).
    async fn flags(&self) -> Result<RuntimeFlags, PortError>;
}

/// What claiming an event's idempotency record found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventClaim {
    /// First time: process it.
    New,
    /// Claimed before but never completed (crash, error): process again; the action
    /// ledger prevents repeated side effects.
    Resume,
    /// Already processed to completion: drop it.
    Done,
}

/// State of one side effect in the action ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerStatus {
    /// Written before the call; the call's outcome is unknown.
    Pending,
    /// The call succeeded (or was found applied on reconcile).
    Done,
    /// The call failed for good.
    Failed,
}

/// The result of one action, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// Action kind (`tags`, `assign`, `reply`, `close`).
    pub kind: String,
    /// Ledger key.
    pub key: String,
    /// `applied`, `already_applied`, `dry_run`, `skipped_shadow` or `failed: …`.
    pub outcome: String,
}

/// One audit entry: everything decided about one event, with every reason.
/// Never contains message text or reply bodies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Resolved event key.
    pub event_key: String,
    /// Conversation id.
    pub conversation_id: String,
    /// When it was decided.
    pub at: DateTime<Utc>,
    /// `live`, `dry_run`, `shadow`, or `skipped`.
    pub mode: String,
    /// Why it was skipped, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The decision (reply body removed), when one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<crate::decision::Decision>,
    /// What each action did.
    #[serde(default)]
    pub actions: Vec<ActionRecord>,
}

/// Idempotency records, reply history, the action ledger and the audit trail.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Conditionally creates the idempotency record of an event (no message text:
    /// only a payload fingerprint).
    async fn claim_event(
        &self,
        event_key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<EventClaim, PortError>;
    /// Marks an event processed to completion.
    async fn complete_event(
        &self,
        event_key: &str,
        mode: &str,
        now: DateTime<Utc>,
    ) -> Result<(), PortError>;
    /// The classification stored with an event, if any (a retry never pays twice).
    async fn stored_classification(
        &self,
        event_key: &str,
    ) -> Result<Option<Classification>, PortError>;
    /// Stores an event's classification.
    async fn store_classification(
        &self,
        event_key: &str,
        classification: &Classification,
    ) -> Result<(), PortError>;
    /// Reply history of a conversation and its customer (the pipeline passes the
    /// hashed [`customer_key`](crate::customer_key), never an email address).
    async fn reply_history(
        &self,
        conversation_id: &str,
        customer_id: Option<&str>,
    ) -> Result<ReplyHistory, PortError>;
    /// Records an automated reply.
    async fn record_reply(
        &self,
        conversation_id: &str,
        customer_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), PortError>;
    /// A ledger entry.
    async fn ledger(&self, key: &str) -> Result<Option<LedgerStatus>, PortError>;
    /// Writes a ledger entry.
    async fn set_ledger(
        &self,
        key: &str,
        status: LedgerStatus,
        now: DateTime<Utc>,
    ) -> Result<(), PortError>;
    /// Appends to a conversation's audit trail.
    async fn append_audit(&self, record: &AuditRecord) -> Result<(), PortError>;
    /// A conversation's audit trail, oldest first.
    async fn audit_trail(&self, conversation_id: &str) -> Result<Vec<AuditRecord>, PortError>;
}

/// Whether an enqueue stored a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enqueued {
    /// Stored.
    Accepted,
    /// A message with the same key is already queued: nothing stored.
    Duplicate,
}

/// A message handed out by the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Handle for `ack`/`release`; valid until the visibility timeout.
    pub receipt: String,
    /// Ingress event key.
    pub event_key: String,
    /// Ordering group (conversation id).
    pub group: String,
    /// The validated webhook payload.
    pub payload: Vec<u8>,
    /// How many times it has been received (1 = first).
    pub receive_count: u32,
}

/// A durable queue, FIFO per group, with visibility timeout and dead-letter queue.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Durably enqueues; returns once stored.
    async fn enqueue(
        &self,
        group: &str,
        event_key: &str,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Enqueued, PortError>;
    /// Hands out up to `max` messages, at most one in flight per group.
    async fn receive(
        &self,
        max: usize,
        visibility: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, PortError>;
    /// Deletes a processed message.
    async fn ack(&self, receipt: &str) -> Result<(), PortError>;
    /// Makes a message visible again after a failure (it moves to the dead-letter
    /// queue once received too often).
    async fn release(
        &self,
        receipt: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), PortError>;
}
