//! The fixed vocabulary of `mw_decision_v1`: intents, teams, tiers, actions, channels,
//! languages, risk flags and clarifying questions.
//!
//! Every enum has one stable string form, used in JSON (serde), in tags and on the
//! command line (`FromStr`/`Display`). Changing a string form is a schema change.

use serde::{Deserialize, Serialize};
use strum::{Display, EnumIter, EnumString, IntoStaticStr};

/// The 25 customer intents of the taxonomy.
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
    Display,
    EnumString,
    EnumIter,
    IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[allow(missing_docs, reason = "the variant names are the documentation")]
pub enum Intent {
    OrderStatusTracking,
    ShippingDelayNotShipped,
    DeliveredNotReceived,
    MissingItemsInShipment,
    WrongItemReceived,
    DamagedItem,
    CancelOrder,
    AddressChangeOrderEdit,
    CancelSubscription,
    BillingIssue,
    PromoDiscountIssue,
    PrePurchaseQuestion,
    InfluencerMarketingInquiry,
    ReturnRequest,
    ExchangeRequest,
    RefundRequest,
    TechnicalSupport,
    PhoneSupportRequest,
    TiktokSupportRequest,
    SocialMediaSupportRequest,
    ChargebackDispute,
    LegalThreat,
    HarassmentThreats,
    FraudSuspected,
    UnknownOther,
}

/// The highest automation an intent may ever receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTier {
    /// Tier 0: escalate to a human, never automate.
    Tier0,
    /// Route to a team; no customer message at all.
    RouteOnly,
    /// Up to a Tier 1 intake/information template.
    Tier1,
    /// Up to a Tier 2 verified order-status template.
    Tier2,
}

/// Multi-intent priority class: a lower number wins (SPEC §3, P0 … P7).
pub type Priority = u8;

impl Intent {
    /// Every intent, in taxonomy order.
    pub fn all() -> impl Iterator<Item = Intent> {
        <Intent as strum::IntoEnumIterator>::iter()
    }

    /// The stable string form, e.g. `order_status_tracking`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The team this intent is routed to by default.
    pub fn default_team(self) -> Team {
        use Intent::*;
        match self {
            OrderStatusTracking
            | ShippingDelayNotShipped
            | CancelOrder
            | AddressChangeOrderEdit
            | CancelSubscription
            | BillingIssue
            | UnknownOther => Team::EmailSupport,
            DeliveredNotReceived
            | MissingItemsInShipment
            | WrongItemReceived
            | DamagedItem
            | ReturnRequest
            | ExchangeRequest
            | RefundRequest => Team::ReturnsAdmin,
            PromoDiscountIssue | PrePurchaseQuestion => Team::Sales,
            InfluencerMarketingInquiry | SocialMediaSupportRequest => Team::SocialMedia,
            TechnicalSupport => Team::TechnicalSupport,
            PhoneSupportRequest => Team::PhoneSupport,
            TiktokSupportRequest => Team::TikTokSupport,
            ChargebackDispute => Team::ChargebacksDisputes,
            LegalThreat | HarassmentThreats | FraudSuspected => Team::Leadership,
        }
    }

    /// The highest tier this intent may be automated at.
    pub fn max_tier(self) -> MaxTier {
        use Intent::*;
        match self {
            OrderStatusTracking | ShippingDelayNotShipped => MaxTier::Tier2,
            PhoneSupportRequest
            | TiktokSupportRequest
            | SocialMediaSupportRequest
            | UnknownOther => MaxTier::RouteOnly,
            ChargebackDispute | LegalThreat | HarassmentThreats | FraudSuspected => MaxTier::Tier0,
            _ => MaxTier::Tier1,
        }
    }

    /// Whether this is a Tier 0 (never automated) intent.
    pub fn is_tier0(self) -> bool {
        self.max_tier() == MaxTier::Tier0
    }

    /// Multi-intent priority class (0 = highest): P0 Tier 0, P1 cancel/address/
    /// subscription/billing, P2 delivery problems, P3 returns, P4 order status,
    /// P5 technical and channel requests, P6 sales, P7 unknown.
    pub fn priority(self) -> Priority {
        use Intent::*;
        match self {
            ChargebackDispute | LegalThreat | HarassmentThreats | FraudSuspected => 0,
            CancelOrder | AddressChangeOrderEdit | CancelSubscription | BillingIssue => 1,
            DeliveredNotReceived | MissingItemsInShipment | WrongItemReceived | DamagedItem => 2,
            ReturnRequest | RefundRequest | ExchangeRequest => 3,
            OrderStatusTracking | ShippingDelayNotShipped => 4,
            TechnicalSupport
            | PhoneSupportRequest
            | TiktokSupportRequest
            | SocialMediaSupportRequest => 5,
            PromoDiscountIssue | PrePurchaseQuestion | InfluencerMarketingInquiry => 6,
            UnknownOther => 7,
        }
    }

