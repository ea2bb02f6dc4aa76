//! # mw-core
//!
//! The vocabulary, domain model, JSON Schemas, PII redaction, ports and the pure
//! [`decide`] function of the mw middleware. No network, no clock, no randomness:
//! time and data come in as arguments, so every decision is reproducible.
//!
//! ```
//! use mw_core::{Intent, Team, MaxTier};
//! assert_eq!(Intent::ChargebackDispute.default_team(), Team::ChargebacksDisputes);
//! assert_eq!(Intent::OrderStatusTracking.max_tier(), MaxTier::Tier2);
//! assert_eq!(mw_core::redact("mail jane@example.com"), "mail [EMAIL]");
//! ```

mod decide;
mod decision;
mod model;
mod order;
mod pipeline;
mod ports;
mod redact;
mod schema;
mod vocab;

pub use decide::{DecideInput, decide};
pub use decision::{
    Action, AppliedTier, Decision, Gate, MAX_ACTIONS, Marker, Reason, Reply, ReplyPlan,
    TAG_AUTO_CLOSED, TAG_AUTO_REPLIED, TAG_DEFLECTED, TAG_ROUTING_APPLIED, TAG_SEND_FAILED,
    Verdict, VerifierRequest, all_tags, tags_for,
};
pub use model::{
    Conversation, Customer, Fulfillment, InboundEvent, Message, Order, OrderLookup, ReplyHistory,
    RuntimeFlags, Sender, Tracking, parse_timestamp,
};
pub use order::{
    Eta, OrderFacts, ShippingBucket, business_days_between, eta, order_cancelled,
    order_has_tracking, order_matches_number, order_numbers_in,
};
pub use pipeline::{
    Pipeline, Processed, SkipReason, customer_key, fingerprint, ingress_event_key,
    message_event_key,
};
pub use ports::{
    ActionOutcome, ActionRecord, Actions, AuditRecord, Classification, Classifier, ClassifyRequest,
    Clock, Conversations, Delivery, Enqueued, EventClaim, Flags, IdGen, IntentScore, LedgerStatus,
    ModelOutput, Orders, Policy, PolicyInput, PortError, Queue, RenderError, Renderer, StateStore,
    TemplateCatalog, TemplateInfo, Variables, Verifier, VerifierInput, VerifierState,
    variable_present,
};
pub use redact::{PiiKind, contains_pii, redact};
pub use schema::{
    AutomationAdvice, DECISION_SCHEMA_JSON, ModelDecision, RiskAdvice, RoutingAdvice, SchemaError,
    VERIFIER_SCHEMA_JSON, VerifierDecision, decision_schema, parse_decision, parse_verifier,
    validate_decision, validate_verifier, verifier_schema,
};
pub use vocab::{
    AutomationAction, Channel, ClarifyingQuestion, DowngradeTier, Intent, Language, MaxTier,
    Priority, RiskFlag, Team, Tier, VerifierReason, slugify,
};
