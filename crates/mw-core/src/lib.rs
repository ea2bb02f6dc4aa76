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
mod ports;
mod redact;
mod schema;
mod vocab;

pub use decide::{decide, DecideInput};
pub use decision::{
    tags_for, Action, AppliedTier, Decision, Gate, Marker, Reason, Reply, ReplyPlan, Verdict,
    VerifierRequest, MAX_ACTIONS, TAG_AUTO_CLOSED, TAG_AUTO_REPLIED, TAG_DEFLECTED,
    TAG_ROUTING_APPLIED, TAG_SEND_FAILED,
};
pub use model::{
    parse_timestamp, Conversation, Customer, Fulfillment, InboundEvent, Message, Order,
    OrderLookup, ReplyHistory, RuntimeFlags, Sender, Tracking,
};
pub use order::{
    business_days_between, eta, order_cancelled, order_has_tracking, order_matches_number,
    order_numbers_in, Eta, OrderFacts, ShippingBucket,
};
pub use ports::{
    ActionOutcome, Actions, Classification, Classifier, ClassifyRequest, Clock, Conversations,
    Flags, IdGen, IntentScore, ModelOutput, Orders, Policy, PolicyInput, PortError, Queue,
    RenderError, Renderer, StateStore, TemplateCatalog, TemplateInfo, Variables, Verifier,
    VerifierInput, VerifierState,
};
pub use redact::{contains_pii, redact, PiiKind};
pub use schema::{
    decision_schema, parse_decision, parse_verifier, validate_decision, validate_verifier,
    verifier_schema, AutomationAdvice, ModelDecision, RiskAdvice, RoutingAdvice, SchemaError,
    VerifierDecision, DECISION_SCHEMA_JSON, VERIFIER_SCHEMA_JSON,
};
pub use vocab::{
    slugify, AutomationAction, Channel, ClarifyingQuestion, DowngradeTier, Intent, Language,
    MaxTier, Priority, RiskFlag, Team, Tier, VerifierReason,
};