    /// Whether this intent is one of the two order-status intents eligible for Tier 2.
    pub fn is_order_status(self) -> bool {
        matches!(
            self,
            Intent::OrderStatusTracking | Intent::ShippingDelayNotShipped
        )
    }
}

/// The 11 support teams of the taxonomy. Tenant team names are configuration; these
/// are the canonical names.
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
    Display,
    EnumString,
    EnumIter,
    IntoStaticStr,
)]
#[allow(missing_docs, reason = "the variant names are the documentation")]
pub enum Team {
    #[serde(rename = "Sales Team")]
    #[strum(serialize = "Sales Team")]
    Sales,
    #[serde(rename = "Backend Team")]
    #[strum(serialize = "Backend Team")]
    Backend,
    #[serde(rename = "Technical Support Team")]
    #[strum(serialize = "Technical Support Team")]
    TechnicalSupport,
    #[serde(rename = "Phone Support Team")]
    #[strum(serialize = "Phone Support Team")]
    PhoneSupport,
    #[serde(rename = "TikTok Support")]
    #[strum(serialize = "TikTok Support")]
    TikTokSupport,
    #[serde(rename = "Returns Admin")]
    #[strum(serialize = "Returns Admin")]
    ReturnsAdmin,
    #[serde(rename = "LiveChat Support")]
    #[strum(serialize = "LiveChat Support")]
    LiveChatSupport,
    #[serde(rename = "Leadership Team")]
    #[strum(serialize = "Leadership Team")]
    Leadership,
    #[serde(rename = "Social Media Team")]
    #[strum(serialize = "Social Media Team")]
    SocialMedia,
    #[serde(rename = "Email Support Team")]
    #[strum(serialize = "Email Support Team")]
    EmailSupport,
    #[serde(rename = "Chargebacks / Disputes Team")]
    #[strum(serialize = "Chargebacks / Disputes Team")]
    ChargebacksDisputes,
}

impl Team {
    /// The canonical display name, e.g. `Returns Admin`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The tag slug of a team name: lowercase, runs of non-alphanumerics become one `-`
    /// (`Chargebacks / Disputes Team` → `chargebacks-disputes-team`).
    pub fn slug(self) -> String {
        slugify(self.as_str())
    }
}

/// Lowercases `name` and joins its alphanumeric runs with `-`.
pub fn slugify(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join("-")
}

/// Automation tier as the classifier states it in `mw_decision_v1`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Display,
    EnumString,
    EnumIter,
    IntoStaticStr,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum Tier {
    /// Escalate to a human team; never automate.
    #[serde(rename = "TIER_0_ESCALATION")]
    #[strum(serialize = "TIER_0_ESCALATION")]
    Tier0Escalation,
    /// A safe intake or information template.
    #[serde(rename = "TIER_1_SAFE_ASSIST")]
    #[strum(serialize = "TIER_1_SAFE_ASSIST")]
    Tier1SafeAssist,
    /// A verified order-status template.
    #[serde(rename = "TIER_2_VERIFIED")]
    #[strum(serialize = "TIER_2_VERIFIED")]
    Tier2Verified,
    /// Automatic actions on the order: disabled in v1, always downgraded.
    #[serde(rename = "TIER_3_AUTO_ACTION")]
    #[strum(serialize = "TIER_3_AUTO_ACTION")]
    Tier3AutoAction,
}

/// The automation action a classifier advises.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Display,
    EnumString,
    EnumIter,
    IntoStaticStr,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum AutomationAction {
    /// Tag and route only, no customer message.
    RouteOnly,
    /// Send an approved template.
    SendTemplate,
    /// Send an acknowledgement template only.
    AckOnly,
}

/// The channel a conversation arrived on.
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
    Display,
    EnumString,
    EnumIter,
    IntoStaticStr,
    Default,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Channel {
    /// Email.
    #[default]
    Email,
    /// Live chat (Richpanel widget).
    Livechat,
    /// Social messaging: Messenger, Instagram, WhatsApp.
    Social,
    /// TikTok.
    Tiktok,
    /// Phone call transcript.
    Phone,
    /// SMS.
    Sms,
}

impl Channel {
    /// Every channel.
    pub fn all() -> impl Iterator<Item = Channel> {
        <Channel as strum::IntoEnumIterator>::iter()
    }

    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Maps a Richpanel `via.channel` value (any case) to a channel; unknown values
    /// map to `None` so the caller can decide (the policy treats them as disabled).
    pub fn from_richpanel(value: &str) -> Option<Channel> {
        match value.trim().to_ascii_lowercase().as_str() {
            "email" | "mail" => Some(Channel::Email),
            "chat" | "livechat" | "live_chat" | "widget" => Some(Channel::Livechat),
            "messenger" | "facebook" | "instagram" | "whatsapp" | "social" => Some(Channel::Social),
            "tiktok" => Some(Channel::Tiktok),
            "aircall" | "phone" | "voice" | "call" => Some(Channel::Phone),
            "sms" | "text" => Some(Channel::Sms),
            _ => None,
        }
    }
}

