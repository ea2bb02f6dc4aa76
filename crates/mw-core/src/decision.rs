//! What the policy decides and what `decide` returns: tier, route, tags, optional
//! reply and close, the ordered actions, and every reason.

use serde::{Deserialize, Serialize};
use strum::IntoStaticStr;

use crate::vocab::{Intent, Language, Team, slugify};

/// The tier actually applied to an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AppliedTier {
    /// Escalated to a Tier 0 team; no customer message.
    #[serde(rename = "tier_0")]
    #[strum(serialize = "tier_0")]
    Tier0,
    /// A Tier 1 template was sent.
    #[serde(rename = "tier_1")]
    #[strum(serialize = "tier_1")]
    Tier1,
    /// A verified Tier 2 template was sent.
    #[serde(rename = "tier_2")]
    #[strum(serialize = "tier_2")]
    Tier2,
    /// Tagged and routed only.
    RouteOnly,
}

impl AppliedTier {
    /// The stable string form (`tier_0`, `tier_1`, `tier_2`, `route_only`), as in JSON.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The `mw-tier-N` tag, when the tier has one.
    pub fn tag(self) -> Option<&'static str> {
        match self {
            AppliedTier::Tier0 => Some("mw-tier-0"),
            AppliedTier::Tier1 => Some("mw-tier-1"),
            AppliedTier::Tier2 => Some("mw-tier-2"),
            AppliedTier::RouteOnly => None,
        }
    }
}

/// The gate (policy step) a reason belongs to, in evaluation order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr, strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[allow(missing_docs, reason = "gate names follow SPEC §3")]
pub enum Gate {
    KillSwitch,
    Model,
    Tier0,
    Injection,
    Priority,
    Confidence,
    Team,
    Tier3,
    Tier2,
    Verifier,
    Tier1,
    Template,
    ReplyLimit,
    AutoClose,
    Render,
    Guard,
}

impl Gate {
    /// The stable string form, as in JSON (`kill_switch`, `tier0`, …).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One step of the decision trail. `code` is stable (machine-readable); `detail`
/// never contains message text or personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// The gate.
    pub gate: Gate,
    /// Stable snake_case code, e.g. `prescreen_match`.
    pub code: String,
    /// Human-readable detail (safe to log).
    pub detail: String,
}

impl Reason {
    /// A reason with a detail.
    pub fn new(gate: Gate, code: &str, detail: impl Into<String>) -> Reason {
        Reason {
            gate,
            code: code.to_owned(),
            detail: detail.into(),
        }
    }
}

/// Condition tags the policy attaches.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs, reason = "each variant is its tag")]
pub enum Marker {
    Tier0Override,
    ModelFailure,
    Uncertain,
    NeedsManualTriage,
    AutoRateLimited,
    OrderLookupFailed,
    InjectionSuspected,
}

impl Marker {
    /// The tag text.
    pub fn tag(self) -> &'static str {
        match self {
            Marker::Tier0Override => "mw-tier0-override",
            Marker::ModelFailure => "mw-model-failure",
            Marker::Uncertain => "mw-uncertain",
            Marker::NeedsManualTriage => "mw-needs-manual-triage",
            Marker::AutoRateLimited => "mw-auto-rate-limited",
            Marker::OrderLookupFailed => "mw-order-lookup-failed",
            Marker::InjectionSuspected => "mw-injection-suspected",
        }
    }
}

/// Tag added to every processed conversation (processed marker and loop guard).
pub const TAG_ROUTING_APPLIED: &str = "mw-routing-applied";
/// Tag added when an automated reply is sent.
pub const TAG_AUTO_REPLIED: &str = "mw-auto-replied";
/// Tag added when automation closes the conversation.
pub const TAG_AUTO_CLOSED: &str = "mw-auto-closed";
/// Tag added with [`TAG_AUTO_CLOSED`].
pub const TAG_DEFLECTED: &str = "mw-deflected";
/// Tag the executor adds when a reply could not be sent.
pub const TAG_SEND_FAILED: &str = "mw-send-failed";

/// The template the policy chose to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyPlan {
    /// Catalog template id.
    pub template_id: String,
    /// Close the conversation after sending (auto-close whitelist).
    pub auto_close: bool,
}

/// What the Tier 2 verifier is asked (SPEC §2): redacted text only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifierRequest {
    /// A deterministic order link exists.
    pub deterministic_match: bool,
    /// The intent the policy proposes to answer.
    pub proposed_intent: Intent,
    /// The Tier 2 template the policy proposes to send.
    pub proposed_template: String,
    /// The customer message, PII redacted.
    pub redacted_message: String,
}

/// The policy's verdict, before rendering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Applied tier.
    pub tier: AppliedTier,
    /// Reply language.
    pub language: Language,
    /// The intent the conversation is routed by (after multi-intent priority).
    pub primary_intent: Intent,
    /// Other intents seen.
    pub secondary_intents: Vec<Intent>,
    /// The team the intent wants.
    pub team: Team,
    /// The tenant team name actually routed to (fallback applied).
    pub team_name: String,
    /// Set when the wanted team is missing in the tenant and a fallback was used.
    pub team_fallback: bool,
    /// Direct assignee for the team, when configured.
    pub assignee_id: Option<String>,
    /// Routing confidence after adjustments.
    pub routing_confidence: f64,
    /// Automation confidence (Tier 2: min(routing, verifier)).
    pub automation_confidence: Option<f64>,
    /// Condition tags.
    pub markers: Vec<Marker>,
    /// The template to send, if any.
    pub reply: Option<ReplyPlan>,
    /// Set when Gate B needs the verifier's answer to go further.
    pub verifier_request: Option<VerifierRequest>,
    /// Every gate that fired, in order.
    pub reasons: Vec<Reason>,
}

