//! The `mw_decision_v1` and `mw_tier2_verifier_v1` JSON Schemas: embedded from
//! `schemas/`, compiled once, and used to validate every model output before the
//! policy sees it. An output that fails validation is never used (fail closed).

use std::sync::LazyLock;

use jsonschema::Validator;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::vocab::{
    AutomationAction, ClarifyingQuestion, DowngradeTier, Intent, Language, RiskFlag, Team, Tier,
    VerifierReason,
};

/// The `mw_decision_v1` JSON Schema text, as shipped in `schemas/`.
pub const DECISION_SCHEMA_JSON: &str = include_str!("../../../schemas/mw_decision_v1.json");
/// The `mw_tier2_verifier_v1` JSON Schema text, as shipped in `schemas/`.
pub const VERIFIER_SCHEMA_JSON: &str = include_str!("../../../schemas/mw_tier2_verifier_v1.json");

/// Why a model output was rejected. Messages never quote the offending value, so
/// they are safe to log and audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The text is not JSON.
    #[error(
        "model output is not valid JSON ({0}); the output is discarded and the event is routed to a human"
    )]
    InvalidJson(String),
    /// The JSON does not match the schema.
    #[error(
        "model output violates {schema} at '{path}': {message}; the output is discarded and the event is routed to a human"
    )]
    Violation {
        /// Schema title.
        schema: &'static str,
        /// JSON pointer of the first violation.
        path: String,
        /// What was wrong (the value itself is masked).
        message: String,
    },
    /// The embedded schema failed to compile (a build defect; fail closed).
    #[error("the embedded {0} schema failed to compile; rebuild from a clean checkout")]
    SchemaUnavailable(&'static str),
}

/// Classifier output (`mw_decision_v1`): advice to the policy engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDecision {
    /// Always `mw_decision_v1`.
    pub schema_version: String,
    /// Detected language.
    pub language: Language,
    /// The main intent.
    pub primary_intent: Intent,
    /// Up to two further intents.
    pub secondary_intents: Vec<Intent>,
    /// Routing advice.
    pub routing: RoutingAdvice,
    /// Automation advice.
    pub automation: AutomationAdvice,
    /// Risk assessment.
    pub risk: RiskAdvice,
    /// Up to three questions to ask.
    pub clarifying_questions: Vec<ClarifyingQuestion>,
    /// Note for the human agent (≤500 chars). Never sent to a customer.
    pub notes_for_agent: String,
}

/// Routing advice of `mw_decision_v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingAdvice {
    /// Suggested team.
    pub destination_team: Team,
    /// Confidence in the intent, 0..1.
    pub confidence: f64,
    /// The model thinks a human must triage.
    pub needs_manual_triage: bool,
    /// Suggested tags (informational; the policy sets the tags).
    pub tags: Vec<String>,
}

/// Automation advice of `mw_decision_v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutomationAdvice {
    /// Suggested tier.
    pub tier: Tier,
    /// Suggested action.
    pub action: AutomationAction,
    /// Suggested catalog template, if any.
    pub template_id: Option<String>,
    /// Confidence in the automation, 0..1.
    pub confidence: f64,
    /// Whether a deterministic order match is needed.
    pub requires_deterministic_match: bool,
}

/// Risk assessment of `mw_decision_v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskAdvice {
    /// High-risk flags (any ⇒ Tier 0).
    pub flags: Vec<RiskFlag>,
    /// The model says a human must handle this.
    pub force_human: bool,
}

/// Tier 2 verifier output (`mw_tier2_verifier_v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifierDecision {
    /// Always `mw_tier2_verifier_v1`.
    pub schema_version: String,
    /// May the Tier 2 reply be sent?
    pub allow_tier2: bool,
    /// Confidence, 0..1.
    pub confidence: f64,
    /// What to do instead when denying.
    pub downgrade_to_tier: DowngradeTier,
    /// Why.
    pub reason_code: VerifierReason,
    /// Short note (≤300 chars), never sent to a customer.
    pub notes: String,
}

static DECISION_VALIDATOR: LazyLock<Option<Validator>> =
    LazyLock::new(|| compile(DECISION_SCHEMA_JSON));
static VERIFIER_VALIDATOR: LazyLock<Option<Validator>> =
    LazyLock::new(|| compile(VERIFIER_SCHEMA_JSON));
static DECISION_SCHEMA: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(DECISION_SCHEMA_JSON).unwrap_or(Value::Null));
static VERIFIER_SCHEMA: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(VERIFIER_SCHEMA_JSON).unwrap_or(Value::Null));

fn compile(text: &str) -> Option<Validator> {
    let schema: Value = serde_json::from_str(text).ok()?;
    jsonschema::validator_for(&schema).ok()
}

/// The parsed `mw_decision_v1` schema (for structured-output requests).
pub fn decision_schema() -> &'static Value {
    &DECISION_SCHEMA
}

/// The parsed `mw_tier2_verifier_v1` schema (for structured-output requests).
pub fn verifier_schema() -> &'static Value {
    &VERIFIER_SCHEMA
}