/// Message language.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Display,
    EnumString,
    EnumIter,
    IntoStaticStr,
    Default,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Language {
    /// English.
    En,
    /// Spanish.
    Es,
    /// Not determined; replies use English.
    #[default]
    Unknown,
}

impl Language {
    /// The language a reply is written in: Spanish for `es`, English otherwise.
    pub fn reply_language(self) -> Language {
        match self {
            Language::Es => Language::Es,
            _ => Language::En,
        }
    }

    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// High-risk flags a classifier may raise; any flag forces Tier 0.
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
    Display,
    EnumString,
    EnumIter,
    IntoStaticStr,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs, reason = "the variant names are the documentation")]
pub enum RiskFlag {
    ChargebackDispute,
    LegalThreat,
    HarassmentThreats,
    FraudSuspected,
    OtherHighRisk,
}

impl RiskFlag {
    /// The Tier 0 intent a flag stands for (`OTHER_HIGH_RISK` has none).
    pub fn intent(self) -> Option<Intent> {
        match self {
            RiskFlag::ChargebackDispute => Some(Intent::ChargebackDispute),
            RiskFlag::LegalThreat => Some(Intent::LegalThreat),
            RiskFlag::HarassmentThreats => Some(Intent::HarassmentThreats),
            RiskFlag::FraudSuspected => Some(Intent::FraudSuspected),
            RiskFlag::OtherHighRisk => None,
        }
    }
}

/// Questions the classifier suggests asking the customer.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Display,
    EnumString,
    EnumIter,
    IntoStaticStr,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs, reason = "the variant names are the documentation")]
pub enum ClarifyingQuestion {
    AskOrderNumber,
    AskEmailOrPhone,
    AskShippingZip,
    AskPhotoOrVideo,
    AskProductModel,
    AskTroubleshootingDetails,
}

/// What the Tier 2 verifier says to do instead when it denies.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Display,
    EnumString,
    IntoStaticStr,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum DowngradeTier {
    /// Ask for the order number with the Tier 1 template.
    #[serde(rename = "TIER_1_SAFE_ASSIST")]
    #[strum(serialize = "TIER_1_SAFE_ASSIST")]
    Tier1SafeAssist,
    /// Route only.
    RouteOnly,
    /// Escalate.
    #[serde(rename = "TIER_0_ESCALATION")]
    #[strum(serialize = "TIER_0_ESCALATION")]
    Tier0Escalation,
}

/// The verifier's reason code.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Display,
    EnumString,
    IntoStaticStr,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs, reason = "the variant names are the documentation")]
pub enum VerifierReason {
    Ok,
    NotOrderStatus,
    ConflictingIntent,
    DeterministicMatchFalse,
    TooAmbiguous,
    EscalationPresent,
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn taxonomy_sizes_match_the_spec() {
        assert_eq!(Intent::iter().count(), 25);
        assert_eq!(Team::iter().count(), 11);
        assert_eq!(Channel::iter().count(), 6);
    }

    #[test]
    fn string_forms_round_trip() {
        for intent in Intent::iter() {
            let text = intent.to_string();
            assert_eq!(text.parse::<Intent>().ok(), Some(intent));
            let json = serde_json::to_string(&intent).unwrap_or_default();
            assert_eq!(json, format!("\"{text}\""));
        }
        for team in Team::iter() {
            let json = serde_json::to_string(&team).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", team.as_str()));
        }
        assert_eq!(Tier::Tier2Verified.to_string(), "TIER_2_VERIFIED");
        assert_eq!(
            serde_json::to_string(&Tier::Tier0Escalation).unwrap_or_default(),
            "\"TIER_0_ESCALATION\""
        );
    }

    #[test]
    fn team_slugs() {
        assert_eq!(
            Team::ChargebacksDisputes.slug(),
            "chargebacks-disputes-team"
        );
        assert_eq!(Team::ReturnsAdmin.slug(), "returns-admin");
        assert_eq!(Team::TikTokSupport.slug(), "tiktok-support");
    }

    #[test]
    fn the_taxonomy_table() {
        assert_eq!(Intent::DamagedItem.default_team(), Team::ReturnsAdmin);
        assert_eq!(Intent::DamagedItem.max_tier(), MaxTier::Tier1);
        assert_eq!(
            Intent::ChargebackDispute.default_team(),
            Team::ChargebacksDisputes
        );
        assert_eq!(Intent::FraudSuspected.default_team(), Team::Leadership);
        assert_eq!(Intent::PhoneSupportRequest.max_tier(), MaxTier::RouteOnly);
        assert_eq!(Intent::OrderStatusTracking.max_tier(), MaxTier::Tier2);
        assert_eq!(Intent::UnknownOther.default_team(), Team::EmailSupport);
    }
}