/// A rendered customer reply: always a catalog template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Catalog template id.
    pub template_id: String,
    /// Catalog template version.
    pub template_version: u32,
    /// Language of the body.
    pub language: Language,
    /// Rendered body.
    pub body: String,
}

/// One side effect on Richpanel. A decision has at most three, executed in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Add tags (routing tag included; set semantics).
    AddTags {
        /// Tags to add.
        tags: Vec<String>,
    },
    /// Assign to a configured agent of the routed team.
    Assign {
        /// Tenant team name.
        team: String,
        /// Richpanel user id.
        assignee_id: String,
    },
    /// Send the rendered template.
    SendReply {
        /// Template id.
        template_id: String,
        /// Template version.
        template_version: u32,
        /// Rendered body.
        body: String,
    },
    /// Close the conversation.
    Close,
}

impl Action {
    /// Stable kind name, used in idempotency keys and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::AddTags { .. } => "tags",
            Action::Assign { .. } => "assign",
            Action::SendReply { .. } => "reply",
            Action::Close => "close",
        }
    }

    /// Whether the action writes something the customer sees.
    pub fn is_customer_message(&self) -> bool {
        matches!(self, Action::SendReply { .. })
    }
}

/// Most actions one event may execute.
pub const MAX_ACTIONS: usize = 3;

/// The final decision for one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Applied tier.
    pub tier: AppliedTier,
    /// Reply language.
    pub language: Language,
    /// Routing intent.
    pub primary_intent: Intent,
    /// Other intents seen.
    pub secondary_intents: Vec<Intent>,
    /// Wanted team.
    pub team: Team,
    /// Tenant team routed to.
    pub team_name: String,
    /// Routing confidence after adjustments.
    pub routing_confidence: f64,
    /// Automation confidence, when automation was considered.
    pub automation_confidence: Option<f64>,
    /// Condition markers.
    pub markers: Vec<Marker>,
    /// Every tag added.
    pub tags: Vec<String>,
    /// The reply, if one is sent.
    pub reply: Option<Reply>,
    /// Whether the conversation is closed.
    pub close: bool,
    /// Ordered actions (≤ 3).
    pub actions: Vec<Action>,
    /// Whether the linked order matched deterministically.
    pub deterministic_order_match: bool,
    /// Set when the caller should run the verifier and decide again.
    pub verifier_request: Option<VerifierRequest>,
    /// Every gate that fired, in order.
    pub reasons: Vec<Reason>,
}

impl Decision {
    /// Whether this decision sends the customer a message.
    pub fn sends_customer_message(&self) -> bool {
        self.actions.iter().any(Action::is_customer_message)
    }
}

/// The tags for a verdict: route tag, intent, tier, markers, fallback, reply/close
/// tags, and `mw-routing-applied` last.
pub fn tags_for(verdict: &Verdict, replied: bool, closed: bool) -> Vec<String> {
    let mut tags = vec![
        format!("route-{}", slugify(&verdict.team_name)),
        format!("mw-intent-{}", verdict.primary_intent.as_str()),
    ];
    if let Some(tier) = verdict.tier.tag() {
        tags.push(tier.to_owned());
    }
    if verdict.team_fallback {
        tags.push(format!("mw-wanted-team-{}", verdict.team.slug()));
    }
    let mut markers = verdict.markers.clone();
    markers.sort();
    markers.dedup();
    tags.extend(markers.iter().map(|marker| marker.tag().to_owned()));
    if replied {
        tags.push(TAG_AUTO_REPLIED.to_owned());
    }
    if closed {
        tags.push(TAG_AUTO_CLOSED.to_owned());
        tags.push(TAG_DEFLECTED.to_owned());
    }
    tags.push(TAG_ROUTING_APPLIED.to_owned());
    tags
}

/// Every tag [`tags_for`] can write for a tenant whose teams have these names:
/// what must exist in Richpanel before going live (`mw doctor`).
pub fn all_tags<'a>(team_names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    use strum::IntoEnumIterator;
    let mut tags: Vec<String> = team_names
        .into_iter()
        .map(|name| format!("route-{}", slugify(name)))
        .collect();
    tags.extend(Intent::iter().map(|intent| format!("mw-intent-{}", intent.as_str())));
    tags.extend(
        [AppliedTier::Tier0, AppliedTier::Tier1, AppliedTier::Tier2]
            .iter()
            .filter_map(|tier| tier.tag().map(str::to_owned)),
    );
    tags.extend(Team::iter().map(|team| format!("mw-wanted-team-{}", team.slug())));
    tags.extend(Marker::iter().map(|marker| marker.tag().to_owned()));
    tags.extend(
        [
            TAG_AUTO_REPLIED,
            TAG_AUTO_CLOSED,
            TAG_DEFLECTED,
            TAG_SEND_FAILED,
            TAG_ROUTING_APPLIED,
        ]
        .map(str::to_owned),
    );
    tags.sort();
    tags.dedup();
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn string_forms_match_json() {
        for gate in Gate::iter() {
            assert_eq!(serde_json::to_value(gate).unwrap(), gate.as_str());
        }
        for tier in [
            AppliedTier::Tier0,
            AppliedTier::Tier1,
            AppliedTier::Tier2,
            AppliedTier::RouteOnly,
        ] {
            assert_eq!(serde_json::to_value(tier).unwrap(), tier.as_str());
        }
    }
}