fn check<T: serde::de::DeserializeOwned>(
    validator: &Option<Validator>,
    title: &'static str,
    value: &Value,
) -> Result<T, SchemaError> {
    let validator = validator
        .as_ref()
        .ok_or(SchemaError::SchemaUnavailable(title))?;
    if !validator.is_valid(value)
        && let Some(error) = validator.iter_errors(value).next()
    {
        return Err(SchemaError::Violation {
            schema: title,
            path: error.instance_path().to_string(),
            message: error.masked().to_string(),
        });
    }
    // The schema and the types describe the same shape; a mismatch is still a rejection.
    T::deserialize(value).map_err(|error| SchemaError::Violation {
        schema: title,
        path: String::new(),
        message: format!("does not match the typed model: {}", error_category(&error)),
    })
}

/// What kind of JSON error it was, without quoting the input.
fn error_category(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "i/o error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "wrong field type or value",
        serde_json::error::Category::Eof => "unexpected end of input",
    }
}

/// Validates a `mw_decision_v1` value and returns it typed.
pub fn validate_decision(value: &Value) -> Result<ModelDecision, SchemaError> {
    check(&DECISION_VALIDATOR, "mw_decision_v1", value)
}

/// Parses and validates `mw_decision_v1` JSON text.
pub fn parse_decision(text: &str) -> Result<ModelDecision, SchemaError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|error| SchemaError::InvalidJson(error_category(&error).to_owned()))?;
    validate_decision(&value)
}

/// Validates a `mw_tier2_verifier_v1` value and returns it typed.
pub fn validate_verifier(value: &Value) -> Result<VerifierDecision, SchemaError> {
    check(&VERIFIER_VALIDATOR, "mw_tier2_verifier_v1", value)
}

/// Parses and validates `mw_tier2_verifier_v1` JSON text.
pub fn parse_verifier(text: &str) -> Result<VerifierDecision, SchemaError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|error| SchemaError::InvalidJson(error_category(&error).to_owned()))?;
    validate_verifier(&value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn valid_decision() -> Value {
        json!({
            "schema_version": "mw_decision_v1", "language": "en",
            "primary_intent": "order_status_tracking", "secondary_intents": [],
            "routing": {"destination_team": "Email Support Team", "confidence": 0.9,
                        "needs_manual_triage": false, "tags": []},
            "automation": {"tier": "TIER_2_VERIFIED", "action": "SEND_TEMPLATE",
                           "template_id": "t_order_status_verified", "confidence": 0.9,
                           "requires_deterministic_match": true},
            "risk": {"flags": [], "force_human": false},
            "clarifying_questions": [], "notes_for_agent": ""
        })
    }

    #[test]
    fn schemas_compile() {
        assert!(DECISION_VALIDATOR.is_some());
        assert!(VERIFIER_VALIDATOR.is_some());
        assert!(decision_schema().is_object());
    }

    #[test]
    fn a_valid_decision_parses() {
        let decision = validate_decision(&valid_decision()).unwrap();
        assert_eq!(decision.primary_intent, Intent::OrderStatusTracking);
        assert_eq!(decision.routing.destination_team, Team::EmailSupport);
    }

    #[test]
    fn violations_are_rejected_without_quoting_the_value() {
        let mut extra = valid_decision();
        extra["free_text_reply"] = json!("Your refund of $99 is approved");
        let error = validate_decision(&extra).unwrap_err();
        assert!(!error.to_string().contains("approved"), "{error}");

        let mut bad_confidence = valid_decision();
        bad_confidence["routing"]["confidence"] = json!(1.7);
        assert!(matches!(
            validate_decision(&bad_confidence),
            Err(SchemaError::Violation { path, .. }) if path == "/routing/confidence"
        ));

        let mut bad_intent = valid_decision();
        bad_intent["primary_intent"] = json!("issue_refund_now");
        assert!(validate_decision(&bad_intent).is_err());

        let mut too_many = valid_decision();
        too_many["risk"]["flags"] = json!([
            "LEGAL_THREAT",
            "FRAUD_SUSPECTED",
            "CHARGEBACK_DISPUTE",
            "OTHER_HIGH_RISK"
        ]);
        assert!(validate_decision(&too_many).is_err());

        let mut version = valid_decision();
        version["schema_version"] = json!("mw_decision_v2");
        assert!(validate_decision(&version).is_err());

        assert!(matches!(
            parse_decision("{not json"),
            Err(SchemaError::InvalidJson(_))
        ));
    }

    #[test]
    fn verifier_outputs_validate() {
        let ok = json!({"schema_version": "mw_tier2_verifier_v1", "allow_tier2": true,
            "confidence": 0.93, "downgrade_to_tier": "TIER_1_SAFE_ASSIST",
            "reason_code": "OK", "notes": ""});
        assert!(validate_verifier(&ok).unwrap().allow_tier2);
        let mut long = ok.clone();
        long["notes"] = json!("x".repeat(301));
        assert!(validate_verifier(&long).is_err());
    }
}
